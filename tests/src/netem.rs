//! A network emulator for TCP links between lonc and the londs, with the same shape as the
//! core (str0m's `netem` is the model): inputs go in with `now` (`connect`, `send`,
//! `close`, `reset`), arrivals come out of [`NetEm::poll_output`], and
//! [`NetEm::poll_timeout`] says when the next one is due; [`NetEm::handle_timeout`]
//! releases what is due.
//!
//! Each link has two one-way pipes. A pipe keeps TCP's promise (bytes in order, never lost
//! while the link lives) and breaks every other one a test may lean on: each segment takes
//! the link's own latency (drawn per link around the configured one) plus a random jitter, writes are cut into random chunks and chunks
//! due together may be coalesced into one read, and a pipe may be clogged one way. A
//! partition holds every pipe ([`Partition::Hold`]: the bytes wait and flow at the heal) or
//! cuts them ([`Partition::Drop`]: the bytes in flight are lost, and each link cut is reset
//! at both ends when the network heals). A close is a FIN (after the data sent before it)
//! or an RST (everything in flight in both directions is dropped).
//!
//! All randomness comes from the seeded generator given to [`NetEm::new`]: the same seed
//! and the same inputs give the same arrivals.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One TCP connection, named by the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

/// An end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    /// The daemon under test.
    Lonc,
    /// The peer's lond.
    Lond,
}

impl End {
    /// The other end.
    pub fn other(self) -> End {
        match self {
            End::Lonc => End::Lond,
            End::Lond => End::Lonc,
        }
    }

    fn index(self) -> usize {
        match self {
            End::Lonc => 0,
            End::Lond => 1,
        }
    }
}

/// What reaches an end of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// A connection request (at lond): answer it with [`NetEm::accept`] or
    /// [`NetEm::refuse`], or not at all (a black hole).
    Syn,
    /// The connection is up (at lonc).
    Accepted,
    /// The connection was refused (at lonc).
    Refused,
    /// Bytes, in order after the earlier ones.
    Data(Bytes),
    /// The other end closed after everything it sent before.
    Fin,
    /// The other end reset the connection: what it sent after the last arrival is lost.
    Rst,
}

/// One arrival at one end of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOutput {
    /// Which link.
    pub link: LinkId,
    /// Which end it reaches.
    pub to: End,
    /// What arrives.
    pub what: Arrival,
}

/// How a partition treats the bytes in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// Every pipe holds its bytes (and new ones) until the heal.
    Hold,
    /// Every byte in flight, and every byte sent meanwhile, is lost; each link that was
    /// cut is reset at both ends at the heal (its kernel gave up retransmitting).
    Drop,
}

/// The emulator's knobs.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// One-way delay of a segment; each link draws its own from half to one and a half
    /// times this.
    pub latency: Duration,
    /// Up to this much more, drawn per segment (order within a pipe is kept).
    pub jitter: Duration,
    /// Writes are cut into chunks of 1 to this many bytes (0: never cut).
    pub max_chunk: usize,
    /// Chunks due at the same time in one pipe may arrive as one read.
    pub coalesce: bool,
}

impl NetConfig {
    /// The longest a segment may take on any link, outside clogs and partitions.
    pub fn worst_one_way(&self) -> Duration {
        self.latency * 3 / 2 + self.jitter
    }
}

/// One direction of a link: segments with their due times, in order.
#[derive(Debug, Default)]
struct Pipe {
    segments: VecDeque<(Instant, Arrival)>,
    clogged: bool,
}

/// Both pipes of a link (index: the end they reach) and what each end did.
#[derive(Debug, Default)]
struct Link {
    pipes: [Pipe; 2],
    /// This end closed or reset: it sends and receives nothing more.
    closed: [bool; 2],
    /// Cut by a dropping partition: reset at both ends at the heal.
    cut: bool,
    /// This link's one-way delay.
    latency: Duration,
}

/// The network: see the module docs.
#[derive(Debug)]
pub struct NetEm {
    cfg: NetConfig,
    rng: SmallRng,
    links: BTreeMap<LinkId, Link>,
    partition: Option<Partition>,
    out: VecDeque<NetOutput>,
}

impl NetEm {
    /// An empty network with these knobs and this seed.
    pub fn new(cfg: NetConfig, seed: u64) -> Self {
        NetEm {
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            links: BTreeMap::new(),
            partition: None,
            out: VecDeque::new(),
        }
    }

