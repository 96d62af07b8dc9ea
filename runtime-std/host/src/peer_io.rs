//! The part of a peer's driver both runtimes share: the inputs a peer's thread or task
//! receives ([`Input`]), the table of its clients' and connections' write queues, and the
//! loop step that feeds the core one input, drains its outputs to the end and carries
//! them out ([`PeerIo::step`]). What a runtime does differently (how it connects, starts
//! a connection's reader and writer, does file work, and waits) is its [`Driver`].
//!
//! Nothing feeds the core during a drain: what is learned while carrying outputs out (a
//! write queued behind unwritten bytes, an answer to a spool request) is kept and fed
//! after the drain, one input at a time, each followed by its own drain.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lonc_core::io::{ClientId, ConnId, Input as PeerInput, Output};
use lonc_core::limits::SHUTDOWN_GRACE;
use lonc_core::peer::{Peer, PeerState};
use lonc_core::roster::PeerSpec;

use crate::chores::Chore;
use crate::local_error::{alarm, is_local_resource_error};
use crate::logfile::LogFiles;
use crate::snapshot::Snapshot;

pub use crate::inbox::Inbox;
pub use crate::writers::{Backlog, WriterGuard, Writers};

/// How many data inputs may wait for a peer's thread or task before readers wait
/// (backpressure: at most this many read chunks are buffered per peer); notices never
/// wait ([`Inbox`]).
pub const INPUT_QUEUE: usize = 256;
/// How much one read takes from a socket.
pub const READ_CHUNK: usize = 64 * 1024;

/// The pause before `accept()` is tried again after a local resource error (out of file
/// descriptors, say): the client waits in the listen queue meanwhile. Mechanics, not
/// policy: nothing is decided by it.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The pause before `accept()` is tried again after any other error (a client that went
/// away before it was accepted, and the like). Mechanics, as [`ACCEPT_PAUSE`].
pub const ACCEPT_RETRY: Duration = Duration::from_millis(20);

/// What a runtime does after `accept()` failed with `e`: how long to pause before it
/// accepts again (zero: at once, for `WouldBlock` and `Interrupted`), and whether the
/// error is a shortage of the host's own that the daemon-wide alarm must hear of
/// ([`crate::local_error::alarm`]).
pub fn after_accept_error(e: &io::Error) -> (Duration, bool) {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    ) {
        (Duration::ZERO, false)
    } else if crate::local_error::is_local_resource_error(e) {
        (ACCEPT_PAUSE, true)
    } else {
        (ACCEPT_RETRY, false)
    }
}

/// What reaches a peer's thread or task, through its [`Inbox`]. `W` is a write queue
/// ([`Outbox`]), `S` a freshly connected TCP stream.
pub enum Input<W, S> {
    /// A client connected to the peer's socket; its replies go to this queue (boxed: it
    /// is the largest input, and every slot of a queue is as large as its largest).
    ClientAccepted(ClientId, Box<W>),
    /// A connect attempt succeeded.
    Connected(ConnId, S),
    /// Anything else: bytes, ends, failures, spool answers, USR1, stop.
    Peer(PeerInput),
}

impl<W, S> Input<W, S> {
    /// TERM/INT or removal: stop, giving requests in flight the core's grace
    /// ([`SHUTDOWN_GRACE`]).
    pub fn stop() -> Self {
        Input::Peer(PeerInput::Shutdown(SHUTDOWN_GRACE))
    }
}

/// A socket's write queue, drained in order by a writer thread or task that shuts the
/// socket down once the queue is dropped.
pub trait Outbox {
    /// Queues bytes after those queued before. Returns how many bytes were still waiting
    /// unwritten before them (zero: the writer had caught up), or `None` if the writer is
    /// gone (its failure was reported as an input).
    fn push(&self, data: Bytes) -> Option<usize>;
    /// Shuts the socket down at once (its writer may be blocked on a peer that does not
    /// read).
    fn abort(&self);
    /// Lets the writer flush what is queued for `linger` at most, then the socket is shut
    /// down even if the other side never reads. Called just before the queue is dropped.
    fn linger(&self, linger: Duration);
}

