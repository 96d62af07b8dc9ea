//! The part of a peer's driver both runtimes share: the inputs a peer's thread or task
//! receives, the table of its clients' and connections' write queues, and the carrying out
//! of every core output that is only a write, a close or a bookkeeping step. What is left
//! for a runtime ([`Action`]: connect, spool files, log lines) depends on how it waits;
//! the spool steps themselves are here ([`spool_list`], [`spool_read`], [`spool_delete`]),
//! and the connect is [`crate::link_socket::open_tcp`].

use std::collections::BTreeMap;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lonc_core::delayed::{DelayedEntry, PermLogEntry};
use lonc_core::io::{ClientId, ConnId, LogEvent, Output, Severity};
use lonc_core::peer::{Peer, PeerState};
use lonc_core::roster::PeerSpec;

use crate::local_error::{alarm, is_local_resource_error};
use crate::logfile::LogFiles;
use crate::spool::Spool;

/// How many inputs may wait for a peer's thread or task before readers wait
/// (backpressure: at most this many read chunks are buffered per peer).
pub const INPUT_QUEUE: usize = 256;
/// How much one read takes from a socket.
pub const READ_CHUNK: usize = 64 * 1024;

/// What reaches a peer's thread or task. `W` is a write queue ([`Outbox`]), `S` a freshly
/// connected TCP stream.
pub enum Input<W, S> {
    /// A client connected to the peer's socket; its replies go to this queue.
    ClientAccepted(ClientId, W),
    /// Bytes from a client.
    ClientData(ClientId, Vec<u8>),
    /// A client closed its writing side.
    ClientEof(ClientId),
    /// A client's socket failed.
    ClientGone(ClientId),
    /// A connect attempt succeeded.
    Connected(ConnId, S),
    /// A connect attempt failed.
    ConnectFailed(ConnId, String),
    /// A connect attempt could not be made for a reason of this host's own (out of file
    /// descriptors or memory, no thread): not the peer's failure. See [`connect_outcome`].
    ConnectLocalError(ConnId, String),
    /// Bytes from lond.
    ConnData(ConnId, Vec<u8>),
    /// lond closed, or the connection failed.
    ConnClosed(ConnId),
    /// USR1.
    Revive,
    /// TERM/INT or removal: stop with this grace period.
    Shutdown(Duration),
}

/// A socket's write queue, drained in order by a writer thread or task that shuts the
/// socket down once the queue is dropped.
pub trait Outbox {
    /// Queues bytes; false if the writer is gone or its [`Backlog`] is full.
    fn push(&self, data: Bytes) -> bool;
    /// Shuts the socket down at once (its writer may be blocked on a peer that does not
    /// read).
    fn abort(&self);
}

pub use crate::writers::{Backlog, MAX_BACKLOG, WriterGuard, Writers};

/// How long a closed connection's writer may still take to flush (`exit`, say) to a lond
/// that does not read.
pub const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// How long past the grace period a stopping peer's threads or tasks may take to end
/// before the daemon stops without them (logging which peer did not stop).
pub const STOP_SLACK: Duration = Duration::from_secs(3);

/// The pause before `accept()` is tried again after a local resource error (out of file
/// descriptors, say): the client waits in the listen queue meanwhile.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The input for the outcome of a connect attempt: [`Input::Connected`], or for an error
/// [`Input::ConnectLocalError`] when it is the daemon's own shortage
/// ([`is_local_resource_error`], reported to the daemon-wide [`alarm`]), else
/// [`Input::ConnectFailed`]. Both runtimes classify through this one function.
pub fn connect_outcome<W>(
    conn: ConnId,
    result: io::Result<TcpStream>,
    logs: &LogFiles,
) -> Input<W, TcpStream> {
    match result {
        Ok(stream) => Input::Connected(conn, stream),
        Err(e) if is_local_resource_error(&e) => {
            alarm().report(logs, "opening a link to lond", &e);
            Input::ConnectLocalError(conn, e.to_string())
        }
        Err(e) => Input::ConnectFailed(conn, e.to_string()),
    }
}

/// The input for a connection whose thread could not be started while `doing`: a local
/// resource error, reported to the daemon-wide [`alarm`].
pub fn thread_failed<W, S>(
    conn: ConnId,
    doing: &str,
    e: &io::Error,
    logs: &LogFiles,
) -> Input<W, S> {
    alarm().report_thread(logs, doing, e);
    Input::ConnectLocalError(conn, format!("{doing}: {e}"))
}

