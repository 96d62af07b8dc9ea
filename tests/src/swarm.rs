//! A deterministic world of many peers on a hostile network, driven by one seed: the
//! daemon's [`Peer`]s (one per peer, each with its lond built on the core's
//! `LondSession`), the network between them ([`NetEm`]), local clients, and the delayed
//! spool on a simulated disk that outlives daemon crashes.
//!
//! A run has two phases. In the faulty phase a random schedule (its faults chosen by the
//! seed's [`Plan`]) mixes client traffic, delayed files, partitions, clogs, resets, write
//! errors, lond crashes and refusals, daemon crashes and restarts, shutdowns (TERM), disk
//! errors, local shortages, USR1 and time jumps. Then the world heals: the network and the
//! disk work, every lond listens and answers, the daemon runs and every peer is revived;
//! the heal lasts long enough for every bound of [`model`](crate::model) to be due.
//!
//! After every step the world checks the [`Model`]'s invariants and its own: never more
//! connections than `loncMaxConnections`, never a connect sooner than the backoff allows,
//! a queue no longer than its bound nor than the requests that wait, a peer stopped within
//! its grace period; and, at the end, every client answered, every delayed file delivered
//! and gone from the disk, every eager peer connected. A step budget and a bound on the
//! steps at one virtual instant turn a livelock into a failure with the seed.
//!
//! Everything is ordered (`BTreeMap`, sequence numbers, one seeded generator): the same
//! seed gives the same trace, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lonc_core::config::ConnectMode;
use lonc_core::io::{ClientId, ConnId, Input, Output};
use lonc_core::limits::{SHUTDOWN_GRACE, STOP_SLACK};
use lonc_core::lond::LondEvent;
use lonc_core::peer::{Peer, PeerState, QUEUE_LIMIT};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::lond_app::{self, Answer};
use crate::model::{Bound, Model};
use crate::netem::{Arrival, End, LinkId, NetEm, NetOutput, Partition};

pub mod disk;
pub mod lond;
pub mod plan;

use disk::Disk;
use lond::Lond;
use plan::Plan;

/// This server's host id.
const OWN_ID: &str = "msuown";
/// The most steps one run may take.
const STEP_BUDGET: u64 = 2_000_000;
/// The most steps at one virtual instant before the run counts as a livelock.
const SAME_INSTANT_LIMIT: u64 = 50_000;

/// Why a run failed: the invariant broken, with the virtual time.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub what: String,
}

type Checked = Result<(), Failure>;

fn fail<T>(what: impl Into<String>) -> Result<T, Failure> {
    Err(Failure { what: what.into() })
}

/// Where the daemon stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Up,
    /// TERM came at this time.
    Stopping(Instant),
    /// Not running; starts again at this time.
    Down(Instant),
}

/// Something the world does at a given time, apart from the network and the peers.
#[derive(Debug)]
enum Event {
    /// lond's application answers request `id` on `link` (of lond incarnation `life`).
    LondReply {
        peer: usize,
        link: LinkId,
        life: u32,
        id: u64,
        data: Vec<u8>,
        encrypted: bool,
    },
    /// lond closes `link` instead of answering.
    LondClose { peer: usize, link: LinkId },
    /// A crashed lond starts again.
    LondStart(usize),
    /// A clog ends.
    Unclog(LinkId, End),
    /// The runtime wakes peer `p` early (harmless by the run-loop contract), and plans
    /// its next early wake.
    Tick(usize),
}

/// One peer of the daemon, its lond, and what the world saw of its connections.
#[derive(Debug)]
struct Slot {
    id: String,
    peer: Option<Peer>,
    lond: Lond,
    /// The current daemon's connections of this peer not yet closed, and their links.
    conns: BTreeMap<ConnId, LinkId>,
    /// What a runtime learned while carrying outputs out, fed after the drain.
    later: Vec<Input>,
    /// No connect before this (a failed attempt's backoff).
    gate: Option<Instant>,
    /// No extra connection before this (a failed extra connection's backoff, logged as
    /// "extra connection retried").
    extra_gate: Option<Instant>,
    /// The last time the peer was seen ready (or had no reason to be: daemon down or
    /// stopping, not yet healed).
    ready_seen: Instant,
    /// Connections open when the network healed (they may still fail).
    old_conns: BTreeSet<ConnId>,
    /// Connections closed or forgotten since the last drain ended.
    closed_now: Vec<ConnId>,
    /// An attempt failed since the last drain ended.
    failed_now: bool,
    last_attempts: u32,
}

/// A local client and the bytes its script has still to write.
#[derive(Debug)]
struct Client {
    peer: usize,
    to_send: Vec<u8>,
    /// It leaves without reading once its bytes are written.
    leaves: bool,
}

