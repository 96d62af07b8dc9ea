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
//! - Every handshake line is held to [`HANDSHAKE_LINE_LIMIT`](crate::handshake::HANDSHAKE_LINE_LIMIT)
//!   bytes; any protocol error during the handshake is a failed attempt like a refusal.
//! - A local resource error (out of file descriptors, memory) while opening a connection
//!   is the daemon's problem, never the peer's: it is not a failed attempt; the peer
//!   tries again after [`LOCAL_ERROR_RETRY`].
//! - After each handshake, and every `delayed_rescan`, the peer's delayed files are sent,
//!   one at a time and before any client request. A file is sent only as a whole first
//!   line; what the peer remembers about its files between rounds is
//!   [`SpoolWatch`](crate::spool_watch::SpoolWatch).
//!
//! [`Peer`] composes parts with one job each (see the crate docs): `clients.rs` (reply
//! order), `queue.rs` (waiting requests and their bounds), `conn.rs` (one connection),
//! `pool.rs` (the connections), `backoff.rs` (failed attempts, dead), `flush.rs` (the
//! delayed flush) and `timer.rs` (the peer's deadlines). This file holds the public API;
//! `peer/drive.rs` is what the peer does after every input (send, queue, connect, shut
//! down), `peer/links.rs` what it makes of its connections' reports.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::backoff::Backoff;
use crate::clients::Clients;
use crate::config::LinkSettings;
use crate::conn::Conn;
use crate::delayed::DelayedEntry;
use crate::flush::DelayedFlush;
use crate::handshake::Handshake;
use crate::io::{ClientId, ConnId, Input, Output, Severity};
use crate::limits::{CLIENT_BACKLOG_LIMIT, CONN_BACKLOG_LIMIT};
use crate::pool::Pool;
use crate::queue::RequestQueue;
use crate::timer::{Timer, TimerTable};

mod drive;
mod links;

pub use crate::backoff::LOCAL_ERROR_RETRY;
pub use crate::queue::{QUEUE_BYTES_LIMIT, QUEUE_LIMIT, QueueBounds};

/// The reply a client gets when its request could not be carried out.
pub const CON_LOST: &[u8] = b"con_lost\n";
/// The reply to a request line longer than `loncMaxRequest`.
pub const REQUEST_TOO_LONG: &[u8] = b"error:request_too_long\n";
/// The request that makes the peer's connections close and reopen (PROTOCOL.md 6.5).
pub const CLOSE_CONNECTION_EXIT: &[u8] = b"close_connection_exit";

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

/// Running, shutting down, or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Running,
    Stopping,
    Stopped,
}

/// One peer's link: see the module docs.
#[derive(Debug)]
pub struct Peer {
    peer_id: String,
    own_id: String,
    host: String,
    port: u16,
    settings: LinkSettings,

