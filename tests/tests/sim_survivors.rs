//! Scenarios that each pin a rule a mutant of the core once broke unseen (`cargo mutants`,
//! configured in `.cargo/mutants.toml`): `close_connection_exit` waits for every request in
//! flight, an idle close never takes a connection with requests in flight, a handshake
//! that takes time survives timer ticks, the queue keeps its bounds in count and bytes,
//! and a second TERM does not lengthen the grace period; and what the peer reports about
//! itself (for the status file) is the truth.

use std::time::{Duration, Instant};

use lonc_core::config::{ConnectMode, LinkSettings};
use lonc_core::io::Severity;
use lonc_core::peer::{PeerState, QUEUE_BYTES_LIMIT, QUEUE_LIMIT};
use lonc_tests::sim::{PEER_ID, World};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// WARNING lines of `lonc.log` that contain `what`.
fn warnings(w: &World, what: &str) -> usize {
    w.log
        .iter()
        .filter(|e| e.severity == Severity::Warning && e.message.contains(what))
        .count()
}

#[test]
fn close_connection_exit_waits_for_every_request_in_flight() {
    let settings = LinkSettings {
        pipeline: 2,
        max_connections: 2,
        ..LinkSettings::default()
    };
    let mut w = World::ready(settings);
    let slow = w.request(b"sleep:3000:slow");
    let other = w.request(b"sleep:1000:other");
    let exit = w.request(b"close_connection_exit");
    w.run_for(ms(500));
    assert!(
        w.replies_of(slow).is_empty() && !w.closed.contains(&exit),
        "close_connection_exit went before the requests in flight\n{}",
        w.trace.join("\n")
    );
    w.run_for(secs(5));
    assert_eq!(w.reply_of(other), "other");
    assert_eq!(w.reply_of(slow), "slow");
    assert!(w.replies_of(exit).is_empty());
    assert!(w.closed.contains(&exit));
    assert_eq!(w.peer.state(), PeerState::Ready, "reopened");
}

#[test]
fn an_idle_close_never_takes_a_connection_with_requests_in_flight() {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        idle_timeout: secs(1),
        transaction_timeout: secs(300),
        // A timer that fires while the requests are in flight, past the idle timeout.
        delayed_rescan: secs(1),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 7);
    let slow = w.request(b"sleep:5000:slow");
    w.run_for(secs(3));
    assert_eq!(w.lond_connections(), 1, "{}", w.trace.join("\n"));
    w.run_for(secs(3));
    assert_eq!(w.reply_of(slow), "slow");
    w.run_for(secs(2));
    assert_eq!(w.lond_connections(), 0, "idle once answered");
}

#[test]
fn an_idle_extra_connection_is_closed_only_once_it_has_nothing_in_flight() {
    let settings = LinkSettings {
        max_connections: 2,
        idle_timeout: secs(1),
        transaction_timeout: secs(300),
        // A timer that fires while the requests are in flight, past the idle timeout.
        delayed_rescan: secs(1),
        ..LinkSettings::default()
    };
    let mut w = World::ready(settings);
    let first = w.request(b"sleep:5000:first");
    let second = w.request(b"sleep:5000:second");
    w.run_for(secs(3));
    assert_eq!(logged(&w, "idle; closed"), 0, "{}", w.trace.join("\n"));
    assert_eq!(w.connects.len(), 2, "no churn");
    w.run_for(secs(3));
    assert_eq!(w.reply_of(first), "first");
    assert_eq!(w.reply_of(second), "second");
    w.run_for(secs(2));
    assert_eq!(w.lond_connections(), 1, "the extra one closed once idle");
}

#[test]
fn a_handshake_that_takes_time_survives_every_timer_tick() {
    let settings = LinkSettings {
        pong_delay: ms(300),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 7);
    w.script.latency = ms(40);
    let c = w.request(b"ping");
    // A runtime may wake the peer at any time (a spurious wakeup, another peer's timer):
    // a timeout call with nothing due must leave the handshake alone.
    for _ in 0..200 {
        w.run_for(ms(5));
        w.peer.handle_timeout(w.now);
        w.settle();
    }
    assert_eq!(w.peer.state(), PeerState::Ready, "{}", w.trace.join("\n"));
    assert_eq!(w.peer.failed_attempts(), 0);
    assert_eq!(w.connects.len(), 1);
    assert_eq!(w.reply_of(c), PEER_ID);
}

