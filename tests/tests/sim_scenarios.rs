//! Named scenarios: one client peer against the core's lond responder through the
//! in-memory world of `lonc_tests::sim`, on a virtual clock, with scripted faults.

use std::time::{Duration, Instant};

use lonc_core::config::{ConnectMode, LinkSettings};
use lonc_core::io::Severity;
use lonc_core::peer::PeerState;
use lonc_tests::sim::{PEER_ID, World};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn world(settings: LinkSettings) -> World {
    let mut w = World::new(Instant::now(), settings, 7);
    w.settle();
    w
}

fn ready_world() -> World {
    let w = world(LinkSettings::default());
    assert_eq!(w.peer.state(), PeerState::Ready, "{}", w.trace.join("\n"));
    w
}

#[test]
fn handshake_then_plain_request() {
    let mut w = ready_world();
    assert_eq!(w.connects.len(), 1);
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
    assert!(w.closed.contains(&c));
    assert_eq!(w.lond_requests, vec![(b"ping".to_vec(), false)]);
    assert!(w.log.iter().any(|e| e.message.contains("ready")));
}

#[test]
fn refused_handshake_is_a_failed_attempt() {
    let mut w = World::new(Instant::now(), LinkSettings::default(), 1);
    w.script.refuse = true;
    w.settle();
    assert_eq!(w.peer.state(), PeerState::Backoff, "{}", w.trace.join("\n"));
    assert_eq!(w.peer.failed_attempts(), 1);
    assert!(w.log.iter().any(|e| e.message.contains("refused")));
    assert_eq!(w.lond_connections(), 0);
    let c = w.request(b"ping");
    assert_eq!(
        w.reply_of(c),
        "con_lost",
        "answered at once during the backoff"
    );
    let _ = refusing_world();
}

/// A world whose lond refuses from the very first connection.
fn refusing_world() -> World {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 3);
    w.script.refuse = true;
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), "con_lost");
    w
}

#[test]
fn wrong_echo_is_refused() {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 3);
    w.script.corrupt_echo = true;
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), "con_lost");
    assert_eq!(w.peer.state(), PeerState::Backoff);
    assert!(w.log.iter().any(|e| e.message.contains("refused")));
}

#[test]
fn every_handshake_step_times_out() {
    // stall after 0 lines: no challenge; 1: no ok; 2: no host line; 3: no buildkey.
    for (stall, step) in ["challenge", "ok", "pong", "ekey"].into_iter().enumerate() {
        let settings = LinkSettings {
            connect_mode: ConnectMode::OnDemand,
            ..LinkSettings::default()
        };
        let mut w = World::new(Instant::now(), settings.clone(), 5);
        w.script.stall_after_lines = Some(stall);
        let c = w.request(b"ping");
        w.run_for(settings.handshake_timeout - Duration::from_millis(1));
        assert!(w.replies_of(c).is_empty(), "stall {stall}: answered early");
        w.run_for(Duration::from_millis(1));
        assert_eq!(w.reply_of(c), "con_lost", "stall {stall}");
        assert_eq!(w.peer.state(), PeerState::Backoff, "stall {stall}");
        let said = format!("handshake timed out waiting for {step}");
        assert!(
            w.log.iter().any(|e| e.message.starts_with(&said)),
            "{:?}",
            w.log
        );
        assert_eq!(
            w.lond_connections(),
            0,
            "stall {stall}: connection left open"
        );
    }
}

#[test]
fn connect_timeout() {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 5);
    w.script.hang_connect = true;
    let c = w.request(b"ping");
    w.run_for(secs(5) - Duration::from_millis(1));
    assert!(w.replies_of(c).is_empty());
    w.run_for(Duration::from_millis(1));
    assert_eq!(w.reply_of(c), "con_lost");
    assert_eq!(w.peer.failed_attempts(), 1);
}