    pool: Pool,
    backoff: Backoff,
    clients: Clients,
    queue: RequestQueue,
    flush: DelayedFlush,
    timers: TimerTable,
    life: Life,

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
        let mut timers = TimerTable::default();
        timers.set(Timer::Rescan, now + settings.delayed_rescan);
        let mut peer = Peer {
            peer_id: peer_id.to_owned(),
            own_id: own_id.to_owned(),
            host: host.to_owned(),
            port,
            settings,
            pool: Pool::default(),
            backoff: Backoff::new(seed),
            clients: Clients::default(),
            queue: RequestQueue::default(),
            flush: DelayedFlush::new(),
            timers,
            life: Life::Running,
            outputs: VecDeque::new(),
        };
        peer.drive(now);
        peer
    }

    /// The same peer with its request queue held to `bounds` instead of the daemon's
    /// ([`QueueBounds::default`]). For simulation and tests, which reach a full queue with
    /// a handful of requests; the daemons never call it (no configuration knob sets it).
    /// Call it right after [`Peer::new`]: requests already waiting are not refused again.
    pub fn with_queue_bounds(mut self, bounds: QueueBounds) -> Self {
        self.queue.set_bounds(bounds);
        self
    }

    /// The bounds the request queue is held to.
    pub fn queue_bounds(&self) -> QueueBounds {
        self.queue.bounds()
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
        match self.life {
            Life::Stopped => PeerState::Stopped,
            Life::Stopping => PeerState::Stopping,
            Life::Running if self.pool.any_ready() => PeerState::Ready,
            Life::Running if !self.pool.is_empty() => PeerState::Connecting,
            Life::Running if self.backoff.is_dead() => PeerState::Dead,
            Life::Running if self.timers.is_armed(Timer::Retry) => PeerState::Backoff,
            Life::Running => PeerState::Idle,
        }
    }

    /// Consecutive failed attempts so far.
    pub fn failed_attempts(&self) -> u32 {
        self.backoff.attempts()
    }

    /// Open connections (in any stage).
    pub fn connection_count(&self) -> usize {
        self.pool.len()
    }

    /// Requests waiting for a connection.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Request bytes waiting for a connection (the lines without their LF; a waiting
    /// `close_connection_exit` counts none).
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// Clients the peer knows (connected, or with replies still owed).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// True once [`Peer::shutdown`] has finished: no connection is left.
    pub fn is_stopped(&self) -> bool {
        self.life == Life::Stopped
    }

    // ----- inputs -----

    /// Feeds one [`Input`] value: the same as calling its `handle_*` method.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::ClientOpened(c) => self.handle_client_opened(now, c),
            Input::ClientData(c, d) => self.handle_client_data(now, c, &d),
            Input::ClientEof(c) => self.handle_client_eof(now, c),
            Input::ClientGone(c) => self.handle_client_gone(now, c),
            Input::ClientBacklog(c, bytes) => self.handle_client_backlog(now, c, bytes),
            Input::Connected(c) => self.handle_connected(now, c),
            Input::ConnectFailed(c, why) => self.handle_connect_failed(now, c, &why),
            Input::ConnectLocalError(c, why) => self.handle_connect_local_error(now, c, &why),
            Input::ConnData(c, d) => self.handle_conn_data(now, c, &d),
            Input::ConnClosed(c) => self.handle_conn_closed(now, c),
            Input::ConnBacklog(c, bytes) => self.handle_conn_backlog(now, c, bytes),
            Input::DelayedList(entries) => self.handle_delayed_list(now, &entries),
            Input::DelayedListFailed(why) => self.handle_delayed_list_failed(now, &why),
            Input::DelayedListLocalError(why) => self.handle_delayed_list_local_error(now, &why),
            Input::DelayedRead(read) => {
                let content = read.content.as_deref().map_err(String::as_str);
                self.handle_delayed_read(now, &read.name, content)
            }
            Input::DelayedDeleteFailed(failed) => {
                self.handle_delayed_delete_failed(now, &failed.name, &failed.why)
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
        self.clients.open(client, self.settings.max_request);
        self.drive(now);
    }

    /// Bytes a client wrote on the peer's Unix socket.
    pub fn handle_client_data(&mut self, now: Instant, client: ClientId, data: &[u8]) {
        if !self.clients.push(client, data) {
            return;
        }
        while let Some(line) = self.clients.next_line(client) {
            match line {
                Ok(line) => self.client_request(client, line),
                Err(_) => {
                    let max_request = self.settings.max_request;
                    self.log(
                        Severity::Warning,
                        format!(
                            "client {} sent a request longer than {max_request} bytes; disconnected",
                            client.0
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
        let Some(closed) = self.clients.eof(client, &mut self.outputs) else {
            return;
        };
        if closed {
            self.queue.remove_client(client);
        }
        self.drive(now);
    }

    /// The client is gone (it closed both directions, reset, write error): it can receive
    /// no reply. Its requests not yet written to lond are dropped (logged at INFO with a
    /// count, never their text); those already written are still read to completion so
    /// the link stays in step, and their replies discarded. The runtime closes it; the
    /// core emits no output for the client itself.
    pub fn handle_client_gone(&mut self, now: Instant, client: ClientId) {
        if self.clients.remove(client) {
            let dropped = self.queue.remove_client(client);
            if dropped > 0 {
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

    /// A reply was queued for `client` behind `unwritten` bytes its socket has not taken
    /// yet (a runtime reports this only when a write did not complete at once). With
    /// [`CLIENT_BACKLOG_LIMIT`] bytes or more waiting the client does not read its
    /// replies: it is dropped ([`Output::AbortClient`], its replies discarded, its
    /// requests not yet sent dropped as for [`Peer::handle_client_gone`]), and logged.
    pub fn handle_client_backlog(&mut self, now: Instant, client: ClientId, unwritten: usize) {
        if unwritten < CLIENT_BACKLOG_LIMIT || !self.clients.remove(client) {
            return;
        }
        self.queue.remove_client(client);
        self.outputs.push_back(Output::AbortClient { client });
        self.log(
            Severity::Warning,
            format!(
                "client {} does not read its replies ({unwritten} bytes waiting); dropped",
                client.0
            ),
        );
        self.drive(now);
    }

    /// Bytes were queued for `conn` behind `unwritten` bytes its socket has not taken yet
    /// (reported only when a write did not complete at once). With
    /// [`CONN_BACKLOG_LIMIT`] bytes or more waiting, lond does not read its requests: the
    /// connection is closed at once, as lost.
    pub fn handle_conn_backlog(&mut self, now: Instant, conn: ConnId, unwritten: usize) {
        if unwritten < CONN_BACKLOG_LIMIT {
            return;
        }
        let why = format!("lond does not read its requests ({unwritten} bytes waiting)");
        match self.pool.get(conn).map(Conn::is_ready) {
            Some(true) => self.drop_conn(conn, why, Duration::ZERO),
            Some(false) => self.fail_opening(now, conn, why, Duration::ZERO),
            None => return,
        }
        self.drive(now);
    }

    /// True while the connection `conn` asked for by [`Output::Connect`] is still awaited:
    /// a stream that opens for it is to be set up and reported with
    /// [`Peer::handle_connected`]; one the core gave up on (timed out, shut down) is
    /// simply closed. A query, not an input: nothing changes.
    pub fn awaits_connect(&self, conn: ConnId) -> bool {
        self.pool.get(conn).is_some_and(Conn::is_connecting)
    }

    /// The TCP connection `conn` asked for by [`Output::Connect`] is up.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let pong_delay = !self.settings.pong_delay.is_zero();
        let hs = Handshake::new(&self.peer_id, &self.own_id, pong_delay);
        let Some(c) = self.pool.get_mut(conn) else {
            return;
        };
        let Some(init) = c.connected(now, hs, &self.settings) else {
            return;
        };
        self.backoff.connected();
        self.outputs
            .push_back(Output::Transmit { conn, data: init });
        self.drive(now);
    }

    /// The TCP connection `conn` could not be opened.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId, reason: &str) {
        if self.pool.remove(conn).is_some() {
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
        if self.pool.remove(conn).is_some() {
            self.timers.set(self.retry_timer(), now + LOCAL_ERROR_RETRY);
            if let Some(event) = self.backoff.local_error(&self.host, self.port, reason) {
                self.outputs.push_back(Output::Log(event));
            }
            if self.pool.is_empty() {
                self.flush.abort_unsent();
            }
        }
        self.drive(now);
    }

    /// Bytes lond sent on `conn`.
    pub fn handle_conn_data(&mut self, now: Instant, conn: ConnId, data: &[u8]) {
        let Some(c) = self.pool.get_mut(conn) else {
            return;
        };
        c.push(now, data);
        while let Some(event) = self
            .pool
            .get_mut(conn)
            .and_then(|c| c.next_event(now, &self.settings))
        {
            self.on_conn_event(now, conn, event);
        }
        self.drive(now);
    }

    /// lond closed `conn`, or reading or writing it failed.
    pub fn handle_conn_closed(&mut self, now: Instant, conn: ConnId) {
        match self.pool.get(conn).map(Conn::is_ready) {
            Some(true) => self.drop_conn(conn, "connection closed by lond".into(), Duration::ZERO),
            Some(false) => self.fail_opening(
                now,
                conn,
                "connection closed during the handshake".into(),
                Duration::ZERO,
            ),
            None => {}
        }
        self.drive(now);
    }

    /// The entries of the delayed spool directory, answering [`Output::ListDelayed`].
    pub fn handle_delayed_list(&mut self, now: Instant, entries: &[DelayedEntry]) {
        self.flush.listed(entries, &self.peer_id, &mut self.outputs);
        self.drive(now);
    }

    /// The delayed spool could not be listed (answering [`Output::ListDelayed`]): the round
    /// ends, and is tried again at the next rescan. Logged CRITICAL once, until a listing
    /// succeeds again.
    pub fn handle_delayed_list_failed(&mut self, now: Instant, why: &str) {
        self.flush.list_failed(Some(why), &mut self.outputs);
        self.drive(now);
    }

    /// The delayed spool could not be listed for a shortage of this host's own (out of
    /// file descriptors or memory): the round ends, and is tried again at the next rescan.
    /// Nothing is logged for the peer: the runtime's daemon-wide alarm reports shortages.
    pub fn handle_delayed_list_local_error(&mut self, now: Instant, _why: &str) {
        self.flush.list_failed(None, &mut self.outputs);
        self.drive(now);
    }

    /// A delivered delayed file could not be deleted ([`Output::DeleteDelayed`] failed):
    /// it is not sent again until it changes (size or modification time) or USR1.
    pub fn handle_delayed_delete_failed(&mut self, now: Instant, name: &str, why: &str) {
        self.flush.delete_failed(name, why, &mut self.outputs);
        self.drive(now);
    }

    /// A delayed file's content (or why it could not be read), answering
    /// [`Output::ReadDelayed`].
    pub fn handle_delayed_read(&mut self, now: Instant, name: &str, content: Result<&[u8], &str>) {
        let max_request = self.settings.max_request;
        self.flush
            .read(name, content, max_request, &mut self.outputs);
        self.drive(now);
    }

    /// Time has passed: fire whatever is due at `now`. Harmless when nothing is.
    pub fn handle_timeout(&mut self, now: Instant) {
        for conn in self.pool.ids() {
            self.conn_timeout(now, conn);
        }
        self.timers.expire(Timer::Retry, now);
        self.timers.expire(Timer::ExtraRetry, now);
        if self.timers.is_due(Timer::Rescan, now) {
            self.timers
                .set(Timer::Rescan, now + self.settings.delayed_rescan);
            self.flush.rescan();
            if self.rescan_allowed() {
                self.start_flush();
            }
        }
        if self.timers.expire(Timer::Grace, now) {
            self.finish_stop();
        }
        self.drive(now);
    }

    /// USR1: a dead peer (or one waiting out a backoff) is revived and retries at once,
    /// and the delayed spool is looked at.
    pub fn revive(&mut self, now: Instant) {
        if self.life != Life::Running {
            return;
        }
        if self.backoff.is_dead() || self.timers.is_armed(Timer::Retry) {
            self.log(Severity::Info, "revived: retrying at once".into());
        }
        self.backoff.reset();
        self.timers.stop(Timer::Retry);
        self.timers.stop(Timer::ExtraRetry);
        self.arm_rescan(now);
        self.flush.retry_skipped();
        if self.rescan_allowed() {
            self.start_flush();
        }
        self.drive(now);
    }

    /// TERM/INT: stop taking requests (new ones get `con_lost`), let requests in flight
    /// finish for up to `grace`, then send `exit` to every connected lond and close.
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        if self.life != Life::Running {
            return;
        }
        self.life = Life::Stopping;
        self.timers.set(Timer::Grace, now + grace);
        self.timers.stop(Timer::Rescan);
        self.drive(now);
    }

    // ----- outputs -----

    /// The next action for the runtime, in order. Drain it after every `handle_*` call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Peer::handle_timeout`] must be called next, if ever: the earliest of the
    /// connections' own deadlines, their idle close, and the peer's timer table.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conns = self
            .pool
            .iter()
            .filter_map(|c| c.deadline().or_else(|| self.idle_deadline(c)));
        conns.chain(self.timers.next_timeout()).min()
    }
}
