//! The heal and the world's own invariants: the bounds a healed peer is held to, the
//! checks after every step (connections, queue, silence, reconnects, failed attempts) and
//! at the end (every client answered, every delayed file delivered, eager peers ready).

use std::time::{Duration, Instant};

use lonc_core::config::ConnectMode;
use lonc_core::io::ClientId;
use lonc_core::limits::{SHUTDOWN_GRACE, STOP_SLACK};
use lonc_core::peer::{Peer, PeerState, QueueBounds};

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
            self.check_queue(p, peer)?;
        }
        self.model.overdue(self.now).or_else(fail)
    }

    /// Peer `p`'s queue holds its bounds, in count and in bytes (the byte bound raised to
    /// `loncMaxRequest`), and no more than the requests that wait, each no longer than
    /// `loncMaxRequest`.
    fn check_queue(&self, p: usize, peer: &Peer) -> Checked {
        let bounds = peer.queue_bounds();
        if bounds != self.plan.queue {
            return fail(format!(
                "{}: queue bounds {bounds:?}, the plan's are {:?}",
                self.slots[p].id, self.plan.queue
            ));
        }
        let max_request = self.plan.settings.max_request;
        let byte_bound = byte_bound(bounds, max_request);
        let (count, bytes) = (peer.queued(), peer.queued_bytes());
        let waiting = self.model.waiting(p);
        if count > bounds.count || count > waiting {
            return fail(format!(
                "{}: {count} requests queued, {waiting} waiting, count bound {}",
                self.slots[p].id, bounds.count
            ));
        }
        if bytes > byte_bound || bytes > count * max_request {
            return fail(format!(
                "{}: {bytes} request bytes queued in {count} requests, byte bound {byte_bound} \
                 (loncMaxRequest {max_request})",
                self.slots[p].id
            ));
        }
        Ok(())
    }

    /// A request refused by a full queue (logged "request queue full (N waiting, B bytes;
    /// this one L bytes)", answered `con_lost`) must have met a full queue: N at the count
    /// bound, or L bytes that did not fit beside the B waiting (never for an empty queue).
    pub(super) fn check_refusal(&self, p: usize, message: &str) -> Checked {
        let Some(rest) = message.strip_prefix("request queue full (") else {
            return Ok(());
        };
        let numbers: Vec<usize> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .take(3)
            .collect();
        let &[n, bytes, this] = numbers.as_slice() else {
            return fail(format!("{}: unreadable {message:?}", self.slots[p].id));
        };
        let bounds = self.plan.queue;
        let byte_bound = byte_bound(bounds, self.plan.settings.max_request);
        if n >= bounds.count || (n > 0 && bytes + this > byte_bound) {
            return Ok(());
        }
        fail(format!(
            "{}: {message:?}, though the bounds are {bounds:?} (bytes raised to {byte_bound})",
            self.slots[p].id
        ))
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

/// The byte bound in force, by the documented rule (never below `loncMaxRequest`), worked
/// out here rather than asked of the core it checks.
fn byte_bound(bounds: QueueBounds, max_request: usize) -> usize {
    bounds.bytes.max(max_request)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use lonc_core::config::LinkSettings;
    use lonc_core::io::{ClientId, Input, Output};
    use lonc_core::peer::{CON_LOST, Peer, QueueBounds};

    #[test]
    fn a_peer_holds_its_configured_bounds_and_refuses_with_con_lost() {
        let now = Instant::now();
        let peer = Peer::new(
            "msul1",
            "msuown",
            "10.0.0.1",
            5663,
            LinkSettings::default(),
            1,
            now,
        );
        assert_eq!(peer.queue_bounds(), QueueBounds::default());
        let bounds = QueueBounds {
            count: 2,
            bytes: 100,
        };
        let mut peer = peer.with_queue_bounds(bounds);
        assert_eq!(peer.queue_bounds(), bounds);
        while peer.poll_output().is_some() {}
        let c = ClientId(7);
        peer.handle(now, Input::ClientOpened(c));
        peer.handle(
            now,
            Input::ClientData(c, b"echo:a\necho:bb\necho:c\n".to_vec()),
        );
        assert_eq!((peer.queued(), peer.queued_bytes()), (2, 13));
        let outputs: Vec<Output> = std::iter::from_fn(|| peer.poll_output()).collect();
        let refused = outputs.iter().any(|o| {
            matches!(o, Output::Log(e) if e.message.starts_with(
                "request queue full (2 waiting, 13 bytes; this one 6 bytes)"))
        });
        assert!(refused, "the refusal is logged: {outputs:?}");
        let replies: Vec<&Output> = outputs
            .iter()
            .filter(|o| matches!(o, Output::Reply { .. }))
            .collect();
        assert!(
            replies.is_empty(),
            "the third waits behind the first two: {replies:?}"
        );
        // The peer gives up on its link (no connection in a test): every waiting request
        // gets con_lost, then the refused one, in the client's order.
        peer.handle(now, Input::Shutdown(Duration::ZERO));
        let lost = std::iter::from_fn(|| peer.poll_output())
            .filter(|o| matches!(o, Output::Reply { client, data } if *client == c && data[..] == *CON_LOST))
            .count();
        assert_eq!(lost, 3);
        assert_eq!((peer.queued(), peer.queued_bytes()), (0, 0));
    }
}
