//! One peer: the state machine that owns every TCP connection to one lond, the requests of
//! the local clients of that peer's Unix socket, the timeouts, the backoff after failed
//! attempts, the dead/revive rule and the delayed-message flush (PROTOCOL.md 3, 4, 6, 7, 8).
//!
//! Drive it by the run-loop contract of the crate docs: one `handle_*` call, then drain
//! [`Peer::poll_output`], then wait until [`Peer::poll_timeout`].
//!
//! The rules, in short:
//! - Requests from a client are answered in that client's order, whatever connection
//!   served them. A request that was written to lond and whose connection then failed is
//!   answered `con_lost` (it may have been carried out); one still queued waits for the next
//!   connection.
//! - A timeout or a protocol error poisons a connection: it is closed and a new one opened
//!   at once. Only a failed connect or handshake counts as a failed attempt, which starts a
//!   backoff drawn from `[retry_min, retry_max)`; `max_attempts` of those in a row make the
//!   peer dead until [`Peer::revive`].
//! - Every handshake line is held to [`HANDSHAKE_LINE_LIMIT`] bytes; any protocol error
//!   during the handshake is a failed attempt like a refusal.
//! - A local resource error (out of file descriptors, memory) while opening a connection
//!   is the daemon's problem, never the peer's: it is not a failed attempt; the peer
//!   tries again after [`LOCAL_ERROR_RETRY`].
//! - After each handshake, and every `delayed_rescan`, the peer's delayed files are sent,
//!   one at a time and before any client request. A file is sent only as a whole first
//!   line; what the peer remembers about its files between rounds is [`SpoolWatch`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cipher::{Decoded, LinkCipher};
use crate::config::{ConnectMode, LinkSettings};
use crate::delayed::{DelayedEntry, PermLogEntry, request_of};
use crate::handshake::{HANDSHAKE_LINE_LIMIT, Handshake, HandshakeStage, HandshakeStep};
use crate::io::{ClientId, ConnId, Input, LogEvent, Output, Severity};
use crate::line::{LineDecoder, chomp, encode_line};
use crate::spool_watch::SpoolWatch;

/// The reply a client gets when its request could not be carried out.
pub const CON_LOST: &[u8] = b"con_lost\n";
/// The reply to a request line longer than `loncMaxRequest`.
pub const REQUEST_TOO_LONG: &[u8] = b"error:request_too_long\n";
/// The request that makes the peer's connections close and reopen (PROTOCOL.md 6.5).
pub const CLOSE_CONNECTION_EXIT: &[u8] = b"close_connection_exit";
/// The most requests that may wait for a connection, per peer.
pub const QUEUE_LIMIT: usize = 10_000;
/// The most request bytes that may wait for a connection, per peer (at least one request
/// of `max_request` bytes always fits).
pub const QUEUE_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// How long a peer waits before it tries to connect again after a local resource error
/// (EMFILE, ENFILE, ENOMEM): short, since the peer is not at fault.
pub const LOCAL_ERROR_RETRY: Duration = Duration::from_secs(1);

/// What a peer is doing, for the status file and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// At least one connection has completed its handshake.
    Ready,
    /// A connection is being opened or is in its handshake.
    Connecting,
    /// No connection, none wanted now (on-demand mode).
    Idle,
    /// Waiting out the backoff after a failed attempt; requests get `con_lost`.
    Backoff,
    /// `max_attempts` failed in a row; requests get `con_lost` until revived.
    Dead,
    /// Shutting down.
    Stopping,
    /// Shut down: nothing left to do.
    Stopped,
}

impl PeerState {
    /// The word for the status file.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Ready => "ready",
            PeerState::Connecting => "connecting",
            PeerState::Idle => "idle",
            PeerState::Backoff => "backoff",
            PeerState::Dead => "dead",
            PeerState::Stopping => "stopping",
            PeerState::Stopped => "stopped",
        }
    }
}

/// A request's identity within a peer.
type ReqId = u64;

/// How one client slot ends.
#[derive(Debug)]
struct SlotDone {
    data: Option<Bytes>,
    close: bool,
}

/// One request of a client, in the client's order.
#[derive(Debug)]
struct Slot {
    req: ReqId,
    done: Option<SlotDone>,
}

#[derive(Debug)]
struct Client {
    decoder: LineDecoder,
    slots: VecDeque<Slot>,
    /// No more requests will come (EOF, a too-long line, `close_connection_exit`).
    finished_input: bool,
}

#[derive(Debug)]
enum QueuedKind {
    /// A line for lond, chomped.
    Request(Bytes),
    /// `close_connection_exit`.
    Reconnect,
}

#[derive(Debug)]
struct Queued {
    req: ReqId,
    client: ClientId,
    kind: QueuedKind,
}

impl Queued {
    fn bytes(&self) -> usize {
        match &self.kind {
            QueuedKind::Request(b) => b.len(),
            QueuedKind::Reconnect => 0,
        }
    }
}

