//! The seed sweep: each seed is one world of many peers on a hostile network
//! (`lonc_tests::swarm`), its knobs and faults chosen by the seed, checked after every step
//! against the reference model.
//!
//! - `SIM_SEEDS=N` runs seeds `0..N` (default 32, small enough for the debug
//!   `cargo test --workspace`); `SIM_SEED_START=k` starts there instead of 0.
//! - `SIM_SEED=k` replays seed `k` alone and prints its whole trace.
//!
//! A failure panics with the seed, the invariant broken, the tail of the trace and the
//! command that replays it.

use lonc_tests::swarm::Swarm;

/// Lines of the trace shown with a failure.
const TAIL: usize = 60;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// Runs one seed; the trace, or a panic that says how to replay it (with the whole
/// trace printed first when `full`).
fn run_seed(seed: u64, full: bool) -> Vec<String> {
    let mut world = Swarm::new(seed);
    let result = world.run();
    if full {
        println!("{}", world.trace.join("\n"));
    }
    if let Err(failure) = result {
        let tail = world.trace.len().saturating_sub(TAIL);
        panic!(
            "seed {seed} failed: {}\n--- last {} trace lines ---\n{}\n--- replay: SIM_SEED={seed} cargo test --release -p lonc-tests --test sim_sweep",
            failure.what,
            world.trace.len() - tail,
            world.trace[tail..].join("\n"),
        );
    }
    world.trace
}

#[test]
fn seeds_hold_every_invariant() {
    if let Some(seed) = env_u64("SIM_SEED") {
        run_seed(seed, true);
        return;
    }
    let first = env_u64("SIM_SEED_START").unwrap_or(0);
    let n = env_u64("SIM_SEEDS").unwrap_or(32);
    for seed in first..first + n {
        run_seed(seed, false);
    }
}

#[test]
fn a_seed_gives_the_same_trace_twice() {
    for seed in [1, 7, 42] {
        let a = run_seed(seed, false);
        let b = run_seed(seed, false);
        assert!(a.len() > 50, "seed {seed}: a trace of {} lines", a.len());
        let has = |what: &str| a.iter().any(|l| l.contains(what));
        assert!(
            has(" got ") && has("perm log:"),
            "seed {seed}: the trace holds what lond received and the perm log"
        );
        assert!(a == b, "seed {seed}: two runs differ");
    }
}
