//! The end-to-end acceptance suite, written once for every daemon: each test is a `pub fn`
//! taking the [`Runtime`] to test, and each runtime's test file (`tests/e2e_std.rs`, later
//! the async daemon's) lists them as `#[test]` wrappers with [`suite_tests!`](crate::suite_tests).
//!
//! Every test builds its own [`Site`] (temp dir, loopback addresses of its own), starts
//! lond-sim in this process and the daemon as a real process, and is bounded in time:
//! waits go through [`eventually`] with a limit, replies through the socket timeouts of the
//! fixtures. The fixtures clean up on drop, so a failing test leaves nothing running.
//!
//! The groups: traffic (plain, `encrypt:`, `eget:`, big replies, pipelining, concurrency,
//! restarts, dead peers), delayed messages, signals and the process, hostile input and
//! misbehaving lond, the log's discretion, and the operator commands.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lond_sim::{LondSim, SimListener, SimOptions};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::e2e::{
    Client, Daemon, PermLogLine, Runtime, Site, cli, eventually, is_perl_localtime, send, send_text,
};

/// Generates one `#[test]` per suite function for a runtime:
/// `suite_tests!(STD; plain_and_encrypted, big_reply, ...)`. A test may carry attributes
/// (`#[ignore = "..."] some_test`).
#[macro_export]
macro_rules! suite_tests {
    ($rt:expr; $($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                $crate::suite::$name($rt)
            }
        )*
    };
}

/// Every test of the suite as `#[test]` functions for one runtime: an end-to-end test file
/// is `lonc_tests::all_suite_tests!(RUNTIME);`.
#[macro_export]
macro_rules! all_suite_tests {
    ($rt:expr) => {
        $crate::suite_tests! {
            $rt;
            // traffic
            plain_and_encrypted,
            big_reply,
            pipelined_requests_on_one_connection,
            pipelined_requests_over_several_links,
            concurrent_clients,
            lond_restart,
            dead_peer_answers_at_once,
            usr1_revives_a_dead_peer,
            close_connection_exit_reopens_the_link,
            transaction_timeout_replaces_the_link,
            on_demand_connects_when_asked,
            many_peers,
            // delayed messages
            delayed_files_go_first_in_name_order,
            delayed_files_match_the_exact_peer_id,
            delayed_file_dropped_in_while_running,
            delayed_file_stays_until_answered,
            usr1_rescans_the_spool,
            // signals and the process
            hup_adds_and_removes_peers,
            usr2_adds_and_removes_peers,
            hup_moves_a_changed_peer,
            hup_with_a_broken_config_keeps_running,
            term_cleans_up,
            int_cleans_up,
            detaches_without_foreground,
            term_lets_requests_in_flight_finish,
            restart_after_a_crash,
            second_instance_refuses,
            usr1_writes_the_status_file,
            // hostile input, misbehaving lond
            over_long_request,
            request_length_limit_is_exact,
            every_byte_but_lf_round_trips,
            vanishing_clients,
            client_that_never_reads_is_bounded,
            malformed_enc_reply,
            endless_reply_line,
            lond_closes_during_handshake,
            lond_refuses,
            lond_stalls_the_handshake,
            log_keeps_secrets,
            // operator commands
            check_config_prints_settings_and_peers,
            check_config_reports_errors,
            send_command,
            status_command,
        }
        $crate::hardening_link_tests!($rt);
        $crate::hardening_spool_tests!($rt);
        $crate::hardening_files_tests!($rt);
        $crate::hardening_config_tests!($rt);
        $crate::hardening_stop_tests!($rt);
    };
}

/// One `#[test]` per function of a suite module other than this one, inside a module of
/// the same name (so `cargo test hardening_spool` runs that area):
/// `module_tests!(STD; hardening_spool; spool_partial_file_waits_for_its_lf, ...)`.
#[macro_export]
macro_rules! module_tests {
    ($rt:expr; $module:ident; $($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                $(#[$attr])*
                fn $name() {
                    $crate::$module::$name($rt)
                }
            )*
        }
    };
}

/// `loncRetryMax` of the generated site config: no backoff lasts longer.
const RETRY_MAX: Duration = Duration::from_millis(400);
/// `loncDelayedRescan` of the generated site config.
pub const RESCAN: Duration = Duration::from_secs(1);

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits (up to `limit`) for `f`; on failure panics naming `what`, with the daemon's log.
pub fn wait_for(site: &Site, limit: Duration, what: &str, f: impl FnMut() -> bool) {
    assert!(
        eventually(limit, f),
        "timed out after {limit:?} waiting for {what}\nlonc.log:\n{}",
        site.log("lonc.log")
    );
}

/// Sends `request` to `peer` until the reply is `want` (a peer in backoff answers
/// `con_lost` at once, so this is how a test waits for a link to come back).
pub fn wait_for_reply(site: &Site, peer: &str, request: &str, want: &str) {
    let socket = site.socket(peer);
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(10), || {
        last = send_text(&socket, request);
        last == want
    });
    assert!(
        ok,
        "{peer} never answered {request:?} with {want:?} (last: {last:?})\nlonc.log:\n{}",
        site.log("lonc.log")
    );
}

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ----- traffic -----

/// Plain requests pass unchanged, `encrypt:` requests are encrypted on the link and
/// answered, `eget:` replies (encrypted by lond) reach the client decrypted, on every
/// peer; lond's own answers (`unknown_cmd`) pass through.
pub fn plain_and_encrypted(rt: Runtime) {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    for peer in ["peer1", "peer2"] {
        let s = site.socket(peer);
        let mode = fs::metadata(&s).expect("socket").permissions().mode();
        assert_eq!(mode & 0o777, 0o660, "socket mode of {peer}");
        assert_eq!(send_text(&s, "ping"), peer);
        assert_eq!(send_text(&s, "echo:hello world"), "hello world");
        // An empty reply line is no answer: con_lost (PROTOCOL.md 6.4).
        assert_eq!(send_text(&s, "echo:"), "con_lost");
        assert_eq!(send_text(&s, "no such command"), "unknown_cmd");
        // Replies that only look encrypted pass verbatim.
        for fake in [
            "enc:xyz",
            "enc:",
            "encrypted",
            "enc:3:zz",
            "enc::0123456789abcdef",
        ] {
            assert_eq!(send_text(&s, &format!("echo:{fake}")), fake);
        }
        assert_eq!(send_text(&s, "encrypt:ping"), peer);
        // Lengths around the 8-byte block size, 0 and multiples of 8 included.
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 100] {
            let text = "k".repeat(n);
            // (An empty plain reply would be con_lost.)
            if n > 0 {
                let got = send_text(&s, &format!("encrypt:echo:{text}"));
                assert_eq!(got, text, "n={n}");
            }
            // `enc:0:<one block>` is a reply, of nothing.
            assert_eq!(send_text(&s, &format!("eget:{text}")), text, "n={n}");
        }
        assert_eq!(send_text(&s, "eget:the eget secret"), "the eget secret");
        assert_eq!(
            send_text(&s, "encrypt:eget:both ways secret"),
            "both ways secret"
        );
    }
    site.assert_log_lacks(&["the eget secret", "both ways secret"]);
}

