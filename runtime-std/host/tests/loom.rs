//! loom: every interleaving of the cross-thread handoffs both runtimes share, each
//! through the crate's `sync` facade: the writer accounting (`lonc_host::writers`), a
//! peer's inbox when its data queue is full and when the peer stops
//! (`lonc_host::inbox`), signals on their way to the supervisor
//! (`lonc_host::signal_flags`), a peer's state for the status file
//! (`lonc_host::snapshot`) and file work handed to a worker (`lonc_host::chore_queue`). smol cannot run under loom; its tasks use these same types
//! (the `async` calls are modelled with `loom::future::block_on`). Runs only under
//! `--cfg loom`:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p lonc-host --test loom --release`.
#![cfg(loom)]

use std::time::Duration;

use lonc_core::io::{ClientId, ConnId, Input as PeerInput};
use lonc_host::chore_queue::ChoreQueue;
use lonc_host::inbox::Inbox;
use lonc_host::peer_io::Input;
use lonc_host::signal_flags::SignalFlags;
use lonc_host::signals::SignalAction;
use lonc_host::snapshot::Snapshot;
use lonc_host::writers::{Backlog, Writers};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// A peer's inbox with no sockets in it.
type TestInbox = Inbox<(), ()>;

/// Client bytes: data, bounded.
fn data(n: u8) -> Input<(), ()> {
    Input::Peer(PeerInput::ClientData(ClientId(1), vec![n]))
}

fn peer(input: Input<(), ()>) -> PeerInput {
    match input {
        Input::Peer(p) => p,
        _ => panic!("not a peer input"),
    }
}

/// The byte of a data input, if it is one.
fn byte(p: &PeerInput) -> Option<u8> {
    match p {
        PeerInput::ClientData(_, d) => Some(d[0]),
        _ => None,
    }
}

/// A one-slot inbox whose slot is taken (by byte 0): the peer's data queue is full.
fn full_inbox() -> TestInbox {
    let inbox = TestInbox::new(1);
    inbox.post(data(0)).ok().unwrap();
    inbox
}

/// Runs `f` on a new loom thread with a handle to `inbox`.
fn on_thread<T: Send + 'static>(
    inbox: &TestInbox,
    f: impl FnOnce(TestInbox) -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let inbox = inbox.clone();
    thread::spawn(move || f(inbox))
}

/// The next `n` inputs the peer takes, waiting for each.
fn take(inbox: &TestInbox, n: usize) -> Vec<PeerInput> {
    (0..n)
        .map(|_| peer(inbox.recv_blocking(None).unwrap()))
        .collect()
}

/// loom with at most 3 preemptions per execution (enough for every break tried on these
/// models, and CI stays within a minute), unless `LOOM_MAX_PREEMPTIONS` says otherwise.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(3);
    builder.check(f);
}

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

/// The peer's data queue is full (one slot, taken) and a reader waits for room with
/// more bytes. Meanwhile the supervisor sends USR1's revive and a writer that failed
/// sends its client's gone notice: both are queued without waiting while the queue is
/// still full (the thread sending them ends before the peer takes anything; if a notice
/// waited for room, loom would report the deadlock), and the peer gets each exactly
/// once, the bytes in order, and nothing else.
#[test]
fn notices_sent_while_the_data_queue_is_full_arrive_exactly_once() {
    model(|| {
        let inbox = full_inbox();
        let reader = on_thread(&inbox, |inbox| inbox.send_blocking(data(1)).is_ok());
        let notifier = on_thread(&inbox, |inbox| {
            inbox.post(Input::Peer(PeerInput::Revive)).ok().unwrap();
            let gone = Input::Peer(PeerInput::ClientGone(ClientId(1)));
            inbox.post(gone).ok().unwrap();
        });
        notifier.join().unwrap();
        let got = take(&inbox, 4);
        assert!(reader.join().unwrap());
        assert!(inbox.try_recv().is_none(), "more than was sent");
        let count = |want: &PeerInput| got.iter().filter(|p| *p == want).count();
        assert_eq!(count(&PeerInput::Revive), 1, "{got:?}");
        assert_eq!(count(&PeerInput::ClientGone(ClientId(1))), 1, "{got:?}");
        let bytes: Vec<u8> = got.iter().filter_map(byte).collect();
        assert_eq!(bytes, [0, 1], "{got:?}");
        // The revive was queued before the gone notice, by the same thread.
        let at = |want: &PeerInput| got.iter().position(|p| p == want).unwrap();
        assert!(at(&PeerInput::Revive) < at(&PeerInput::ClientGone(ClientId(1))));
    });
}