#[test]
fn encrypt_request_and_enc_reply() {
    let mut w = ready_world();
    let c = w.request(b"encrypt:echo:secret password");
    w.settle();
    assert_eq!(w.reply_of(c), "secret password");
    assert_eq!(
        w.lond_requests,
        vec![(b"echo:secret password".to_vec(), true)]
    );
    let c = w.request(b"eget:top secret");
    w.settle();
    assert_eq!(w.reply_of(c), "top secret");
    // The wire carried the encrypted form, not the text.
    assert!(
        w.trace
            .iter()
            .any(|t| t.contains("lond -> conn") && t.contains("enc:10:"))
    );
    // Nothing secret reached the log.
    assert!(!w.log.iter().any(|e| e.message.contains("secret")));
}

#[test]
fn replies_that_only_look_encrypted_pass_verbatim() {
    let mut w = ready_world();
    for raw in [
        "enc:xyz",
        "enc:3:abc",
        "enc:3:0123456789abcde",
        "encrypted",
        "enc:",
    ] {
        let c = w.request(format!("raw:{raw}").as_bytes());
        w.settle();
        assert_eq!(w.reply_of(c), raw);
    }
    assert_eq!(w.peer.state(), PeerState::Ready);
}

#[test]
fn enc_reply_with_a_length_past_its_data_is_a_protocol_error() {
    let mut w = ready_world();
    let c = w.request(b"raw:enc:99:0123456789abcdef");
    w.settle();
    assert_eq!(w.reply_of(c), "con_lost");
    assert!(w.log.iter().any(|e| e.message.contains("protocol error")));
    // A new connection is opened at once and works.
    assert_eq!(w.connects.len(), 2);
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
}

#[test]
fn a_late_reply_never_reaches_the_next_client() {
    let mut w = ready_world();
    let slow = w.request(b"sleep:400000:late");
    w.run_for(secs(300) - Duration::from_millis(1));
    assert!(w.replies_of(slow).is_empty());
    let waiting = w.request(b"echo:mine");
    w.run_for(Duration::from_millis(1));
    assert_eq!(w.reply_of(slow), "con_lost");
    w.run_for(secs(200));
    assert_eq!(w.reply_of(waiting), "mine");
    let after = w.request(b"echo:after");
    w.run_for(secs(200));
    assert_eq!(w.reply_of(after), "after");
    assert!(
        !w.trace
            .iter()
            .any(|t| t.contains("reply to") && t.contains("late"))
    );
    assert_eq!(w.connects.len(), 2);
}

#[test]
fn lond_closing_mid_request_gives_con_lost_and_reconnects() {
    let mut w = ready_world();
    let c = w.request(b"close");
    w.settle();
    assert_eq!(w.reply_of(c), "con_lost");
    assert_eq!(w.connects.len(), 2, "reconnected at once");
    assert_eq!(w.peer.failed_attempts(), 0);
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
}

#[test]
fn backoff_is_drawn_inside_min_max() {
    for seed in 0..20 {
        let settings = LinkSettings {
            max_attempts: 6,
            ..LinkSettings::default()
        };
        let mut w = World::new(Instant::now(), settings.clone(), seed);
        w.script.listening = false;
        let c = w.request(b"ping");
        assert_eq!(
            w.reply_of(c),
            "con_lost",
            "answered at once during the backoff"
        );
        w.run_for(secs(3600));
        let times = &w.connects;
        assert_eq!(times.len(), 6, "seed {seed}: {}", w.trace.join("\n"));
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= settings.retry_min && gap < settings.retry_max,
                "seed {seed}: {gap:?}"
            );
        }
        assert_eq!(w.peer.state(), PeerState::Dead);
    }
}

