//! lonc-host: everything both lonc daemons (`lonc-std` on threads, `lonc` on smol) share,
//! so that a runtime brings only its driver and its way of waiting:
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line, the program name, the exit codes |
//! | [`sendcmd`] | the operator commands `send`, `check-config`, `status` |
//! | [`load`], [`paths`] | reading the config and hosts.tab; where the files are |
//! | [`startup`] | a daemon's start: config, user, detaching, pid file, logs, limits |
//! | [`supervisor`] | the peers of hosts.tab on their sockets, signals' actions, reloads |
//! | [`signals`] | what each signal means |
//! | [`process`] | detaching, the user check, the open-file limit, sending signals |
//! | [`pidfile`], [`logfile`], [`status`], [`spool`] | the pid file, the logs, the status file, the delayed spool |
//! | [`socket`], [`nofollow`] | the peers' Unix sockets and their directory; opening files without following symlinks |
//! | [`socket_ops`] | shutting a connected socket down, bounding its writes |
//! | [`link_socket`], [`fd_reserve`], [`local_error`] | opening a TCP link to lond within the descriptors kept for clients; the daemon's own shortages |
//! | [`peer_io`], [`chores`], [`writers`], [`hangup`] | the loop step and peer table both drivers share around the core, the file work a peer asks for, write-queue accounting, watching a half-closed client |
//! | [`site`] | a throwaway LON-CAPA site for the demo and the tests |
#![warn(missing_docs)]

pub mod chores;
pub mod cli;
pub mod fd_reserve;
pub mod hangup;
pub mod link_socket;
pub mod load;
pub mod local_error;
pub mod logfile;
pub mod nofollow;
pub mod paths;
pub mod peer_io;
pub mod pidfile;
pub mod process;
pub mod sendcmd;
pub mod signals;
pub mod site;
pub mod socket;
pub mod socket_ops;
pub mod spool;
pub mod startup;
pub mod status;
pub mod supervisor;
mod sync;
pub mod writers;