/// The world: see the module docs.
pub struct Swarm {
    /// The seed.
    pub seed: u64,
    /// What the seed chose.
    pub plan: Plan,
    /// Everything that happened, one line each.
    pub trace: Vec<String>,
    now: Instant,
    start: Instant,
    rng: SmallRng,
    net: NetEm,
    slots: Vec<Slot>,
    daemon: Daemon,
    clients: BTreeMap<ClientId, Client>,
    disk: Disk,
    model: Model,
    events: BTreeMap<(Instant, u64), Event>,
    links: BTreeMap<LinkId, (usize, ConnId)>,
    healed: bool,
    out_of_fds: bool,
    seq: u64,
    next_link: u64,
    next_client: u64,
    next_file: u64,
    steps: u64,
    same_instant: (Instant, u64),
}

impl Swarm {
    /// The world of seed `seed`, its daemon started.
    pub fn new(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let plan = Plan::draw(&mut rng);
        let net = NetEm::new(plan.net, rng.random());
        let start = Instant::now();
        let slots = (0..plan.peers)
            .map(|i| {
                let id = format!("msul{i}");
                Slot {
                    lond: Lond::new(&id, OWN_ID, &mut rng),
                    id,
                    peer: None,
                    conns: BTreeMap::new(),
                    later: Vec::new(),
                    gate: None,
                    extra_gate: None,
                    ready_seen: start,
                    old_conns: BTreeSet::new(),
                    closed_now: Vec::new(),
                    failed_now: false,
                    last_attempts: 0,
                }
            })
            .collect();
        let mut w = Swarm {
            seed,
            trace: Vec::new(),
            now: start,
            start,
            rng,
            net,
            slots,
            daemon: Daemon::Down(start),
            clients: BTreeMap::new(),
            disk: Disk::default(),
            model: Model::default(),
            events: BTreeMap::new(),
            links: BTreeMap::new(),
            healed: false,
            out_of_fds: false,
            seq: 0,
            next_link: 0,
            next_client: 1,
            next_file: 0,
            steps: 0,
            same_instant: (start, 0),
            plan,
        };
        w.note(format!("seed {seed}: {:?}", w.plan));
        w
    }

    /// Runs the whole schedule: the faulty phase, the heal, the final checks.
    pub fn run(&mut self) -> Checked {
        self.start_daemon()?;
        if self.plan.faults.early_wakes {
            for p in 0..self.slots.len() {
                self.schedule(self.now, Event::Tick(p));
            }
        }
        let heal_at = self.start + self.plan.fault_phase;
        while self.now < heal_at {
            let gap = self
                .rng
                .random_range(0..=self.plan.pace.as_micros() as u64 * 2);
            let at = (self.now + Duration::from_micros(gap)).min(heal_at);
            self.run_until(at)?;
            if self.now < heal_at {
                self.act()?;
            }
        }
        self.heal()?;
        let end = self.heal_end();
        self.note(format!("heal: runs until {:.3}", self.secs(end)));
        self.run_until(end)?;
        self.final_checks()
    }

    /// The virtual time `t` in seconds since the start, for the trace.
    fn secs(&self, t: Instant) -> f64 {
        (t - self.start).as_secs_f64()
    }

    fn note(&mut self, s: String) {
        let t = self.secs(self.now);
        self.trace.push(format!("{t:10.4} {s}"));
    }

