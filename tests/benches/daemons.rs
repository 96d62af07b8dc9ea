//! Side-by-side benchmark of the two daemons, `lonc` (smol, one task per peer) and
//! `lonc-std` (one thread per peer), on throwaway sites with in-process lond-sim peers on
//! loopback (the fixtures of `lonc_tests::e2e`).
//!
//! ```sh
//! cargo bench -p lonc-tests --bench daemons                        # ~2 min on 2 cores
//! LONC_BENCH_QUICK=1 cargo bench -p lonc-tests --bench daemons     # ~15 s smoke run
//! LONC_BENCH_BEFORE=/other/checkout/target/release cargo bench -p lonc-tests --bench daemons
//! ```
//!
//! With `LONC_BENCH_BEFORE` naming the `target/release` of another checkout (say the
//! commit before a refactor, built with `cargo build --release -p lonc-smol -p lonc-std`),
//! its two daemons run in the same rounds too, and the table adds the after/before ratios.
//!
//! The daemons are built in the release profile (`e2e::binary` picks the profile from this
//! executable's path, `target/release/deps/daemons-*`). Rounds alternate the daemons
//! (smol, std, smol, std, ...) so machine noise hits both alike; each value in the table
//! is the median over rounds. Per round and daemon:
//!
//! 1. **plain throughput**: 10 peers, 32 client threads, each sending its requests
//!    `echo:<100-byte payload>` round robin over the peers, one new Unix socket
//!    connection per request as lonnet does ([`e2e::send`]); requests per second.
//! 2. **latency**: one client, 1000 sequential `ping` requests (new connection each);
//!    median and p99 in microseconds.
//! 3. **encrypted throughput**: as 1 with `encrypt:eget:<payload>`: the daemon
//!    IDEA-encrypts the request, lond-sim decrypts it and answers with an encrypted
//!    `enc:` reply that the daemon decrypts, so IDEA runs both ways. (`encrypt:echo:`
//!    would be encrypted on the way out only: lond-sim answers `echo:` in plain.)
//!    For comparison, `encrypt:echo:` is measured as well.
//! 4. **memory and scale**: a fresh site of 200 peers; once every lond-sim listener has
//!    accepted its connection and every link logged its handshake as done, the daemon's
//!    `VmRSS` and `Threads` from `/proc/<pid>/status`.
//!
//! Every reply is checked; a wrong or missing one fails the run (exit status 1). Every
//! phase has a deadline, every request its 20 s timeout, and the fixtures' `Drop` stops
//! the daemons and lond-sim and removes the temp dirs, also on failure.
//!
//! Without `--bench` (as `cargo test --benches` runs it) it only says so and exits.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use lonc_tests::e2e::{self, Daemon, Runtime, SMOL, STD, Site, eventually};
use lond_sim::LondSim;

/// The daemons to measure, in the order each round runs them: `lonc` (smol) and
/// `lonc-std`, then the same two from `LONC_BENCH_BEFORE` if it is set.
fn daemons() -> Vec<(Runtime, String)> {
    let mut list = vec![
        (SMOL, "lonc (smol)".to_string()),
        (STD, "lonc-std".to_string()),
    ];
    if let Ok(dir) = std::env::var("LONC_BENCH_BEFORE")
        && !dir.is_empty()
    {
        list.push((SMOL.prebuilt_in(&dir), "smol before".to_string()));
        list.push((STD.prebuilt_in(&dir), "std before".to_string()));
    }
    list
}

/// Peers of the throughput and latency site.
const PEERS: usize = 10;
/// Client threads of the throughput phases.
const CLIENTS: usize = 32;
/// Bytes of the payload of a throughput request.
const PAYLOAD: usize = 100;
/// Sequential `ping` requests of the latency phase.
const PINGS: usize = 1000;
/// Peers of the memory and scale site.
const SCALE_PEERS: usize = 200;
/// The longest any one measured phase may take before the run is declared failed.
const PHASE_LIMIT: Duration = Duration::from_secs(90);
/// How long to wait for links to come up (connections accepted, handshakes done).
const LINK_LIMIT: Duration = Duration::from_secs(30);