#[test]
fn with_latency_a_request_takes_a_round_trip() {
    let mut w = World::new(Instant::now(), LinkSettings::default(), 7);
    w.script.latency = ms(100);
    w.settle();
    assert_eq!(
        w.peer.state(),
        PeerState::Connecting,
        "the handshake takes time"
    );
    w.run_for(secs(1));
    assert_eq!(w.peer.state(), PeerState::Ready);
    let c = w.request(b"echo:x");
    w.run_for(ms(150));
    assert!(w.replies_of(c).is_empty(), "not before a round trip");
    w.run_for(ms(100));
    assert_eq!(w.reply_of(c), "x");
}

#[test]
fn the_queue_holds_at_most_queue_limit_requests() {
    let mut w = World::new(Instant::now(), LinkSettings::default(), 7);
    w.script.hang_connect = true;
    w.settle();
    let filler = w.new_client();
    let mut data = Vec::new();
    for n in 0..QUEUE_LIMIT {
        data.extend_from_slice(format!("echo:{n}\n").as_bytes());
    }
    w.client_send(filler, &data);
    assert_eq!(w.peer.queued(), QUEUE_LIMIT);
    assert_eq!(warnings(&w, "request queue full"), 0);
    let over = w.request(b"echo:over");
    assert_eq!(w.reply_of(over), "con_lost", "answered at once");
    assert_eq!(w.peer.queued(), QUEUE_LIMIT);
    assert_eq!(warnings(&w, "request queue full"), 1);
    // The hung connect times out, a failed attempt: every queued request is answered.
    w.run_for(secs(6));
    let got = w.replies_of(filler);
    assert_eq!(got.len(), QUEUE_LIMIT);
    assert!(got.iter().all(|r| r == "con_lost"));
    assert_eq!(w.peer.queued(), 0);
}

#[test]
fn the_queue_holds_at_most_queue_bytes_limit_bytes() {
    let settings = LinkSettings::default();
    let line_len = settings.max_request;
    assert_eq!(QUEUE_BYTES_LIMIT % line_len, 0);
    let mut w = World::new(Instant::now(), settings, 7);
    w.script.hang_connect = true;
    w.settle();
    let mut line = b"silent".to_vec();
    line.resize(line_len, b'x');
    line.push(b'\n');
    let fits = QUEUE_BYTES_LIMIT / line_len;
    let clients: Vec<_> = (0..fits)
        .map(|_| w.request(&line[..line.len() - 1]))
        .collect();
    assert_eq!(
        w.peer.queued(),
        fits,
        "exactly at the byte limit still fits"
    );
    assert!(clients.iter().all(|c| w.replies_of(*c).is_empty()));
    let over = w.request(b"echo:over");
    assert_eq!(w.reply_of(over), "con_lost", "one byte more does not fit");
    assert_eq!(warnings(&w, "request queue full"), 1);
    assert_eq!(w.peer.queued(), fits);
    // A client that leaves takes its bytes along: room for one more.
    w.client_gone(clients[0]);
    assert_eq!(w.peer.queued(), fits - 1);
    let again = w.request(b"echo:again");
    assert!(w.replies_of(again).is_empty(), "queued");
    assert_eq!(w.peer.queued(), fits);
}

#[test]
fn a_second_term_does_not_lengthen_the_grace_period() {
    let mut w = World::ready(LinkSettings::default());
    let slow = w.request(b"silent");
    assert!(!w.peer.is_stopped());
    w.peer.shutdown(w.now, secs(10));
    w.settle();
    w.run_for(secs(6));
    w.peer.shutdown(w.now, secs(10));
    w.settle();
    assert_eq!(w.peer.state(), PeerState::Stopping);
    assert!(!w.peer.is_stopped(), "still in its grace period");
    w.run_for(secs(4));
    assert!(w.peer.is_stopped(), "stopped 10 s after the first TERM");
    assert_eq!(w.reply_of(slow), "con_lost");
}