/// What a runtime does for [`PeerIo`]. Each call may answer at once with an input for the
/// core, which is fed after the drain; a later answer comes back as an [`Input`].
pub trait Driver {
    /// A socket's write queue.
    type Outbox: Outbox;
    /// A connected TCP stream.
    type Stream;
    /// Starts a connect attempt; its outcome comes back as an input
    /// ([`connect_outcome`]).
    fn connect(&mut self, dial: Dial) -> Option<PeerInput>;
    /// Starts the reader and writer of a new connection: its write queue, or the input
    /// that says why it could not be set up.
    fn attach(&mut self, conn: ConnId, stream: Self::Stream) -> Result<Self::Outbox, PeerInput>;
    /// Does file work (spool, logs), at once or later ([`crate::chores::carry_out`]).
    fn chore(&mut self, chore: Chore) -> Option<PeerInput>;
}

/// A connect attempt the core asked for (`Output::Connect`), with the core's timeout.
#[derive(Debug)]
pub struct Dial {
    /// The connection's id.
    pub conn: ConnId,
    /// hosts.tab's ip field: an address or a name.
    pub host: String,
    /// `londPort`.
    pub port: u16,
    /// `loncConnectTimeout`.
    pub timeout: Duration,
}

/// The input for the outcome of a connect attempt: [`Input::Connected`], or for an error
/// `ConnectLocalError` when it is the daemon's own shortage ([`is_local_resource_error`],
/// reported to the daemon-wide [`alarm`]), else `ConnectFailed`. Both runtimes classify
/// through this one function.
pub fn connect_outcome<W, S>(conn: ConnId, result: io::Result<S>, logs: &LogFiles) -> Input<W, S> {
    match result {
        Ok(stream) => Input::Connected(conn, stream),
        Err(e) if is_local_resource_error(&e) => {
            alarm().report(logs, "opening a link to lond", &e);
            Input::Peer(PeerInput::ConnectLocalError(conn, e.to_string()))
        }
        Err(e) => Input::Peer(PeerInput::ConnectFailed(conn, e.to_string())),
    }
}

/// The input for a connection whose thread could not be started while `doing`: a local
/// resource error, reported to the daemon-wide [`alarm`].
pub fn thread_failed(conn: ConnId, doing: &str, e: &io::Error, logs: &LogFiles) -> PeerInput {
    alarm().report_thread(logs, doing, e);
    PeerInput::ConnectLocalError(conn, format!("{doing}: {e}"))
}

/// What the peer thread shows the rest of the daemon (for the status file).
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    /// The peer's state word.
    pub state: PeerState,
}

/// A peer's state machine with the write queues of its clients and connections.
pub struct PeerIo<D: Driver> {
    peer: Peer,
    clients: BTreeMap<ClientId, D::Outbox>,
    /// Connections whose reader and writer run.
    conns: BTreeMap<ConnId, D::Outbox>,
    /// Inputs learned during a drain, fed after it.
    later: VecDeque<PeerInput>,
    snapshot: Snapshot<PeerSnapshot>,
}

impl<D: Driver> PeerIo<D> {
    /// A peer for `spec`, starting now with a random backoff seed; its state is
    /// published to the returned snapshot.
    pub fn start(spec: &PeerSpec, own_id: &str) -> (Self, Snapshot<PeerSnapshot>) {
        let peer = Peer::new(
            &spec.id,
            own_id,
            &spec.host,
            spec.port,
            spec.link.clone(),
            rand::random(),
            Instant::now(),
        );
        let snapshot = Snapshot::new(PeerSnapshot {
            state: peer.state(),
        });
        let io = PeerIo {
            peer,
            clients: BTreeMap::new(),
            conns: BTreeMap::new(),
            later: VecDeque::new(),
            snapshot: snapshot.clone(),
        };
        (io, snapshot)
    }