/// How much work one run does.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Rounds; each runs every daemon once.
    rounds: usize,
    /// Requests per client thread in each throughput phase.
    reqs: usize,
    /// Untimed requests per client thread before the first throughput phase.
    warmup_reqs: usize,
}

impl Plan {
    /// The full run (about two minutes on two cores).
    const FULL: Plan = Plan {
        rounds: 5,
        reqs: 800,
        warmup_reqs: 20,
    };
    /// The smoke run under `LONC_BENCH_QUICK=1` (about 15 s).
    const QUICK: Plan = Plan {
        rounds: 1,
        reqs: 400,
        warmup_reqs: 20,
    };
}

/// What one round measured for one daemon.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Plain `echo:` throughput, requests per second.
    plain_rps: f64,
    /// Median `ping` latency, microseconds.
    ping_p50_us: f64,
    /// 99th percentile `ping` latency, microseconds.
    ping_p99_us: f64,
    /// `encrypt:eget:` throughput, requests per second.
    eget_rps: f64,
    /// `encrypt:echo:` throughput, requests per second.
    enc_echo_rps: f64,
    /// Resident memory with 200 peers linked, KiB.
    scale_rss_kib: f64,
    /// Threads with 200 peers linked.
    scale_threads: f64,
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!("daemons: a benchmark; run it with `cargo bench -p lonc-tests --bench daemons`");
        return ExitCode::SUCCESS;
    }
    let quick = std::env::var("LONC_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    match run(plan, quick) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("daemons bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds both daemons, runs every round and prints the table.
fn run(plan: Plan, quick: bool) -> Result<(), String> {
    let started = Instant::now();
    let daemons = daemons();
    let bins: Vec<PathBuf> = daemons.iter().map(|(rt, _)| e2e::binary(*rt)).collect();
    if let Some(missing) = bins.iter().find(|b| !b.exists()) {
        return Err(format!("no daemon binary at {}", missing.display()));
    }
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "daemons bench{}: {} round(s), {cpus} CPU(s), {PEERS} peers, {CLIENTS} clients x {} \
         requests per throughput phase, payload {PAYLOAD} B, {PINGS} pings, \
         {SCALE_PEERS}-peer scale",
        if quick { " (quick)" } else { "" },
        plan.rounds,
        plan.reqs,
    );
    for ((_, name), bin) in daemons.iter().zip(&bins) {
        println!("  {name:<12} {}", bin.display());
    }
    println!(
        "  {:<6} {:<12} {:>10} {:>9} {:>9} {:>10} {:>10} {:>9} {:>8}",
        "round",
        "daemon",
        "plain/s",
        "p50 us",
        "p99 us",
        "eget/s",
        "encecho/s",
        "RSS KiB",
        "threads"
    );

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); daemons.len()];
    for round in 1..=plan.rounds {
        for (i, (rt, name)) in daemons.iter().enumerate() {
            let s = measure(*rt, plan).map_err(|e| format!("round {round}, {name}: {e}"))?;
            println!(
                "  {round:<6} {name:<12} {:>10.0} {:>9.0} {:>9.0} {:>10.0} {:>10.0} {:>9.0} {:>8.0}",
                s.plain_rps,
                s.ping_p50_us,
                s.ping_p99_us,
                s.eget_rps,
                s.enc_echo_rps,
                s.scale_rss_kib,
                s.scale_threads
            );
            samples[i].push(s);
        }
    }

    type Metric = (&'static str, fn(&Sample) -> f64, usize);
    let metrics: [Metric; 7] = [
        ("echo req/s, 10 peers, 32 clients", |s| s.plain_rps, 0),
        ("ping latency p50 us", |s| s.ping_p50_us, 0),
        ("ping latency p99 us", |s| s.ping_p99_us, 0),
        ("encrypt:eget req/s (IDEA both ways)", |s| s.eget_rps, 0),
        ("encrypt:echo req/s (IDEA out only)", |s| s.enc_echo_rps, 0),
        ("VmRSS MiB, 200 peers", |s| s.scale_rss_kib / 1024.0, 1),
        ("threads, 200 peers", |s| s.scale_threads, 0),
    ];
    println!();
    let mut header = format!("| {:<36} |", "metric (median of rounds)");
    let mut rule = format!("|{:-<38}|", "");
    for (_, name) in &daemons {
        header.push_str(&format!(" {name:>12} |"));
        rule.push_str(&format!("{:->14}|", ""));
    }
    // Ratios: smol/std, then each daemon after/before when a before build ran.
    let mut ratios: Vec<(String, usize, usize)> = vec![("ratio smol/std".into(), 0, 1)];
    if daemons.len() == 4 {
        ratios.push(("smol after/before".into(), 0, 2));
        ratios.push(("std after/before".into(), 1, 3));
    }
    for (label, _, _) in &ratios {
        header.push_str(&format!(" {label:>17} |"));
        rule.push_str(&format!("{:->19}|", ""));
    }
    println!("{header}");
    println!("{rule}");
    for (label, get, decimals) in metrics {
        let medians: Vec<f64> = samples
            .iter()
            .map(|s| median(s.iter().map(get).collect()))
            .collect();
        let mut row = format!("| {label:<36} |");
        for m in &medians {
            row.push_str(&format!(" {m:>12.decimals$} |"));
        }
        for (_, a, b) in &ratios {
            let ratio = if medians[*b] == 0.0 {
                f64::NAN
            } else {
                medians[*a] / medians[*b]
            };
            row.push_str(&format!(" {ratio:>17.2} |"));
        }
        println!("{row}");
    }
    println!(
        "\nreq/s: higher is better; latency, RSS, threads: lower is better. {} round(s), \
         {:.0} s in all.",
        plan.rounds,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One round for one daemon: the 10-peer phases on one daemon, then the 200-peer site on
/// another.
fn measure(rt: Runtime, plan: Plan) -> Result<Sample, String> {
    let mut s = Sample::default();
    {
        let site = Site::new(PEERS, &[]);
        let lond = site.lond();
        let daemon = Daemon::start(rt, &site);
        wait_linked(&site, &lond, &daemon)?;
        let sockets: Vec<PathBuf> = site.ids().iter().map(|id| site.socket(id)).collect();

        throughput(&sockets, plan.warmup_reqs, "echo:")?;
        s.plain_rps = throughput(&sockets, plan.reqs, "echo:")?;
        (s.ping_p50_us, s.ping_p99_us) = latency(&site)?;
        s.eget_rps = throughput(&sockets, plan.reqs, "encrypt:eget:")?;
        s.enc_echo_rps = throughput(&sockets, plan.reqs, "encrypt:echo:")?;
        check_alive(&daemon)?;
    }
    {
        let site = Site::new(SCALE_PEERS, &[]);
        let lond = site.lond();
        let daemon = Daemon::start(rt, &site);
        wait_linked(&site, &lond, &daemon)?;
        // Let the last handshakes' buffers settle.
        thread::sleep(Duration::from_millis(300));
        let status = fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
            .map_err(|e| format!("cannot read the daemon's /proc status: {e}"))?;
        s.scale_rss_kib = status_field(&status, "VmRSS:")?;
        s.scale_threads = status_field(&status, "Threads:")?;
        check_alive(&daemon)?;
    }
    Ok(s)
}

/// Waits until every lond-sim listener of `site` has accepted a connection and the
/// daemon has logged every link's handshake as done.
fn wait_linked(site: &Site, lond: &LondSim, daemon: &Daemon) -> Result<(), String> {
    let ids = site.ids();
    if !eventually(LINK_LIMIT, || {
        ids.iter().all(|id| lond.connections(id) >= 1)
    }) {
        let missing = ids.iter().filter(|id| lond.connections(id) == 0).count();
        return Err(format!(
            "{missing} of {} peers never connected; stderr: {}",
            ids.len(),
            daemon.stderr()
        ));
    }
    let ready = || site.log("lonc.log").matches("connection 0 ready").count();
    if !eventually(LINK_LIMIT, || ready() >= ids.len()) {
        return Err(format!(
            "only {} of {} handshakes completed",
            ready(),
            ids.len()
        ));
    }
    Ok(())
}

/// Fails if the daemon has exited.
fn check_alive(daemon: &Daemon) -> Result<(), String> {
    if fs::metadata(format!("/proc/{}", daemon.pid())).is_err() {
        return Err(format!("the daemon died; stderr: {}", daemon.stderr()));
    }
    Ok(())
}

/// A number field of `/proc/<pid>/status` (`VmRSS:` is in KiB).
fn status_field(status: &str, field: &str) -> Result<f64, String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc status"))
}

/// The payload of client `t`: its number, then filler up to [`PAYLOAD`] bytes (no `:`,
/// no LF).
fn payload(t: usize) -> Vec<u8> {
    let mut p = format!("client{t:03}-").into_bytes();
    p.extend((0..PAYLOAD - p.len()).map(|i| b'a' + (i % 26) as u8));
    p
}

/// [`CLIENTS`] threads, each sending `reqs` requests `<prefix><payload>` round robin over
/// `sockets` (client `t` starts at peer `t`), a new connection each; every reply must be
/// the payload. Returns requests per second, timed from the moment all clients are ready
/// until the last one is done.
fn throughput(sockets: &[PathBuf], reqs: usize, prefix: &str) -> Result<f64, String> {
    let barrier = Barrier::new(CLIENTS + 1);
    let deadline = Instant::now() + PHASE_LIMIT;
    let (elapsed, results) = thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<(), String> {
                    let payload = payload(t);
                    let mut request = prefix.as_bytes().to_vec();
                    request.extend_from_slice(&payload);
                    barrier.wait();
                    for i in 0..reqs {
                        let socket = &sockets[(t + i) % sockets.len()];
                        match e2e::send(socket, &request) {
                            Ok(reply) if reply == payload => {}
                            Ok(reply) => {
                                return Err(format!(
                                    "{prefix} request {i} of client {t} got {:?}",
                                    String::from_utf8_lossy(&reply)
                                ));
                            }
                            Err(e) => return Err(format!("{prefix} client {t}: {e}")),
                        }
                        if Instant::now() > deadline {
                            return Err(format!("{prefix} phase ran over {PHASE_LIMIT:?}"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<Result<(), String>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a client panicked".into())))
            .collect();
        (start.elapsed(), results)
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok((CLIENTS * reqs) as f64 / elapsed.as_secs_f64())
}

/// [`PINGS`] sequential `ping` requests to the first peer, a new connection each; returns
/// the median and the 99th percentile latency in microseconds.
fn latency(site: &Site) -> Result<(f64, f64), String> {
    let id = &site.ids()[0];
    let socket = site.socket(id);
    let deadline = Instant::now() + PHASE_LIMIT;
    let mut us = Vec::with_capacity(PINGS);
    for i in 0..PINGS {
        let t = Instant::now();
        let reply = e2e::send(&socket, b"ping").map_err(|e| format!("ping {i}: {e}"))?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        if reply != id.as_bytes() {
            return Err(format!(
                "ping {i} got {:?}",
                String::from_utf8_lossy(&reply)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("the latency phase ran over {PHASE_LIMIT:?}"));
        }
    }
    us.sort_by(f64::total_cmp);
    Ok((percentile(&us, 50.0), percentile(&us, 99.0)))
}

/// The nearest-rank percentile `p` of sorted `v`.
fn percentile(v: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The median (mean of the middle two for an even count); NaN for none.
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
