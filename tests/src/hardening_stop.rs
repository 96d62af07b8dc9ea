//! End-to-end hardening tests, stopping and local resource limits (issue 7 items 3, 8 and 10): stop never depends on the filesystem, EMFILE is the daemon's problem, abandoned requests are not sent.
//! Each test is a `pub fn` taking the [`Runtime`], listed in the
//! macro below so that both runtimes' test files run it.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::Signal;

use crate::e2e::{Client, Daemon, Runtime, Site, send_text};
use crate::suite::{wait_for, wait_for_reply};

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_stop_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_stop;
            term_after_socket_file_removed,
            hup_then_term_after_socket_file_removed,
            term_after_fd_exhaustion,
            fd_exhaustion_is_not_a_peer_failure,
            abandoned_requests_are_not_sent,
            half_closed_client_still_gets_its_reply,
        }
    };
}

/// The longest a stop may take: the grace period for requests in flight (5 s), a few
/// seconds for the peers' threads, and the writers' flush limit. No test here has a
/// request in flight at TERM, so a daemon that works stops well within it.
const STOP_BOUND: Duration = Duration::from_secs(15);

/// The daemon's CRITICAL line for running out of file descriptors.
const OUT_OF_FDS: &str = "out of file descriptors";

/// Sends TERM and checks that the daemon exits 0 within [`STOP_BOUND`], leaving no pid
/// file and no socket behind.
fn term_stops_cleanly(site: &Site, mut d: Daemon, what: &str) {
    let sent = Instant::now();
    d.signal(Signal::SIGTERM);
    let status = d.wait(STOP_BOUND);
    let Some(status) = status else {
        panic!(
            "{what}: the daemon did not exit within {STOP_BOUND:?} of TERM\nlonc.log:\n{}",
            site.log("lonc.log")
        );
    };
    assert!(
        status.success(),
        "{what}: {status:?} after {:?}; stderr: {}",
        sent.elapsed(),
        d.stderr()
    );
    assert!(!site.pid_file().exists(), "{what}: pid file left behind");
    for peer in site.ids() {
        assert!(
            !site.socket(&peer).exists(),
            "{what}: socket {peer} left behind"
        );
    }
}

/// Starts `rt` on `site` with its open-file limit, soft and hard, at `limit` (the daemon
/// raises its soft limit to the hard one at start; the hard one it cannot raise).
fn spawn_with_fd_limit(rt: Runtime, site: &Site, limit: u64) -> Daemon {
    Daemon::spawn_with(rt, site, |cmd: &mut Command| {
        // SAFETY: `setrlimit` is async-signal-safe and the closure allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                setrlimit(Resource::RLIMIT_NOFILE, limit, limit).map_err(std::io::Error::from)
            });
        }
    })
}

/// One request with a short timeout, as text (`<error: ...>` when there is no reply).
fn ask(socket: &Path, request: &str, timeout: Duration) -> String {
    match lonc_host::sendcmd::send_request(socket, request.as_bytes(), timeout) {
        Ok(r) => String::from_utf8_lossy(&r).into_owned(),
        Err(e) => format!("<error: {e}>"),
    }
}

/// A peer's socket file removed while the daemon runs: TERM still stops it at once
/// (waking its acceptor never goes through the socket's path), exit 0, pid file gone.
pub fn term_after_socket_file_removed(rt: Runtime) {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    fs::remove_file(site.socket("peer1")).expect("remove peer1's socket");
    term_stops_cleanly(&site, d, "peer1's socket file removed");
}

/// A peer whose socket file was removed is dropped from hosts.tab: the HUP that stops it
/// returns, a later HUP that adds a peer is carried out, and TERM stops the daemon.
pub fn hup_then_term_after_socket_file_removed(rt: Runtime) {
    let site = Site::new(3, &[]);
    site.write_hosts(&["peer1".into(), "peer2".into()]);
    let _lond = site.lond();
    let d = Daemon::spawn(rt, &site);
    d.wait_for_sockets(&site, &["peer1".into(), "peer2".into()]);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    fs::remove_file(site.socket("peer1")).expect("remove peer1's socket");
    site.write_hosts(&["peer2".into()]);
    d.signal(Signal::SIGHUP);
    wait_for(&site, Duration::from_secs(5), "the first reload", || {
        site.log("lonc.log").contains("reload: 0 new, 1 removed")
    });
    site.write_hosts(&["peer2".into(), "peer3".into()]);
    d.signal(Signal::SIGHUP);
    wait_for(
        &site,
        Duration::from_secs(10),
        "peer3's socket (the second reload)",
        || site.socket("peer3").exists(),
    );
    wait_for_reply(&site, "peer3", "ping", "peer3");
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    term_stops_cleanly(&site, d, "after two reloads");
}

/// The daemon runs out of file descriptors (a low hard limit, clients that stay
/// connected): accepting is logged as CRITICAL (once) and retried, not given up, and
/// TERM still stops the daemon at once.
pub fn term_after_fd_exhaustion(rt: Runtime) {
    const LIMIT: u64 = 40;
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let d = spawn_with_fd_limit(rt, &site, LIMIT);
    d.wait_for_sockets(&site, &site.ids());
    wait_for_reply(&site, "peer1", "ping", "peer1");
    let socket = site.socket("peer1");
    // Clients that stay connected, more than the daemon has descriptors for: the last
    // ones wait in the listen queue.
    let clients: Vec<Client> = (0..2 * LIMIT)
        .map(|i| Client::connect(&socket).unwrap_or_else(|e| panic!("client {i}: {e}")))
        .collect();
    wait_for(&site, Duration::from_secs(5), "the CRITICAL line", || {
        site.log("lonc.log").contains(OUT_OF_FDS)
    });
    // Accepting goes on being retried, and is not logged again.
    thread::sleep(Duration::from_millis(500));
    let log = site.log("lonc.log");
    assert_eq!(
        log.matches(OUT_OF_FDS).count(),
        1,
        "one CRITICAL line wanted ({} descriptors open of {LIMIT})\nlonc.log:\n{log}",
        d.proc_count("fd"),
    );
    term_stops_cleanly(&site, d, "out of file descriptors");
    drop(clients);
}

