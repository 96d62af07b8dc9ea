//! lonc-std: the blocking lonc daemon on std threads and sockets. It owns only its thread
//! driver and its run loop; everything else (command line, config, files, sockets,
//! supervisor, the shared loop step and peer table) is [`lonc_host`]'s, shared with the
//! smol daemon.
//!
//! | module | owns |
//! |---|---|
//! | [`driver`] | the peer thread: what differs on threads (connect, attach, file work, waiting) |
//! | [`handle`] | a running peer: start, revive, a stop bounded in time |
//! | [`streams`] | writer threads and their queues, the read loop, the acceptor |
//! | [`daemon`] | the run loop: signals from a listener thread |
#![warn(missing_docs)]

pub mod daemon;
pub mod driver;
pub mod handle;
pub mod streams;
#[cfg(test)]
mod tests;
