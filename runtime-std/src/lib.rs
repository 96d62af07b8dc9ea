//! lonc-std: the blocking lonc daemon on std threads and sockets, the daemon plumbing both
//! runtimes share (command line, config loading, paths, pid file, logs, delayed spool,
//! status file, sockets, process setup), and `lond-sim`, a lond-compatible test peer.
#![warn(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod driver;
pub mod fd_reserve;
pub mod hangup;
pub mod link_socket;
pub mod load;
pub mod local_error;
pub mod logfile;
pub mod lond_sim;
pub mod nofollow;
pub mod paths;
pub mod peer_io;
pub mod pidfile;
pub mod process;
pub mod sendcmd;
pub mod signals;
pub mod site;
pub mod socket;
pub mod spool;
pub mod status;
pub mod supervisor;
mod sync;
pub mod writers;
