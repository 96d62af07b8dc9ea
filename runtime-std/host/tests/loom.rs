//! loom: every interleaving of the writer accounting both runtimes share
//! (`lonc_host::writers`). Runs only under `--cfg loom`:
//! `RUSTFLAGS="--cfg loom" cargo test -p lonc-host --test loom --release`.
#![cfg(loom)]

use std::time::Duration;

use lonc_host::writers::{Backlog, Writers};
use loom::thread;

/// Two queues racing to add bytes while a writer writes: each add sees exactly the bytes
/// waiting before it (one add after the other, never half of one), and what was added and
/// written balances out.
#[test]
fn backlog_adds_and_writes_balance() {
    loom::model(|| {
        let backlog = Backlog::default();
        assert_eq!(backlog.add(10), 0);
        let b1 = backlog.clone();
        let t1 = thread::spawn(move || b1.add(5));
        let b2 = backlog.clone();
        let t2 = thread::spawn(move || b2.add(7));
        let b3 = backlog.clone();
        let writer = thread::spawn(move || b3.written(10));
        let seen1 = t1.join().unwrap();
        let seen2 = t2.join().unwrap();
        writer.join().unwrap();
        // Whichever add came second saw the first one's bytes.
        assert!(seen2 == seen1 + 5 || seen1 == seen2 + 7, "{seen1} {seen2}");
        assert!(seen1 <= 17 && seen2 <= 15);
        assert_eq!(backlog.waiting(), 12);
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