#[derive(Debug)]
enum Sent {
    Client { client: ClientId, req: ReqId },
    Delayed { name: String, request: Bytes },
}

#[derive(Debug)]
struct InFlight {
    sent: Sent,
    deadline: Instant,
}

#[derive(Debug)]
enum Stage {
    Connecting {
        deadline: Instant,
    },
    Handshake {
        hs: Handshake,
        deadline: Instant,
    },
    Ready {
        cipher: Box<LinkCipher>,
        in_flight: VecDeque<InFlight>,
    },
}

#[derive(Debug)]
struct Conn {
    stage: Stage,
    decoder: LineDecoder,
    last_active: Instant,
}

impl Conn {
    fn is_ready(&self) -> bool {
        matches!(self.stage, Stage::Ready { .. })
    }

    fn in_flight(&self) -> usize {
        match &self.stage {
            Stage::Ready { in_flight, .. } => in_flight.len(),
            _ => 0,
        }
    }
}

/// Where the delayed flush stands.
#[derive(Debug, PartialEq, Eq)]
enum Flush {
    Idle,
    Listing,
    Reading(String),
    ReadyToSend {
        name: String,
        request: Bytes,
    },
    InFlight {
        name: String,
        conn: ConnId,
    },
    /// A delayed message went unanswered with its connection; the rest of the round
    /// (`pending_files`) goes on as soon as a connection is ready.
    Resume,
}

/// One peer's link: see the module docs.
#[derive(Debug)]
pub struct Peer {
    peer_id: String,
    own_id: String,
    host: String,
    port: u16,
    settings: LinkSettings,
    rng: SmallRng,

    conns: BTreeMap<ConnId, Conn>,
    next_conn: u64,
    attempts: u32,
    retry_at: Option<Instant>,
    dead: bool,

    clients: BTreeMap<ClientId, Client>,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    next_req: ReqId,

    flush: Flush,
    pending_files: VecDeque<String>,
    next_rescan: Instant,
    spool: SpoolWatch,
    /// A local resource error was logged and no connection has opened since.
    local_error_logged: bool,

    stopping: Option<Instant>,
    stopped: bool,

    outputs: VecDeque<Output>,
}

impl Peer {
    /// A peer link to lond on `peer_id` at `host:port`, from this server `own_id`.
    /// `seed` drives the backoff randomness (give each peer its own, from the OS in a
    /// daemon, fixed in tests). In eager mode the first connection is asked for at once.
    pub fn new(
        peer_id: &str,
        own_id: &str,
        host: &str,
        port: u16,
        settings: LinkSettings,
        seed: u64,
        now: Instant,
    ) -> Self {
        let mut peer = Peer {
            peer_id: peer_id.to_owned(),
            own_id: own_id.to_owned(),
            host: host.to_owned(),
            port,
            next_rescan: now + settings.delayed_rescan,
            settings,
            rng: SmallRng::seed_from_u64(seed),
            conns: BTreeMap::new(),
            next_conn: 0,
            attempts: 0,
            retry_at: None,
            dead: false,
            clients: BTreeMap::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_req: 0,
            flush: Flush::Idle,
            pending_files: VecDeque::new(),
            spool: SpoolWatch::default(),
            local_error_logged: false,
            stopping: None,
            stopped: false,
            outputs: VecDeque::new(),
        };
        peer.drive(now);
        peer
    }

    /// The peer's host id.
    pub fn id(&self) -> &str {
        &self.peer_id
    }

    /// The settings in force.
    pub fn settings(&self) -> &LinkSettings {
        &self.settings
    }

    /// What the peer is doing now.
    pub fn state(&self) -> PeerState {
        if self.stopped {
            PeerState::Stopped
        } else if self.stopping.is_some() {
            PeerState::Stopping
        } else if self.conns.values().any(Conn::is_ready) {
            PeerState::Ready
        } else if !self.conns.is_empty() {
            PeerState::Connecting
        } else if self.dead {
            PeerState::Dead
        } else if self.retry_at.is_some() {
            PeerState::Backoff
        } else {
            PeerState::Idle
        }
    }

    /// Consecutive failed attempts so far.
    pub fn failed_attempts(&self) -> u32 {
        self.attempts
    }

    /// Open connections (in any stage).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Requests waiting for a connection.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Clients the peer knows (connected, or with replies still owed).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// True once [`Peer::shutdown`] has finished: no connection is left.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    // ----- inputs -----

