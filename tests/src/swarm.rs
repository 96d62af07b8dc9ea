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
//! a queue within its bounds (count and bytes; tiny ones on some seeds) and no longer
//! than the requests that wait, a refusal for a full queue only when it is full, a peer stopped within
//! its grace period; and, at the end, every client answered, every delayed file delivered
//! and gone from the disk, every eager peer connected. A step budget and a bound on the
//! steps at one virtual instant turn a livelock into a failure with the seed.
//!
//! Everything is ordered (`BTreeMap`, sequence numbers, one seeded generator): the same
//! seed gives the same trace, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lonc_core::io::{ClientId, ConnId, Input, Output, Severity};
use lonc_core::limits::SHUTDOWN_GRACE;
use lonc_core::peer::{Peer, PeerState};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::model::Model;
use crate::netem::{End, LinkId, NetEm};

mod checks;
pub mod disk;
pub mod lond;
mod network;
pub mod plan;
mod schedule;

use disk::Disk;
use lond::Lond;
use plan::Plan;

/// This server's host id.
const OWN_ID: &str = "msuown";
/// The most steps one run may take.
const STEP_BUDGET: u64 = 2_000_000;
/// The most steps at one virtual instant before the run counts as a livelock.
const SAME_INSTANT_LIMIT: u64 = 50_000;

/// Why a run failed: the invariant broken (and, from [`Swarm::run`], the virtual time).
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
    flooded: bool,
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
            flooded: false,
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

    /// Runs the whole schedule: the faulty phase, the heal, the final checks. A failure
    /// names the virtual time it was found at.
    pub fn run(&mut self) -> Checked {
        self.phases().map_err(|f| Failure {
            what: format!("{} (at {:.4} s)", f.what, self.secs(self.now)),
        })
    }

    fn phases(&mut self) -> Checked {
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
            s.peer = Some(
                Peer::new(
                    &s.id,
                    OWN_ID,
                    &format!("10.0.0.{p}"),
                    5663,
                    self.plan.settings.clone(),
                    seed,
                    self.now,
                )
                .with_queue_bounds(self.plan.queue),
            );
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
                if self.disk.odd.contains_key(&name) {
                    return fail(format!("{id}: read {name}, which is not a regular file"));
                }
                let content = self.disk.read(&name);
                self.slots[p].later.push(Input::delayed_read(name, content));
            }
            Output::DeleteDelayed { name } => {
                self.note(format!("{id}: delete {name}"));
                if self.disk.odd.contains_key(&name) {
                    return fail(format!("{id}: deleted {name}, which is not a regular file"));
                }
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
                self.check_refusal(p, &e.message)?;
                if e.severity == Severity::Info && e.message.ends_with(" ready") {
                    // A link that came up ends a backoff for the main link (a drop is
                    // replaced at once); extra connections wait out the rest of it.
                    let s = &mut self.slots[p];
                    if let Some(gate) = s.gate.take() {
                        s.extra_gate = Some(s.extra_gate.map_or(gate, |g| g.max(gate)));
                    }
                }
                if e.message.contains("extra connection retried") {
                    self.slots[p].extra_gate = Some(self.now + self.plan.settings.retry_min);
                    self.slots[p].failed_now = true;
                }
                self.note(format!("{id}: log {}: {}", e.severity.as_str(), e.message));
            }
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
