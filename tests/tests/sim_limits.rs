//! Scenarios for the limits and deadlines the core sets and its runtimes only apply
//! (`lonc_core::limits`): a client that does not read its replies, a lond that does not
//! read its requests, how long a closing connection may flush, the shutdown grace, a
//! spool that cannot be listed, and a connect the core gave up on. The world reports what
//! a runtime would (bytes left unwritten) after each drain, as a driver does.

use std::time::{Duration, Instant};

use lonc_core::config::LinkSettings;
use lonc_core::io::{ConnId, Severity};
use lonc_core::limits::{CLIENT_BACKLOG_LIMIT, CLOSE_LINGER, CONN_BACKLOG_LIMIT, SHUTDOWN_GRACE};
use lonc_core::peer::PeerState;
use lonc_tests::sim::{PEER_ID, World};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn logged(w: &World, severity: Severity, text: &str) -> usize {
    let hits = w.log.iter().filter(|e| e.message.contains(text));
    hits.filter(|e| e.severity == severity).count()
}

#[test]
fn a_client_that_does_not_read_is_dropped_at_the_backlog_limit() {
    let mut w = World::ready(LinkSettings::default());
    let greedy = w.new_client();
    w.not_reading.insert(greedy, 0);
    let reply = CLIENT_BACKLOG_LIMIT / 4;
    let line = format!("echo:{}\n", "x".repeat(reply));
    w.client_send(greedy, line.repeat(6).as_bytes());
    w.settle();
    // Four replies fill the limit; the fifth finds it full and the client is dropped.
    assert!(w.aborted.contains(&greedy), "{}", w.trace.join("\n"));
    // The sixth was already on its way with the fifth reply; its reply is discarded.
    assert_eq!(w.replies_of(greedy).len(), 5);
    assert_eq!(w.lond_requests.len(), 6);
    assert_eq!(
        logged(&w, Severity::Warning, "does not read its replies"),
        1
    );
    assert!(
        !w.closed.contains(&greedy),
        "dropped, not closed after its replies"
    );
    // Others are served as before.
    let other = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(other), PEER_ID);
}

#[test]
fn a_client_behind_less_than_the_limit_is_kept() {
    let mut w = World::ready(LinkSettings::default());
    let slow = w.new_client();
    w.not_reading.insert(slow, 0);
    w.client_send(slow, "echo:a\necho:b\necho:c\n".as_bytes());
    w.settle();
    assert_eq!(w.replies_of(slow), ["a", "b", "c"]);
    assert!(w.aborted.is_empty());
}

#[test]
fn a_lond_that_does_not_read_loses_its_connection_for_that_reason() {
    let settings = LinkSettings {
        pipeline: 2,
        max_request: 2 * CONN_BACKLOG_LIMIT,
        ..LinkSettings::default()
    };
    let mut w = World::ready(settings);
    w.script.lond_not_reading = true;
    let big = format!("echo:{}", "x".repeat(CONN_BACKLOG_LIMIT));
    let a = w.request(big.as_bytes());
    let b = w.request(b"ping");
    w.settle();
    w.script.lond_not_reading = false;
    w.settle();
    assert_eq!(w.reply_of(a), "con_lost", "{}", w.trace.join("\n"));
    assert_eq!(w.reply_of(b), "con_lost");
    assert_eq!(
        logged(&w, Severity::Warning, "lond does not read its requests"),
        1
    );
    assert_eq!(logged(&w, Severity::Warning, "closed by lond"), 0);
    assert_eq!(
        w.conn_closes,
        [(ConnId(0), Duration::ZERO)],
        "closed at once"
    );
    // A new connection replaces it at once: not a failed attempt.
    assert_eq!(w.connects.len(), 2);
    assert_eq!(w.peer.failed_attempts(), 0);
}

#[test]
fn a_closing_connection_may_flush_unless_lond_is_gone() {
    let mut w = World::ready(LinkSettings::default());
    let c = w.request(b"close_connection_exit");
    w.settle();
    assert!(w.closed.contains(&c));
    assert_eq!(w.conn_closes, [(ConnId(0), CLOSE_LINGER)]);
    let c = w.request(b"close");
    w.settle();
    assert_eq!(w.reply_of(c), "con_lost");
    assert_eq!(w.conn_closes[1], (ConnId(1), Duration::ZERO));
}

