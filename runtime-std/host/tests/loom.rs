//! loom: every interleaving of the writer accounting both runtimes share
//! (`lonc_host::writers`). Runs only under `--cfg loom`:
//! `RUSTFLAGS="--cfg loom" cargo test -p lonc-host --test loom --release`.
#![cfg(loom)]

use std::time::Duration;

use lonc_host::writers::{Backlog, MAX_BACKLOG, Writers};
use loom::thread;

/// Two queues racing to take bytes while a writer writes: the backlog never goes past one
/// reply over the limit, and what was taken and written balances out.
#[test]
fn backlog_takes_and_writes_balance() {
    loom::model(|| {
        let backlog = Backlog::default();
        let half = MAX_BACKLOG / 2;
        assert!(backlog.take(half));
        let b1 = backlog.clone();
        let t1 = thread::spawn(move || b1.take(half));
        let b2 = backlog.clone();
        let t2 = thread::spawn(move || b2.take(half));
        let b3 = backlog.clone();
        let writer = thread::spawn(move || b3.written(half));
        let took1 = t1.join().unwrap();
        let took2 = t2.join().unwrap();
        writer.join().unwrap();
        // At most one of the two racing takes can have seen a full backlog; whatever was
        // taken is accounted for exactly.
        let taken = 1 + usize::from(took1) + usize::from(took2);
        assert!(taken >= 2);
        assert_eq!(backlog.waiting(), (taken - 1) * half);
        assert!(backlog.waiting() <= MAX_BACKLOG + half);
    });
}

/// A writer that finishes is always seen by the waiter: `wait_idle` returns true once
/// every guard is dropped, whatever the order.
#[test]
fn wait_idle_sees_every_writer_finish() {
    loom::model(|| {
        let writers = Writers::default();
        let g1 = writers.enter();
        let g2 = writers.enter();
        let t1 = thread::spawn(move || drop(g1));
        let t2 = thread::spawn(move || drop(g2));
        assert!(writers.wait_idle(Duration::from_secs(3600)));
        t1.join().unwrap();
        t2.join().unwrap();
    });
}
