//! lonc-smol: the async lonc daemon `lonc` on smol, one process for thousands of peers.
//! It shares everything but the driver with `lonc-std`: command line, config loading,
//! pid file, logs, spool, status file and the supervisor.
#![warn(missing_docs)]

pub mod daemon;
pub mod demo;
pub mod driver;
