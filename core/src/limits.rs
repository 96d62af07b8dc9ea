//! The limits and deadlines the core sets for its runtimes to apply: how many bytes may
//! wait unwritten to a client or to lond before the core gives up on it, how long a
//! closing connection may still flush, how long requests in flight get at shutdown, and
//! how long past that a runtime waits for its threads or tasks. A runtime never chooses
//! these: it reports what it sees (the inputs `ClientBacklog` and `ConnBacklog`) and
//! carries out what the core answers.

use std::time::Duration;

/// The most bytes a client's replies may wait unwritten when another reply is queued for
/// it: a client found with this much waiting is dropped (so it can hold no more memory
/// than this and one reply). One reply of any size is always taken while less waits.
pub const CLIENT_BACKLOG_LIMIT: usize = 16 * 1024 * 1024;

/// The most bytes of requests that may wait unwritten to lond when another is queued: a
/// connection found with this much waiting is closed ("lond does not read its requests").
pub const CONN_BACKLOG_LIMIT: usize = 16 * 1024 * 1024;

/// How long a closed connection may still take to flush what was queued for it (`exit`,
/// say) to a lond that does not read; also how long a stopping daemon waits for its
/// writers to flush the replies finished in the grace period.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How long requests in flight may take to finish on TERM/INT, a reload or the removal
/// of a peer (`Peer::shutdown`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long past the grace period a stopping peer's threads or tasks may take to end
/// before the daemon stops without them (logging which peer did not stop).
pub const STOP_SLACK: Duration = Duration::from_secs(3);
