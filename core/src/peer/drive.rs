//! What a [`Peer`] does after every input ([`Peer::drive`]): answer or queue each client
//! request, send the delayed message or queued requests that can go, open the connections
//! wanted, and, once shutting down, wind everything up.

use bytes::Bytes;
use std::time::Instant;

use super::{CLOSE_CONNECTION_EXIT, CON_LOST, Life, Peer};
use crate::clients::ReqId;
use crate::config::ConnectMode;
use crate::conn::Sent;
use crate::io::{ClientId, ConnId, Output, Severity};
use crate::limits::CLOSE_LINGER;
use crate::line::chomp;
use crate::queue::{Queued, QueuedKind};
use crate::timer::Timer;

impl Peer {
    // ----- client side -----

    /// A complete request line from `client`: queued, or answered at once when it cannot
    /// wait.
    pub(super) fn client_request(&mut self, client: ClientId, line: Bytes) {
        let text = chomp(&line);
        let reconnect = text == CLOSE_CONNECTION_EXIT;
        let Some(req) = self.clients.request(client, reconnect) else {
            return;
        };
        let kind = if reconnect {
            QueuedKind::Reconnect
        } else {
            QueuedKind::Request(line.slice(..text.len()))
        };
        let item = Queued { req, client, kind };
        let full = self.queue.is_full_for(&item, self.settings.max_request);
        if self.life != Life::Running || full {
            if full {
                self.log(
                    Severity::Warning,
                    format!(
                        "request queue full ({} waiting, {} bytes; this one {} bytes); \
                         answered con_lost",
                        self.queue.len(),
                        self.queue.bytes(),
                        item.bytes()
                    ),
                );
            }
            return self.fail_queued(item);
        }
        self.queue.push(item);
    }

    /// Ends a client now: earlier requests still get their replies, then `last` (if any)
    /// and the close.
    pub(super) fn finish_client_now(&mut self, client: ClientId, last: Option<Bytes>) {
        if self.clients.finish_now(client, last, &mut self.outputs) {
            self.queue.remove_client(client);
        }
    }

    /// Answers a queued item that will not be sent.
    pub(super) fn fail_queued(&mut self, item: Queued) {
        match item.kind {
            QueuedKind::Request(_) => {
                self.complete(item.client, item.req, Some(CON_LOST.into()), false)
            }
            QueuedKind::Reconnect => self.complete(item.client, item.req, None, true),
        }
    }

    /// Answers every waiting request (`con_lost`, or the close of `close_connection_exit`).
    pub(super) fn fail_all_queued(&mut self) {
        while let Some(item) = self.queue.pop_front() {
            self.fail_queued(item);
        }
    }

    /// Fills a client's slot; a client closed by it takes its waiting requests along.
    pub(super) fn complete(
        &mut self,
        client: ClientId,
        req: ReqId,
        data: Option<Bytes>,
        close: bool,
    ) {
        if self
            .clients
            .complete(client, req, data, close, &mut self.outputs)
        {
            self.queue.remove_client(client);
        }
    }

    // ----- the dispatcher -----

    /// After every input: send what can be sent, answer what cannot, open connections.
    pub(super) fn drive(&mut self, now: Instant) {
        match self.life {
            Life::Stopped => return,
            Life::Stopping => return self.drive_stopping(),
            Life::Running => {}
        }
        if self.pool.any_ready() {
            self.flush.resume(&mut self.outputs);
        }
        self.send_delayed(now);
        if self.flush.is_idle() {
            self.send_queue(now);
        }
        self.open_connections(now);
        // A backoff or a dead peer answers at once.
        if self.pool.is_empty() && (self.backoff.is_dead() || self.timers.is_armed(Timer::Retry)) {
            self.fail_all_queued();
        }
    }

    /// Sends the delayed message that waits, on a free ready connection.
    pub(super) fn send_delayed(&mut self, now: Instant) {
        let Some((name, request)) = self.flush.to_send() else {
            return;
        };
        let Some(conn) = self.pool.free() else {
            return;
        };
        let deadline = now + self.settings.handshake_timeout;
        let sent = Sent::Delayed {
            name: name.clone(),
            request: request.clone(),
        };
        self.transmit(now, conn, &request, sent, deadline);
        self.flush.sent(name, conn);
    }