/// Closes a TCP connection's socket, whatever its writer is doing.
pub trait Closer {
    /// Shuts both directions down at once.
    fn close_now(&self);
    /// Lets the writer flush what is queued, but makes sure the socket is closed within
    /// [`CLOSE_FLUSH`] even if lond never reads.
    fn close_soon(&self);
}

impl Closer for TcpStream {
    fn close_now(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }

    fn close_soon(&self) {
        // A write blocked longer than this fails, and the writer then shuts the socket.
        let _ = self.set_write_timeout(Some(CLOSE_FLUSH));
    }
}

/// What the peer thread shows the rest of the daemon (for the status file).
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    /// The peer's state word.
    pub state: PeerState,
}

/// An output the runtime carries out itself.
#[derive(Debug)]
pub enum Action {
    /// Open a TCP connection (then send [`Input::Connected`] or [`Input::ConnectFailed`]).
    Connect {
        /// Its id.
        conn: ConnId,
        /// hosts.tab's ip field.
        host: String,
        /// londPort.
        port: u16,
    },
    /// List the delayed spool, answer with `peer.handle_delayed_list`.
    ListDelayed,
    /// Read a delayed file, answer with `peer.handle_delayed_read`.
    ReadDelayed(String),
    /// Delete a delayed file.
    DeleteDelayed(String),
    /// Append to lonnet.perm.log.
    PermLog(PermLogEntry),
    /// Write to lonc.log.
    Log(LogEvent),
}

/// The delayed spool's entries for `ListDelayed`; an unreadable spool is
/// logged and taken as empty.
pub fn spool_list(spool: &Spool, logs: &LogFiles, peer: &str) -> Vec<DelayedEntry> {
    spool.list().unwrap_or_else(|e| {
        if is_local_resource_error(&e) {
            alarm().report(logs, "listing the delayed spool", &e);
        } else {
            let message = format!("cannot list the delayed spool: {e}");
            logs.log(peer, Severity::Critical, &message);
        }
        Vec::new()
    })
}

/// A delayed file's start for `ReadDelayed` (at most `max + 1` bytes), or why
/// it cannot be read.
pub fn spool_read(spool: &Spool, name: &str, max: usize) -> Result<Vec<u8>, String> {
    spool.read_request(name, max).map_err(|e| e.to_string())
}

/// Deletes a delivered delayed file (`DeleteDelayed`); why it failed goes back to the
/// core (`handle_delayed_delete_failed`), which decides what it means.
pub fn spool_delete(spool: &Spool, name: &str) -> Result<(), String> {
    spool.delete(name).map_err(|e| e.to_string())
}

/// A peer's state machine with the write queues of its clients and connections.
pub struct PeerIo<W, C> {
    /// The core state machine.
    pub peer: Peer,
    clients: BTreeMap<ClientId, W>,
    /// `None` while connecting.
    conns: BTreeMap<ConnId, Option<(W, C)>>,
    snapshot: Arc<Mutex<PeerSnapshot>>,
    /// A log line of this layer's own, returned before the next core output.
    note: Option<Action>,
}

impl<W: Outbox, C: Closer> PeerIo<W, C> {
    /// A peer for `spec`, starting now with a random backoff seed; its state is
    /// published to the returned snapshot.
    pub fn start(spec: &PeerSpec, own_id: &str) -> (Self, Arc<Mutex<PeerSnapshot>>) {
        let peer = Peer::new(
            &spec.id,
            own_id,
            &spec.host,
            spec.port,
            spec.link.clone(),
            rand::random(),
            Instant::now(),
        );
        Self::new(peer)
    }

    /// Wraps a peer; its state is published to the returned snapshot.
    pub fn new(peer: Peer) -> (Self, Arc<Mutex<PeerSnapshot>>) {
        let snapshot = Arc::new(Mutex::new(PeerSnapshot {
            state: peer.state(),
        }));
        let io = PeerIo {
            peer,
            clients: BTreeMap::new(),
            conns: BTreeMap::new(),
            snapshot: snapshot.clone(),
            note: None,
        };
        (io, snapshot)
    }