    fn schedule(&mut self, at: Instant, ev: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    // ----- the clock -----

    /// Delivers everything due up to `until` in time order, checking after every step.
    fn run_until(&mut self, until: Instant) -> Checked {
        loop {
            let next = [
                self.net.poll_timeout(),
                self.events.keys().next().map(|k| k.0),
                self.slots
                    .iter()
                    .filter_map(|s| s.peer.as_ref()?.poll_timeout())
                    .min(),
                self.daemon_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|t| *t <= until) else {
                break;
            };
            self.now = self.now.max(next);
            self.count_step()?;
            self.step()?;
            self.check()?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    fn count_step(&mut self) -> Checked {
        self.steps += 1;
        if self.steps > STEP_BUDGET {
            return fail(format!("livelock: step budget of {STEP_BUDGET} exceeded"));
        }
        if self.same_instant.0 == self.now {
            self.same_instant.1 += 1;
            if self.same_instant.1 > SAME_INSTANT_LIMIT {
                return fail(format!(
                    "livelock: more than {SAME_INSTANT_LIMIT} steps at one virtual instant"
                ));
            }
        } else {
            self.same_instant = (self.now, 0);
        }
        Ok(())
    }

    /// One step at `now`: the network, then the world's events, then the peers' deadlines,
    /// then the daemon's (a stopping daemon gives its peers their last deadline first).
    fn step(&mut self) -> Checked {
        self.net.handle_timeout(self.now);
        while let Some(out) = self.net.poll_output() {
            self.arrive(out)?;
        }
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let ev = entry.remove();
            self.event(ev)?;
        }
        for p in 0..self.slots.len() {
            let due = self.slots[p].peer.as_ref().and_then(Peer::poll_timeout);
            if due.is_some_and(|t| t <= self.now) {
                self.feed(p, Input::Timeout)?;
            }
            self.revive_if_dead(p)?;
        }
        if self.daemon_deadline().is_some_and(|t| t <= self.now) {
            match self.daemon {
                Daemon::Down(_) => self.start_daemon()?,
                Daemon::Stopping(_) => self.daemon_stopped()?,
                Daemon::Up => {}
            }
        }
        Ok(())
    }

    /// Once healed, the operator revives a peer found dead (an attempt that was under
    /// way at the heal may still fail): USR1.
    fn revive_if_dead(&mut self, p: usize) -> Checked {
        let dead = self.slots[p].peer.as_ref().map(Peer::state) == Some(PeerState::Dead);
        if self.healed && dead {
            self.note(format!("{}: dead after the heal; USR1", self.slots[p].id));
            self.slots[p].gate = None;
            self.slots[p].extra_gate = None;
            self.feed(p, Input::Revive)?;
        }
        Ok(())
    }

    /// When the daemon must next change: start again, or be stopped.
    fn daemon_deadline(&self) -> Option<Instant> {
        match self.daemon {
            Daemon::Up => None,
            Daemon::Down(at) => Some(at),
            Daemon::Stopping(since) => {
                let all = self
                    .slots
                    .iter()
                    .all(|s| s.peer.as_ref().is_none_or(Peer::is_stopped));
                Some(if all {
                    self.now
                } else {
                    since + SHUTDOWN_GRACE + Duration::from_millis(1)
                })
            }
        }
    }

    // ----- the daemon -----

    fn start_daemon(&mut self) -> Checked {
        self.daemon = Daemon::Up;
        self.note("daemon starts".into());
        for p in 0..self.slots.len() {
            let seed = self.rng.random();
            let s = &mut self.slots[p];
            s.peer = Some(Peer::new(
                &s.id,
                OWN_ID,
                &format!("10.0.0.{p}"),
                5663,
                self.plan.settings.clone(),
                seed,
                self.now,
            ));
            s.gate = None;
            s.extra_gate = None;
            s.last_attempts = 0;
            s.conns.clear();
            s.later.clear();
            self.drain(p)?;
        }
        Ok(())
    }

    /// The daemon dies: every peer's memory is lost, its clients and connections close
    /// (by its kernel: FIN, or RST for `reset`), and it starts again later.
    fn crash_daemon(&mut self, restart_after: Duration) {
        let reset = self.rng.random_bool(0.5);
        self.note(format!("daemon crashes (reset {reset})"));
        for s in &mut self.slots {
            s.peer = None;
            let links: Vec<LinkId> = std::mem::take(&mut s.conns).into_values().collect();
            self.net.end_crashed(self.now, &links, End::Lonc, reset);
            s.later.clear();
        }
        self.links.clear();
        self.clients.clear();
        self.model.daemon_crashed();
        self.daemon = Daemon::Down(self.now + restart_after);
    }

    /// TERM: every peer shuts down with the daemon's grace period. A second TERM while
    /// stopping changes nothing: the grace period runs from the first.
    fn shutdown(&mut self) -> Checked {
        match self.daemon {
            Daemon::Up => self.daemon = Daemon::Stopping(self.now),
            Daemon::Stopping(_) => {}
            Daemon::Down(_) => return Ok(()),
        }
        self.note("TERM".into());
        for p in 0..self.slots.len() {
            self.feed(p, Input::Shutdown(SHUTDOWN_GRACE))?;
        }
        Ok(())
    }

    /// The grace period is over (or every peer stopped): each must have stopped, with
    /// every client answered and closed. The daemon exits, and starts again.
    fn daemon_stopped(&mut self) -> Checked {
        let Daemon::Stopping(since) = self.daemon else {
            return Ok(());
        };
        for s in &self.slots {
            if let Some(peer) = &s.peer
                && !peer.is_stopped()
            {
                return fail(format!(
                    "peer {} not stopped {:?} after TERM",
                    s.id,
                    self.now - since
                ));
            }
        }
        if let Some((id, _)) = self
            .clients
            .iter()
            .find(|(id, _)| !self.model.is_done(**id))
        {
            return fail(format!(
                "client {} still open after the daemon stopped",
                id.0
            ));
        }
        self.note("daemon stopped".into());
        // Whatever the kernel still holds of a stopped daemon goes with it.
        let pause = Duration::from_millis(self.rng.random_range(0..=2_000));
        let pause = if self.healed { Duration::ZERO } else { pause };
        let links: usize = self.slots.iter().map(|s| s.conns.len()).sum();
        if links > 0 {
            return fail(format!("{links} connections left open by stopped peers"));
        }
        self.crash_daemon(pause);
        Ok(())
    }

    // ----- feeding a peer -----

    /// Feeds one input to peer `p` and carries out everything that follows.
    fn feed(&mut self, p: usize, input: Input) -> Checked {
        let Some(peer) = self.slots[p].peer.as_mut() else {
            return Ok(());
        };
        peer.handle(self.now, input);
        self.drain(p)
    }

    /// Carries out every output of peer `p`; then feeds what was learned meanwhile, one
    /// input per drain, as a runtime does.
    fn drain(&mut self, p: usize) -> Checked {
        loop {
            while let Some(out) = self.slots[p].peer.as_mut().and_then(Peer::poll_output) {
                self.note_attempts(p);
                self.carry_out(p, out)?;
            }
            self.note_attempts(p);
            if self.slots[p].later.is_empty() {
                return self.check_failures(p);
            }
            let input = self.slots[p].later.remove(0);
            self.note(format!("{}: runtime reports {input:?}", self.slots[p].id));
            match &input {
                Input::ConnClosed(c)
                | Input::ConnectFailed(c, _)
                | Input::ConnectLocalError(c, _) => {
                    self.forget(p, *c);
                }
                _ => {}
            }
            let Some(peer) = self.slots[p].peer.as_mut() else {
                return Ok(());
            };
            peer.handle(self.now, input);
        }
    }

    /// Once healed, only a connection opened before the heal may fail its attempt (in the
    /// network healed since, with every lond listening and answering, a new one cannot).
    fn check_failures(&mut self, p: usize) -> Checked {
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

    /// A rise of the failed-attempt count starts a backoff: no connect before
    /// `loncRetryMin` from now.
    fn note_attempts(&mut self, p: usize) {
        let retry_min = self.plan.settings.retry_min;
        let s = &mut self.slots[p];
        let Some(peer) = &s.peer else { return };
        let attempts = peer.failed_attempts();
        if attempts > s.last_attempts {
            s.gate = Some(self.now + retry_min);
            s.failed_now = true;
        }
        s.last_attempts = attempts;
    }

    fn carry_out(&mut self, p: usize, out: Output) -> Checked {
        let id = self.slots[p].id.clone();
        match out {
            Output::Connect { conn, .. } => {
                let extra = self.slots[p].peer.as_ref().map(Peer::state) == Some(PeerState::Ready);
                if extra
                    && let Some(gate) = self.slots[p].extra_gate.take()
                    && self.now < gate
                {
                    return fail(format!(
                        "{id}: extra connect {} {:?} before its backoff allows",
                        conn.0,
                        gate - self.now
                    ));
                }
                if let Some(gate) = self.slots[p].gate.take()
                    && self.now < gate
                {
                    return fail(format!(
                        "{id}: connect {} {:?} before its backoff allows",
                        conn.0,
                        gate - self.now
                    ));
                }
                if self.out_of_fds {
                    self.note(format!("{id}: connect {}: too many open files", conn.0));
                    let why = "Too many open files".to_owned();
                    self.slots[p]
                        .later
                        .push(Input::ConnectLocalError(conn, why));
                    return Ok(());
                }
                self.next_link += 1;
                let link = LinkId(self.next_link);
                self.note(format!("{id}: connect {} on link {}", conn.0, link.0));
                self.slots[p].conns.insert(conn, link);
                self.links.insert(link, (p, conn));
                self.net.connect(self.now, link);
            }
            Output::Transmit { conn, data } => {
                let Some(&link) = self.slots[p].conns.get(&conn) else {
                    return fail(format!(
                        "{id}: transmit on conn {} it never opened or closed",
                        conn.0
                    ));
                };
                if self.plan.faults.write_errors && !self.healed && self.rng.random_bool(0.03) {
                    self.note(format!("{id}: write on conn {} fails", conn.0));
                    self.net.reset(self.now, link, End::Lonc);
                    self.slots[p].later.push(Input::ConnClosed(conn));
                    return Ok(());
                }
                self.note(format!("{id}: conn {} sends {}", conn.0, show(&data)));
                self.net.send(self.now, link, End::Lonc, &data);
            }
            Output::CloseConn { conn, linger } => {
                if let Some(link) = self.forget(p, conn) {
                    self.note(format!("{id}: closes conn {} (linger {linger:?})", conn.0));
                    if linger.is_zero() {
                        self.net.reset(self.now, link, End::Lonc);
                    } else {
                        self.net.close(self.now, link, End::Lonc);
                    }
                }
            }
            Output::Reply { client, data } => {
                self.note(format!(
                    "{id}: reply to client {}: {}",
                    client.0,
                    show(&data)
                ));
                self.model.reply(client, &data).or_else(fail)?;
            }
            Output::CloseClient { client } => {
                self.note(format!("{id}: close client {}", client.0));
                let stopping = !matches!(self.daemon, Daemon::Up);
                self.model.closed(client, stopping).or_else(fail)?;
                self.clients.remove(&client);
            }
            Output::AbortClient { client } => {
                return fail(format!(
                    "{id}: client {} aborted, though it reads",
                    client.0
                ));
            }
            Output::ListDelayed => {
                let input = match self.disk.list() {
                    Ok(entries) => Input::DelayedList(entries),
                    Err(why) => Input::DelayedListFailed(why),
                };
                self.slots[p].later.push(input);
            }
            Output::ReadDelayed { name } => {
                let content = self.disk.read(&name);
                self.slots[p].later.push(Input::delayed_read(name, content));
            }
            Output::DeleteDelayed { name } => {
                self.note(format!("{id}: delete {name}"));
                self.model.deleted(&name).or_else(fail)?;
                if let Err(why) = self.disk.delete(&name) {
                    self.note(format!("{id}: delete {name} fails"));
                    self.slots[p]
                        .later
                        .push(Input::delayed_delete_failed(name, why));
                }
            }
            Output::PermLog(e) => {
                self.note(format!("perm log: {}", show(&e.line(0, "-"))));
            }
            Output::Log(e) => {
                if e.message.contains("extra connection retried") {
                    self.slots[p].extra_gate = Some(self.now + self.plan.settings.retry_min);
                    self.slots[p].failed_now = true;
                }
                self.note(format!("{id}: log {}: {}", e.severity.as_str(), e.message));
            }
        }
        Ok(())
    }

    // ----- the network -----

    /// Something reached an end of a link.
    fn arrive(&mut self, out: NetOutput) -> Checked {
        let NetOutput { link, to, what } = out;
        match to {
            End::Lond => self.at_lond(link, what),
            End::Lonc => self.at_lonc(link, what),
        }
    }

    /// Which peer's lond a link leads to: its number is in the link's record, or gone
    /// with a crashed daemon; lond keeps sessions by link, so look there too.
    fn lond_of(&self, link: LinkId) -> Option<usize> {
        if let Some((p, _)) = self.links.get(&link) {
            return Some(*p);
        }
        self.slots
            .iter()
            .position(|s| s.lond.links().contains(&link))
    }

    fn at_lond(&mut self, link: LinkId, what: Arrival) -> Checked {
        let Some(p) = self.lond_of(link) else {
            // A connect of a daemon that crashed since: nobody remembers it.
            if what == Arrival::Syn {
                self.net.reset(self.now, link, End::Lond);
            }
            return Ok(());
        };
        match what {
            Arrival::Syn if self.slots[p].lond.unreachable => {}
            Arrival::Syn => {
                if self.slots[p].lond.accept(link) {
                    self.net.accept(self.now, link);
                } else {
                    self.net.refuse(self.now, link);
                }
            }
            Arrival::Data(data) => {
                let events = self.slots[p].lond.data(link, &data);
                self.lond_events(p, link, events);
            }
            Arrival::Fin | Arrival::Rst => self.slots[p].lond.closed(link),
            Arrival::Accepted | Arrival::Refused => {}
        }
        Ok(())
    }

    /// Carries out what lond does: bytes to lonc, requests for the application, a close.
    fn lond_events(&mut self, p: usize, link: LinkId, events: Vec<LondEvent>) {
        for ev in events {
            match ev {
                LondEvent::Transmit(data) => self.net.send(self.now, link, End::Lond, &data),
                LondEvent::Close => self.net.close(self.now, link, End::Lond),
                LondEvent::Request {
                    id,
                    line,
                    was_encrypted,
                } => {
                    let peer_id = self.slots[p].id.clone();
                    self.note(format!(
                        "lond {peer_id} got {}{}",
                        if was_encrypted { "(enc) " } else { "" },
                        show(&line)
                    ));
                    let life = self.slots[p].lond.incarnation;
                    let answer = lond_app::answer(&peer_id, &line);
                    if answer == Answer::Close {
                        self.schedule(self.now, Event::LondClose { peer: p, link });
                    } else if let Answer::Reply {
                        after,
                        data,
                        encrypted,
                    } = answer
                    {
                        let reply = Event::LondReply {
                            peer: p,
                            link,
                            life,
                            id,
                            data,
                            encrypted,
                        };
                        self.schedule(self.now + after, reply);
                    }
                }
            }
        }
    }

    fn at_lonc(&mut self, link: LinkId, what: Arrival) -> Checked {
        let Some(&(p, conn)) = self.links.get(&link) else {
            // The daemon forgot it (closed or crashed): its kernel closes it.
            if what == Arrival::Accepted {
                self.net.close(self.now, link, End::Lonc);
            }
            return Ok(());
        };
        let id = self.slots[p].id.clone();
        match what {
            Arrival::Accepted => {
                let awaited = self.slots[p]
                    .peer
                    .as_ref()
                    .is_some_and(|peer| peer.awaits_connect(conn));
                if awaited {
                    self.note(format!("{id}: conn {} connected", conn.0));
                    self.feed(p, Input::Connected(conn))?;
                } else {
                    self.net.close(self.now, link, End::Lonc);
                }
            }
            Arrival::Refused => {
                self.note(format!("{id}: conn {} refused", conn.0));
                self.forget(p, conn);
                self.feed(p, Input::ConnectFailed(conn, "Connection refused".into()))?;
            }
            Arrival::Data(data) => {
                self.note(format!("{id}: conn {} reads {}", conn.0, show(&data)));
                self.feed(p, Input::ConnData(conn, data.to_vec()))?;
            }
            Arrival::Fin | Arrival::Rst => {
                self.note(format!("{id}: conn {} closed by lond ({what:?})", conn.0));
                self.forget(p, conn);
                self.feed(p, Input::ConnClosed(conn))?;
            }
            Arrival::Syn => {}
        }
        Ok(())
    }

    /// The runtime forgets a connection whose socket is closed.
    fn forget(&mut self, p: usize, conn: ConnId) -> Option<LinkId> {
        let link = self.slots[p].conns.remove(&conn)?;
        self.links.remove(&link);
        self.slots[p].closed_now.push(conn);
        Some(link)
    }

    fn event(&mut self, ev: Event) -> Checked {
        match ev {
            Event::LondReply {
                peer,
                link,
                life,
                id,
                data,
                encrypted,
            } => {
                let lond = &mut self.slots[peer].lond;
                if lond.incarnation != life {
                    return Ok(());
                }
                if let Some(events) = lond.reply(link, id, &data, encrypted) {
                    self.model.lond_answered(&String::from_utf8_lossy(&data));
                    self.lond_events(peer, link, events);
                }
            }
            Event::LondClose { peer, link } => {
                if self.slots[peer].lond.close(link) {
                    self.net.close(self.now, link, End::Lond);
                }
            }
            Event::LondStart(p) => {
                self.note(format!("lond {} starts", self.slots[p].id));
                self.slots[p].lond.start(&mut self.rng);
            }
            Event::Unclog(link, to) => self.net.clog(self.now, link, to, false),
            Event::Tick(p) => {
                let next = Duration::from_millis(self.rng.random_range(1..=2_000));
                self.schedule(self.now + next, Event::Tick(p));
                self.feed(p, Input::Timeout)?;
            }
        }
        Ok(())
    }

    // ----- the schedule -----

    /// One random action of the faulty phase, among those the plan allows.
    fn act(&mut self) -> Checked {
        let f = self.plan.faults;
        let roll = self.rng.random_range(0..100u32);
        match roll {
            0..30 => self.new_client(),
            30..55 => self.client_writes(),
            55..62 => self.write_delayed_file(),
            62..64 if f.partial_files => self.complete_a_file(),
            64..66 if f.partitions => self.partition(),
            66..70 if f.clogs => self.clog(),
            70..73 if f.resets => self.reset_a_link(),
            73..75 if f.lond_crashes => self.crash_a_lond(),
            75..77 if f.lond_refuses => self.toggle(|l| &mut l.refuse, "refuses"),
            77 if f.lond_hangs => self.toggle(|l| &mut l.hang, "hangs"),
            78 if f.lond_hangs => self.toggle(|l| &mut l.unreachable, "is unreachable"),
            79..80 if f.daemon_crashes && self.daemon == Daemon::Up => {
                let after = Duration::from_millis(self.rng.random_range(0..=3_000));
                self.crash_daemon(after);
                Ok(())
            }
            80..82 if f.shutdowns => self.shutdown(),
            82..85 if f.disk_errors => self.disk_fault(),
            85..87 if f.time_jumps => {
                let jump = Duration::from_millis(self.rng.random_range(100..=20_000));
                self.note(format!("the clock jumps {jump:?}"));
                self.now += jump;
                Ok(())
            }
            87..89 if f.out_of_fds => {
                self.out_of_fds = !self.out_of_fds;
                self.note(format!("out of file descriptors: {}", self.out_of_fds));
                Ok(())
            }
            89..91 if f.revives => self.revive_all(),
            _ => Ok(()),
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.random_range(0..items.len())])
    }

    /// A token no other request or file carries.
    fn token(&mut self, what: &str) -> String {
        self.seq += 1;
        format!("{what}{}", self.seq)
    }

    /// A client connects to a random peer's socket with a script of requests.
    fn new_client(&mut self) -> Checked {
        if self.daemon != Daemon::Up {
            return Ok(());
        }
        let p = self.rng.random_range(0..self.slots.len());
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let max_request = self.plan.settings.max_request;
        let mut script = Vec::new();
        for _ in 0..self.rng.random_range(1..=4) {
            let token = self.token(&format!("c{}r", client.0));
            let line = match self.rng.random_range(0..100u32) {
                0..40 => format!("echo:{token}"),
                40..55 => format!("encrypt:echo:{token}"),
                55..65 => format!("eget:{token}"),
                65..80 => format!("sleep:{}:{token}", self.rng.random_range(0..3_000u32)),
                80..84 => "close_connection_exit".to_owned(),
                84..87 => "x".repeat(max_request + 1),
                87..90 => "silent".to_owned(),
                90..93 => "close".to_owned(),
                93..96 => {
                    let max_reply = self.plan.settings.max_reply;
                    let n = self.rng.random_range(max_reply - 200..max_reply + 200);
                    format!("pad:{n}:{token}")
                }
                _ => format!("echo:{token}"),
            };
            script.extend_from_slice(line.as_bytes());
            script.push(b'\n');
        }
        let leaves = self.rng.random_bool(0.1);
        self.note(format!(
            "client {} of {} opens: {} ({})",
            client.0,
            self.slots[p].id,
            show(&script),
            if leaves { "then leaves" } else { "then EOF" }
        ));
        self.model
            .opened(client, p, max_request, self.plan.settings.max_reply);
        self.clients.insert(
            client,
            Client {
                peer: p,
                to_send: script,
                leaves,
            },
        );
        self.feed(p, Input::ClientOpened(client))?;
        self.client_chunk(client)
    }

    /// A random client with bytes left writes some of them.
    fn client_writes(&mut self) -> Checked {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        match self.pick(&ids) {
            Some(client) => self.client_chunk(client),
            None => Ok(()),
        }
    }

    /// `client` writes the next chunk of its script; EOF or leaving once all is written.
    fn client_chunk(&mut self, client: ClientId) -> Checked {
        if !self.model.may_send(client) {
            return Ok(());
        }
        let Some(c) = self.clients.get_mut(&client) else {
            return Ok(());
        };
        let p = c.peer;
        if c.to_send.is_empty() {
            let leaves = c.leaves;
            self.note(format!(
                "client {} {}",
                client.0,
                if leaves { "leaves" } else { "EOF" }
            ));
            if leaves {
                self.model.gone(client);
                self.clients.remove(&client);
                return self.feed(p, Input::ClientGone(client));
            }
            self.model.eof(client);
            return self.feed(p, Input::ClientEof(client));
        }
        let n = match self.rng.random_range(0..3u32) {
            0 => c.to_send.len(),
            _ => self.rng.random_range(1..=c.to_send.len()),
        };
        let c = self.clients.get_mut(&client).expect("checked above");
        let data: Vec<u8> = c.to_send.drain(..n).collect();
        self.model.sent(self.now, client, &data);
        self.feed(p, Input::ClientData(client, data))
    }

    /// lonnet spools a delayed message for a random peer (partly, at times).
    fn write_delayed_file(&mut self) -> Checked {
        let p = self.rng.random_range(0..self.slots.len());
        let token = self.token("d");
        self.next_file += 1;
        let name = format!(
            "{}.{}.delay.{}",
            1_000_000 + self.next_file,
            self.seed,
            self.slots[p].id
        );
        let request = if self.rng.random_bool(0.3) {
            format!("encrypt:echo:{token}")
        } else {
            format!("echo:{token}")
        };
        let partial = self.plan.faults.partial_files && self.rng.random_bool(0.5);
        let mut content = request.into_bytes();
        if !partial {
            content.push(b'\n');
        }
        self.note(format!("lonnet writes {name}: {}", show(&content)));
        self.model.file_written(&name, &token, !partial);
        self.disk.files.insert(name, content);
        Ok(())
    }

    /// lonnet finishes a partly written file.
    fn complete_a_file(&mut self) -> Checked {
        let partial = self.disk.partial();
        if let Some(i) = (!partial.is_empty()).then(|| self.rng.random_range(0..partial.len())) {
            let name = &partial[i];
            self.note(format!("lonnet finishes {name}"));
            self.disk.files.get_mut(name).expect("listed").push(b'\n');
            self.model.file_completed(name);
        }
        Ok(())
    }

    fn partition(&mut self) -> Checked {
        match self.net.partition() {
            Some(_) => {
                self.note("the network heals".into());
                self.net.heal(self.now);
            }
            None => {
                let kind = if self.rng.random_bool(0.5) {
                    Partition::Hold
                } else {
                    Partition::Drop
                };
                self.note(format!("the network splits ({kind:?})"));
                self.net.split(kind);
            }
        }
        Ok(())
    }

    fn clog(&mut self) -> Checked {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        if let Some(link) = self.pick(&links) {
            let to = if self.rng.random_bool(0.5) {
                End::Lonc
            } else {
                End::Lond
            };
            let d = Duration::from_millis(self.rng.random_range(10..=5_000));
            self.note(format!("link {} clogged toward {to:?} for {d:?}", link.0));
            self.net.clog(self.now, link, to, true);
            self.schedule(self.now + d, Event::Unclog(link, to));
        }
        Ok(())
    }

    fn reset_a_link(&mut self) -> Checked {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        if let Some(link) = self.pick(&links) {
            self.note(format!("lond resets link {}", link.0));
            if let Some(p) = self.lond_of(link) {
                self.slots[p].lond.closed(link);
            }
            self.net.reset(self.now, link, End::Lond);
        }
        Ok(())
    }

    fn crash_a_lond(&mut self) -> Checked {
        let p = self.rng.random_range(0..self.slots.len());
        if !self.slots[p].lond.up {
            return Ok(());
        }
        let reset = self.rng.random_bool(0.5);
        self.note(format!("lond {} crashes (reset {reset})", self.slots[p].id));
        let links = self.slots[p].lond.crash();
        self.net.end_crashed(self.now, &links, End::Lond, reset);
        let after = Duration::from_millis(self.rng.random_range(0..=5_000));
        self.schedule(self.now + after, Event::LondStart(p));
        Ok(())
    }

    fn toggle(&mut self, flag: fn(&mut Lond) -> &mut bool, what: &str) -> Checked {
        let p = self.rng.random_range(0..self.slots.len());
        let f = flag(&mut self.slots[p].lond);
        *f = !*f;
        let on = *f;
        self.note(format!("lond {} {what}: {on}", self.slots[p].id));
        Ok(())
    }

    fn disk_fault(&mut self) -> Checked {
        let names: Vec<String> = self.disk.files.keys().cloned().collect();
        match self.rng.random_range(0..3u32) {
            0 => {
                self.disk.list_fails = !self.disk.list_fails;
                self.note(format!("listing the spool fails: {}", self.disk.list_fails));
            }
            1 if !names.is_empty() => {
                let name = names[self.rng.random_range(0..names.len())].clone();
                self.note(format!("reading {name} fails"));
                self.disk.read_fails.insert(name);
            }
            2 if !names.is_empty() => {
                let name = names[self.rng.random_range(0..names.len())].clone();
                self.note(format!("deleting {name} fails"));
                self.disk.delete_fails.insert(name);
            }
            _ => {}
        }
        Ok(())
    }

    fn revive_all(&mut self) -> Checked {
        self.note("USR1".into());
        for p in 0..self.slots.len() {
            if let Some(s) = self.slots.get_mut(p) {
                s.gate = None;
                s.extra_gate = None;
            }
            self.feed(p, Input::Revive)?;
        }
        Ok(())
    }

    // ----- the heal -----

    /// The network, the disk and every lond work again; clients finish their scripts; the
    /// daemon runs and every peer is revived.
    fn heal(&mut self) -> Checked {
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
    fn bound(&self, p: usize) -> Bound {
        let s = &self.plan.settings;
        let net = self.plan.net;
        let round_trip = (net.latency + net.jitter) * 2;
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
    fn heal_end(&self) -> Instant {
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
    fn check(&mut self) -> Checked {
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
    fn check_reconnected(&mut self) -> Checked {
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
    fn final_checks(&mut self) -> Checked {
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

/// Bytes for the trace: text, cut to 60 characters.
fn show(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(60)]);
    let more = if data.len() > 60 {
        format!("...({} bytes)", data.len())
    } else {
        String::new()
    };
    format!("{text:?}{more}")
}
