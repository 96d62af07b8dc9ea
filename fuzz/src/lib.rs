//! What the fuzz targets share: the `peer_inputs` harness ([`world`]), a peer wired to
//! real lond sessions, and the reference model its oracle checks against ([`model`]);
//! the `lond_session` harness and its model of lond's answers ([`lond_model`]).

pub mod lond_model;
pub mod model;
pub mod world;