    /// Feeds an input to the peer. For `Connected` of an attempt the core still waits for,
    /// the stream comes back: set up its reader and writer and call [`PeerIo::attach`]
    /// (or [`PeerIo::attach_failed`]); for an abandoned attempt it is dropped.
    pub fn handle<S>(&mut self, now: Instant, input: Input<W, S>) -> Option<(ConnId, S)> {
        match input {
            Input::ClientAccepted(client, writer) => {
                self.clients.insert(client, writer);
                self.peer.handle_client_opened(now, client);
            }
            Input::ClientData(client, data) => self.peer.handle_client_data(now, client, &data),
            Input::ClientEof(client) => self.peer.handle_client_eof(now, client),
            Input::ClientGone(client) => {
                self.clients.remove(&client);
                self.peer.handle_client_gone(now, client);
            }
            Input::Connected(conn, stream) => {
                if matches!(self.conns.get(&conn), Some(None)) {
                    return Some((conn, stream));
                }
            }
            Input::ConnectFailed(conn, why) => {
                if self.conns.remove(&conn).is_some() {
                    self.peer.handle_connect_failed(now, conn, &why);
                }
            }
            Input::ConnectLocalError(conn, why) => self.attach_local_error(now, conn, &why),
            Input::ConnData(conn, data) => self.peer.handle_conn_data(now, conn, &data),
            Input::ConnClosed(conn) => self.conn_closed(now, conn),
            Input::Revive => self.peer.revive(now),
            Input::Shutdown(grace) => self.peer.shutdown(now, grace),
        }
        None
    }

    /// The connection's reader and writer run: the handshake starts.
    pub fn attach(&mut self, now: Instant, conn: ConnId, writer: W, closer: C) {
        self.conns.insert(conn, Some((writer, closer)));
        self.peer.handle_connected(now, conn);
    }

    /// The connection could not be set up after all.
    pub fn attach_failed(&mut self, now: Instant, conn: ConnId, why: &str) {
        self.conns.remove(&conn);
        self.peer.handle_connect_failed(now, conn, why);
    }

    /// The connection could not be set up for a reason of this host's own (see
    /// [`Input::ConnectLocalError`]).
    pub fn attach_local_error(&mut self, now: Instant, conn: ConnId, why: &str) {
        if self.conns.remove(&conn).is_some() {
            self.peer.handle_connect_local_error(now, conn, why);
        }
    }

    fn conn_closed(&mut self, now: Instant, conn: ConnId) {
        if let Some(Some((_, closer))) = self.conns.remove(&conn) {
            closer.close_now();
            self.peer.handle_conn_closed(now, conn);
        }
    }

    /// The next output the runtime must carry out itself; writes, closes and client
    /// bookkeeping are done here on the way. `None`: nothing more for now (the peer's
    /// state is then published).
    pub fn next_action(&mut self) -> Option<Action> {
        if let Some(note) = self.note.take() {
            return Some(note);
        }
        while let Some(out) = self.peer.poll_output() {
            match out {
                Output::Connect { conn, host, port } => {
                    self.conns.insert(conn, None);
                    return Some(Action::Connect { conn, host, port });
                }
                Output::Transmit { conn, data } => {
                    if let Some(Some((writer, _))) = self.conns.get(&conn)
                        && !writer.push(data)
                    {
                        self.conn_closed(Instant::now(), conn);
                    }
                }
                // Dropping the writer flushes what was queued, then shuts the socket.
                Output::CloseConn { conn } => {
                    if let Some(Some((_, closer))) = self.conns.remove(&conn) {
                        closer.close_soon();
                    }
                }
                Output::Reply { client, data } => {
                    if let Some(w) = self.clients.get(&client)
                        && !w.push(data)
                    {
                        w.abort();
                        self.clients.remove(&client);
                        self.peer.handle_client_gone(Instant::now(), client);
                        self.note = Some(Action::Log(LogEvent {
                            severity: Severity::Warning,
                            message: format!(
                                "client {} does not read its replies ({MAX_BACKLOG} bytes waiting) or is gone; dropped",
                                client.0
                            ),
                        }));
                        return self.note.take();
                    }
                }
                Output::CloseClient { client } => {
                    self.clients.remove(&client);
                }
                Output::ListDelayed => return Some(Action::ListDelayed),
                Output::ReadDelayed { name } => return Some(Action::ReadDelayed(name)),
                Output::DeleteDelayed { name } => return Some(Action::DeleteDelayed(name)),
                Output::PermLog(entry) => return Some(Action::PermLog(entry)),
                Output::Log(event) => return Some(Action::Log(event)),
            }
        }
        self.publish();
        None
    }

    /// Closes every connection and drops every client queue (the peer has stopped).
    pub fn close_all(&mut self) {
        for (_, io) in std::mem::take(&mut self.conns) {
            if let Some((_, closer)) = io {
                closer.close_now();
            }
        }
        self.clients.clear();
        self.publish();
    }

    fn publish(&self) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.state = self.peer.state();
        }
    }
}