    /// Sends waiting requests while a ready connection has room; carries out a
    /// `close_connection_exit` at the head once nothing is in flight.
    pub(super) fn send_queue(&mut self, now: Instant) {
        while let Some(head) = self.queue.front() {
            if matches!(head.kind, QueuedKind::Reconnect) {
                if self.pool.any_in_flight() {
                    return;
                }
                let Some(item) = self.queue.pop_front() else {
                    return;
                };
                for conn in self.pool.ids() {
                    self.pool.remove(conn);
                    self.close_conn(conn, CLOSE_LINGER);
                }
                self.log(
                    Severity::Info,
                    "close_connection_exit: connection closed and reopened".into(),
                );
                self.complete(item.client, item.req, None, true);
                self.open_connections(now);
                continue;
            }
            let Some(conn) = self.pool.least_loaded(&self.settings) else {
                return;
            };
            let Some(item) = self.queue.pop_front() else {
                return;
            };
            let QueuedKind::Request(line) = item.kind else {
                continue;
            };
            let deadline = now + self.settings.transaction_timeout;
            let sent = Sent::Client {
                client: item.client,
                req: item.req,
            };
            self.transmit(now, conn, &line, sent, deadline);
        }
    }

    /// Writes one request on `conn` and records it in flight there.
    pub(super) fn transmit(
        &mut self,
        now: Instant,
        conn: ConnId,
        request: &[u8],
        sent: Sent,
        deadline: Instant,
    ) {
        let Some(c) = self.pool.get_mut(conn) else {
            return;
        };
        if let Some(data) = c.send(now, request, sent, deadline) {
            self.outputs.push_back(Output::Transmit { conn, data });
        }
    }

    /// Opens the first connection when one is wanted, or one more while requests wait and
    /// every ready one is full.
    pub(super) fn open_connections(&mut self, now: Instant) {
        let retrying = self.timers.is_armed(Timer::Retry);
        if self.backoff.is_dead() || retrying && self.pool.is_empty() {
            return;
        }
        if self.pool.is_empty() {
            let wanted = match self.settings.connect_mode {
                ConnectMode::Eager => true,
                ConnectMode::OnDemand => !self.queue.is_empty() || self.flush.wants_connection(),
            };
            if wanted {
                self.connect(now);
            }
            return;
        }
        // More connections only while requests wait, all ready ones are full, none is
        // opening, and no backoff gates it.
        let retrying = retrying || self.timers.is_armed(Timer::ExtraRetry);
        if !self.queue.is_empty() && !retrying && self.pool.wants_another(&self.settings) {
            self.connect(now);
        }
    }

    /// Asks the runtime for a new connection.
    pub(super) fn connect(&mut self, now: Instant) {
        let conn = self.pool.open(now, &self.settings);
        self.outputs.push_back(Output::Connect {
            conn,
            host: self.host.clone(),
            port: self.port,
        });
    }

    // ----- shutdown -----

    /// Shutting down: answers what waits, ends the round, closes connections still opening,
    /// and finishes once nothing is in flight.
    pub(super) fn drive_stopping(&mut self) {
        self.fail_all_queued();
        self.flush.stop();
        for conn in self.pool.opening() {
            self.pool.remove(conn);
            self.close_conn(conn, CLOSE_LINGER);
        }
        if !self.pool.any_in_flight() {
            self.finish_stop();
        }
    }

    /// The end: `con_lost` for what is still in flight, `exit` to every ready lond, every
    /// connection and client closed.
    pub(super) fn finish_stop(&mut self) {
        for (conn, c) in self.pool.take_all() {
            if c.is_ready() {
                for sent in c.into_unanswered() {
                    self.answer_lost(sent);
                }
                self.outputs.push_back(Output::Transmit {
                    conn,
                    data: Bytes::from_static(b"exit\n"),
                });
            }
            self.close_conn(conn, CLOSE_LINGER);
        }
        self.flush.abort();
        for client in self.clients.ids() {
            self.finish_client_now(client, None);
        }
        self.life = Life::Stopped;
        self.timers.stop(Timer::Retry);
        self.timers.stop(Timer::ExtraRetry);
        self.timers.stop(Timer::Grace);
    }
}