#[test]
fn dead_peer_answers_at_once_and_revives() {
    let settings = LinkSettings {
        retry_min: secs(1),
        retry_max: secs(2),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 9);
    w.script.listening = false;
    let c = w.request(b"close");
    w.run_for(secs(60));
    assert_eq!(w.reply_of(c), "con_lost");
    assert_eq!(w.peer.state(), PeerState::Dead);
    assert!(
        w.log
            .iter()
            .any(|e| e.severity == Severity::Critical && e.message.contains("dead"))
    );
    let before = w.connects.len();
    let c = w.request(b"ping");
    assert_eq!(w.reply_of(c), "con_lost", "answered at once");
    w.run_for(secs(3600));
    assert_eq!(w.connects.len(), before, "a dead peer does not retry");
    w.script.listening = true;
    w.revive();
    w.settle();
    assert_eq!(w.peer.state(), PeerState::Ready);
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
}

#[test]
fn requests_queued_during_the_handshake_are_served_after_it() {
    let settings = LinkSettings {
        pong_delay: secs(5),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 1);
    let a = w.request(b"echo:a");
    let b = w.request(b"echo:b");
    w.run_for(secs(4));
    assert!(w.replies_of(a).is_empty());
    assert_eq!(w.peer.state(), PeerState::Connecting);
    w.run_for(secs(1));
    assert_eq!(w.reply_of(a), "a");
    assert_eq!(w.reply_of(b), "b");
}

fn spool_world() -> World {
    let settings = LinkSettings {
        pong_delay: secs(1),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 1);
    w.spool
        .insert("30.1.9.put.msul1".into(), b"echo:third\n".to_vec());
    w.spool
        .insert("10.1.9.put.msul1".into(), b"echo:first\n".to_vec());
    w.spool.insert(
        "20.1.9.put.msul1".into(),
        b"encrypt:echo:second\nignored\n".to_vec(),
    );
    w.spool
        .insert("15.1.9.put.msul10".into(), b"echo:other peer\n".to_vec());
    w.spool
        .insert("16.1.9.put.xmsul1".into(), b"echo:not mine\n".to_vec());
    w
}

#[test]
fn delayed_files_go_first_in_name_order_and_are_deleted() {
    let mut w = spool_world();
    let c = w.request(b"echo:client");
    w.run_for(secs(2));
    assert_eq!(w.reply_of(c), "client");
    let sent: Vec<(String, bool)> = w
        .lond_requests
        .iter()
        .map(|(r, e)| (String::from_utf8_lossy(r).into_owned(), *e))
        .collect();
    assert_eq!(
        sent,
        vec![
            ("echo:first".to_string(), false),
            ("echo:second".to_string(), true),
            ("echo:third".to_string(), false),
            ("echo:client".to_string(), false),
        ]
    );
    let left: Vec<&String> = w.spool.keys().collect();
    assert_eq!(left, vec!["15.1.9.put.msul10", "16.1.9.put.xmsul1"]);
    let logged: Vec<String> = w
        .perm_log
        .iter()
        .map(|e| String::from_utf8_lossy(&e.line(1, "T")).into_owned())
        .collect();
    assert_eq!(
        logged,
        vec![
            "1:S:msul1:echo:first:T\n",
            "1:S:msul1:encrypt:echo:second:T\n",
            "1:S:msul1:echo:third:T\n"
        ]
    );
}