/// Back-pressure without a lost wake-up: two readers (one on a thread, one a smol-style
/// task run by `block_on`) wait for room in a one-slot queue while the peer takes
/// inputs; each is woken in time and every byte arrives once.
#[test]
fn readers_waiting_for_room_are_all_woken() {
    model(|| {
        let inbox = full_inbox();
        let blocking = on_thread(&inbox, |inbox| inbox.send_blocking(data(1)).is_ok());
        let task = on_thread(&inbox, |inbox| {
            loom::future::block_on(inbox.send(data(2))).is_ok()
        });
        let mut bytes: Vec<u8> = take(&inbox, 3).iter().map(|p| byte(p).unwrap()).collect();
        assert!(blocking.join().unwrap());
        assert!(task.join().unwrap());
        assert_eq!(bytes[0], 0);
        bytes.sort();
        assert_eq!(bytes, [0, 1, 2]);
    });
}

/// A stop while inputs are in flight. The order promised: the peer sees the stop after
/// every input queued before it (byte 0, queued before the supervisor runs) and a
/// reader's bytes in order. The peer stops after one more input at most, then closes
/// its inbox: every byte is then either taken by the peer, or handed back by `close`
/// (and dropped there), or refused to its reader, never two of these and never none;
/// a reader still waiting for room is woken and refused (loom reports it if it sleeps
/// on), and nothing is queued after the close.
#[test]
fn a_stop_comes_after_what_was_queued_before_it_and_nothing_is_lost_after() {
    model(|| {
        let inbox = full_inbox();
        let reader = on_thread(&inbox, |inbox| {
            let mut refused = Vec::new();
            for n in [1, 2] {
                if let Err(back) = inbox.send_blocking(data(n)) {
                    refused.push(byte(&peer(back)).unwrap());
                }
            }
            refused
        });
        let supervisor = on_thread(&inbox, |inbox| inbox.post(Input::stop()).ok().unwrap());
        let mut taken = Vec::new();
        loop {
            let p = peer(inbox.recv_blocking(None).unwrap());
            if matches!(p, PeerInput::Shutdown(_)) {
                break;
            }
            taken.push(byte(&p).unwrap());
        }
        assert_eq!(taken.first(), Some(&0), "the stop overtook byte 0");
        // The peer takes one more input at most before it has stopped.
        if let Some(p) = inbox.try_recv() {
            taken.push(byte(&peer(p)).unwrap());
        }
        let handed_back: Vec<u8> = inbox
            .close()
            .into_iter()
            .map(|i| byte(&peer(i)).unwrap())
            .collect();
        supervisor.join().unwrap();
        let refused = reader.join().unwrap();
        assert!(inbox.post(data(9)).is_err(), "queued after the close");
        assert!(inbox.try_recv().is_none());
        let mut all: Vec<u8> = taken
            .iter()
            .chain(&handed_back)
            .chain(&refused)
            .copied()
            .collect();
        all.sort();
        assert_eq!(
            all,
            [0, 1, 2],
            "taken {taken:?} back {handed_back:?} refused {refused:?}"
        );
        let mut in_order = taken.clone();
        in_order.sort();
        assert_eq!(taken, in_order, "a reader's bytes out of order");
    });
}