    /// When [`PeerIo::step`] must be called with no input, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.peer.poll_timeout()
    }

    /// True once the peer has stopped: the driver's loop ends.
    pub fn is_stopped(&self) -> bool {
        self.peer.is_stopped()
    }

    /// One turn of the run loop: feeds `input` (`None`: the deadline passed) to the core,
    /// then [`PeerIo::settle`]s.
    pub fn step(&mut self, d: &mut D, input: Option<Input<D::Outbox, D::Stream>>) {
        let now = Instant::now();
        match input {
            None => self.peer.handle_timeout(now),
            Some(Input::ClientAccepted(client, w)) => {
                self.clients.insert(client, *w);
                self.peer.handle_client_opened(now, client);
            }
            // An attempt the core gave up on: dropping the stream closes it.
            Some(Input::Connected(conn, stream)) if self.peer.awaits_connect(conn) => {
                match d.attach(conn, stream) {
                    Ok(w) => {
                        self.conns.insert(conn, w);
                        self.peer.handle_connected(now, conn);
                    }
                    Err(why) => self.peer.handle(now, why),
                }
            }
            Some(Input::Connected(..)) => {}
            Some(Input::Peer(input)) => {
                if let PeerInput::ClientGone(client) = &input {
                    self.clients.remove(client);
                }
                self.peer.handle(now, input);
            }
        }
        self.settle(d);
    }

    /// Drains the core's outputs to the end, carrying each out, then feeds what was
    /// learned meanwhile, one input per drain, until nothing is left; publishes the
    /// peer's state. Call it once before the first wait (the peer's first outputs).
    pub fn settle(&mut self, d: &mut D) {
        loop {
            while let Some(out) = self.peer.poll_output() {
                self.carry_out(d, out);
            }
            let Some(input) = self.later.pop_front() else {
                break;
            };
            self.peer.handle(Instant::now(), input);
        }
        self.snapshot.publish(PeerSnapshot {
            state: self.peer.state(),
        });
    }

    /// Carries out one output: writes and closes here, the rest through the driver.
    fn carry_out(&mut self, d: &mut D, out: Output) {
        let answer = match out {
            Output::Connect { conn, host, port } => {
                let timeout = self.peer.settings().connect_timeout;
                d.connect(Dial {
                    conn,
                    host,
                    port,
                    timeout,
                })
            }
            Output::Transmit { conn, data } => {
                match self.conns.get(&conn).and_then(|w| w.push(data)) {
                    Some(unwritten @ 1..) => Some(PeerInput::ConnBacklog(conn, unwritten)),
                    _ => None,
                }
            }
            Output::CloseConn { conn, linger } => {
                if let Some(w) = self.conns.remove(&conn) {
                    close(&w, linger);
                }
                None
            }
            Output::Reply { client, data } => {
                match self.clients.get(&client).and_then(|w| w.push(data)) {
                    Some(unwritten @ 1..) => Some(PeerInput::ClientBacklog(client, unwritten)),
                    _ => None,
                }
            }
            // Dropping the queue lets the writer flush what was queued, then shut it.
            Output::CloseClient { client } => {
                self.clients.remove(&client);
                None
            }
            Output::AbortClient { client } => {
                if let Some(w) = self.clients.remove(&client) {
                    w.abort();
                }
                None
            }
            Output::ListDelayed => d.chore(Chore::ListDelayed),
            Output::ReadDelayed { name } => {
                let max = self.peer.settings().max_request;
                d.chore(Chore::ReadDelayed { name, max })
            }
            Output::DeleteDelayed { name } => d.chore(Chore::DeleteDelayed(name)),
            Output::PermLog(entry) => d.chore(Chore::PermLog(entry)),
            Output::Log(event) => d.chore(Chore::Log(event)),
        };
        self.later.extend(answer);
    }

    /// Closes every connection and drops every client queue (the peer has stopped).
    pub fn close_all(&mut self) {
        for w in std::mem::take(&mut self.conns).into_values() {
            w.abort();
        }
        self.clients.clear();
    }
}

/// Closes a connection's socket: at once, or after its writer flushed for `linger`.
fn close<W: Outbox>(w: &W, linger: Duration) {
    if linger.is_zero() {
        w.abort();
    } else {
        w.linger(linger);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_an_accept_error_the_pause_fits_the_cause() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            after_accept_error(&Error::from(ErrorKind::WouldBlock)),
            (Duration::ZERO, false)
        );
        assert_eq!(
            after_accept_error(&Error::from_raw_os_error(nix::libc::EMFILE)),
            (ACCEPT_PAUSE, true)
        );
        assert_eq!(
            after_accept_error(&Error::from_raw_os_error(nix::libc::ECONNABORTED)),
            (ACCEPT_RETRY, false)
        );
    }
}