#[test]
fn delayed_files_stay_on_con_lost_and_timeout() {
    let mut w = World::new(Instant::now(), LinkSettings::default(), 1);
    w.settle();
    w.spool.insert("1.a.msul1".into(), b"close\n".to_vec());
    w.spool.insert("2.b.msul1".into(), b"silent\n".to_vec());
    w.spool.insert("3.c.msul1".into(), b"\n".to_vec());
    w.spool.insert("4.d.msul1".into(), b"echo:four\n".to_vec());
    // t=60: the rescan sends 1, lond closes (con_lost): it stays; the new connection goes
    // on with 2, which lond never answers.
    w.run_for(secs(61));
    assert!(w.spool.contains_key("1.a.msul1"));
    assert!(w.spool.contains_key("2.b.msul1"));
    assert!(w.perm_log.is_empty());
    // t=120: 2 times out and stays; the next connection skips 1 and 2, logs the empty 3
    // and delivers 4.
    w.run_for(secs(60));
    assert!(w.spool.contains_key("2.b.msul1"), "{}", w.trace.join("\n"));
    assert!(
        w.spool.contains_key("3.c.msul1"),
        "an empty file is left in place"
    );
    assert!(!w.spool.contains_key("4.d.msul1"), "{}", w.trace.join("\n"));
    assert!(
        w.log
            .iter()
            .any(|e| e.message.contains("3.c.msul1") && e.message.contains("empty"))
    );
    assert_eq!(w.perm_log.len(), 1);
    // Failed files are tried again at a later rescan.
    let sent_close = |w: &World| {
        w.lond_requests
            .iter()
            .filter(|(r, _)| r == b"close")
            .count()
    };
    let before = sent_close(&w);
    w.run_for(secs(120));
    assert!(sent_close(&w) > before);
    assert!(w.spool.contains_key("1.a.msul1"));
}

#[test]
fn delayed_file_dropped_in_while_running_goes_within_the_rescan() {
    let mut w = ready_world();
    w.spool
        .insert("5.x.msul1".into(), b"echo:late file\n".to_vec());
    w.run_for(secs(60));
    assert!(w.spool.is_empty());
    assert_eq!(w.perm_log.len(), 1);
}

#[test]
fn close_connection_exit_reopens_and_closes_the_client() {
    let mut w = ready_world();
    let c = w.request(b"close_connection_exit");
    w.settle();
    assert!(w.replies_of(c).is_empty());
    assert!(w.closed.contains(&c));
    assert_eq!(w.connects.len(), 2);
    assert_eq!(w.lond_connections(), 1);
    assert!(w.lond_requests.is_empty(), "not forwarded to lond");
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
}

#[test]
fn pipelining_and_several_connections_keep_client_order() {
    let settings = LinkSettings {
        pipeline: 3,
        max_connections: 3,
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 1);
    w.settle();
    let clients: Vec<_> = (0..4).map(|_| w.new_client()).collect();
    for (i, &c) in clients.iter().enumerate() {
        let mut data = Vec::new();
        for n in 0..6 {
            let delay = (7 * i + 13 * n) % 50;
            data.extend_from_slice(format!("sleep:{delay}:c{i}-{n}\n").as_bytes());
        }
        w.client_send(c, &data);
    }
    w.run_for(secs(5));
    for (i, &c) in clients.iter().enumerate() {
        let want: Vec<String> = (0..6).map(|n| format!("c{i}-{n}")).collect();
        assert_eq!(w.replies_of(c), want);
    }
    assert!(w.connects.len() > 1, "more connections were opened");
    assert!(w.connects.len() <= 3);
}

#[test]
fn a_request_too_long_is_answered_and_the_client_dropped() {
    let settings = LinkSettings {
        max_request: 100,
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 1);
    w.settle();
    let c = w.new_client();
    w.client_send(c, b"echo:fine\n");
    w.client_send(c, &[b'x'; 150]);
    w.settle();
    assert_eq!(w.replies_of(c), vec!["fine", "error:request_too_long"]);
    assert!(w.closed.contains(&c));
    let other = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(other), PEER_ID);
}

#[test]
fn same_script_same_trace() {
    let run = || {
        let settings = LinkSettings {
            retry_min: secs(1),
            retry_max: secs(9),
            ..LinkSettings::default()
        };
        let mut w = World::new(Instant::now(), settings, 42);
        w.settle();
        w.request(b"close");
        w.script.listening = false;
        w.run_for(secs(30));
        w.script.listening = true;
        w.request(b"echo:x");
        w.run_for(secs(30));
        w.trace.clone()
    };
    assert_eq!(run(), run());
}