/// Two signals arriving together from two catching threads (USR1 and TERM), and a HUP
/// just before: the supervisor, waiting, is woken and sees each action exactly once,
/// however the raises and its takes interleave (a lost raise leaves it waiting: loom
/// reports the deadlock).
#[test]
fn signals_arriving_together_are_all_seen_once() {
    model(|| {
        let flags = SignalFlags::default();
        flags.raise(SignalAction::Reload);
        let catchers: Vec<_> = [SignalAction::Status, SignalAction::Stop]
            .into_iter()
            .map(|a| {
                let flags = flags.clone();
                thread::spawn(move || flags.raise(a))
            })
            .collect();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let taken = flags.wait();
            assert!(!taken.is_empty());
            seen.extend(taken);
        }
        for c in catchers {
            c.join().unwrap();
        }
        assert!(flags.take().is_empty(), "seen twice: {seen:?}");
        for a in [
            SignalAction::Reload,
            SignalAction::Status,
            SignalAction::Stop,
        ] {
            assert_eq!(seen.iter().filter(|s| **s == a).count(), 1, "{seen:?}");
        }
    });
}

/// The status snapshot: while the peer publishes two states in turn, a reader sees only
/// states as published (both halves from the same one, never one left over from an
/// earlier state or a state in the making), and never goes back in time.
#[test]
fn a_status_reader_never_sees_a_torn_snapshot() {
    // Unbounded: a torn read may take four preemptions to show.
    loom::model(|| {
        let snapshot = Snapshot::new((0u8, 0u8));
        let peer = {
            let snapshot = snapshot.clone();
            thread::spawn(move || {
                snapshot.publish((1, 1));
                snapshot.publish((2, 2));
            })
        };
        let first = snapshot.read();
        let second = snapshot.read();
        peer.join().unwrap();
        for (a, b) in [first, second] {
            assert_eq!(a, b, "torn: {first:?} {second:?}");
        }
        assert!(first.0 <= second.0, "back in time: {first:?} {second:?}");
        assert_eq!(snapshot.read(), (2, 2));
    });
}

/// A connection's closed notice comes after the bytes its reader queued before it,
/// even when those bytes had to wait for room: the reply lond sent before it closed is
/// never taken after the close.
#[test]
fn a_closed_notice_comes_after_the_bytes_read_before_it() {
    model(|| {
        let inbox = full_inbox();
        let reader = on_thread(&inbox, |inbox| {
            let reply = Input::Peer(PeerInput::ConnData(ConnId(1), b"ok\n".to_vec()));
            inbox.send_blocking(reply).ok().unwrap();
            let closed = Input::Peer(PeerInput::ConnClosed(ConnId(1)));
            inbox.post(closed).ok().unwrap();
        });
        let got = take(&inbox, 3);
        reader.join().unwrap();
        assert!(matches!(got[1], PeerInput::ConnData(..)), "{got:?}");
        assert_eq!(got[2], PeerInput::ConnClosed(ConnId(1)));
    });
}

/// File work handed to a worker started on demand (the smol daemon): the peer queues
/// three chores while workers come and go; every chore is done exactly once and in
/// order, and one queued while the worker finds the queue empty starts a new worker
/// rather than being left behind.
#[test]
fn every_chore_is_done_once_in_order() {
    model(|| {
        let queue = ChoreQueue::<u8>::default();
        let done = Arc::new(Mutex::new(Vec::new()));
        let mut workers = Vec::new();
        for chore in 0..3 {
            if queue.push(chore) {
                let (queue, done) = (queue.clone(), done.clone());
                workers.push(thread::spawn(move || {
                    while let Some(c) = queue.next() {
                        done.lock().unwrap().push(c);
                    }
                }));
            }
        }
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(*done.lock().unwrap(), [0, 1, 2]);
    });
}
