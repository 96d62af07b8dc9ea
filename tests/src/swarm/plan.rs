//! Swarm testing: what one seed picks before the run starts. Each seed chooses the knobs
//! (several connections and pipelining, an idle timeout below the transaction timeout,
//! eager or on-demand connect, tiny request-queue bounds), the network's latency, jitter,
//! chunking and coalescing, and which faults its schedule may use at all (so that a rare
//! interaction of few faults is not drowned by all the others).

use std::time::Duration;

use lonc_core::config::{ConnectMode, LinkSettings};
use lonc_core::peer::QueueBounds;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::netem::NetConfig;

/// The faults a seed's schedule may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// The network splits, holding or dropping bytes in flight.
    pub partitions: bool,
    /// One direction of a link is clogged for a while.
    pub clogs: bool,
    /// A link is reset by lond's side, or a write of lonc's fails.
    pub resets: bool,
    /// lonc's writes fail at times.
    pub write_errors: bool,
    /// A lond crashes and restarts (new challenge, new buildkey).
    pub lond_crashes: bool,
    /// A lond refuses lonc for a while.
    pub lond_refuses: bool,
    /// A lond accepts connections and never reads them.
    pub lond_hangs: bool,
    /// The daemon crashes (all memory lost) and starts again.
    pub daemon_crashes: bool,
    /// The daemon is stopped (TERM) and started again.
    pub shutdowns: bool,
    /// The spool cannot be listed, read or deleted at times.
    pub disk_errors: bool,
    /// lonnet writes delayed files in two steps (no LF at first).
    pub partial_files: bool,
    /// The clock jumps forward.
    pub time_jumps: bool,
    /// Connections cannot be opened for a local shortage (EMFILE).
    pub out_of_fds: bool,
    /// USR1 at random times.
    pub revives: bool,
    /// The runtime calls `handle_timeout` early at random times (harmless by contract).
    pub early_wakes: bool,
    /// Once, a client sends more requests than a peer's queue holds (rare with the
    /// daemon's bounds, where it is slow; often with tiny ones).
    pub flood: bool,
}

/// Everything a seed chose: see the module docs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How many peers (each with its lond).
    pub peers: usize,
    /// The daemon's knobs, the same for every peer.
    pub settings: LinkSettings,
    /// Every peer's request-queue bounds: the daemon's, or tiny ones (a full queue
    /// within a handful of requests, by count or by bytes).
    pub queue: QueueBounds,
    /// The network.
    pub net: NetConfig,
    /// The faults on.
    pub faults: Faults,
    /// How long the faulty phase lasts, before the heal.
    pub fault_phase: Duration,
    /// Mean time between two actions of the schedule.
    pub pace: Duration,
}

fn ms(rng: &mut SmallRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.random_range(lo..=hi))
}

impl Plan {
    /// The plan of one seed, drawn from `rng`.
    pub fn draw(rng: &mut SmallRng) -> Plan {
        let transaction_timeout = ms(rng, 500, 6_000);
        let idle_timeout = if rng.random_bool(0.5) {
            ms(rng, 100, transaction_timeout.as_millis() as u64)
        } else {
            ms(rng, 1_000, 20_000)
        };
        let retry_min = ms(rng, 100, 3_000);
        let settings = LinkSettings {
            transaction_timeout,
            handshake_timeout: ms(rng, 300, 3_000),
            connect_timeout: ms(rng, 300, 3_000),
            pong_delay: if rng.random_bool(0.2) {
                ms(rng, 1, 500)
            } else {
                Duration::ZERO
            },
            retry_min,
            retry_max: retry_min + ms(rng, 1, 3_000),
            max_attempts: rng.random_range(1..=6),
            delayed_rescan: ms(rng, 1_000, 5_000),
            max_request: rng.random_range(1024..=2048),
            max_reply: rng.random_range(1024..=4096),
            connect_mode: if rng.random_bool(0.5) {
                ConnectMode::Eager
            } else {
                ConnectMode::OnDemand
            },
            idle_timeout,
            max_connections: rng.random_range(1..=3),
            pipeline: rng.random_range(1..=3),
        };
        let net = NetConfig {
            latency: ms(rng, 0, 50),
            jitter: if rng.random_bool(0.5) {
                ms(rng, 0, 50)
            } else {
                Duration::ZERO
            },
            max_chunk: if rng.random_bool(0.6) {
                rng.random_range(1..=40)
            } else {
                0
            },
            coalesce: rng.random_bool(0.5),
        };
        let mut on = || rng.random_bool(0.4);
        let faults = Faults {
            partitions: on(),
            clogs: on(),
            resets: on(),
            write_errors: on(),
            lond_crashes: on(),
            lond_refuses: on(),
            lond_hangs: on(),
            daemon_crashes: on(),
            shutdowns: on(),
            disk_errors: on(),
            partial_files: on(),
            time_jumps: on(),
            out_of_fds: on(),
            revives: on(),
            early_wakes: on(),
            flood: rng.random_bool(0.02),
        };
        let peers = rng.random_range(1..=4);
        let fault_phase = ms(rng, 5_000, 40_000);
        let pace = ms(rng, 20, 500);
        let queue = tiny_bounds(rng).unwrap_or_default();
        Plan {
            peers,
            settings,
            queue,
            net,
            faults,
            fault_phase,
            pace,
        }
        .with_flood_if_tiny(rng)
    }

    /// Tiny bounds make a flood cheap: it is then on for one seed in three.
    fn with_flood_if_tiny(mut self, rng: &mut SmallRng) -> Plan {
        if self.queue != QueueBounds::default() && rng.random_bool(0.3) {
            self.faults.flood = true;
        }
        self
    }
}

/// Tiny request-queue bounds, for about one seed in three: a count of 1 to 8, a byte bound
/// of a few hundred bytes to a few KiB, or both. A byte bound below
/// `loncMaxRequest` is legal: the peer raises it to that (one request of the largest legal
/// size always fits), and the world checks the raised bound.
fn tiny_bounds(rng: &mut SmallRng) -> Option<QueueBounds> {
    if !rng.random_bool(0.35) {
        return None;
    }
    let default = QueueBounds::default();
    let (count, bytes) = match rng.random_range(0..3u32) {
        0 => (rng.random_range(1..=8), default.bytes),
        1 => (default.count, rng.random_range(200..=4_096)),
        _ => (rng.random_range(1..=8), rng.random_range(200..=4_096)),
    };
    Some(QueueBounds { count, bytes })
}
