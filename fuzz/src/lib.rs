//! What the fuzz targets share: the `peer_inputs` harness ([`world`]), a peer wired to
//! real lond sessions, and the reference model its oracle checks against ([`model`]).

pub mod model;
pub mod world;