/// A 5 MiB reply arrives whole, and the link still answers afterwards.
pub fn big_reply(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    let reply = send(&s, b"big:5242880").expect("big reply");
    assert_eq!(reply.len(), 5_242_880);
    assert!(reply.iter().all(|&b| b == b'x'));
    assert_eq!(send_text(&s, "ping"), "peer1");
}

/// Requests pipelined on one client connection, and the replies that must come back in
/// the same order.
const PIPELINE: [(&str, &str); 7] = [
    ("echo:one", "one"),
    ("sleep:300:slow", "slow"),
    ("ping", "peer1"),
    ("encrypt:echo:two", "two"),
    ("eget:three", "three"),
    ("sleep:10:fast", "fast"),
    ("big:70000", ""),
];

fn pipelined(rt: Runtime, knobs: &[(&str, &str)]) {
    let site = Site::new(1, knobs);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let mut c = Client::connect(&site.socket("peer1")).expect("connect");
    let mut all = Vec::new();
    for (req, _) in PIPELINE {
        all.extend_from_slice(req.as_bytes());
        all.push(b'\n');
    }
    // Twice in one write: fourteen requests arrive at once.
    let twice = [all.clone(), all].concat();
    c.write(&twice).expect("write");
    for round in 0..2 {
        for (req, want) in PIPELINE {
            let got = c.read_line().expect("read").expect("a reply, not EOF");
            if req.starts_with("big:") {
                assert_eq!(got, vec![b'x'; 70000], "round {round}");
            } else {
                assert_eq!(String::from_utf8_lossy(&got), want, "round {round}: {req}");
            }
        }
    }
    // The connection stays usable for more requests, then closes after EOF.
    c.write(b"echo:more\n").expect("write");
    assert_eq!(c.line_text(), "more");
    c.finish().expect("shutdown");
    assert_eq!(c.line_text(), "<eof>");
}

/// Several lines written at once on one Unix socket connection are all answered, in
/// order (one TCP connection, one request at a time: the seed's way).
pub fn pipelined_requests_on_one_connection(rt: Runtime) {
    pipelined(rt, &[]);
}

/// The same with two TCP connections and four requests in flight on each: replies reach
/// the client in its own order although lond answers them in another.
pub fn pipelined_requests_over_several_links(rt: Runtime) {
    pipelined(rt, &[("loncMaxConnections", "2"), ("loncPipeline", "4")]);
}

