//! The std driver's own tests: the acceptor wakes and holds no descriptor while it
//! waits; a client leaving while its peer's queue is full is reported; the bounded
//! joins of a stop give up in time.

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use lonc_host::inbox_check::{assert_accepted_then_gone, fill_but_one, overfull};
use lonc_host::logfile::LogFiles;
use lonc_host::peer_io::{INPUT_QUEUE, Writers};

use crate::handle::join_by;
use crate::streams::{Acceptor, Inbox, Input};

/// An acceptor on a fresh socket, as `PeerHandle::start` makes it.
fn acceptor(dir: &std::path::Path) -> (Acceptor, Inbox, PathBuf) {
    let path = dir.join("peer");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let tx = Inbox::new(INPUT_QUEUE);
    let rx = tx.clone();
    let acceptor = Acceptor {
        listener: Arc::new(listener),
        tx,
        stop: Arc::new(AtomicBool::new(false)),
        writers: Writers::default(),
        logs: LogFiles::stderr_only(),
    };
    (acceptor, rx, path)
}

/// Stops an acceptor as `begin_stop` does; true if its thread ended within 2 s.
fn stop_acceptor(listener: &UnixListener, stop: &AtomicBool, t: JoinHandle<()>) -> bool {
    stop.store(true, Ordering::SeqCst);
    nix::sys::socket::shutdown(listener.as_raw_fd(), nix::sys::socket::Shutdown::Both).unwrap();
    join_by(t, Instant::now() + Duration::from_secs(2))
}

#[test]
fn shutting_the_listener_down_wakes_its_acceptor_without_the_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, rx, path) = acceptor(dir.path());
    let (listener, stop) = (acceptor.listener.clone(), acceptor.stop.clone());
    let t = thread::spawn(move || acceptor.run());
    // It serves clients...
    let client = UnixStream::connect(&path).unwrap();
    let first = rx
        .recv_blocking(Some(Instant::now() + Duration::from_secs(2)))
        .unwrap();
    assert!(matches!(first, Input::ClientAccepted(..)));
    drop(client);
    // ...and once its file is gone, it still stops at once, waiting in poll().
    std::fs::remove_file(&path).unwrap();
    thread::sleep(Duration::from_millis(50));
    assert!(
        stop_acceptor(&listener, &stop, t),
        "the acceptor did not stop"
    );
}

/// A client that leaves while its peer's queue is full is reported at once: its
/// reader's gone notice neither waits for room nor is dropped, and it comes after the
/// client's acceptance, which took the last data slot.
#[test]
fn a_client_leaving_while_its_peer_queue_is_full_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, rx, path) = acceptor(dir.path());
    fill_but_one(&rx);
    let (listener, stop) = (acceptor.listener.clone(), acceptor.stop.clone());
    let t = thread::spawn(move || acceptor.run());
    drop(UnixStream::connect(&path).unwrap());
    let by = Instant::now() + Duration::from_secs(5);
    while !overfull(&rx) && Instant::now() < by {
        thread::sleep(Duration::from_millis(10));
    }
    assert_accepted_then_gone(&rx);
    assert!(stop_acceptor(&listener, &stop, t));
}

/// The lowest free descriptor number of this process.
fn lowest_free() -> i32 {
    std::fs::File::open("/dev/null").unwrap().as_raw_fd()
}

#[test]
fn an_acceptor_waiting_holds_no_descriptor() {
    // Other tests of this process open and close descriptors meanwhile: the check runs
    // alone, in a child process running only this test.
    const ALONE: &str = "LONC_TEST_ACCEPTOR_ALONE";
    if std::env::var_os(ALONE).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::an_acceptor_waiting_holds_no_descriptor",
                "--test-threads=1",
            ])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _rx, _path) = acceptor(dir.path());
    let (listener, stop) = (acceptor.listener.clone(), acceptor.stop.clone());
    let before = lowest_free();
    let t = thread::spawn(move || acceptor.run());
    thread::sleep(Duration::from_millis(100));
    // A blocked accept() would hold the lowest free number until a client came.
    assert_eq!(
        lowest_free(),
        before,
        "the waiting acceptor holds a descriptor"
    );
    assert!(stop_acceptor(&listener, &stop, t));
}

#[test]
fn join_by_gives_up_on_a_thread_that_does_not_end() {
    let (tx, rx) = mpsc::channel::<()>();
    let stuck = thread::spawn(move || {
        let _ = rx.recv();
    });
    let start = Instant::now();
    assert!(!join_by(stuck, start + Duration::from_millis(100)));
    assert!(start.elapsed() < Duration::from_secs(1));
    drop(tx);
    let quick = thread::spawn(|| {});
    assert!(join_by(quick, Instant::now() + Duration::from_secs(2)));
}

/// Every slot of a peer's queue is as large as its largest input: an input stays as
/// small as the core's own (a client's outbox travels boxed).
#[test]
fn a_peer_input_is_small() {
    let size = std::mem::size_of::<crate::streams::Input>();
    assert!(size <= 48, "{size} bytes");
}
