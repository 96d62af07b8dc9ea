//! The heal and the world's own invariants: the bounds a healed peer is held to, the
//! checks after every step (connections, queue, silence, reconnects, failed attempts) and
//! at the end (every client answered, every delayed file delivered, eager peers ready).

use std::time::{Duration, Instant};

use lonc_core::config::ConnectMode;
use lonc_core::io::ClientId;
use lonc_core::limits::{SHUTDOWN_GRACE, STOP_SLACK};
use lonc_core::peer::{Peer, PeerState, QUEUE_LIMIT};

use super::{Checked, Daemon, Swarm, fail};
use crate::model::Bound;

impl Swarm {
    /// Once healed, the operator revives a peer found dead (an attempt that was under
    /// way at the heal may still fail): USR1.
    pub(super) fn revive_if_dead(&mut self, p: usize) -> Checked {
        let dead = self.slots[p].peer.as_ref().map(Peer::state) == Some(PeerState::Dead);
        if self.healed && dead {
            self.note(format!("{}: dead after the heal; USR1", self.slots[p].id));
            self.usr1(p)?;
        }
        Ok(())
    }

    /// Once healed, only a connection opened before the heal may fail its attempt (in the
    /// network healed since, with every lond listening and answering, a new one cannot).
    pub(super) fn check_failures(&mut self, p: usize) -> Checked {
        let s = &mut self.slots[p];
        let closed = std::mem::take(&mut s.closed_now);
        if !std::mem::take(&mut s.failed_now) || !self.healed {
            return Ok(());
        }
        if closed.iter().any(|c| s.old_conns.contains(c)) {
            return Ok(());
        }
        fail(format!(
            "{}: an attempt failed after the heal on a connection opened since (closed: {closed:?})",
            s.id
        ))
    }

    /// The network, the disk and every lond work again; clients finish their scripts; the
    /// daemon runs and every peer is revived.
    pub(super) fn heal(&mut self) -> Checked {
        self.healed = true;
        self.note("HEAL".into());
        self.net.heal(self.now);
        self.disk.heal();
        self.out_of_fds = false;
        for name in self.disk.partial() {
            self.disk.files.get_mut(&name).expect("listed").push(b'\n');
            self.model.file_completed(&name);
        }
        for p in 0..self.slots.len() {
            let lond = &mut self.slots[p].lond;
            lond.refuse = false;
            lond.hang = false;
            lond.unreachable = false;
            if !lond.up {
                lond.start(&mut self.rng);
            }
        }
        if let Daemon::Down(_) = self.daemon {
            self.start_daemon()?;
        }
        for s in &mut self.slots {
            s.ready_seen = self.now;
            s.old_conns = s.conns.keys().copied().collect();
        }
        let bounds = (0..self.slots.len()).map(|p| self.bound(p)).collect();
        self.model.heal(self.now, bounds);
        self.revive_all()?;
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for client in ids {
            while self.clients.contains_key(&client) && self.model.may_send(client) {
                self.client_chunk(client)?;
            }
        }
        Ok(())
    }

    /// How long peer `p` may take to answer a waiting request once healed ([`Bound`]).
    pub(super) fn bound(&self, p: usize) -> Bound {
        let s = &self.plan.settings;
        let net = self.plan.net;
        let round_trip = net.worst_one_way() * 2;
        let attempt = s.connect_timeout + s.handshake_timeout * 4 + s.pong_delay + round_trip * 4;
        let files = self
            .disk
            .files
            .keys()
            .filter(|n| n.ends_with(&format!(".{}", self.slots[p].id)))
            .count() as u32;
        let round = (s.handshake_timeout + round_trip) * (files + 1);
        Bound {
            base: attempt + s.retry_max + SHUTDOWN_GRACE + STOP_SLACK + round + s.delayed_rescan,
            per_request: s.transaction_timeout + attempt + round + Duration::from_secs(3),
        }
    }

    /// When the heal phase ends: every bound is due, and a few rescans have passed.
    pub(super) fn heal_end(&self) -> Instant {
        let s = &self.plan.settings;
        let longest = (0..self.slots.len())
            .map(|p| {
                let b = self.bound(p);
                b.base + b.per_request * (self.model.waiting(p) as u32 + 1)
            })
            .max()
            .unwrap_or_default();
        self.now + longest + s.delayed_rescan * 3 + s.retry_max + Duration::from_secs(2)
    }

    /// Checked after every step.
    pub(super) fn check(&mut self) -> Checked {
        self.check_reconnected()?;
        let max = self.plan.settings.max_connections;
        for (p, s) in self.slots.iter().enumerate() {
            let Some(peer) = &s.peer else { continue };
            if s.conns.len() > max || peer.connection_count() > max {
                return fail(format!(
                    "{}: {} connections open ({} seen by the world), loncMaxConnections {max}",
                    s.id,
                    peer.connection_count(),
                    s.conns.len()
                ));
            }
            let waiting = self.model.waiting(p);
            if peer.queued() > QUEUE_LIMIT || peer.queued() > waiting {
                return fail(format!(
                    "{}: {} requests queued, {waiting} waiting, QUEUE_LIMIT {QUEUE_LIMIT}",
                    s.id,
                    peer.queued()
                ));
            }
        }
        self.model.overdue(self.now).or_else(fail)
    }

    /// Once healed, an eager peer is ready again within its bound: a link that drops (lond
    /// closes it, `close_connection_exit`) is replaced within one attempt.
    pub(super) fn check_reconnected(&mut self) -> Checked {
        let eager = self.plan.settings.connect_mode == ConnectMode::Eager;
        let up = self.daemon == Daemon::Up;
        for p in 0..self.slots.len() {
            let bound = self.bound(p).base;
            let s = &mut self.slots[p];
            let state = s.peer.as_ref().map(Peer::state);
            if !self.healed || !eager || !up || state == Some(PeerState::Ready) {
                s.ready_seen = self.now;
            } else if self.now > s.ready_seen + bound {
                return fail(format!(
                    "{}: {state:?} for {:?} after the heal, not connected again",
                    s.id,
                    self.now - s.ready_seen
                ));
            }
        }
        Ok(())
    }

    /// At the end of the heal.
    pub(super) fn final_checks(&mut self) -> Checked {
        self.note("final checks".into());
        self.model.all_done().or_else(fail)?;
        self.model.all_delivered().or_else(fail)?;
        if let Some(name) = self.disk.files.keys().next() {
            return fail(format!(
                "delayed file {name} still on the disk after the heal"
            ));
        }
        if self.plan.settings.connect_mode == ConnectMode::Eager {
            for s in &self.slots {
                let state = s.peer.as_ref().map(Peer::state);
                if state != Some(PeerState::Ready) {
                    return fail(format!("{}: {state:?} after the heal, not ready", s.id));
                }
            }
        }
        Ok(())
    }
}