#[test]
fn on_demand_connects_when_asked_and_closes_when_idle() {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        idle_timeout: secs(300),
        ..LinkSettings::default()
    };
    let mut w = world(settings);
    assert!(w.connects.is_empty(), "no connection before a request");
    assert_eq!(w.peer.state(), PeerState::Idle);
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
    assert_eq!(w.lond_connections(), 1);
    w.run_for(secs(299));
    assert_eq!(w.lond_connections(), 1);
    w.run_for(secs(1));
    assert_eq!(w.lond_connections(), 0, "closed after the idle timeout");
    assert_eq!(w.peer.state(), PeerState::Idle);
    let c = w.request(b"echo:again");
    w.settle();
    assert_eq!(w.reply_of(c), "again");
    assert_eq!(w.connects.len(), 2);
}

#[test]
fn on_demand_connects_for_a_delayed_file() {
    let settings = LinkSettings {
        connect_mode: ConnectMode::OnDemand,
        ..LinkSettings::default()
    };
    let mut w = world(settings);
    w.spool
        .insert("1.x.msul1".into(), b"echo:spooled\n".to_vec());
    w.run_for(secs(60));
    assert!(w.spool.is_empty(), "{}", w.trace.join("\n"));
    assert_eq!(w.connects.len(), 1);
}

#[test]
fn eager_extra_connections_close_when_idle_but_one_stays() {
    let settings = LinkSettings {
        max_connections: 2,
        ..LinkSettings::default()
    };
    let mut w = world(settings);
    let a = w.request(b"sleep:1000:a");
    let b = w.request(b"sleep:1000:b");
    w.run_for(secs(2));
    assert_eq!(w.reply_of(a), "a");
    assert_eq!(w.reply_of(b), "b");
    assert_eq!(w.lond_connections(), 2);
    w.run_for(secs(400));
    assert_eq!(w.lond_connections(), 1);
    assert_eq!(w.peer.state(), PeerState::Ready);
}

#[test]
fn shutdown_lets_requests_finish_then_says_exit() {
    let mut w = ready_world();
    let slow = w.request(b"sleep:2000:done");
    w.settle();
    w.peer.shutdown(w.now, secs(5));
    w.settle();
    let late = w.request(b"ping");
    assert_eq!(
        w.reply_of(late),
        "con_lost",
        "no new requests while stopping"
    );
    assert_eq!(w.peer.state(), PeerState::Stopping);
    w.run_for(secs(2));
    assert_eq!(w.reply_of(slow), "done");
    assert!(w.peer.is_stopped());
    assert_eq!(
        w.lond_requests.last().map(|r| r.0.clone()),
        Some(b"exit".to_vec())
    );
    assert_eq!(w.lond_connections(), 0);
    assert_eq!(w.peer.poll_timeout(), None);
}

#[test]
fn shutdown_grace_runs_out() {
    let mut w = ready_world();
    let slow = w.request(b"silent");
    w.settle();
    w.peer.shutdown(w.now, secs(5));
    w.run_for(secs(5));
    assert_eq!(w.reply_of(slow), "con_lost");
    assert!(w.peer.is_stopped());
}

#[test]
fn an_over_long_delayed_file_is_left_in_place_not_cut() {
    let settings = LinkSettings {
        max_request: 16,
        ..LinkSettings::default()
    };
    let mut w = world(settings);
    // The runtime hands over at most max + 1 bytes of a big file.
    w.spool
        .insert("1.a.msul1".into(), b"echo:0123456789ab".to_vec());
    w.spool.insert("2.b.msul1".into(), b"echo:fine\n".to_vec());
    w.run_for(secs(60));
    assert!(w.spool.contains_key("1.a.msul1"));
    assert!(!w.spool.contains_key("2.b.msul1"));
    assert_eq!(w.lond_requests, vec![(b"echo:fine".to_vec(), false)]);
    assert!(
        w.log
            .iter()
            .any(|e| e.message.contains("1.a.msul1") && e.message.contains("longer than 16"))
    );
}
