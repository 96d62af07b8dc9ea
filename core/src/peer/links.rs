//! What a [`Peer`] makes of its connections' reports: a handshake done, a reply, a
//! connection lost or an attempt failed (and the backoff it starts), a connection idle
//! too long; and when a delayed-spool round may start.

use std::time::{Duration, Instant};

use super::{CON_LOST, Life, Peer};
use crate::config::ConnectMode;
use crate::conn::{Conn, Event, Sent};
use crate::io::{ConnId, LogEvent, Output, Severity};
use crate::limits::CLOSE_LINGER;
use crate::timer::Timer;

impl Peer {
    // ----- connection side -----

    /// Carries out what a connection reported.
    pub(super) fn on_conn_event(&mut self, now: Instant, conn: ConnId, event: Event) {
        match event {
            Event::Transmit(data) => self.outputs.push_back(Output::Transmit { conn, data }),
            Event::Ready { host_line_matched } => {
                self.backoff.reset();
                self.timers.stop(Timer::Retry);
                self.arm_rescan(now);
                if !host_line_matched {
                    self.log(
                        Severity::Warning,
                        "lond's host line does not start with the peer's id".into(),
                    );
                }
                self.log(Severity::Info, format!("connection {} ready", conn.0));
                self.start_flush();
            }
            Event::Reply {
                sent: Sent::Client { client, req },
                data,
            } => {
                let data = data.unwrap_or_else(|| CON_LOST.into());
                self.complete(client, req, Some(data), false)
            }
            Event::Reply {
                sent: Sent::Delayed { name, request },
                data,
            } => match data {
                Some(_) => self
                    .flush
                    .delivered(name, &request, &self.peer_id, &mut self.outputs),
                None => self.flush.empty_reply(&name, &mut self.outputs),
            },
            Event::Garbled { sent, error } => {
                self.answer_lost(sent);
                self.drop_conn(conn, format!("protocol error: {error}"), CLOSE_LINGER);
            }
            Event::Lost(why) => self.drop_conn(conn, why, CLOSE_LINGER),
            Event::Failed(why) => self.fail_opening(now, conn, why, CLOSE_LINGER),
            Event::ConnectTimedOut => {
                let why = format!("connect to {}:{} timed out", self.host, self.port);
                self.fail_opening(now, conn, why, CLOSE_LINGER);
            }
        }
    }

    /// What is due at `now` on connection `conn`: its own deadline, or its idle close.
    pub(super) fn conn_timeout(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.pool.get_mut(conn) else {
            return;
        };
        if let Some(event) = c.handle_timeout(now, &self.settings) {
            return self.on_conn_event(now, conn, event);
        }
        let idle = self.pool.get(conn).and_then(|c| self.idle_deadline(c));
        if idle.is_some_and(|t| t <= now) {
            self.log(
                Severity::Info,
                format!("connection {} idle; closed", conn.0),
            );
            self.pool.remove(conn);
            self.close_conn(conn, CLOSE_LINGER);
        }
    }

    /// When an idle ready connection may be closed, if it may.
    pub(super) fn idle_deadline(&self, c: &Conn) -> Option<Instant> {
        if self.life != Life::Running {
            return None;
        }
        let since = c.idle_since()?;
        let may_close = match self.settings.connect_mode {
            ConnectMode::OnDemand => self.queue.is_empty() && self.flush.is_idle(),
            ConnectMode::Eager => self.pool.ready_count() > 1,
        };
        may_close.then(|| since + self.settings.idle_timeout)
    }

    /// Forgets a connection that was ready (it closed, timed out or broke the protocol and
    /// is no longer trusted): what was in flight on it is answered `con_lost`, a delayed
    /// file in flight stays; `drive` opens a new connection at once. Its socket may flush
    /// for `linger`.
    pub(super) fn drop_conn(&mut self, conn: ConnId, why: String, linger: Duration) {
        let Some(c) = self.pool.remove(conn) else {
            return;
        };
        self.close_conn(conn, linger);
        self.log(Severity::Warning, format!("connection {}: {why}", conn.0));
        for sent in c.into_unanswered() {
            self.answer_lost(sent);
        }
    }

    /// A connection that was not ready yet failed: close it (its socket may flush for
    /// `linger`); a failed attempt.
    pub(super) fn fail_opening(
        &mut self,
        now: Instant,
        conn: ConnId,
        why: String,
        linger: Duration,
    ) {
        self.pool.remove(conn);
        self.close_conn(conn, linger);
        self.attempt_failed(now, why);
    }

    /// Asks the runtime to close `conn`, letting it flush for `linger` at most.
    pub(super) fn close_conn(&mut self, conn: ConnId, linger: Duration) {
        self.outputs.push_back(Output::CloseConn { conn, linger });
    }

    /// What was in flight will not be answered.
    pub(super) fn answer_lost(&mut self, sent: Sent) {
        match sent {
            Sent::Client { client, req } => {
                self.complete(client, req, Some(CON_LOST.into()), false)
            }
            Sent::Delayed { name, .. } => self.flush.unanswered(&name, &mut self.outputs),
        }
    }

    /// The timer that gates the next attempt after one failed: while another connection
    /// serves, only extra connections wait ([`Timer::ExtraRetry`]); else every one does.
    pub(super) fn retry_timer(&self) -> Timer {
        if self.pool.any_ready() {
            Timer::ExtraRetry
        } else {
            Timer::Retry
        }
    }

    /// A connect or handshake failed: back off, or give up after `max_attempts`.
    pub(super) fn attempt_failed(&mut self, now: Instant, why: String) {
        let serving = self.pool.any_ready();
        let (wait, event) = self.backoff.failed(&self.settings, serving, why);
        match wait {
            Some(wait) => self.timers.set(self.retry_timer(), now + wait),
            None => {
                self.timers.stop(Timer::Retry);
                // A dead peer does not look at its spool until it is revived.
                self.timers.stop(Timer::Rescan);
            }
        }
        self.outputs.push_back(Output::Log(event));
        if !serving && self.pool.is_empty() {
            self.flush.abort_unsent();
        }
    }

    // ----- delayed messages -----

    /// True if a delayed-spool round may start now: alive, running, no round under way, and a
    /// connection ready (or, on demand, one may be opened).
    pub(super) fn rescan_allowed(&self) -> bool {
        if self.backoff.is_dead() || self.life != Life::Running || !self.flush.is_idle() {
            return false;
        }
        self.pool.any_ready()
            || (self.settings.connect_mode == ConnectMode::OnDemand
                && self.pool.is_empty()
                && !self.timers.is_armed(Timer::Retry))
    }

    /// Arms the rescan timer (`delayed_rescan` from `now`) if it is not armed: after a
    /// dead peer comes back (USR1, or a link that came up), its spool is looked at again.
    pub(super) fn arm_rescan(&mut self, now: Instant) {
        if self.life == Life::Running && !self.timers.is_armed(Timer::Rescan) {
            self.timers
                .set(Timer::Rescan, now + self.settings.delayed_rescan);
        }
    }

    /// Starts a delayed-spool round, unless shutting down.
    pub(super) fn start_flush(&mut self) {
        if self.life == Life::Running {
            self.flush.start(&mut self.outputs);
        }
    }

    /// A line for `lonc.log`.
    pub(super) fn log(&mut self, severity: Severity, message: String) {
        self.outputs
            .push_back(Output::Log(LogEvent { severity, message }));
    }
}
