//! End-to-end hardening tests, the link to lond (issue 7 item 2): a lond that streams
//! bytes without LF before its challenge costs one failed attempt each time, with backoff
//! and finally a dead peer, never a reconnect loop.
//! Each test is a `pub fn` taking the [`Runtime`], listed in the
//! macro below so that both runtimes' test files run it.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::e2e::{Daemon, Runtime, Site, send_text};
use crate::suite::wait_for;

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_link_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_link;
            lond_babbling_before_the_challenge_backs_off,
        }
    };
}

/// A hostile lond on loopback: every connection it accepts gets an endless stream of
/// `x` with no LF. Stopped (and its threads joined) on drop.
struct Babbler {
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Babbler {
    fn start(addr: SocketAddr) -> Babbler {
        let listener = TcpListener::bind(addr).expect("bind the babbler");
        listener.set_nonblocking(true).expect("nonblocking");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            thread::spawn(move || {
                let mut talkers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            let stop = stop.clone();
                            talkers.push(thread::spawn(move || {
                                let _ = stream.set_nonblocking(false);
                                let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
                                let chunk = vec![b'x'; 64 * 1024];
                                while !stop.load(Ordering::SeqCst) {
                                    match stream.write(&chunk) {
                                        Ok(_) => {}
                                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                        Err(_) => return,
                                    }
                                }
                            }));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
                for t in talkers {
                    let _ = t.join();
                }
            })
        };
        Babbler {
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Babbler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Item 2: the waiting client gets `con_lost` at once, each babbling connection is one
/// failed attempt (backoff between them), and after `loncMaxAttempts` the peer is dead.
pub fn lond_babbling_before_the_challenge_backs_off(rt: Runtime) {
    let site = Site::new(1, &[("loncMaxAttempts", "3")]);
    let babbler = Babbler::start(site.addr("peer1"));
    let _d = Daemon::start(rt, &site);
    let start = Instant::now();
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "con_lost");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    wait_for(
        &site,
        Duration::from_secs(10),
        "the peer marked dead",
        || site.log("lonc.log").contains("peer is dead"),
    );
    // Dead: no more attempts.
    thread::sleep(Duration::from_secs(1));
    assert_eq!(babbler.accepted(), 3, "{}", site.log("lonc.log"));
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "con_lost");
    let log = site.log("lonc.log");
    assert!(log.contains("handshake failed"), "{log}");
}