#[test]
fn the_peer_reports_what_it_holds() {
    let settings = LinkSettings {
        max_connections: 2,
        ..LinkSettings::default()
    };
    let mut w = World::ready(settings.clone());
    assert_eq!(w.peer.id(), PEER_ID);
    assert_eq!(w.peer.settings(), &settings);
    assert_eq!((w.peer.connection_count(), w.peer.client_count()), (1, 0));
    let a = w.new_client();
    let b = w.new_client();
    assert_eq!(w.peer.client_count(), 2);
    w.client_send(a, b"sleep:1000:a\n");
    w.client_send(b, b"sleep:1000:b\n");
    assert_eq!(
        w.peer.connection_count(),
        2,
        "one more for the second request"
    );
    w.client_gone(b);
    assert_eq!(w.peer.client_count(), 1);
    w.run_for(secs(2));
    assert_eq!(w.replies_of(a), ["a"]);
    assert_eq!(w.peer.client_count(), 1, "still open: no EOF yet");
}

#[test]
fn each_state_has_its_status_word() {
    let words: Vec<&str> = [
        PeerState::Ready,
        PeerState::Connecting,
        PeerState::Idle,
        PeerState::Backoff,
        PeerState::Dead,
        PeerState::Stopping,
        PeerState::Stopped,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    assert_eq!(
        words,
        [
            "ready",
            "connecting",
            "idle",
            "backoff",
            "dead",
            "stopping",
            "stopped"
        ]
    );
}

/// Lines of `lonc.log` that contain `what`, at any severity.
fn logged(w: &World, what: &str) -> usize {
    w.log.iter().filter(|e| e.message.contains(what)).count()
}

#[test]
fn a_healthy_link_logs_no_warning() {
    let mut w = World::ready(LinkSettings::default());
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
    let bad: Vec<_> = w
        .log
        .iter()
        .filter(|e| e.severity != Severity::Info)
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    w.revive();
    assert_eq!(logged(&w, "revived"), 0, "nothing to revive");
}

#[test]
fn a_revival_is_logged_only_when_it_ends_a_backoff() {
    let mut w = World::new(Instant::now(), LinkSettings::default(), 7);
    w.script.refuse = true;
    w.settle();
    assert_eq!(w.peer.state(), PeerState::Backoff);
    w.script.refuse = false;
    w.revive();
    w.settle();
    assert_eq!(logged(&w, "revived: retrying at once"), 1);
    assert_eq!(w.peer.state(), PeerState::Ready);
}

#[test]
fn a_client_gone_logs_only_the_requests_it_dropped() {
    let mut w = World::new(Instant::now(), LinkSettings::default(), 7);
    w.script.hang_connect = true;
    w.settle();
    let idle = w.new_client();
    w.client_gone(idle);
    let busy = w.new_client();
    w.client_send(busy, b"echo:a\necho:b\n");
    w.client_gone(busy);
    assert_eq!(logged(&w, "went away"), 1, "{:?}", w.log);
    assert_eq!(
        logged(
            &w,
            "went away; 2 of its requests not yet sent to lond dropped"
        ),
        1
    );
    assert_eq!(w.peer.queued(), 0);
}

#[test]
fn no_extra_connection_opens_while_nothing_waits() {
    let settings = LinkSettings {
        max_connections: 2,
        ..LinkSettings::default()
    };
    let mut w = World::ready(settings);
    let slow = w.request(b"sleep:2000:slow");
    w.run_for(secs(1));
    assert_eq!(w.connects.len(), 1, "the only request is in flight");
    let next = w.request(b"echo:next");
    w.settle();
    assert_eq!(w.connects.len(), 2, "one waits: one more connection");
    assert_eq!(w.reply_of(next), "next");
    w.run_for(secs(2));
    assert_eq!(w.reply_of(slow), "slow");
}

/// Spool listings the peer asked for so far.
fn listings(w: &World) -> usize {
    w.trace
        .iter()
        .filter(|l| l.contains("list delayed"))
        .count()
}

#[test]
fn a_delayed_round_whose_connect_fails_ends_until_the_next_rescan() {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        retry_min: secs(10),
        retry_max: secs(20),
        delayed_rescan: secs(300),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 7);
    w.spool.insert("1.a.msul1".into(), b"echo:first\n".to_vec());
    w.script.listening = false;
    w.run_for(secs(301));
    assert_eq!((listings(&w), w.connects.len()), (1, 1), "the first rescan");
    assert_eq!(w.peer.failed_attempts(), 1);
    // The backoff ends; the round ended with the failed attempt, so nothing reconnects
    // for the file before the next rescan.
    w.run_for(secs(200));
    assert_eq!(w.connects.len(), 1, "{}", w.trace.join("\n"));
    w.script.listening = true;
    w.run_for(secs(100));
    assert!(w.spool.is_empty(), "delivered at the next rescan");
}