#[test]
fn shutdown_grace_is_the_cores_and_exit_may_flush() {
    let mut w = World::ready(LinkSettings::default());
    let slow = w.request(b"silent");
    w.settle();
    w.peer.shutdown(w.now, SHUTDOWN_GRACE);
    w.run_for(SHUTDOWN_GRACE - Duration::from_millis(1));
    assert!(w.replies_of(slow).is_empty(), "still in its grace");
    w.run_for(Duration::from_millis(1));
    assert_eq!(w.reply_of(slow), "con_lost");
    assert!(w.peer.is_stopped());
    assert_eq!(w.conn_closes, [(ConnId(0), CLOSE_LINGER)], "exit may flush");
}

#[test]
fn a_spool_that_cannot_be_listed_is_logged_once_and_retried_every_rescan() {
    let mut w = World::new(Instant::now(), LinkSettings::default(), 7);
    w.spool.insert("1.a.msul1".into(), b"echo:first\n".to_vec());
    w.script.list_fails = Some("Permission denied".into());
    w.settle();
    assert_eq!(w.peer.state(), PeerState::Ready);
    // Client requests are not held up by the failed round.
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
    w.run_for(secs(200));
    let text = "cannot list the delayed spool: Permission denied";
    assert_eq!(logged(&w, Severity::Critical, text), 1, "once per episode");
    assert!(w.spool.contains_key("1.a.msul1"));
    // Listable again: the next rescan delivers it.
    w.script.list_fails = None;
    w.run_for(secs(60));
    assert!(!w.spool.contains_key("1.a.msul1"), "{}", w.trace.join("\n"));
    // A new episode is logged again.
    w.script.list_fails = Some("Permission denied".into());
    w.run_for(secs(60));
    assert_eq!(logged(&w, Severity::Critical, text), 2);
}

#[test]
fn a_connect_the_core_gave_up_on_is_not_awaited() {
    let settings = LinkSettings {
        connect_timeout: secs(1),
        ..LinkSettings::default()
    };
    let mut w = World::new(Instant::now(), settings, 7);
    w.script.hang_connect = true;
    w.settle();
    assert!(w.peer.awaits_connect(ConnId(0)));
    w.run_for(secs(1));
    assert!(!w.peer.awaits_connect(ConnId(0)), "{}", w.trace.join("\n"));
    assert_eq!(
        w.conn_closes[0].0,
        ConnId(0),
        "abandoned: closed if it ever opens"
    );
}

#[test]
fn a_backlog_of_exactly_the_limit_is_too_much() {
    let mut w = World::ready(LinkSettings::default());
    let c = w.new_client();
    w.peer
        .handle_client_backlog(w.now, c, CLIENT_BACKLOG_LIMIT - 1);
    w.settle();
    assert!(w.aborted.is_empty(), "one byte short of the limit: kept");
    w.peer.handle_client_backlog(w.now, c, CLIENT_BACKLOG_LIMIT);
    w.settle();
    assert!(w.aborted.contains(&c), "at the limit: dropped");

    let conn = ConnId(0);
    w.peer
        .handle_conn_backlog(w.now, conn, CONN_BACKLOG_LIMIT - 1);
    w.settle();
    assert!(
        w.conn_closes.is_empty(),
        "one byte short of the limit: kept"
    );
    w.peer.handle_conn_backlog(w.now, conn, CONN_BACKLOG_LIMIT);
    w.settle();
    assert_eq!(
        w.conn_closes,
        [(conn, Duration::ZERO)],
        "at the limit: lost"
    );
}

#[test]
fn a_spool_listing_short_of_file_descriptors_is_retried_at_the_next_rescan_unlogged() {
    let mut w = World::new(Instant::now(), LinkSettings::default(), 7);
    w.spool.insert("1.a.msul1".into(), b"echo:first\n".to_vec());
    w.script.list_local_error = true;
    w.settle();
    assert_eq!(w.peer.state(), PeerState::Ready);
    // Client requests are not held up by the failed round.
    let c = w.request(b"ping");
    w.settle();
    assert_eq!(w.reply_of(c), PEER_ID);
    assert!(w.spool.contains_key("1.a.msul1"));
    w.script.list_local_error = false;
    w.run_for(LinkSettings::default().delayed_rescan);
    assert!(!w.spool.contains_key("1.a.msul1"), "{}", w.trace.join("\n"));
    let alarms = w.log.iter().filter(|e| e.severity != Severity::Info);
    assert_eq!(alarms.count(), 0, "the runtime's alarm reports shortages");
}