/// 50 threads, each sending requests on a new connection per request (the lonnet
/// pattern), to two peers at once: every reply is the right one.
pub fn concurrent_clients(rt: Runtime) {
    let site = Arc::new(Site::new(2, &[]));
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let threads: Vec<_> = (0..50)
        .map(|t| {
            let site = Arc::clone(&site);
            thread::spawn(move || {
                let peer = if t % 2 == 0 { "peer1" } else { "peer2" };
                let s = site.socket(peer);
                for i in 0..10 {
                    let (req, want) = match i % 3 {
                        0 => (format!("echo:{t}-{i}"), format!("{t}-{i}")),
                        1 => (format!("encrypt:echo:{t}/{i}"), format!("{t}/{i}")),
                        _ => (format!("eget:{t}.{i}"), format!("{t}.{i}")),
                    };
                    let got = send_text(&s, &req);
                    assert_eq!(got, want, "thread {t} request {i} to {peer}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }
}

/// lond goes away and a new one comes up on the same addresses: a lonnet-like client
/// (waiting out the backoff after a `con_lost`) sees at most one `con_lost`, then
/// correct replies, and the daemon reconnects once, without a storm.
pub fn lond_restart(rt: Runtime) {
    let site = Site::new(1, &[]);
    let lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    assert_eq!(send_text(&s, "ping"), "peer1");
    assert_eq!(lond.connections("peer1"), 1);
    lond.stop();
    let lond = site.lond();
    let mut lost = 0;
    let mut good = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while good < 5 {
        assert!(
            Instant::now() < deadline,
            "no recovery; lonc.log:\n{}",
            site.log("lonc.log")
        );
        match send_text(&s, "echo:again").as_str() {
            "again" => good += 1,
            "con_lost" => {
                assert_eq!(good, 0, "con_lost after a correct reply");
                lost += 1;
                thread::sleep(RETRY_MAX + ms(100));
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert!(
        lost <= 1,
        "{lost} con_lost; lonc.log:\n{}",
        site.log("lonc.log")
    );
    assert_eq!(lond.connections("peer1"), 1, "one new connection");
}

/// A peer with nothing listening answers `con_lost` within a second, from the first
/// request on (connecting, backing off, dead), while the other peer is served.
pub fn dead_peer_answers_at_once(rt: Runtime) {
    let site = Site::new(2, &[("loncMaxAttempts", "3")]);
    let _lond = site.lond_on(&["peer1"], |_| SimOptions::default());
    let _d = Daemon::start(rt, &site);
    let dead = site.socket("peer2");
    let until = Instant::now() + Duration::from_millis(1500);
    let mut n = 0;
    while Instant::now() < until || n < 3 {
        let start = Instant::now();
        assert_eq!(send_text(&dead, "ping"), "con_lost");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
        n += 1;
        thread::sleep(ms(50));
    }
    wait_for(&site, Duration::from_secs(5), "peer2 declared dead", || {
        site.log("lonc.log").contains("peer is dead")
    });
    let start = Instant::now();
    assert_eq!(send_text(&dead, "encrypt:echo:x"), "con_lost");
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// USR1 revives a dead peer: once its lond is up, it is answered again.
pub fn usr1_revives_a_dead_peer(rt: Runtime) {
    let site = Site::new(2, &[("loncMaxAttempts", "2")]);
    let _lond1 = site.lond_on(&["peer1"], |_| SimOptions::default());
    let d = Daemon::start(rt, &site);
    wait_for(&site, Duration::from_secs(5), "peer2 declared dead", || {
        site.log("lonc.log").contains("peer is dead")
    });
    let _lond2 = site.lond_on(&["peer2"], |_| SimOptions::default());
    // Dead stays dead while nobody says otherwise.
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "con_lost");
    d.signal(Signal::SIGUSR1);
    wait_for_reply(&site, "peer2", "ping", "peer2");
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
}

/// `close_connection_exit` closes the asking client without a reply and reopens the
/// link; the next request is served on a new connection.
pub fn close_connection_exit_reopens_the_link(rt: Runtime) {
    let site = Site::new(1, &[]);
    let lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    assert_eq!(send_text(&s, "ping"), "peer1");
    assert_eq!(send_text(&s, "close_connection_exit"), "");
    wait_for(&site, Duration::from_secs(5), "a second connection", || {
        lond.connections("peer1") == 2
    });
    assert_eq!(send_text(&s, "connections"), "2");
}

/// A hundred peers: every socket appears and every link answers as its own peer.
pub fn many_peers(rt: Runtime) {
    let site = Site::new(100, &[]);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    for id in site.ids() {
        assert_eq!(send_text(&site.socket(&id), "ping"), id);
    }
}

/// The daemon's resident memory in KiB (0 if unknown).
fn rss_kib(d: &Daemon) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A client that sends many requests with big replies and never reads them cannot make
/// the daemon buffer without bound (here 300 MiB of replies): it stops asking lond for
/// more while that client's replies wait. Other clients are served meanwhile.
pub fn client_that_never_reads_is_bounded(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    assert_eq!(send_text(&s, "ping"), "peer1");
    let before = rss_kib(&d);
    let mut greedy = Client::connect(&s).expect("connect");
    greedy
        .write("big:1048576\n".repeat(300).as_bytes())
        .expect("write");
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(&d));
        thread::sleep(ms(50));
    }
    assert_eq!(send_text(&s, "echo:others served"), "others served");
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "the daemon grew by {grown_mib} MiB for one client that does not read"
    );
    drop(greedy);
}

// ----- delayed messages -----

/// Checks an `S` line of `lonnet.perm.log` against what was delivered.
fn check_sent(line: &PermLogLine, peer: &str, request: &str, since: u64) {
    assert_eq!(line.peer, peer, "{line:?}");
    assert_eq!(line.request, request, "{line:?}");
    assert!(
        line.epoch >= since && line.epoch <= now_epoch() + 1,
        "{line:?}"
    );
    assert!(is_perl_localtime(&line.localtime), "{line:?}");
}

/// Delayed files present at start (plain and `encrypt:`) are delivered in name order
/// before any client request, each deleted and logged with an `S` line; a file for no
/// peer of ours is left alone.
pub fn delayed_files_go_first_in_name_order(rt: Runtime) {
    let site = Site::new(2, &[]);
    let since = now_epoch();
    // Written in an order unlike their names' order.
    let files = [
        ("1700000003.1.99.put.peer1", "echo:third\n"),
        (
            "1700000001.1.99.put.peer1",
            "encrypt:echo:delayed secret\nsecond line never sent\n",
        ),
        ("1700000002.1.99.put.peer1", "echo:second\n"),
        ("1700000001.1.99.put.peer2", "echo:for peer2\n"),
        ("1700000001.1.99.put.peer9", "echo:nobody's\n"),
        // An empty first line: logged and left in place, and it holds back none of the
        // others. (A file with no LF at all is one still being written: see
        // `hardening_spool`.)
        ("1700000000.1.99.put.peer1", "\n"),
    ];
    for (name, content) in files {
        site.write_delayed(name, content.as_bytes());
    }
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    // The first client request is answered only after the delayed files went out.
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let sent = site.sent_delayed();
    let to_peer1: Vec<_> = sent.iter().filter(|l| l.peer == "peer1").collect();
    assert_eq!(to_peer1.len(), 3, "{sent:?}");
    check_sent(to_peer1[0], "peer1", "encrypt:echo:delayed secret", since);
    check_sent(to_peer1[1], "peer1", "echo:second", since);
    check_sent(to_peer1[2], "peer1", "echo:third", since);
    for (name, _) in &files[..3] {
        assert!(!site.has_delayed(name), "{name} not deleted");
    }
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    let sent = site.sent_delayed();
    let to_peer2: Vec<_> = sent.iter().filter(|l| l.peer == "peer2").collect();
    assert_eq!(to_peer2.len(), 1, "{sent:?}");
    check_sent(to_peer2[0], "peer2", "echo:for peer2", since);
    assert!(!site.has_delayed(files[3].0));
    assert!(
        site.has_delayed(files[4].0),
        "a file for no peer of ours was taken"
    );
    assert!(site.has_delayed(files[5].0), "the empty file was taken");
    assert!(
        site.log("lonc.log").contains(files[5].0),
        "the empty file not logged"
    );
    assert_eq!(sent.len(), 4, "{sent:?}");
    site.assert_log_lacks(&["delayed secret"]);
}

/// Only names ending exactly in `.<peer id>` are a peer's: with peers `peer1` and
/// `peer10`, `x.peer10` goes to `peer10` only, and `x.peer1x`, `x.apeer1` and `.peer1`
/// stay, even after a rescan.
pub fn delayed_files_match_the_exact_peer_id(rt: Runtime) {
    let site = Site::with_ids(&["peer1", "peer10"], &[]);
    let since = now_epoch();
    site.write_delayed("5.1.1.put.peer1", b"echo:to peer1\n");
    site.write_delayed("5.1.1.put.peer10", b"echo:to peer10\n");
    let strays = ["5.1.1.put.peer1x", "5.1.1.put.apeer1", ".peer1", "peer1"];
    for name in strays {
        site.write_delayed(name, b"echo:stray\n");
    }
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    assert_eq!(send_text(&site.socket("peer10"), "ping"), "peer10");
    wait_for(
        &site,
        Duration::from_secs(3),
        "both files delivered",
        || site.sent_delayed().len() >= 2,
    );
    // Past a rescan, so a wrong match would have been taken by now.
    thread::sleep(RESCAN + ms(300));
    let mut sent = site.sent_delayed();
    sent.sort_by(|a, b| a.peer.cmp(&b.peer));
    assert_eq!(sent.len(), 2, "{sent:?}");
    check_sent(&sent[0], "peer1", "echo:to peer1", since);
    check_sent(&sent[1], "peer10", "echo:to peer10", since);
    for name in strays {
        assert!(site.has_delayed(name), "{name} was taken");
    }
}

/// A file dropped into the spool while the link is up is delivered within
/// `loncDelayedRescan` (plus a margin), deleted and logged.
pub fn delayed_file_dropped_in_while_running(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let since = now_epoch();
    let start = Instant::now();
    site.write_delayed("9.1.1.put.peer1", b"encrypt:echo:late arrival\n");
    wait_for(
        &site,
        RESCAN + ms(700),
        "the dropped-in file delivered",
        || !site.has_delayed("9.1.1.put.peer1"),
    );
    let elapsed = start.elapsed();
    let sent = site.sent_delayed();
    assert_eq!(sent.len(), 1, "{sent:?}");
    check_sent(&sent[0], "peer1", "encrypt:echo:late arrival", since);
    assert!(elapsed < RESCAN + ms(700), "{elapsed:?}");
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    site.assert_log_lacks(&["late arrival"]);
}

/// A delayed file whose request is not answered (lond closes instead) stays in place,
/// with no `S` line; once lond answers, it is delivered.
pub fn delayed_file_stays_until_answered(rt: Runtime) {
    let site = Site::new(1, &[]);
    site.write_delayed("1.1.1.put.peer1", b"echo:must arrive\n");
    let lond = site.lond_with(|_| SimOptions {
        drop_after: Some(0),
        ..SimOptions::default()
    });
    let _d = Daemon::start(rt, &site);
    wait_for(
        &site,
        Duration::from_secs(5),
        "the failed delivery logged",
        || site.log("lonc.log").contains("was not answered"),
    );
    assert!(site.has_delayed("1.1.1.put.peer1"));
    assert!(site.sent_delayed().is_empty());
    lond.stop();
    let _lond = site.lond();
    wait_for(&site, Duration::from_secs(5), "the file delivered", || {
        !site.has_delayed("1.1.1.put.peer1")
    });
    let sent = site.sent_delayed();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].request, "echo:must arrive");
    wait_for_reply(&site, "peer1", "ping", "peer1");
}

/// USR1 looks at the spool at once, without waiting for `loncDelayedRescan`.
pub fn usr1_rescans_the_spool(rt: Runtime) {
    let site = Site::new(1, &[("loncDelayedRescan", "600")]);
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    site.write_delayed("1.1.1.put.peer1", b"echo:now please\n");
    d.signal(Signal::SIGUSR1);
    wait_for(&site, Duration::from_secs(3), "the file delivered", || {
        !site.has_delayed("1.1.1.put.peer1")
    });
    assert_eq!(site.sent_delayed().len(), 1);
}

/// A request not answered within `loncTransactionTimeout` gets `con_lost`, and its late
/// reply never reaches the next client: the link is replaced.
pub fn transaction_timeout_replaces_the_link(rt: Runtime) {
    let site = Site::new(1, &[("loncTransactionTimeout", "0.5")]);
    let lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    assert_eq!(send_text(&s, "ping"), "peer1");
    let start = Instant::now();
    assert_eq!(send_text(&s, "sleep:1500:late"), "con_lost");
    let took = start.elapsed();
    assert!(took >= ms(450) && took < ms(1400), "{took:?}");
    assert_eq!(send_text(&s, "echo:next"), "next");
    assert_eq!(lond.connections("peer1"), 2);
    // Past the moment the late reply would have come.
    thread::sleep(ms(1600).saturating_sub(start.elapsed()));
    assert_eq!(send_text(&s, "echo:later"), "later");
}

/// `loncMaxRequest` is exact: a request of that many bytes is served, one byte more is
/// `error:request_too_long`.
pub fn request_length_limit_is_exact(rt: Runtime) {
    let site = Site::new(1, &[("loncMaxRequest", "65536")]);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    let fits = format!("echo:{}", "z".repeat(65536 - 5));
    assert_eq!(send_text(&s, &fits), "z".repeat(65536 - 5));
    let over = format!("{fits}z");
    assert_eq!(send_text(&s, &over), "error:request_too_long");
    assert_eq!(send_text(&s, "ping"), "peer1");
}

/// On-demand mode: no connection until a request needs one, closed when idle, opened
/// again for the next request.
pub fn on_demand_connects_when_asked(rt: Runtime) {
    let site = Site::new(
        1,
        &[("loncConnectMode", "on-demand"), ("loncIdleTimeout", "0.3")],
    );
    let lond = site.lond();
    let _d = Daemon::start(rt, &site);
    thread::sleep(ms(200));
    assert_eq!(lond.connections("peer1"), 0, "connected before any request");
    assert_eq!(send_text(&site.socket("peer1"), "connections"), "1");
    wait_for(
        &site,
        Duration::from_secs(3),
        "the idle connection closed",
        || site.log("lonc.log").contains("idle; closed"),
    );
    assert_eq!(send_text(&site.socket("peer1"), "connections"), "2");
}

// ----- signals and the process -----

/// HUP or USR2 with hosts.tab changed: the removed peer's socket goes, the added peer's
/// socket comes and answers, the kept peer keeps its TCP connection and its clients.
fn reload_changes_peers(rt: Runtime, sig: Signal) {
    let site = Site::new(3, &[]);
    site.write_hosts(&["peer1".into(), "peer2".into()]);
    let lond = site.lond();
    let d = Daemon::spawn(rt, &site);
    d.wait_for_sockets(&site, &["peer1".into(), "peer2".into()]);
    assert!(!site.socket("peer3").exists());
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    // A client of the kept peer stays connected across the reload.
    let mut kept = Client::connect(&site.socket("peer1")).expect("connect");
    kept.write(b"echo:before\n").expect("write");
    assert_eq!(kept.line_text(), "before");

    site.write_hosts(&["peer1".into(), "peer3".into()]);
    d.signal(sig);
    wait_for(
        &site,
        Duration::from_secs(10),
        "peer2 removed, peer3 added",
        || !site.socket("peer2").exists() && site.socket("peer3").exists(),
    );
    assert_eq!(send_text(&site.socket("peer3"), "ping"), "peer3");
    assert!(UnixStream::connect(site.socket("peer2")).is_err());
    assert_eq!(send_text(&site.socket("peer1"), "connections"), "1");
    assert_eq!(lond.connections("peer1"), 1, "the kept link was reopened");
    kept.write(b"echo:after\n").expect("write");
    assert_eq!(kept.line_text(), "after");

    // Again: reloads work more than once (the seed's HUP worked once).
    site.write_hosts(&["peer1".into(), "peer2".into()]);
    d.signal(sig);
    wait_for(
        &site,
        Duration::from_secs(10),
        "peer2 back, peer3 gone",
        || site.socket("peer2").exists() && !site.socket("peer3").exists(),
    );
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    assert_eq!(lond.connections("peer1"), 1);
    kept.write(b"ping\n").expect("write");
    assert_eq!(kept.line_text(), "peer1");
}

/// HUP re-reads hosts.tab: the removed peer's socket goes, the added peer's socket comes
/// and answers, the kept peer keeps its TCP connection and its clients; twice in a row.
pub fn hup_adds_and_removes_peers(rt: Runtime) {
    reload_changes_peers(rt, Signal::SIGHUP);
}

/// USR2 does what HUP does (the same checks as [`hup_adds_and_removes_peers`]).
pub fn usr2_adds_and_removes_peers(rt: Runtime) {
    reload_changes_peers(rt, Signal::SIGUSR2);
}

/// A reload that moves a peer to another address reconnects it there, while a request in
/// flight on a removed peer still gets its reply.
pub fn hup_moves_a_changed_peer(rt: Runtime) {
    let site = Site::new(3, &[]);
    site.write_hosts(&["peer1".into(), "peer2".into()]);
    let lond = site.lond_on(&["peer1", "peer2"], |_| SimOptions::default());
    let d = Daemon::spawn(rt, &site);
    d.wait_for_sockets(&site, &["peer1".into(), "peer2".into()]);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    let mut inflight = Client::connect(&site.socket("peer2")).expect("connect");
    inflight.write(b"sleep:500:graceful\n").expect("write");
    // peer1's lond, now on peer3's address.
    let moved = LondSim::start_listeners(
        vec![SimListener::new(
            "peer1",
            site.addr("peer3"),
            SimOptions::default(),
        )],
        site.own_id.clone(),
    )
    .expect("listen");
    let ip = site.addr("peer3").ip();
    fs::write(
        site.dir.path().join("tab/hosts.tab"),
        format!("peer1:msu:library:peer1.example:{ip}\n"),
    )
    .expect("hosts.tab");
    // Long enough for the request to reach lond, well within its sleep.
    thread::sleep(ms(150));
    d.signal(Signal::SIGHUP);
    assert_eq!(inflight.line_text(), "graceful");
    wait_for(&site, Duration::from_secs(10), "peer2 removed", || {
        !site.socket("peer2").exists()
    });
    wait_for_reply(&site, "peer1", "connections", "1");
    assert_eq!(moved.connections("peer1"), 1);
    assert_eq!(lond.connections("peer1"), 1);
}

/// Checks that every line of `lonc.log` has the form
/// `<localtime> (<pid>) [<peer or PARENT>] [<SEVERITY>]: <message>`.
fn check_log_format(site: &Site, pid: u32) {
    let log = site.log("lonc.log");
    assert!(!log.is_empty());
    for line in log.lines() {
        let ok = (|| {
            let (time, rest) = line.split_at_checked(24)?;
            let rest = rest.strip_prefix(&format!(" ({pid}) ["))?;
            let (_peer, rest) = rest.split_once("] [")?;
            let (severity, _message) = rest.split_once("]: ")?;
            (is_perl_localtime(time) && ["CRITICAL", "WARNING", "INFO"].contains(&severity))
                .then_some(())
        })();
        assert!(ok.is_some(), "badly formed log line: {line:?}");
    }
}

/// TERM: the daemon exits 0 leaving no socket and no pid file; its log lines are well
/// formed.
pub fn term_cleans_up(rt: Runtime) {
    stop_cleans_up(rt, Signal::SIGTERM);
}

/// INT does what TERM does.
pub fn int_cleans_up(rt: Runtime) {
    stop_cleans_up(rt, Signal::SIGINT);
}

fn stop_cleans_up(rt: Runtime, sig: Signal) {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    let mut d = Daemon::start(rt, &site);
    let pid = d.pid();
    let pid_text = fs::read_to_string(site.pid_file()).expect("pid file");
    assert_eq!(pid_text, format!("{pid}\n"));
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    d.signal(sig);
    let status = d.wait(Duration::from_secs(10)).expect("exits within 10 s");
    assert!(status.success(), "{status:?}");
    for peer in site.ids() {
        assert!(!site.socket(&peer).exists(), "socket {peer} left behind");
    }
    assert!(!site.pid_file().exists(), "pid file left behind");
    check_log_format(&site, pid);
}

/// TERM lets the requests in flight finish (within the grace period): their clients,
/// reading all along, get their whole replies before the daemon exits 0.
pub fn term_lets_requests_in_flight_finish(rt: Runtime) {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    // A small reply and a big one (it takes the daemon a moment to write), both due
    // after TERM.
    let payload = "y".repeat(4 << 20);
    let clients: Vec<_> = [("peer1", "small"), ("peer2", payload.as_str())]
        .into_iter()
        .map(|(peer, text)| {
            let mut c = Client::connect(&site.socket(peer)).expect("connect");
            c.write(format!("sleep:700:{text}\n").as_bytes())
                .expect("write");
            let want = text.len();
            thread::spawn(move || {
                let got = c.read_line();
                (want, got.map(|l| l.map(|l| l.len())))
            })
        })
        .collect();
    // Long enough for both requests to reach lond, well within its sleep.
    thread::sleep(ms(300));
    let start = Instant::now();
    let status = d.stop().expect("exits within 10 s");
    let took = start.elapsed();
    assert!(status.success(), "{status:?}");
    for c in clients {
        let (want, got) = c.join().expect("reader");
        assert!(
            matches!(got, Ok(Some(n)) if n == want),
            "a reply of {want} bytes, got {got:?} (stop took {took:?})\nlonc.log:\n{}",
            site.log("lonc.log")
        );
    }
}

/// A daemon started without `--foreground` detaches: the command returns 0 at once, the
/// daemon (the pid in the pid file, not the command's) serves, and TERM stops it.
pub fn detaches_without_foreground(rt: Runtime) {
    /// Kills the detached daemon if the test fails before it is stopped.
    struct Guard(Option<i32>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let mut child = Daemon::command(rt, &site)
        .spawn()
        .expect("start the daemon");
    let mut status = None;
    let exited = eventually(Duration::from_secs(10), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(exited, "the command did not return");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let mut pid = None;
    wait_for(
        &site,
        Duration::from_secs(10),
        "the detached daemon's pid file",
        || {
            pid = fs::read_to_string(site.pid_file())
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            pid.is_some()
        },
    );
    let mut guard = Guard(pid);
    assert_ne!(pid, Some(child.id() as i32), "not detached");
    wait_for(&site, Duration::from_secs(10), "the socket", || {
        site.socket("peer1").exists()
    });
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    if let Some(pid) = pid {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    wait_for(
        &site,
        Duration::from_secs(10),
        "the detached daemon gone",
        || !site.pid_file().exists() && !site.socket("peer1").exists(),
    );
    guard.0 = None;
}

/// After a crash (KILL: the pid file and the sockets stay behind), a new daemon starts on
/// the same site, replacing the stale pid file and sockets.
pub fn restart_after_a_crash(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let mut d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    d.signal(Signal::SIGKILL);
    assert!(d.wait(Duration::from_secs(5)).is_some());
    assert!(site.pid_file().exists() && site.socket("peer1").exists());
    let d = Daemon::start(rt, &site);
    wait_for_reply(&site, "peer1", "ping", "peer1");
    assert_eq!(
        fs::read_to_string(site.pid_file()).expect("pid file"),
        format!("{}\n", d.pid())
    );
}

/// A reload with a broken config keeps the running config and links, and says so in
/// the log.
pub fn hup_with_a_broken_config_keeps_running(rt: Runtime) {
    let site = Site::new(2, &[]);
    let lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    site.write_config(&[("loncRetryMin", "whenever")]);
    site.write_hosts(&["peer1".into()]);
    d.signal(Signal::SIGHUP);
    wait_for(
        &site,
        Duration::from_secs(5),
        "the failed reload logged",
        || site.log("lonc.log").contains("reload failed"),
    );
    assert!(
        site.socket("peer2").exists(),
        "peer2 removed by a failed reload"
    );
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    assert_eq!(lond.connections("peer1"), 1);
}

/// A second daemon on the same site exits non-zero saying it is already running, and
/// leaves the first one (its pid file, its sockets) alone.
pub fn second_instance_refuses(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let first = Daemon::start(rt, &site);
    let mut second = Daemon::spawn(rt, &site);
    let status = second
        .wait(Duration::from_secs(10))
        .expect("the second exits");
    assert!(!status.success(), "{status:?}");
    let err = second.stderr();
    assert!(err.contains("already running"), "stderr: {err:?}");
    assert_eq!(
        fs::read_to_string(site.pid_file()).expect("pid file"),
        format!("{}\n", first.pid())
    );
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
}

/// The status file, parsed: the header's pid and every peer line's fields.
pub fn read_status(site: &Site) -> Option<(u32, Vec<Vec<String>>)> {
    let text = fs::read_to_string(site.status_file()).ok()?;
    let mut lines = text.lines();
    let header = lines.next()?;
    let rest = header.strip_prefix("LONC status ")?;
    let (time, pid) = rest.rsplit_once(" - parent ")?;
    assert!(is_perl_localtime(time), "{header:?}");
    assert_eq!(
        lines.next(),
        Some(""),
        "no blank line after the header:\n{text}"
    );
    let peers = lines
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    Some((pid.parse().ok()?, peers))
}

/// USR1 writes the status file: the header with the daemon's pid, a blank line, one
/// tab-separated line per peer (pid, peer, state, last log line).
pub fn usr1_writes_the_status_file(rt: Runtime) {
    let site = Site::new(2, &[("loncMaxAttempts", "2")]);
    let _lond = site.lond_on(&["peer1"], |_| SimOptions::default());
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    wait_for(&site, Duration::from_secs(5), "peer2 declared dead", || {
        site.log("lonc.log").contains("peer is dead")
    });
    assert!(!site.status_file().exists());
    d.signal(Signal::SIGUSR1);
    wait_for(&site, Duration::from_secs(5), "the status file", || {
        site.status_file().exists()
    });
    let (pid, peers) = read_status(&site).expect("a well-formed status file");
    assert_eq!(pid, d.pid());
    assert_eq!(peers.len(), 2, "{peers:?}");
    let mut names: Vec<&str> = peers.iter().map(|p| p[1].as_str()).collect();
    names.sort();
    assert_eq!(names, ["peer1", "peer2"]);
    for p in &peers {
        assert_eq!(p.len(), 4, "{p:?}");
        assert_eq!(p[0], d.pid().to_string(), "{p:?}");
        assert!(!p[3].is_empty(), "no last log line: {p:?}");
        match p[1].as_str() {
            "peer1" => assert_eq!(p[2], "ready", "{p:?}"),
            _ => assert_eq!(p[2], "dead", "{p:?}"),
        }
    }
}

// ----- hostile input, misbehaving lond -----

/// A 20 MiB line without LF gets `error:request_too_long` and a disconnect; other
/// clients are served meanwhile and afterwards.
pub fn over_long_request(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    let mut c = Client::connect(&s).expect("connect");
    // One connection: another thread floods it while this one reads the answer.
    let mut flood = c.writer().expect("a second handle");
    let flooder = thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..20 {
            // The daemon hangs up part way: the write fails then.
            if flood.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    assert_eq!(send_text(&s, "ping"), "peer1");
    assert_eq!(c.line_text(), "error:request_too_long");
    assert_eq!(c.line_text(), "<eof>");
    flooder.join().expect("flooder");
    assert_eq!(send_text(&s, "ping"), "peer1");
    assert!(site.log("lonc.log").contains("longer than"));
}

/// Every byte value but LF passes through `echo:` unchanged, plain, `encrypt:` and as an
/// `eget:` reply (compared as bytes).
pub fn every_byte_but_lf_round_trips(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    let bytes: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
    for prefix in [&b"echo:"[..], b"encrypt:echo:", b"eget:", b"encrypt:eget:"] {
        let request = [prefix, &bytes].concat();
        let reply = send(&s, &request).expect("reply");
        assert_eq!(reply, bytes, "{}", String::from_utf8_lossy(prefix));
    }
}

/// 1000 clients connect and vanish (at once, after half a line, after a request without
/// waiting for the reply): the daemon still answers, and its threads and open files come
/// back to what they were.
pub fn vanishing_clients(rt: Runtime) {
    let site = Arc::new(Site::new(1, &[]));
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let (fds, tasks) = (d.proc_count("fd"), d.proc_count("task"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let site = Arc::clone(&site);
            thread::spawn(move || {
                let s = site.socket("peer1");
                for i in 0..125 {
                    let Ok(mut c) = Client::connect(&s) else {
                        continue;
                    };
                    let _ = match (t * 125 + i) % 4 {
                        0 => Ok(()),
                        1 => c.write(b"echo:half a li"),
                        2 => c.write(b"ping\n"),
                        _ => c.write(b"encrypt:echo:x\nencrypt:ec"),
                    };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let (mut fds_now, mut tasks_now) = (0, 0);
    let settled = eventually(Duration::from_secs(5), || {
        fds_now = d.proc_count("fd");
        tasks_now = d.proc_count("task");
        fds_now <= fds + 2 && tasks_now <= tasks + 2
    });
    assert!(
        settled,
        "leak: fds {fds} -> {fds_now}, threads {tasks} -> {tasks_now}"
    );
    assert_eq!(
        send_text(&site.socket("peer1"), "echo:still here"),
        "still here"
    );
}

/// lond answers `eget:` with a malformed `enc:` line: `con_lost`, a log line, and the next
/// request is answered (on a new connection).
pub fn malformed_enc_reply(rt: Runtime) {
    let site = Site::new(1, &[]);
    let lond = site.lond_with(|_| SimOptions {
        malformed_enc: true,
        ..SimOptions::default()
    });
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    assert_eq!(send_text(&s, "ping"), "peer1");
    assert_eq!(send_text(&s, "eget:x"), "con_lost");
    wait_for(
        &site,
        Duration::from_secs(2),
        "the protocol error logged",
        || site.log("lonc.log").contains("protocol error"),
    );
    assert_eq!(send_text(&s, "encrypt:echo:fine"), "fine");
    assert_eq!(lond.connections("peer1"), 2, "the broken link was replaced");
}

/// lond answers with an endless line: `con_lost` once `loncMaxReply` is passed, a log
/// line, a reconnect; with a sane lond on the same address, requests are answered.
pub fn endless_reply_line(rt: Runtime) {
    let site = Site::new(1, &[("loncMaxReply", "1048576")]);
    let lond = site.lond_with(|_| SimOptions {
        endless_line: true,
        ..SimOptions::default()
    });
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    let start = Instant::now();
    assert_eq!(send_text(&s, "ping"), "con_lost");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    wait_for(
        &site,
        Duration::from_secs(2),
        "the protocol error logged",
        || site.log("lonc.log").contains("protocol error"),
    );
    wait_for(&site, Duration::from_secs(5), "a reconnect", || {
        lond.connections("peer1") >= 2
    });
    lond.stop();
    let _lond = site.lond();
    wait_for_reply(&site, "peer1", "ping", "peer1");
    assert_eq!(send_text(&s, "echo:ok"), "ok");
}

/// A handshake fault: requests get `con_lost`, the log says what happened, and once lond
/// behaves the link comes up and answers.
fn handshake_fault(rt: Runtime, opts: SimOptions, knobs: &[(&str, &str)], logged: &str) {
    let mut knobs = knobs.to_vec();
    knobs.push(("loncMaxAttempts", "1000"));
    let site = Site::new(1, &knobs);
    let lond = site.lond_with(|_| opts.clone());
    let _d = Daemon::start(rt, &site);
    let s = site.socket("peer1");
    assert_eq!(send_text(&s, "ping"), "con_lost");
    wait_for(&site, Duration::from_secs(5), logged, || {
        site.log("lonc.log").contains(logged)
    });
    assert_eq!(send_text(&s, "encrypt:echo:x"), "con_lost");
    lond.stop();
    let _lond = site.lond();
    wait_for_reply(&site, "peer1", "ping", "peer1");
    assert_eq!(send_text(&s, "encrypt:echo:x"), "x");
}

/// lond closes right after its challenge: `con_lost` and a log line, then recovery.
pub fn lond_closes_during_handshake(rt: Runtime) {
    handshake_fault(
        rt,
        SimOptions {
            close_during_handshake: true,
            ..SimOptions::default()
        },
        &[],
        "closed during the handshake",
    );
}

/// lond refuses the client: `con_lost` and a log line, then recovery.
pub fn lond_refuses(rt: Runtime) {
    handshake_fault(
        rt,
        SimOptions {
            refuse: true,
            ..SimOptions::default()
        },
        &[],
        "handshake failed",
    );
}

/// lond never answers the handshake: `con_lost` after `loncHandshakeTimeout`, a log line,
/// then recovery.
pub fn lond_stalls_the_handshake(rt: Runtime) {
    handshake_fault(
        rt,
        SimOptions {
            stall_handshake: true,
            ..SimOptions::default()
        },
        &[("loncHandshakeTimeout", "0.3")],
        "handshake timed out",
    );
}

/// `lonc.log` never holds the text of an `encrypt:` request or of a decrypted reply,
/// whatever happens to them: answered, pipelined, delayed, lost with a dead peer, or
/// failed on a malformed reply.
pub fn log_keeps_secrets(rt: Runtime) {
    let site = Site::new(3, &[("loncMaxAttempts", "2")]);
    site.write_delayed("1.1.1.put.peer1", b"encrypt:echo:SECRET-delayed\n");
    site.write_delayed("1.1.1.put.peer3", b"encrypt:echo:SECRET-stuck\n");
    let _lond = site.lond_on(&["peer1", "peer2"], |id| SimOptions {
        malformed_enc: id == "peer2",
        ..SimOptions::default()
    });
    let d = Daemon::start(rt, &site);
    let (p1, p2, p3) = (
        site.socket("peer1"),
        site.socket("peer2"),
        site.socket("peer3"),
    );
    assert_eq!(send_text(&p1, "encrypt:echo:SECRET-req"), "SECRET-req");
    assert_eq!(send_text(&p1, "eget:SECRET-eget"), "SECRET-eget");
    assert_eq!(send_text(&p1, "encrypt:eget:SECRET-both"), "SECRET-both");
    assert_eq!(send_text(&p2, "encrypt:eget:SECRET-malformed"), "con_lost");
    assert_eq!(send_text(&p3, "encrypt:echo:SECRET-dead"), "con_lost");
    let mut c = Client::connect(&p1).expect("connect");
    c.write(b"encrypt:echo:SECRET-pipe1\neget:SECRET-pipe2\n")
        .expect("write");
    assert_eq!(c.line_text(), "SECRET-pipe1");
    assert_eq!(c.line_text(), "SECRET-pipe2");
    drop(c);
    wait_for(&site, Duration::from_secs(5), "peer3 declared dead", || {
        site.log("lonc.log").contains("peer is dead")
    });
    assert!(!site.has_delayed("1.1.1.put.peer1"));
    assert!(site.has_delayed("1.1.1.put.peer3"));
    let pid = d.pid();
    assert!(d.stop().expect("exits").success());
    site.assert_log_lacks(&["SECRET"]);
    check_log_format(&site, pid);
}

// ----- operator commands -----

/// `s` as an `OsStr`, for [`cli`] arguments.
pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `check-config` prints the settings and the peers and exits 0.
pub fn check_config_prints_settings_and_peers(rt: Runtime) {
    let site = Site::new(2, &[("loncPipeline", "3")]);
    // A malformed hosts.tab line is a warning naming its line, not an error.
    let hosts = site.dir.path().join("tab/hosts.tab");
    let mut text = fs::read_to_string(&hosts).expect("hosts.tab");
    text.push_str("# a comment\nnot a host line\n");
    fs::write(&hosts, text).expect("hosts.tab");
    let out = cli(
        rt,
        &[os("check-config"), os("--config"), site.config.as_os_str()],
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"lonHostID msul0"), "{}", out.stdout);
    assert!(lines.contains(&"loncPipeline 3"), "{}", out.stdout);
    assert!(
        lines.contains(&format!("londPort {}", site.port).as_str()),
        "{}",
        out.stdout
    );
    for peer in site.ids() {
        let want = format!("{peer} {}", site.addr(&peer));
        assert!(
            lines.contains(&want.as_str()),
            "no {want:?} in\n{}",
            out.stdout
        );
    }
    let warning = format!("warning: {}:4:", hosts.display());
    assert!(
        out.stdout.contains(&warning),
        "no {warning:?} in\n{}",
        out.stdout
    );
}

/// A broken config: `check-config` exits non-zero and names the bad lines by number.
pub fn check_config_reports_errors(rt: Runtime) {
    let site = Site::new(1, &[("loncRetryMin", "soon"), ("loncMaxReply", "-5")]);
    let text = fs::read_to_string(&site.config).expect("config");
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .expect("the bad line")
    };
    let out = cli(
        rt,
        &[os("check-config"), os("--config"), site.config.as_os_str()],
    );
    assert!(!out.status.success(), "{out:?}");
    for needle in ["loncRetryMin soon", "loncMaxReply -5"] {
        let want = format!("{}:{}:", site.config.display(), line_of(needle));
        assert!(
            out.stderr.contains(&want),
            "no {want:?} in {:?}",
            out.stderr
        );
    }
    // A missing required variable is named, with the file.
    let partial = site.dir.path().join("partial.conf");
    let without: String = text
        .lines()
        .filter(|l| !l.contains("lonHostID"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&partial, without).expect("partial config");
    let out = cli(
        rt,
        &[os("check-config"), os("--config"), partial.as_os_str()],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("lonHostID") && out.stderr.contains(&*partial.to_string_lossy()),
        "{out:?}"
    );
    // The daemon itself refuses to start on it, for the same reason.
    let mut d = Daemon::spawn(rt, &site);
    let status = d.wait(Duration::from_secs(10)).expect("exits");
    assert!(!status.success());
    assert!(d.stderr().contains("loncRetryMin"), "{}", d.stderr());
}

/// `send` prints the reply and exits 0; `con_lost` from a dead peer exits non-zero.
pub fn send_command(rt: Runtime) {
    let site = Site::new(2, &[]);
    let _lond = site.lond_on(&["peer1"], |_| SimOptions::default());
    let d = Daemon::start(rt, &site);
    let config = site.config.as_os_str();
    let out = cli(
        rt,
        &[os("send"), os("--config"), config, os("peer1"), os("ping")],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "peer1\n");
    let out = cli(
        rt,
        &[
            os("send"),
            os("--config"),
            config,
            os("peer1"),
            os("encrypt:echo:hi there"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "hi there\n");
    let out = cli(
        rt,
        &[os("send"), os("--config"), config, os("peer2"), os("ping")],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.contains("con_lost"), "{out:?}");
    // No daemon: a failure with a message, not a hang.
    assert!(d.stop().expect("exits").success());
    let out = cli(
        rt,
        &[os("send"), os("--config"), config, os("peer1"), os("ping")],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(!out.stderr.is_empty(), "{out:?}");
}

/// `status` makes the daemon write its status file and prints it.
pub fn status_command(rt: Runtime) {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let config = site.config.as_os_str();
    let out = cli(rt, &[os("status"), os("--config"), config]);
    assert!(out.status.success(), "{out:?}");
    let file = fs::read_to_string(site.status_file()).expect("status file");
    assert_eq!(out.stdout, file);
    assert!(
        out.stdout.starts_with("LONC status ")
            && out.stdout.contains(&format!(" - parent {}\n\n", d.pid())),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\tpeer1\t") && out.stdout.contains("\tpeer2\t"));
    // Without a daemon it says so and fails.
    assert!(d.stop().expect("exits").success());
    let out = cli(rt, &[os("status"), os("--config"), config]);
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.contains("not running"), "{out:?}");
}
