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
//! | [`inbox`], [`signal_flags`], [`snapshot`], [`chore_queue`] | the handoffs between threads or tasks: a peer's inputs (bounded data, notices never lost), signals to the supervisor, a peer's state for the status file, file work for a worker (all checked by loom, `tests/loom.rs`); [`inbox_check`], the runtimes' own test of their wiring against a full inbox |
//! | [`site`] | a throwaway LON-CAPA site for the demo and the tests |
//!
//! ## Follow a request
//! One request, from a local program's `connect()` to its reply, opens five files (the
//! same five shapes in either daemon; `lonc-std` shown, `lonc` has files of the same
//! names in `runtime-smol/src/`):
//!
//! 1. `runtime-std/src/streams.rs`: the peer's `Acceptor`
//!    accepts the client, starts its writer (a thread draining an [`peer_io::Outbox`]) and
//!    its reader, and sends `ClientAccepted`; the reader sends each chunk it reads as
//!    `ClientData` to the peer thread's [`inbox::Inbox`].
//! 2. `runtime-std/src/driver.rs`: the peer thread's loop waits for that input (or the
//!    core's deadline) and hands it to [`peer_io::PeerIo::step`].
//! 3. `runtime-std/host/src/peer_io.rs` (this crate): `step` feeds the one input to the
//!    core, then drains every output and carries it out: a `Transmit` is pushed on the
//!    connection's write queue (a queue behind unwritten bytes is reported back to the
//!    core after the drain, never during it), a `Reply` on the client's, a `Connect` or
//!    file work goes to the runtime's [`peer_io::Driver`].
//! 4. `core/src/peer.rs`: `handle_client_data` cuts the bytes into request lines and
//!    calls `drive` (in `core/src/peer/drive.rs`, a part of the same `Peer`), which
//!    queues the request, writes it on a free ready connection (`Output::Transmit`), or
//!    asks for one (`Output::Connect`).
//! 5. lond answers on the connection; its reader (started by `attach` in `driver.rs`)
//!    sends `ConnData` the same way (2, 3), and `handle_conn_data` in `core/src/peer.rs`
//!    turns the line into a reply for the request's client, in the client's order
//!    (`core/src/peer/links.rs` and `core/src/clients.rs` hold the rules), as
//!    `Output::Reply`; back in `peer_io.rs` it is pushed on the client's queue, and the
//!    writer from step 1 (`streams.rs`) writes it.
//!
//! Files opened: `streams.rs`, `driver.rs`, `peer_io.rs`, `peer.rs` and `peer/drive.rs`
//! — five; the core's deeper rules (how a connection decrypts, `conn.rs`; the reply
//! order, `clients.rs`; the reply's way through `peer/links.rs`) are there for whoever
//! wants them, not needed to follow the request.
#![warn(missing_docs)]

pub mod chore_queue;
pub mod chores;
pub mod cli;
pub mod fd_reserve;
pub mod hangup;
pub mod inbox;
pub mod inbox_check;
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
pub mod signal_flags;
pub mod signals;
pub mod site;
pub mod snapshot;
pub mod socket;
pub mod socket_ops;
pub mod spool;
pub mod startup;
pub mod status;
pub mod supervisor;
mod sync;
pub mod writers;