/// More peers than the open-file limit allows links for: the peers left without a link are
/// not blamed (no failed attempt, nobody dead), the shortage is one CRITICAL line with
/// the limit, and the peers whose links are up keep answering their clients (descriptors
/// are kept for them). Links open on demand, one peer after the other, so which peers get
/// one does not depend on how the startup's threads interleave.
pub fn fd_exhaustion_is_not_a_peer_failure(rt: Runtime) {
    const LIMIT: u64 = 48;
    const PEERS: usize = 20;
    let knobs = [
        ("loncConnectMode", "on-demand"),
        ("loncMaxAttempts", "2"),
        ("loncDelayedRescan", "60"),
    ];
    let site = Site::new(PEERS, &knobs);
    let _lond = site.lond();
    let d = spawn_with_fd_limit(rt, &site, LIMIT);
    d.wait_for_sockets(&site, &site.ids());
    let ask_all = || -> Vec<(String, String)> {
        site.ids()
            .into_iter()
            .map(|id| {
                let reply = ask(&site.socket(&id), "ping", Duration::from_secs(5));
                (id, reply)
            })
            .collect()
    };
    let first = ask_all();
    let up: Vec<String> = first
        .iter()
        .filter(|(id, reply)| id == reply)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        !up.is_empty() && up.len() < PEERS,
        "{} of {PEERS} peers up with {LIMIT} descriptors: {first:?}\nlonc.log:\n{}",
        up.len(),
        site.log("lonc.log")
    );
    // Long enough for the peers without a link to try again, and to have been found dead
    // twice over if their attempts counted (two attempts, 0.4 s backoff at most).
    thread::sleep(Duration::from_secs(2));
    for (id, reply) in ask_all() {
        if up.contains(&id) {
            assert_eq!(reply, id, "{id} was up and no longer answers");
        } else {
            // It may have got a link since, from a descriptor that was only in use for a
            // moment the first time.
            assert!(
                reply == "con_lost" || reply == id,
                "{id}: {reply:?}: a peer without a link answers con_lost at once\nlonc.log:\n{}",
                site.log("lonc.log")
            );
        }
    }
    let log = site.log("lonc.log");
    for blame in [
        "peer is dead",
        "failed attempts",
        "; attempt ",
        "retried in",
    ] {
        assert!(
            !log.contains(blame),
            "a local shortage blamed on a peer ({blame:?}):\n{log}"
        );
    }
    assert_eq!(
        log.matches(OUT_OF_FDS).count(),
        1,
        "one CRITICAL line for the shortage wanted:\n{log}"
    );
    let line = log.lines().find(|l| l.contains(OUT_OF_FDS)).unwrap_or("");
    assert!(
        line.contains("[CRITICAL]") && line.contains(&format!("limit {LIMIT}")),
        "the line says CRITICAL and the limit: {line}"
    );
    term_stops_cleanly(&site, d, "after the shortage");
}

/// Ten clients send a slow request and close at once (both directions): their requests,
/// not yet written to lond, are dropped, so a later `ping` is answered without waiting
/// behind them, lond sees at most the one already written, and the log has a count but
/// never the requests' text.
pub fn abandoned_requests_are_not_sent(rt: Runtime) {
    let site = Site::new(1, &[]);
    let lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let before = lond.requests("peer1");
    let socket = site.socket("peer1");
    for _ in 0..10 {
        let mut c = Client::connect(&socket).expect("connect");
        c.write(b"sleep:1000:abandoned\n").expect("write");
        drop(c);
    }
    let start = Instant::now();
    assert_eq!(send_text(&socket, "ping"), "peer1");
    let waited = start.elapsed();
    let sleeps = lond.requests("peer1").saturating_sub(before + 1);
    assert!(
        waited < Duration::from_secs(4),
        "ping waited {waited:?} behind abandoned requests (lond saw {sleeps} sleeps)\nlonc.log:\n{}",
        site.log("lonc.log")
    );
    assert!(sleeps < 10, "lond saw {sleeps} abandoned sleeps");
    site.assert_log_lacks(&["sleep:1000", "abandoned"]);
    drop(d);
}

/// A client that half-closes after its request (shuts down writing, keeps reading) still
/// gets its reply, even when the request waits in the queue behind another.
pub fn half_closed_client_still_gets_its_reply(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let socket = site.socket("peer1");
    assert_eq!(send_text(&socket, "ping"), "peer1");
    let mut first = Client::connect(&socket).expect("connect");
    first.write(b"sleep:600:first\n").expect("write");
    // Long enough for the first request to reach lond.
    thread::sleep(Duration::from_millis(100));
    let mut queued = Client::connect(&socket).expect("connect");
    queued.write(b"sleep:100:queued\n").expect("write");
    queued.finish().expect("half-close");
    // Some time half-closed while owed its reply.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(first.line_text(), "first");
    assert_eq!(queued.line_text(), "queued");
    assert_eq!(queued.line_text(), "<eof>");
}
