//! # lonc-core: the sans-IO lonc engine
//!
//! Every decision the LON-CAPA `lonc` daemon makes lives here, as pure state machines:
//! line framing ([`mod@line`]), the Perl `pack("H32")` key derivation ([`key`]), the IDEA
//! `encrypt:` / `enc:` transforms ([`cipher`]), `PerlSetVar` and `hosts.tab` parsing
//! ([`config`], [`hosts`]), the client side of the classic handshake ([`handshake`]), one
//! peer with its TCP connections, queue, timeouts, backoff and delayed messages
//! ([`peer`], [`delayed`], and [`spool_watch`] for what a peer remembers about its spool
//! files between rounds), and the lond side of the handshake for test peers ([`lond`]).
//!
//! ## One peer, in parts
//! A [`peer::Peer`] is the only public door to a link; it composes private parts with one
//! job each, the quinn-proto way. Each part keeps its own state and reports back in
//! values; the peer decides what a report means for the others and emits every
//! [`io::Output`] in order.
//!
//! | file          | owns                                                                  |
//! |---------------|-----------------------------------------------------------------------|
//! | `peer.rs`     | the public API: inputs, outputs, state, the deadline                  |
//! | `peer/drive.rs` | after every input: answer or queue client requests, send what can go, open connections, shut down |
//! | `peer/links.rs` | what connection reports mean: ready, reply, lost, failed attempt, idle |
//! | `clients.rs`  | each local client's request lines and reply order; when it is closed  |
//! | `queue.rs`    | requests waiting for a connection and their bounds (`QUEUE_LIMIT`, bytes) |
//! | `conn.rs`     | one TCP connection: handshake, cipher, requests in flight, its own deadline; events `Ready`, `Reply`, `Lost`, `Failed`, ... |
//! | `pool.rs`     | the connections by id: which one takes the next request, whether to open another |
//! | `backoff.rs`  | failed attempts, the drawn backoff, dead until USR1, local resource errors |
//! | `flush.rs`    | the delayed flush round: list, read, send, delete, one file at a time |
//! | `spool_watch.rs` | what the flush remembers about spool files between rounds          |
//! | `timer.rs`    | the peer's deadlines (retry, rescan, grace) in a table indexed by an enum |
//! | `limits.rs`   | the bounds and deadlines a runtime applies: unwritten bytes, close linger, shutdown grace |
//!
//! [`peer::Peer::poll_timeout`] is the minimum of the connections' own deadlines (and
//! their idle close) and the timer table; [`peer::Peer::handle_timeout`] fires from the
//! same values.
//!
//! ## What the core never does
//! It opens no socket or file, starts no thread, reads no clock and draws no randomness of
//! its own. Time comes in as an [`std::time::Instant`] argument on every call that needs it;
//! randomness comes in as a seed when a [`peer::Peer`] is made. Actions go out as values
//! ([`io::Output`]) for a runtime to carry out.
//!
//! ## The run-loop contract
//! A runtime drives one [`peer::Peer`] like this (the same rule as str0m and quinn-proto):
//!
//! 1. Feed one input through a `handle_*` method (bytes from a client or from lond, a
//!    connection that opened, failed or closed, a delayed-spool listing or file, bytes a
//!    socket could not write yet, or [`peer::Peer::handle_timeout`] when the deadline has
//!    passed).
//! 2. Drain [`peer::Peer::poll_output`] until it returns `None`, carrying out every
//!    [`io::Output`] in the order given. Outputs that ask for an answer (a connection
//!    attempt, a spool listing or read) are answered later by another `handle_*` call.
//! 3. Ask [`peer::Peer::poll_timeout`] for the next deadline, wait for the next input or
//!    that deadline, whichever comes first, and go back to 1.
//!
//! Nothing is fed while draining: what a runtime learns while carrying outputs out (a
//! write that did not complete at once, a spool answer) waits until the drain is over,
//! then goes in as the next input.
//!
//! Calling `handle_timeout` early is harmless: only what is due at `now` fires.
//! Bad bytes from a client or from the network never panic the core: they become a reply
//! (`con_lost`, `error:request_too_long`), a closed connection and a log event.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
pub mod cipher;
mod clients;
pub mod config;
mod conn;
pub mod delayed;
mod flush;
pub mod handshake;
pub mod hosts;
pub mod io;
pub mod key;
pub mod limits;
pub mod line;
pub mod lond;
pub mod peer;
mod pool;
mod queue;
pub mod roster;
pub mod spool_watch;
mod timer;
