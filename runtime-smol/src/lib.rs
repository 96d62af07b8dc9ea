//! lonc-smol: the async lonc daemon `lonc` on smol, one process for thousands of peers.
//! It owns only its driver and its run loop, and [`demo`] (in-process `lond-sim` peers).
//! Everything else it shares with `lonc-std` through `lonc-host`: command line, config
//! loading, pid file, logs, spool, status file, the supervisor, and the loop step and
//! peer table around the core.
//!
//! | module | owns |
//! |---|---|
//! | [`driver`] | the peer task: what differs on smol (connect, attach, file work, waiting) |
//! | [`connect`] | opening a link on the reactor, no blocking pool |
//! | [`streams`] | writer tasks and their queues, the read loop, the acceptor |
//! | [`peers`] | the running peers: start, revive, a stop bounded in time |
//! | [`daemon`] | the run loop: signals through `async-signal` |
#![warn(missing_docs)]

pub mod connect;
pub mod daemon;
pub mod demo;
pub mod driver;
pub mod peers;
pub mod streams;
#[cfg(test)]
mod tests;
