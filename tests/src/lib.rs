//! lonc-tests: the deterministic simulation harness (virtual clock, in-memory network) and
//! end-to-end helpers.
#![warn(missing_docs)]

pub mod e2e;
pub mod hardening_config;
pub mod hardening_files;
pub mod hardening_link;
pub mod hardening_spool;
pub mod hardening_stop;
pub mod lond_app;
pub mod model;
pub mod netem;
pub mod sim;
pub mod suite;
pub mod swarm;