    /// The knobs in force.
    pub fn config(&self) -> NetConfig {
        self.cfg
    }

    /// The partition in force, if any.
    pub fn partition(&self) -> Option<Partition> {
        self.partition
    }

    /// lonc asks for a connection on a new link `link`: a SYN travels to lond.
    pub fn connect(&mut self, now: Instant, link: LinkId) {
        let base = self.cfg.latency.as_micros() as u64;
        let latency = Duration::from_micros(self.rng.random_range(base / 2..=base * 3 / 2));
        let l = Link {
            latency,
            ..Link::default()
        };
        self.links.insert(link, l);
        self.push(now, link, End::Lond, Arrival::Syn);
    }

    /// lond accepts `link`: lonc learns it after the latency.
    pub fn accept(&mut self, now: Instant, link: LinkId) {
        self.push(now, link, End::Lonc, Arrival::Accepted);
    }

    /// lond refuses `link` (nobody listens): lonc learns it after the latency.
    pub fn refuse(&mut self, now: Instant, link: LinkId) {
        self.push(now, link, End::Lonc, Arrival::Refused);
        if let Some(l) = self.links.get_mut(&link) {
            l.closed[End::Lond.index()] = true;
        }
    }

    /// `from` writes `data` on `link`; cut into chunks, it reaches the other end later.
    /// Ignored once `from` closed the link or the link is gone.
    pub fn send(&mut self, now: Instant, link: LinkId, from: End, data: &[u8]) {
        if data.is_empty() || !self.is_open(link, from) {
            return;
        }
        let mut rest = data;
        while !rest.is_empty() {
            let n = match self.cfg.max_chunk {
                0 => rest.len(),
                max => self.rng.random_range(1..=max).min(rest.len()),
            };
            let (chunk, tail) = rest.split_at(n);
            self.push(
                now,
                link,
                from.other(),
                Arrival::Data(Bytes::copy_from_slice(chunk)),
            );
            rest = tail;
        }
    }

    /// `from` closes `link` after what it sent (a FIN). Nothing more is delivered to it.
    pub fn close(&mut self, now: Instant, link: LinkId, from: End) {
        if self.is_open(link, from) {
            self.push(now, link, from.other(), Arrival::Fin);
            self.mark_closed(link, from);
        }
    }

    /// `from` resets `link`: everything in flight both ways is lost, the other end learns
    /// of the reset after the latency.
    pub fn reset(&mut self, now: Instant, link: LinkId, from: End) {
        if !self.is_open(link, from) {
            return;
        }
        if let Some(l) = self.links.get_mut(&link) {
            for pipe in &mut l.pipes {
                pipe.segments.clear();
            }
        }
        self.push(now, link, from.other(), Arrival::Rst);
        self.mark_closed(link, from);
    }

    /// Clogs (or unclogs) the pipe of `link` that reaches `to`: its segments wait.
    pub fn clog(&mut self, now: Instant, link: LinkId, to: End, clogged: bool) {
        if let Some(l) = self.links.get_mut(&link) {
            let pipe = &mut l.pipes[to.index()];
            pipe.clogged = clogged;
            if !clogged {
                retime(pipe, now + l.latency);
            }
        }
    }

    /// Splits the network (see [`Partition`]).
    pub fn split(&mut self, kind: Partition) {
        if kind == Partition::Drop {
            for l in self.links.values_mut() {
                let in_flight = l.pipes.iter().any(|p| !p.segments.is_empty());
                l.cut |= in_flight;
                for pipe in &mut l.pipes {
                    pipe.segments.clear();
                }
            }
        }
        self.partition = Some(kind);
    }

