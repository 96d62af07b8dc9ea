//! lonc-smol: the async lonc daemon `lonc` on smol, one process for thousands of peers.
//! It owns only its driver ([`driver`]: a task per peer), its run loop ([`daemon`]:
//! signals through `async-signal`) and [`demo`] (in-process `lond-sim` peers). Everything
//! else it shares with `lonc-std` through `lonc-host`: command line, config loading, pid
//! file, logs, spool, status file, the supervisor and the peer table.
#![warn(missing_docs)]

pub mod daemon;
pub mod demo;
pub mod driver;