    /// Feeds one [`Input`] value: the same as calling its `handle_*` method.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::ClientOpened(c) => self.handle_client_opened(now, c),
            Input::ClientData(c, d) => self.handle_client_data(now, c, &d),
            Input::ClientEof(c) => self.handle_client_eof(now, c),
            Input::ClientGone(c) => self.handle_client_gone(now, c),
            Input::Connected(c) => self.handle_connected(now, c),
            Input::ConnectFailed(c, why) => self.handle_connect_failed(now, c, &why),
            Input::ConnectLocalError(c, why) => self.handle_connect_local_error(now, c, &why),
            Input::ConnData(c, d) => self.handle_conn_data(now, c, &d),
            Input::ConnClosed(c) => self.handle_conn_closed(now, c),
            Input::DelayedList(entries) => self.handle_delayed_list(now, &entries),
            Input::DelayedRead(name, content) => {
                let content = content.as_deref().map_err(String::as_str);
                self.handle_delayed_read(now, &name, content)
            }
            Input::DelayedDeleteFailed(name, why) => {
                self.handle_delayed_delete_failed(now, &name, &why)
            }
            Input::Timeout => self.handle_timeout(now),
            Input::Revive => self.revive(now),
            Input::Shutdown(grace) => self.shutdown(now, grace),
        }
    }

    /// A client connected to the peer's Unix socket. Bytes, EOF or loss of a client the
    /// peer does not know (never opened, or already closed by [`Output::CloseClient`]) are
    /// ignored, so late input from a closed client can never pass for a new one.
    pub fn handle_client_opened(&mut self, now: Instant, client: ClientId) {
        let max_request = self.settings.max_request;
        self.clients.entry(client).or_insert_with(|| Client {
            decoder: LineDecoder::new(max_request),
            slots: VecDeque::new(),
            finished_input: false,
        });
        self.drive(now);
    }

    /// Bytes a client wrote on the peer's Unix socket.
    pub fn handle_client_data(&mut self, now: Instant, client: ClientId, data: &[u8]) {
        let max_request = self.settings.max_request;
        let Some(entry) = self.clients.get_mut(&client) else {
            return;
        };
        if entry.finished_input {
            return;
        }
        entry.decoder.push(data);
        while let Some(c) = self.clients.get_mut(&client) {
            if c.finished_input {
                break;
            }
            match c.decoder.next_line() {
                None => break,
                Some(Ok(line)) => self.client_request(client, line),
                Some(Err(_)) => {
                    self.log(
                        Severity::Warning,
                        format!(
                            "client {} sent a request longer than {} bytes; disconnected",
                            client.0, max_request
                        ),
                    );
                    self.finish_client_now(client, Some(Bytes::from_static(REQUEST_TOO_LONG)));
                }
            }
        }
        self.drive(now);
    }

    /// The client closed its writing side: no more requests come from it. Replies it is
    /// owed are still sent, then it is closed.
    pub fn handle_client_eof(&mut self, now: Instant, client: ClientId) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        c.finished_input = true;
        self.flush_client(client);
        self.drive(now);
    }

    /// The client is gone (it closed both directions, reset, write error): it can receive
    /// no reply. Its requests not yet written to lond are dropped (logged at INFO with a
    /// count, never their text); those already written are still read to completion so
    /// the link stays in step, and their replies discarded. The runtime closes it; the
    /// core emits no output for the client itself.
    pub fn handle_client_gone(&mut self, now: Instant, client: ClientId) {
        if self.clients.remove(&client).is_some() {
            let before = self.queue.len();
            self.queue.retain(|q| q.client != client);
            let dropped = before - self.queue.len();
            if dropped > 0 {
                self.recount_queue();
                self.log(
                    Severity::Info,
                    format!(
                        "client {} went away; {dropped} of its requests not yet sent to lond dropped",
                        client.0
                    ),
                );
            }
        }
        self.drive(now);
    }

    /// The TCP connection `conn` asked for by [`Output::Connect`] is up.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let pong_delay = !self.settings.pong_delay.is_zero();
        let deadline = now + self.settings.handshake_timeout;
        let hs = Handshake::new(&self.peer_id, &self.own_id, pong_delay);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !matches!(c.stage, Stage::Connecting { .. }) {
            return;
        }
        self.local_error_logged = false;
        let init = hs.start();
        c.stage = Stage::Handshake { hs, deadline };
        c.last_active = now;
        self.outputs
            .push_back(Output::Transmit { conn, data: init });
        self.drive(now);
    }

    /// The TCP connection `conn` could not be opened.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId, reason: &str) {
        if self.conns.remove(&conn).is_some() {
            self.attempt_failed(
                now,
                format!("connect to {}:{} failed: {reason}", self.host, self.port),
            );
        }
        self.drive(now);
    }

    /// The TCP connection `conn` could not be opened for a reason of this host's own: out
    /// of file descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS), or no thread to
    /// run it. Not a failed attempt: the peer is not at fault. Waiting clients get
    /// `con_lost` as in a backoff, and a new attempt follows after [`LOCAL_ERROR_RETRY`].
    /// Logged once until a connection opens again.
    pub fn handle_connect_local_error(&mut self, now: Instant, conn: ConnId, reason: &str) {
        if self.conns.remove(&conn).is_some() {
            self.retry_at = Some(now + LOCAL_ERROR_RETRY);
            if !self.local_error_logged {
                self.local_error_logged = true;
                // INFO: the daemon-wide CRITICAL line (with the limit) is the runtime's,
                // once for all peers; this one only says which peers wait.
                self.log(
                    Severity::Info,
                    format!(
                        "cannot open a connection to {}:{}: local resource limit ({reason}); \
                         not the peer's fault, not counted as a failed attempt; retrying every {}s",
                        self.host,
                        self.port,
                        LOCAL_ERROR_RETRY.as_secs_f64()
                    ),
                );
            }
            if matches!(
                self.flush,
                Flush::ReadyToSend { .. } | Flush::Reading(_) | Flush::Listing
            ) && self.conns.is_empty()
            {
                self.abort_flush();
            }
        }
        self.drive(now);
    }

    /// Bytes lond sent on `conn`.
    pub fn handle_conn_data(&mut self, now: Instant, conn: ConnId, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.decoder.push(data);
        c.last_active = now;
        while let Some(c) = self.conns.get_mut(&conn) {
            match c.decoder.next_line() {
                None => break,
                Some(Ok(line)) => self.conn_line(now, conn, line),
                Some(Err(e)) => {
                    if c.is_ready() {
                        self.drop_conn(conn, format!("protocol error: reply {e}"));
                    } else {
                        self.conns.remove(&conn);
                        self.outputs.push_back(Output::CloseConn { conn });
                        self.attempt_failed(now, format!("handshake failed: lond sent a {e}"));
                    }
                    break;
                }
            }
        }
        self.drive(now);
    }

    /// lond closed `conn`, or reading or writing it failed.
    pub fn handle_conn_closed(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            if c.is_ready() {
                self.drop_conn(conn, "connection closed by lond".into());
            } else {
                self.conns.remove(&conn);
                self.outputs.push_back(Output::CloseConn { conn });
                self.attempt_failed(now, "connection closed during the handshake".into());
            }
        }
        self.drive(now);
    }

    /// The entries of the delayed spool directory, answering [`Output::ListDelayed`].
    pub fn handle_delayed_list(&mut self, now: Instant, entries: &[DelayedEntry]) {
        if self.flush == Flush::Listing {
            let (files, logs) = self.spool.round(entries, &self.peer_id);
            for event in logs {
                self.outputs.push_back(Output::Log(event));
            }
            self.pending_files = files.into();
            self.next_file();
        }
        self.drive(now);
    }

    /// A delivered delayed file could not be deleted ([`Output::DeleteDelayed`] failed):
    /// it is not sent again until it changes (size or modification time) or USR1.
    pub fn handle_delayed_delete_failed(&mut self, now: Instant, name: &str, why: &str) {
        if let Some(event) = self.spool.delete_failed(name, why) {
            self.outputs.push_back(Output::Log(event));
        }
        self.drive(now);
    }

    /// A delayed file's content (or why it could not be read), answering
    /// [`Output::ReadDelayed`].
    pub fn handle_delayed_read(&mut self, now: Instant, name: &str, content: Result<&[u8], &str>) {
        if !matches!(&self.flush, Flush::Reading(n) if n == name) {
            return self.drive(now);
        }
        match content {
            Err(why) => {
                if let Some(event) = self.spool.unreadable(name, why) {
                    self.outputs.push_back(Output::Log(event));
                }
                self.next_file();
            }
            Ok(content) => match request_of(content, self.settings.max_request) {
                Err(problem) => {
                    if let Some(event) = self.spool.problem(name, problem) {
                        self.outputs.push_back(Output::Log(event));
                    }
                    self.next_file();
                }
                Ok(request) => {
                    self.flush = Flush::ReadyToSend {
                        name: name.to_owned(),
                        request: Bytes::copy_from_slice(request),
                    };
                }
            },
        }
        self.drive(now);
    }

    /// Time has passed: fire whatever is due at `now`. Harmless when nothing is.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.conn_timeout(now, id);
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
        }
        if self.next_rescan <= now {
            self.next_rescan = now + self.settings.delayed_rescan;
            if self.rescan_allowed() {
                self.start_flush();
            }
        }
        if self.stopping.is_some_and(|t| t <= now) {
            self.finish_stop();
        }
        self.drive(now);
    }

    /// USR1: a dead peer (or one waiting out a backoff) is revived and retries at once,
    /// and the delayed spool is looked at.
    pub fn revive(&mut self, now: Instant) {
        if self.stopping.is_some() || self.stopped {
            return;
        }
        if self.dead || self.retry_at.is_some() {
            self.log(Severity::Info, "revived: retrying at once".into());
        }
        self.dead = false;
        self.retry_at = None;
        self.attempts = 0;
        self.spool.retry_undeletable();
        if self.rescan_allowed() {
            self.start_flush();
        }
        self.drive(now);
    }

    /// TERM/INT: stop taking requests (new ones get `con_lost`), let requests in flight
    /// finish for up to `grace`, then send `exit` to every connected lond and close.
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        if self.stopping.is_some() || self.stopped {
            return;
        }
        self.stopping = Some(now + grace);
        self.drive(now);
    }

    // ----- outputs -----

    /// The next action for the runtime, in order. Drain it after every `handle_*` call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Peer::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for c in self.conns.values() {
            match &c.stage {
                Stage::Connecting { deadline } | Stage::Handshake { deadline, .. } => {
                    consider(*deadline)
                }
                Stage::Ready { in_flight, .. } => {
                    if let Some(t) = in_flight.iter().map(|f| f.deadline).min() {
                        consider(t);
                    } else if let Some(t) = self.idle_deadline(c) {
                        consider(t);
                    }
                }
            }
        }
        if let Some(t) = self.retry_at {
            consider(t);
        }
        if let Some(t) = self.stopping {
            consider(t);
        } else if !self.dead {
            consider(self.next_rescan);
        }
        next
    }

    // ----- client side -----

    fn client_request(&mut self, client: ClientId, line: Bytes) {
        let req = self.next_req;
        self.next_req += 1;
        let text = chomp(&line);
        let kind = if text == CLOSE_CONNECTION_EXIT {
            if let Some(c) = self.clients.get_mut(&client) {
                c.finished_input = true;
            }
            QueuedKind::Reconnect
        } else {
            QueuedKind::Request(line.slice(..text.len()))
        };
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        c.slots.push_back(Slot { req, done: None });
        let item = Queued { req, client, kind };
        let unavailable = self.stopping.is_some() || self.stopped;
        let full = self.queue.len() >= QUEUE_LIMIT
            || (self.queued_bytes + item.bytes()
                > QUEUE_BYTES_LIMIT.max(self.settings.max_request)
                && !self.queue.is_empty());
        if unavailable || full {
            if full {
                self.log(
                    Severity::Warning,
                    format!(
                        "request queue full ({} waiting); answered con_lost",
                        self.queue.len()
                    ),
                );
            }
            self.fail_queued(item);
            return;
        }
        self.queued_bytes += item.bytes();
        self.queue.push_back(item);
    }

    /// Ends a client now: earlier requests still get their replies, then `last` (if any)
    /// and the close.
    fn finish_client_now(&mut self, client: ClientId, last: Option<Bytes>) {
        let req = self.next_req;
        self.next_req += 1;
        if let Some(c) = self.clients.get_mut(&client) {
            c.finished_input = true;
            c.slots.push_back(Slot {
                req,
                done: Some(SlotDone {
                    data: last,
                    close: true,
                }),
            });
        }
        self.flush_client(client);
    }

    /// Answers a queued item that will not be sent.
    fn fail_queued(&mut self, item: Queued) {
        match item.kind {
            QueuedKind::Request(_) => {
                self.complete(item.client, item.req, Some(CON_LOST.into()), false)
            }
            QueuedKind::Reconnect => self.complete(item.client, item.req, None, true),
        }
    }

    /// Fills a client's slot and sends whatever is ready, in order.
    fn complete(&mut self, client: ClientId, req: ReqId, data: Option<Bytes>, close: bool) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        if let Some(slot) = c.slots.iter_mut().find(|s| s.req == req) {
            slot.done = Some(SlotDone { data, close });
        }
        self.flush_client(client);
    }

    fn flush_client(&mut self, client: ClientId) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        let mut close = false;
        while c.slots.front().is_some_and(|s| s.done.is_some()) {
            let Some(done) = c.slots.pop_front().and_then(|s| s.done) else {
                break;
            };
            if let Some(data) = done.data {
                self.outputs.push_back(Output::Reply { client, data });
            }
            if done.close {
                close = true;
                break;
            }
        }
        if close || (c.finished_input && c.slots.is_empty()) {
            self.clients.remove(&client);
            let before = self.queue.len();
            self.queue.retain(|q| q.client != client);
            if before != self.queue.len() {
                self.recount_queue();
            }
            self.outputs.push_back(Output::CloseClient { client });
        }
    }

    fn recount_queue(&mut self) {
        self.queued_bytes = self.queue.iter().map(Queued::bytes).sum();
    }

    // ----- connection side -----

    fn conn_line(&mut self, now: Instant, conn: ConnId, line: Bytes) {
        let handshake_timeout = self.settings.handshake_timeout;
        let pong_delay = self.settings.pong_delay;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match &mut c.stage {
            Stage::Connecting { .. } => {}
            Stage::Handshake { hs, deadline } => match hs.handle_line(&line) {
                HandshakeStep::Send(data) => {
                    *deadline = now + handshake_timeout;
                    self.outputs.push_back(Output::Transmit { conn, data });
                }
                HandshakeStep::DelayPong => *deadline = now + pong_delay,
                HandshakeStep::Done {
                    key,
                    host_line_matched,
                } => {
                    c.stage = Stage::Ready {
                        cipher: Box::new(LinkCipher::new(&key)),
                        in_flight: VecDeque::new(),
                    };
                    c.decoder.set_max_line(self.settings.max_reply);
                    self.attempts = 0;
                    self.retry_at = None;
                    self.dead = false;
                    if !host_line_matched {
                        self.log(
                            Severity::Warning,
                            "lond's host line does not start with the peer's id".into(),
                        );
                    }
                    self.log(Severity::Info, format!("connection {} ready", conn.0));
                    self.start_flush();
                }
                HandshakeStep::Failed(err) => {
                    self.conns.remove(&conn);
                    self.outputs.push_back(Output::CloseConn { conn });
                    self.attempt_failed(now, format!("handshake failed: {err}"));
                }
            },
            Stage::Ready { cipher, in_flight } => {
                let Some(f) = in_flight.pop_front() else {
                    return self.drop_conn(conn, "protocol error: reply with no request".into());
                };
                let text = chomp(&line);
                let reply = if text.is_empty() {
                    None
                } else {
                    match cipher.decrypt_line(text) {
                        Ok(Decoded::Plain) => Some(line.clone()),
                        Ok(Decoded::Decrypted(mut plain)) => {
                            plain.push(b'\n');
                            Some(Bytes::from(plain))
                        }
                        Err(e) => {
                            self.answer_lost(f.sent);
                            return self.drop_conn(conn, format!("protocol error: {e}"));
                        }
                    }
                };
                match (f.sent, reply) {
                    (Sent::Client { client, req }, Some(data)) => {
                        self.complete(client, req, Some(data), false)
                    }
                    (Sent::Client { client, req }, None) => {
                        self.complete(client, req, Some(CON_LOST.into()), false)
                    }
                    (Sent::Delayed { name, request }, Some(_)) => {
                        self.outputs
                            .push_back(Output::DeleteDelayed { name: name.clone() });
                        self.outputs.push_back(Output::PermLog(PermLogEntry {
                            peer: self.peer_id.clone(),
                            request: request.to_vec(),
                        }));
                        self.log(Severity::Info, format!("delayed message {name} delivered"));
                        self.next_file();
                    }
                    (Sent::Delayed { name, .. }, None) => {
                        self.delayed_failed(&name, Severity::Warning, "got an empty reply");
                        self.next_file();
                    }
                }
            }
        }
    }

    fn conn_timeout(&mut self, now: Instant, conn: ConnId) {
        let handshake_timeout = self.settings.handshake_timeout;
        let idle = self.conns.get(&conn).and_then(|c| self.idle_deadline(c));
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match &mut c.stage {
            Stage::Connecting { deadline } if *deadline <= now => {
                self.conns.remove(&conn);
                self.outputs.push_back(Output::CloseConn { conn });
                self.attempt_failed(
                    now,
                    format!("connect to {}:{} timed out", self.host, self.port),
                );
            }
            Stage::Handshake { hs, deadline } if *deadline <= now => {
                if hs.stage() == HandshakeStage::PongDelay {
                    if let HandshakeStep::Send(data) = hs.pong_now() {
                        *deadline = now + handshake_timeout;
                        self.outputs.push_back(Output::Transmit { conn, data });
                    }
                } else {
                    let step = hs.stage().as_str();
                    self.conns.remove(&conn);
                    self.outputs.push_back(Output::CloseConn { conn });
                    self.attempt_failed(now, format!("handshake timed out waiting for {step}"));
                }
            }
            Stage::Ready { in_flight, .. } => {
                if in_flight.iter().any(|f| f.deadline <= now) {
                    self.drop_conn(conn, "request timed out".into());
                } else if idle.is_some_and(|t| t <= now) {
                    self.log(
                        Severity::Info,
                        format!("connection {} idle; closed", conn.0),
                    );
                    self.conns.remove(&conn);
                    self.outputs.push_back(Output::CloseConn { conn });
                }
            }
            _ => {}
        }
    }

    /// When an idle ready connection may be closed, if it may.
    fn idle_deadline(&self, c: &Conn) -> Option<Instant> {
        if self.stopping.is_some() || c.in_flight() > 0 || !c.is_ready() {
            return None;
        }
        let ready = self.conns.values().filter(|c| c.is_ready()).count();
        let may_close = match self.settings.connect_mode {
            ConnectMode::OnDemand => self.queue.is_empty() && self.flush == Flush::Idle,
            ConnectMode::Eager => ready > 1,
        };
        may_close.then(|| c.last_active + self.settings.idle_timeout)
    }

    /// Forgets a connection that was ready (it closed, timed out or broke the protocol and
    /// is no longer trusted): what was in flight on it is answered `con_lost`, a delayed
    /// file in flight stays; `drive` opens a new connection at once.
    fn drop_conn(&mut self, conn: ConnId, why: String) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.outputs.push_back(Output::CloseConn { conn });
        self.log(Severity::Warning, format!("connection {}: {why}", conn.0));
        if let Stage::Ready { in_flight, .. } = c.stage {
            for f in in_flight {
                self.answer_lost(f.sent);
            }
        }
    }

    /// What was in flight will not be answered.
    fn answer_lost(&mut self, sent: Sent) {
        match sent {
            Sent::Client { client, req } => {
                self.complete(client, req, Some(CON_LOST.into()), false)
            }
            Sent::Delayed { name, .. } => {
                self.delayed_failed(&name, Severity::Warning, "was not answered");
                // The rest of this round goes on the next connection.
                self.flush = Flush::Resume;
            }
        }
    }

    /// A connect or handshake failed: back off, or give up after `max_attempts`.
    fn attempt_failed(&mut self, now: Instant, why: String) {
        self.attempts += 1;
        if self.conns.values().any(Conn::is_ready) {
            // Another connection serves; only gate the next extra one.
            let wait = self.backoff();
            self.retry_at = Some(now + wait);
            self.log(
                Severity::Warning,
                format!("{why}; extra connection retried in {}s", wait.as_secs()),
            );
            return;
        }
        if self.attempts >= self.settings.max_attempts {
            self.dead = true;
            self.retry_at = None;
            self.log(
                Severity::Critical,
                format!(
                    "{why}; {} failed attempts, peer is dead until revived (USR1)",
                    self.attempts
                ),
            );
        } else {
            let wait = self.backoff();
            self.retry_at = Some(now + wait);
            self.log(
                Severity::Warning,
                format!(
                    "{why}; attempt {} of {}, retry in {:.1}s",
                    self.attempts,
                    self.settings.max_attempts,
                    wait.as_secs_f64()
                ),
            );
        }
        if matches!(
            self.flush,
            Flush::ReadyToSend { .. } | Flush::Reading(_) | Flush::Listing
        ) && self.conns.is_empty()
        {
            self.abort_flush();
        }
    }

    /// A backoff drawn uniformly from `[retry_min, retry_max)`.
    fn backoff(&mut self) -> Duration {
        let min = self.settings.retry_min.as_nanos() as u64;
        let max = self.settings.retry_max.as_nanos() as u64;
        if max <= min {
            return Duration::from_nanos(min);
        }
        Duration::from_nanos(self.rng.random_range(min..max))
    }

    // ----- delayed messages -----

    fn rescan_allowed(&self) -> bool {
        if self.dead || self.stopping.is_some() || self.flush != Flush::Idle {
            return false;
        }
        self.conns.values().any(Conn::is_ready)
            || (self.settings.connect_mode == ConnectMode::OnDemand
                && self.conns.is_empty()
                && self.retry_at.is_none())
    }

    fn start_flush(&mut self) {
        if self.flush == Flush::Idle && self.stopping.is_none() {
            self.flush = Flush::Listing;
            self.outputs.push_back(Output::ListDelayed);
        }
    }

    fn next_file(&mut self) {
        match self.pending_files.pop_front() {
            Some(name) => {
                self.outputs
                    .push_back(Output::ReadDelayed { name: name.clone() });
                self.flush = Flush::Reading(name);
            }
            None => self.flush = Flush::Idle,
        }
    }

    /// A delayed file stays in place; it is tried again in the next round.
    fn delayed_failed(&mut self, name: &str, severity: Severity, what: &str) {
        self.log(
            severity,
            format!("delayed message {name} {what}; left in place, retried at the next rescan"),
        );
    }

    fn abort_flush(&mut self) {
        self.flush = Flush::Idle;
        self.pending_files.clear();
    }

    // ----- the dispatcher -----

    /// After every input: send what can be sent, answer what cannot, open connections.
    fn drive(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        if self.stopping.is_some() {
            return self.drive_stopping();
        }
        if self.flush == Flush::Resume && self.conns.values().any(Conn::is_ready) {
            self.next_file();
        }
        self.send_delayed(now);
        if self.flush == Flush::Idle {
            self.send_queue(now);
        }
        self.open_connections(now);
        // A backoff or a dead peer answers at once.
        if self.conns.is_empty() && (self.dead || self.retry_at.is_some()) {
            while let Some(item) = self.queue.pop_front() {
                self.fail_queued(item);
            }
            self.queued_bytes = 0;
        }
    }

    fn send_delayed(&mut self, now: Instant) {
        let Flush::ReadyToSend { name, request } = &self.flush else {
            return;
        };
        let Some((&conn, _)) = self
            .conns
            .iter()
            .find(|(_, c)| c.is_ready() && c.in_flight() == 0)
        else {
            return;
        };
        let (name, request) = (name.clone(), request.clone());
        let deadline = now + self.settings.handshake_timeout;
        self.transmit(
            now,
            conn,
            &request,
            Sent::Delayed {
                name: name.clone(),
                request: request.clone(),
            },
            deadline,
        );
        self.flush = Flush::InFlight { name, conn };
    }

    fn send_queue(&mut self, now: Instant) {
        while let Some(head) = self.queue.front() {
            if let QueuedKind::Reconnect = head.kind {
                if self.conns.values().any(|c| c.in_flight() > 0) {
                    return;
                }
                let Some(item) = self.queue.pop_front() else {
                    return;
                };
                let ids: Vec<ConnId> = self.conns.keys().copied().collect();
                for conn in ids {
                    self.conns.remove(&conn);
                    self.outputs.push_back(Output::CloseConn { conn });
                }
                self.log(
                    Severity::Info,
                    "close_connection_exit: connection closed and reopened".into(),
                );
                self.complete(item.client, item.req, None, true);
                self.open_connections(now);
                continue;
            }
            let pipeline = self.settings.pipeline.max(1);
            let Some(conn) = self
                .conns
                .iter()
                .filter(|(_, c)| c.is_ready() && c.in_flight() < pipeline)
                .min_by_key(|(id, c)| (c.in_flight(), **id))
                .map(|(id, _)| *id)
            else {
                return;
            };
            let Some(item) = self.queue.pop_front() else {
                return;
            };
            self.queued_bytes -= item.bytes();
            let QueuedKind::Request(line) = item.kind else {
                continue;
            };
            let deadline = now + self.settings.transaction_timeout;
            self.transmit(
                now,
                conn,
                &line,
                Sent::Client {
                    client: item.client,
                    req: item.req,
                },
                deadline,
            );
        }
    }

    /// Writes one request (encrypting an `encrypt:` one) and records it in flight.
    fn transmit(
        &mut self,
        now: Instant,
        conn: ConnId,
        request: &[u8],
        sent: Sent,
        deadline: Instant,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Stage::Ready { cipher, in_flight } = &mut c.stage else {
            return;
        };
        let data = match request.strip_prefix(b"encrypt:") {
            Some(payload) => {
                let mut wire = cipher.encrypt_line(payload);
                wire.push(b'\n');
                Bytes::from(wire)
            }
            None => encode_line(request),
        };
        in_flight.push_back(InFlight { sent, deadline });
        c.last_active = now;
        self.outputs.push_back(Output::Transmit { conn, data });
    }

    fn open_connections(&mut self, now: Instant) {
        if self.dead || self.retry_at.is_some() && self.conns.is_empty() {
            return;
        }
        let opening = self.conns.values().filter(|c| !c.is_ready()).count();
        let wanted = match self.settings.connect_mode {
            ConnectMode::Eager => true,
            ConnectMode::OnDemand => {
                !self.queue.is_empty()
                    || matches!(self.flush, Flush::ReadyToSend { .. } | Flush::Resume)
            }
        };
        if self.conns.is_empty() {
            if wanted {
                self.connect(now);
            }
            return;
        }
        // More connections only while requests wait, all ready ones are full, none is
        // opening, and no backoff gates it.
        let pipeline = self.settings.pipeline.max(1);
        let all_full = self
            .conns
            .values()
            .filter(|c| c.is_ready())
            .all(|c| c.in_flight() >= pipeline);
        if !self.queue.is_empty()
            && all_full
            && opening == 0
            && self.retry_at.is_none()
            && self.conns.len() < self.settings.max_connections.max(1)
        {
            self.connect(now);
        }
    }

    fn connect(&mut self, now: Instant) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            conn,
            Conn {
                stage: Stage::Connecting {
                    deadline: now + self.settings.connect_timeout,
                },
                decoder: LineDecoder::new(HANDSHAKE_LINE_LIMIT.min(self.settings.max_reply)),
                last_active: now,
            },
        );
        self.outputs.push_back(Output::Connect {
            conn,
            host: self.host.clone(),
            port: self.port,
        });
    }

    // ----- shutdown -----

    fn drive_stopping(&mut self) {
        while let Some(item) = self.queue.pop_front() {
            self.fail_queued(item);
        }
        self.queued_bytes = 0;
        if !matches!(self.flush, Flush::InFlight { .. }) {
            self.abort_flush();
        }
        let opening: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.is_ready())
            .map(|(id, _)| *id)
            .collect();
        for conn in opening {
            self.conns.remove(&conn);
            self.outputs.push_back(Output::CloseConn { conn });
        }
        if self.conns.values().all(|c| c.in_flight() == 0) {
            self.finish_stop();
        }
    }

    fn finish_stop(&mut self) {
        let conns = std::mem::take(&mut self.conns);
        for (conn, c) in conns {
            if let Stage::Ready { in_flight, .. } = c.stage {
                for f in in_flight {
                    self.answer_lost(f.sent);
                }
                self.outputs.push_back(Output::Transmit {
                    conn,
                    data: Bytes::from_static(b"exit\n"),
                });
            }
            self.outputs.push_back(Output::CloseConn { conn });
        }
        self.abort_flush();
        let clients: Vec<ClientId> = self.clients.keys().copied().collect();
        for client in clients {
            self.finish_client_now(client, None);
        }
        self.stopped = true;
    }

    fn log(&mut self, severity: Severity, message: String) {
        self.outputs
            .push_back(Output::Log(LogEvent { severity, message }));
    }
}
