//! lonc-std: the blocking lonc daemon on std threads and sockets. It owns only its thread
//! driver ([`driver`]: a thread per peer, small threads moving bytes) and its run loop
//! ([`daemon`]: signals from a listener thread); everything else (command line, config,
//! files, sockets, supervisor, the peer table) is [`lonc_host`]'s, shared with the smol
//! daemon.
#![warn(missing_docs)]

pub mod daemon;
pub mod driver;
