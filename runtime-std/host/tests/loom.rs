//! loom: every interleaving of the writer accounting both runtimes share
//! (`lonc_host::writers`). Runs only under `--cfg loom`:
//! `RUSTFLAGS="--cfg loom" cargo test -p lonc-host --test loom --release`.
#![cfg(loom)]

use std::time::Duration;

use lonc_host::writers::{Backlog, Writers};
use loom::thread;

/// Two queues racing to add bytes while a writer writes: each add sees exactly the bytes
/// waiting before it, as if the steps ran one after the other, and what was added and
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
        // Every outcome is that of one of the six orders of the three steps, one after
        // the other (add 5, add 7, write 10 from a backlog of 10).
        let sequential = [(10, 15), (17, 10), (10, 5), (7, 10), (0, 5), (7, 0)];
        assert!(sequential.contains(&(seen1, seen2)), "{seen1} {seen2}");
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