    /// Ends a partition and every clog: held bytes flow again, links that were cut are
    /// reset at both ends.
    pub fn heal(&mut self, now: Instant) {
        self.partition = None;
        let cut: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.cut)
            .map(|(id, _)| *id)
            .collect();
        for l in self.links.values_mut() {
            for pipe in &mut l.pipes {
                pipe.clogged = false;
                retime(pipe, now + l.latency);
            }
        }
        for link in cut {
            for end in [End::Lonc, End::Lond] {
                if self.is_open(link, end) {
                    self.out.push_back(NetOutput {
                        link,
                        to: end,
                        what: Arrival::Rst,
                    });
                }
            }
            self.links.remove(&link);
        }
    }

    /// Forgets every link an end of which is `end` in `links` without telling anyone: the
    /// process at that end is gone, and its kernel closes them (`reset`: with RST, else
    /// FIN).
    pub fn end_crashed(&mut self, now: Instant, links: &[LinkId], end: End, reset: bool) {
        for &link in links {
            if reset {
                self.reset(now, link, end);
            } else {
                self.close(now, link, end);
            }
        }
    }

    /// Releases every arrival due at `now`. Harmless when nothing is.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.partition.is_some() {
            return;
        }
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for link in ids {
            for to in [End::Lonc, End::Lond] {
                self.release(now, link, to);
            }
            let done = self.links.get(&link).is_some_and(|l| {
                l.closed.iter().all(|c| *c) && l.pipes.iter().all(|p| p.segments.is_empty())
            });
            if done {
                self.links.remove(&link);
            }
        }
    }

    /// The next arrival, in order. Drain it after every input and timeout.
    pub fn poll_output(&mut self) -> Option<NetOutput> {
        self.out.pop_front()
    }

    /// When [`NetEm::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.partition.is_some() {
            return None;
        }
        let pipes = self.links.values().flat_map(|l| l.pipes.iter());
        let open = pipes.filter(|p| !p.clogged);
        open.filter_map(|p| p.segments.front().map(|(t, _)| *t))
            .min()
    }

    /// True while `end` of `link` may still send and receive.
    pub fn is_open(&self, link: LinkId, end: End) -> bool {
        self.links
            .get(&link)
            .is_some_and(|l| !l.closed[end.index()])
    }

    fn mark_closed(&mut self, link: LinkId, end: End) {
        if let Some(l) = self.links.get_mut(&link) {
            l.closed[end.index()] = true;
        }
    }

    /// Queues `seg` toward `to`, due after the latency and a jitter, never before the
    /// segment ahead of it. A dropping partition loses it.
    fn push(&mut self, now: Instant, link: LinkId, to: End, seg: Arrival) {
        if self.partition == Some(Partition::Drop) {
            if let Some(l) = self.links.get_mut(&link) {
                l.cut = true;
            }
            return;
        }
        let jitter = match self.cfg.jitter.as_micros() {
            0 => Duration::ZERO,
            j => Duration::from_micros(self.rng.random_range(0..=j as u64)),
        };
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let due = now + l.latency + jitter;
        let pipe = &mut l.pipes[to.index()];
        let due = pipe.segments.back().map_or(due, |(t, _)| due.max(*t));
        pipe.segments.push_back((due, seg));
    }

    /// Hands out the segments of one pipe that are due, coalescing data chunks when the
    /// knob allows and the draw says so. Nothing reaches an end that closed.
    fn release(&mut self, now: Instant, link: LinkId, to: End) {
        let coalesce = self.cfg.coalesce && self.rng.random_bool(0.5);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let pipe = &mut l.pipes[to.index()];
        if pipe.clogged {
            return;
        }
        let mut due = Vec::new();
        while pipe.segments.front().is_some_and(|(t, _)| *t <= now) {
            due.push(pipe.segments.pop_front().expect("front checked").1);
        }
        if l.closed[to.index()] {
            return;
        }
        let mut pending: Option<Vec<u8>> = None;
        for seg in due {
            if let Arrival::Data(d) = &seg
                && coalesce
            {
                pending.get_or_insert_with(Vec::new).extend_from_slice(d);
                continue;
            }
            if let Some(bytes) = pending.take() {
                self.out.push_back(NetOutput {
                    link,
                    to,
                    what: Arrival::Data(bytes.into()),
                });
            }
            let ends_it = matches!(seg, Arrival::Fin | Arrival::Rst | Arrival::Refused);
            let is_rst = matches!(seg, Arrival::Rst);
            self.out.push_back(NetOutput {
                link,
                to,
                what: seg,
            });
            if ends_it {
                l.closed[to.index()] = true;
                if is_rst {
                    l.pipes[to.other().index()].segments.clear();
                }
                return;
            }
        }
        if let Some(bytes) = pending {
            self.out.push_back(NetOutput {
                link,
                to,
                what: Arrival::Data(bytes.into()),
            });
        }
    }
}