#[test]
fn an_on_demand_peer_in_backoff_does_not_look_at_its_spool() {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        retry_min: secs(100),
        retry_max: secs(110),
        delayed_rescan: secs(5),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 7);
    w.spool.insert("1.a.msul1".into(), b"echo:first\n".to_vec());
    w.script.listening = false;
    let c = w.request(b"ping");
    assert_eq!(w.reply_of(c), "con_lost");
    assert_eq!(w.peer.state(), PeerState::Backoff);
    w.run_for(secs(50));
    assert_eq!(listings(&w), 0, "{}", w.trace.join("\n"));
    w.script.listening = true;
    w.run_for(secs(100));
    assert!(listings(&w) > 0);
    assert!(w.spool.is_empty(), "delivered once the backoff is over");
}

#[test]
fn a_revived_peer_looks_at_its_spool_every_rescan_again() {
    let settings = LinkSettings {
        max_attempts: 1,
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings.clone(), 7);
    w.script.refuse = true;
    w.settle();
    assert_eq!(w.peer.state(), PeerState::Dead);
    w.script.refuse = false;
    w.revive();
    w.settle();
    assert_eq!(w.peer.state(), PeerState::Ready);
    w.run_for(secs(1));
    w.spool.insert("1.a.msul1".into(), b"echo:late\n".to_vec());
    w.run_for(settings.delayed_rescan);
    assert!(w.spool.is_empty(), "{}", w.trace.join("\n"));
}

#[test]
fn a_new_link_does_not_postpone_the_next_rescan() {
    let mut w = World::ready(LinkSettings::default());
    let rescan = LinkSettings::default().delayed_rescan;
    w.run_for(rescan / 2);
    w.lond_closes_all();
    assert_eq!(w.peer.state(), PeerState::Ready, "reconnected at once");
    w.spool.insert("1.a.msul1".into(), b"echo:late\n".to_vec());
    w.run_for(rescan / 2);
    assert!(w.spool.is_empty(), "{}", w.trace.join("\n"));
}

#[test]
fn an_on_demand_link_is_not_idle_while_a_request_waits() {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        max_connections: 2,
        idle_timeout: secs(1),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 7);
    let slow = w.request(b"sleep:5000:slow");
    let quick = w.request(b"echo:quick");
    w.settle();
    assert_eq!(w.reply_of(quick), "quick");
    assert_eq!(w.lond_connections(), 2);
    // close_connection_exit waits for the slow request: the second link has nothing in
    // flight, but a request waits, so it is not idle.
    let exit = w.request(b"close_connection_exit");
    w.run_for(secs(3));
    assert_eq!(logged(&w, "idle; closed"), 0, "{}", w.trace.join("\n"));
    assert_eq!(w.connects.len(), 2, "no churn");
    w.run_for(secs(3));
    assert_eq!(w.reply_of(slow), "slow");
    assert!(w.closed.contains(&exit));
}