/// Moves every segment of `pipe` due before `at` to `at` (bytes held by a clog or a
/// partition flow again after the latency).
fn retime(pipe: &mut Pipe, at: Instant) {
    for (t, _) in &mut pipe.segments {
        *t = (*t).max(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_chunk: usize, coalesce: bool) -> NetConfig {
        NetConfig {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            max_chunk,
            coalesce,
        }
    }

    /// A network with these knobs and one link whose SYN is on its way.
    fn one_link(max_chunk: usize, coalesce: bool, seed: u64) -> (NetEm, Instant, LinkId) {
        let mut net = NetEm::new(cfg(max_chunk, coalesce), seed);
        let now = Instant::now();
        net.connect(now, LinkId(1));
        (net, now, LinkId(1))
    }

    /// Runs the network to quiescence and returns what reached each end, in order.
    fn drain(net: &mut NetEm, mut now: Instant) -> Vec<NetOutput> {
        let mut got = Vec::new();
        while let Some(t) = net.poll_timeout() {
            now = now.max(t);
            net.handle_timeout(now);
            while let Some(o) = net.poll_output() {
                got.push(o);
            }
        }
        while let Some(o) = net.poll_output() {
            got.push(o);
        }
        got
    }

    fn bytes_to(got: &[NetOutput], to: End) -> Vec<u8> {
        got.iter()
            .filter(|o| o.to == to)
            .filter_map(|o| match &o.what {
                Arrival::Data(d) => Some(d.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn bytes_arrive_in_order_whatever_the_chunking() {
        for seed in 0..20 {
            let (mut net, now, link) = one_link(3, seed % 2 == 0, seed);
            net.send(now, link, End::Lonc, b"hello world\n");
            net.send(now, link, End::Lonc, b"second line\n");
            net.close(now, link, End::Lonc);
            let got = drain(&mut net, now);
            assert_eq!(got[0].what, Arrival::Syn);
            assert_eq!(bytes_to(&got, End::Lond), b"hello world\nsecond line\n");
            assert_eq!(got.last().map(|o| &o.what), Some(&Arrival::Fin));
            let reads = got.iter().filter(|o| matches!(o.what, Arrival::Data(_)));
            if seed % 2 == 1 {
                assert!(reads.count() >= 8, "cut into chunks of at most 3 bytes");
            }
        }
    }

    #[test]
    fn a_reset_drops_what_is_in_flight() {
        let (mut net, now, link) = one_link(0, false, 1);
        net.send(now, link, End::Lonc, b"lost\n");
        net.send(now, link, End::Lond, b"lost too\n");
        net.reset(now, link, End::Lond);
        let got = drain(&mut net, now);
        assert_eq!(
            got,
            vec![NetOutput {
                link,
                to: End::Lonc,
                what: Arrival::Rst
            }]
        );
    }

    #[test]
    fn a_holding_partition_delivers_at_the_heal_and_a_dropping_one_resets() {
        let (mut net, now, link) = one_link(0, false, 1);
        net.split(Partition::Hold);
        net.send(now, link, End::Lonc, b"held\n");
        assert_eq!(net.poll_timeout(), None);
        let later = now + Duration::from_secs(10);
        net.heal(later);
        let got = drain(&mut net, later);
        assert_eq!(bytes_to(&got, End::Lond), b"held\n");

        let (mut net, now, link) = one_link(0, false, 1);
        drain(&mut net, now);
        net.send(now, link, End::Lonc, b"in flight\n");
        net.split(Partition::Drop);
        net.send(now, link, End::Lond, b"sent meanwhile\n");
        net.heal(later);
        let got = drain(&mut net, later);
        let rsts = got.iter().filter(|o| o.what == Arrival::Rst).count();
        assert_eq!(rsts, 2, "{got:?}");
        assert!(bytes_to(&got, End::Lond).is_empty());
        assert!(bytes_to(&got, End::Lonc).is_empty());
    }

    #[test]
    fn a_clog_holds_one_way_only() {
        let (mut net, now, link) = one_link(0, false, 1);
        net.clog(now, link, End::Lond, true);
        net.send(now, link, End::Lonc, b"clogged\n");
        net.send(now, link, End::Lond, b"flows\n");
        let got = drain(&mut net, now);
        assert_eq!(bytes_to(&got, End::Lonc), b"flows\n");
        assert!(bytes_to(&got, End::Lond).is_empty());
        let later = now + Duration::from_secs(1);
        net.clog(later, link, End::Lond, false);
        let got = drain(&mut net, later);
        assert_eq!(bytes_to(&got, End::Lond), b"clogged\n");
    }
}
