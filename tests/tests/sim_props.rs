//! Property-based state-machine tests of the peer in the simulated world: arbitrary
//! client traffic (with `close_connection_exit` and over-long requests), lond faults
//! (refusal, stalls, hung connects, a corrupted echo, closes after some lines), time jumps,
//! spool files, revivals and a shutdown, under knobs that include several connections,
//! pipelining and an idle timeout shorter than the transaction timeout.
//!
//! After every operation: the peer never has more connections than `loncMaxConnections`
//! (nor lond), and its queue holds no more than the requests still owed a reply (and never
//! more than its bounds). At the end of every run:
//! - every request of a client that stayed is answered exactly once, in its order, with
//!   its own answer or `con_lost` (`error:request_too_long` for an over-long one, nothing
//!   after it or after `close_connection_exit`), and the client is closed;
//! - no reply reaches the wrong client;
//! - a delayed file is deleted only after lond received its request, and once the faults
//!   heal every delayed file is delivered (unless the peer was shut down), and an eager
//!   peer is connected again;
//! - no connection is attempted sooner than `retry_min` after a failed attempt (unless a
//!   revival or a link that came up came in between);
//! - the same operations give the same trace.
//!
//! A second property feeds the peer raw arbitrary inputs and checks it never panics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lonc_core::config::{ConnectMode, LinkSettings};
use lonc_core::delayed::{DelayedEntry, EntryKind, FileStamp};
use lonc_core::io::{ClientId, ConnId, Input};
use lonc_core::limits::{CLIENT_BACKLOG_LIMIT, CONN_BACKLOG_LIMIT};
use lonc_core::peer::{Peer, PeerState, QUEUE_LIMIT, REQUEST_TOO_LONG};
use lonc_tests::sim::World;
use proptest::prelude::*;

/// `PROPTEST_CASES` if set (for long soak runs), else the default for CI.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
enum Req {
    Echo,
    Sleep(u32),
    Encrypted,
    Eget,
    Close,
    Silent,
    /// `close_connection_exit`: no reply, the client is closed, nothing after it is read.
    Reconnect,
    /// A line longer than `loncMaxRequest`: `error:request_too_long`, the client closed.
    TooLong,
}

#[derive(Debug, Clone)]
enum Op {
    Client(Vec<Req>),
    Gone(usize),
    Advance(u32),
    Listening(bool),
    Refuse(bool),
    Stall(Option<usize>),
    Spool(u8, bool),
    Revive,
    HangConnect(bool),
    CorruptEcho(bool),
    CloseAfter(Option<usize>),
    /// TERM with this grace (seconds).
    Shutdown(u8),
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        4 => Just(Req::Echo),
        2 => (0u32..400_000).prop_map(Req::Sleep),
        1 => Just(Req::Encrypted),
        1 => Just(Req::Eget),
        1 => Just(Req::Close),
        1 => Just(Req::Silent),
        1 => Just(Req::Reconnect),
        1 => Just(Req::TooLong),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(req(), 1..4).prop_map(Op::Client),
        1 => (0usize..20).prop_map(Op::Gone),
        4 => (0u32..200_000).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Listening),
        1 => any::<bool>().prop_map(Op::Refuse),
        1 => proptest::option::of(0usize..4).prop_map(Op::Stall),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(n, e)| Op::Spool(n, e)),
        1 => Just(Op::Revive),
        1 => any::<bool>().prop_map(Op::HangConnect),
        1 => any::<bool>().prop_map(Op::CorruptEcho),
        1 => proptest::option::of(0usize..8).prop_map(Op::CloseAfter),
        1 => (0u8..30).prop_map(Op::Shutdown),
    ]
}

/// The longest request line in the property (an over-long one is longer).
const MAX_REQUEST: usize = 64;

fn settings() -> impl Strategy<Value = LinkSettings> {
    let knobs = (any::<bool>(), 1usize..4, 1usize..4, 0u64..3);
    // The idle timeout is often shorter than the transaction timeout, so that an idle
    // close races requests in flight.
    let timeouts = (
        prop_oneof![Just(1u64), Just(5), Just(300)],
        prop_oneof![Just(3u64), Just(60), Just(300)],
    );
    (knobs, timeouts).prop_map(
        |((on_demand, pipeline, conns, pong), (idle, transaction))| LinkSettings {
            connect_mode: if on_demand {
                ConnectMode::OnDemand
            } else {
                ConnectMode::Eager
            },
            pipeline,
            max_connections: conns,
            pong_delay: Duration::from_secs(pong),
            retry_min: Duration::from_secs(10),
            retry_max: Duration::from_secs(30),
            max_attempts: 3,
            idle_timeout: Duration::from_secs(idle),
            transaction_timeout: Duration::from_secs(transaction),
            max_request: MAX_REQUEST,
            ..LinkSettings::default()
        },
    )
}

/// What each client asked, in order, and the token its reply must carry.
type Expected = BTreeMap<ClientId, Vec<(Req, String)>>;

/// What a run left to check.
struct Run {
    world: World,
    expected: Expected,
    gone: Vec<ClientId>,
    shut_down: bool,
}

/// The replies `req` earns: none for `close_connection_exit`, one for any other.
fn replies_due(reqs: &[(Req, String)]) -> usize {
    reqs.iter()
        .filter(|(r, _)| !matches!(r, Req::Reconnect))
        .count()
}

/// The checks after every operation: connections within `loncMaxConnections` on both
/// sides, and a queue no longer than the requests still owed a reply.
fn check_step(w: &World, expected: &Expected, gone: &[ClientId], settings: &LinkSettings) {
    let trace = || w.trace.join("\n");
    assert!(
        w.peer.connection_count() <= settings.max_connections
            && w.lond_connections() <= settings.max_connections,
        "{} connections (lond sees {}), at most {} allowed\n{}",
        w.peer.connection_count(),
        w.lond_connections(),
        settings.max_connections,
        trace()
    );
    let owed: usize = expected
        .iter()
        .filter(|(c, _)| !gone.contains(c) && !w.closed.contains(c))
        .map(|(c, reqs)| reqs.len() - w.replies_of(*c).len())
        .sum();
    let queued = w.peer.queued();
    assert!(
        queued <= owed && queued <= QUEUE_LIMIT,
        "{queued} requests queued, {owed} owed a reply\n{}",
        trace()
    );
}

fn run(settings: &LinkSettings, seed: u64, ops: &[Op]) -> Run {
    let mut w = World::new(Instant::now(), settings.clone(), seed);
    let mut expected: Expected = BTreeMap::new();
    let mut order: Vec<ClientId> = Vec::new();
    let mut gone: Vec<ClientId> = Vec::new();
    let mut shut_down = false;
    for op in ops {
        match op {
            Op::Client(reqs) => {
                let c = w.new_client();
                let mut data = Vec::new();
                let mut want = Vec::new();
                for (n, r) in reqs.iter().enumerate() {
                    let token = format!("c{}-{n}", c.0);
                    let line = match r {
                        Req::Echo => format!("echo:{token}"),
                        Req::Sleep(ms) => format!("sleep:{ms}:{token}"),
                        Req::Encrypted => format!("encrypt:echo:{token}"),
                        Req::Eget => format!("eget:{token}"),
                        Req::Close => "close".to_string(),
                        Req::Silent => "silent".to_string(),
                        Req::Reconnect => "close_connection_exit".to_string(),
                        Req::TooLong => format!("echo:{}", "x".repeat(MAX_REQUEST)),
                    };
                    data.extend_from_slice(line.as_bytes());
                    data.push(b'\n');
                    want.push((r.clone(), token));
                    // Nothing after these is read.
                    if matches!(r, Req::Reconnect | Req::TooLong) {
                        break;
                    }
                }
                w.client_send(c, &data);
                w.peer.handle_client_eof(w.now, c);
                w.settle();
                expected.insert(c, want);
                order.push(c);
            }
            Op::Gone(i) => {
                if let Some(&c) = order.get(*i)
                    && !gone.contains(&c)
                    && !w.closed.contains(&c)
                {
                    w.client_gone(c);
                    gone.push(c);
                }
            }
            Op::Advance(ms) => w.run_for(Duration::from_millis(u64::from(*ms))),
            Op::Listening(b) => w.script.listening = *b,
            Op::Refuse(b) => w.script.refuse = *b,
            Op::Stall(s) => w.script.stall_after_lines = *s,
            Op::Spool(n, enc) => {
                let body = if *enc {
                    format!("encrypt:echo:spool{n}\n")
                } else {
                    format!("echo:spool{n}\n")
                };
                w.spool
                    .insert(format!("{n:03}.1.1.put.msul1"), body.into_bytes());
            }
            Op::Revive => w.revive(),
            Op::HangConnect(b) => w.script.hang_connect = *b,
            Op::CorruptEcho(b) => w.script.corrupt_echo = *b,
            Op::CloseAfter(n) => w.script.close_after_lines = *n,
            Op::Shutdown(grace) => {
                w.peer
                    .shutdown(w.now, Duration::from_secs(u64::from(*grace)));
                w.settle();
                shut_down = true;
            }
        }
        check_step(&w, &expected, &gone, settings);
    }
    // Heal everything and let the world run out.
    w.script.listening = true;
    w.script.refuse = false;
    w.script.stall_after_lines = None;
    w.script.hang_connect = false;
    w.script.corrupt_echo = false;
    w.script.close_after_lines = None;
    w.revive();
    // Long enough for every request to be served or time out one after another, and for
    // every delayed file to get its turn.
    let requests: usize = expected.values().map(Vec::len).sum();
    let worst = settings.transaction_timeout + settings.handshake_timeout + settings.retry_max;
    let rounds = (requests + w.spool.len() + 10) as u32;
    w.run_for(worst * rounds);
    check_step(&w, &expected, &gone, settings);
    Run {
        world: w,
        expected,
        gone,
        shut_down,
    }
}

fn check(run: &Run, settings: &LinkSettings) {
    let Run {
        world: w,
        expected,
        gone,
        shut_down,
    } = run;
    let trace = || w.trace.join("\n");
    let too_long =
        String::from_utf8_lossy(REQUEST_TOO_LONG.strip_suffix(b"\n").unwrap_or_default())
            .into_owned();
    for (c, want) in expected {
        let got = w.replies_of(*c);
        let due = replies_due(want);
        if gone.contains(c) {
            assert!(got.len() <= due, "gone client {} got too much", c.0);
        } else {
            assert_eq!(
                got.len(),
                due,
                "client {} answers {got:?}\n{}",
                c.0,
                trace()
            );
            assert!(w.closed.contains(c), "client {} not closed", c.0);
        }
        let answered = want.iter().filter(|(r, _)| !matches!(r, Req::Reconnect));
        for ((r, token), reply) in answered.zip(&got) {
            let ok = match r {
                Req::TooLong => *reply == too_long,
                Req::Close | Req::Silent => reply == "con_lost",
                _ => reply == "con_lost" || reply == token,
            };
            assert!(ok, "client {} got {reply:?} for {token}\n{}", c.0, trace());
        }
    }
    assert!(
        w.deleted_unanswered.is_empty(),
        "{:?}",
        w.deleted_unanswered
    );
    if *shut_down {
        assert!(w.peer.is_stopped(), "never stopped\n{}", trace());
        assert_eq!(w.lond_connections(), 0, "{}", trace());
    } else {
        let left: Vec<&String> = w.spool.keys().collect();
        assert!(
            left.is_empty(),
            "delayed files never delivered: {left:?}\n{}",
            trace()
        );
        if settings.connect_mode == ConnectMode::Eager {
            assert_eq!(w.peer.state(), PeerState::Ready, "{}", trace());
        }
    }
    for &f in &w.failures {
        for &c in &w.connects {
            // A revival, or a link that came up since, ends the backoff (a dropped link
            // is then replaced at once; extra connections wait out the rest).
            let revived = w
                .revivals
                .iter()
                .chain(&w.readies)
                .any(|&r| r >= f && r <= c);
            if c > f && !revived {
                assert!(
                    c - f >= settings.retry_min,
                    "connect {:?} after a failure\n{}",
                    c - f,
                    trace()
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn invariants_hold(settings in settings(), seed in any::<u64>(), ops in proptest::collection::vec(op(), 0..40)) {
        check(&run(&settings, seed, &ops), &settings);
    }

    #[test]
    fn same_ops_same_trace(settings in settings(), seed in any::<u64>(), ops in proptest::collection::vec(op(), 0..20)) {
        let (a, b) = (run(&settings, seed, &ops), run(&settings, seed, &ops));
        prop_assert_eq!(a.world.trace, b.world.trace);
    }
}

/// Raw inputs, not necessarily possible on a real network, each after a pause (ms).
fn raw() -> impl Strategy<Value = (u32, Input)> {
    let bytes = || {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "(init|ok|pong|ekey|refused|enc:[0-9]{1,3}:[0-9a-f]{0,32}|[0-9A-F]{1,20}|ping|con_lost)\n{0,2}"
                .prop_map(String::into_bytes),
        ]
    };
    let client = || (0u64..4).prop_map(ClientId);
    let conn = || (0u64..4).prop_map(ConnId);
    let input = prop_oneof![
        client().prop_map(Input::ClientOpened),
        (client(), bytes()).prop_map(|(c, d)| Input::ClientData(c, d)),
        client().prop_map(Input::ClientEof),
        client().prop_map(Input::ClientGone),
        conn().prop_map(Input::Connected),
        conn().prop_map(|c| Input::ConnectFailed(c, "x".into())),
        (conn(), bytes()).prop_map(|(c, d)| Input::ConnData(c, d)),
        conn().prop_map(Input::ConnClosed),
        (client(), 0usize..2).prop_map(|(c, n)| Input::ClientBacklog(c, n * CLIENT_BACKLOG_LIMIT)),
        (conn(), 0usize..2).prop_map(|(c, n)| Input::ConnBacklog(c, n * CONN_BACKLOG_LIMIT)),
        Just(Input::DelayedListFailed("Permission denied".into())),
        Just(Input::DelayedListLocalError("Too many open files".into())),
        proptest::collection::vec(("[0-9]{1,2}\\.(peer|peer2|x)", 0u8..4, 0u64..3), 0..4).prop_map(
            |entries| {
                Input::DelayedList(
                    entries
                        .into_iter()
                        .map(|(name, kind, size)| DelayedEntry {
                            name,
                            kind: EntryKind::ALL[usize::from(kind)],
                            stamp: FileStamp {
                                size,
                                modified_ns: 0,
                            },
                        })
                        .collect(),
                )
            }
        ),
        "[0-9]{1,2}\\.peer".prop_map(|n| Input::delayed_delete_failed(n, "denied".into())),
        conn().prop_map(|c| Input::ConnectLocalError(c, "Too many open files".into())),
        ("[0-9]{1,2}\\.peer", proptest::option::of(bytes()))
            .prop_map(|(n, c)| Input::delayed_read(n, c.ok_or_else(|| "unreadable".into()))),
        Just(Input::Timeout),
        Just(Input::Revive),
        any::<u8>().prop_map(|g| Input::Shutdown(Duration::from_secs(g.into()))),
    ];
    let pause = prop_oneof![3 => Just(0u32), 1 => 0u32..400_000];
    (pause, input)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn never_panics_on_raw_inputs(on_demand in any::<bool>(), pipeline in 1usize..3, inputs in proptest::collection::vec(raw(), 0..60)) {
        let start = Instant::now();
        let mut now = start;
        let settings = LinkSettings {
            connect_mode: if on_demand { ConnectMode::OnDemand } else { ConnectMode::Eager },
            pipeline,
            max_connections: 2,
            max_request: 32,
            max_reply: 64,
            ..LinkSettings::default()
        };
        let mut peer = Peer::new("peer", "own", "127.0.0.1", 5663, settings, 3, now);
        for (pause, input) in inputs {
            now += Duration::from_millis(pause.into());
            peer.handle(now, input);
            while peer.poll_output().is_some() {}
            prop_assert!(peer.queued() <= QUEUE_LIMIT);
            if let Some(t) = peer.poll_timeout() {
                prop_assert!(t >= start);
            }
            // poll_timeout tells the whole truth: before its deadline a timeout does
            // nothing and moves no deadline (no timer fires without waking the peer).
            let next = peer.poll_timeout();
            if next.is_none_or(|t| t > now) {
                peer.handle_timeout(now);
                prop_assert_eq!(peer.poll_output(), None);
                prop_assert_eq!(peer.poll_timeout(), next);
            }
        }
    }
}

/// Feeds `input` through the `handle_*` method it names, not through [`Peer::handle`].
fn handle_by_name(peer: &mut Peer, now: Instant, input: Input) {
    match input {
        Input::ClientOpened(c) => peer.handle_client_opened(now, c),
        Input::ClientData(c, d) => peer.handle_client_data(now, c, &d),
        Input::ClientEof(c) => peer.handle_client_eof(now, c),
        Input::ClientGone(c) => peer.handle_client_gone(now, c),
        Input::ClientBacklog(c, n) => peer.handle_client_backlog(now, c, n),
        Input::Connected(c) => peer.handle_connected(now, c),
        Input::ConnectFailed(c, why) => peer.handle_connect_failed(now, c, &why),
        Input::ConnectLocalError(c, why) => peer.handle_connect_local_error(now, c, &why),
        Input::ConnData(c, d) => peer.handle_conn_data(now, c, &d),
        Input::ConnClosed(c) => peer.handle_conn_closed(now, c),
        Input::ConnBacklog(c, n) => peer.handle_conn_backlog(now, c, n),
        Input::DelayedList(entries) => peer.handle_delayed_list(now, &entries),
        Input::DelayedListFailed(why) => peer.handle_delayed_list_failed(now, &why),
        Input::DelayedListLocalError(why) => peer.handle_delayed_list_local_error(now, &why),
        Input::DelayedRead(read) => {
            let content = read.content.as_deref().map_err(String::as_str);
            peer.handle_delayed_read(now, &read.name, content)
        }
        Input::DelayedDeleteFailed(failed) => {
            peer.handle_delayed_delete_failed(now, &failed.name, &failed.why)
        }
        Input::Timeout => peer.handle_timeout(now),
        Input::Revive => peer.revive(now),
        Input::Shutdown(grace) => peer.shutdown(now, grace),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    /// [`Peer::handle`] is the same as calling the method each input names: two peers fed
    /// the same raw inputs, one each way, give the same outputs and deadlines throughout.
    #[test]
    fn handle_is_the_named_methods(pipeline in 1usize..3, inputs in proptest::collection::vec(raw(), 0..60)) {
        let start = Instant::now();
        let mut now = start;
        let settings = LinkSettings {
            pipeline,
            max_connections: 2,
            max_request: 32,
            max_reply: 64,
            ..LinkSettings::default()
        };
        let mut by_enum = Peer::new("peer", "own", "127.0.0.1", 5663, settings.clone(), 3, now);
        let mut by_name = Peer::new("peer", "own", "127.0.0.1", 5663, settings, 3, now);
        for (pause, input) in inputs {
            now += Duration::from_millis(pause.into());
            by_enum.handle(now, input.clone());
            handle_by_name(&mut by_name, now, input);
            let outputs = |p: &mut Peer| std::iter::from_fn(|| p.poll_output()).collect::<Vec<_>>();
            prop_assert_eq!(outputs(&mut by_enum), outputs(&mut by_name));
            prop_assert_eq!(by_enum.poll_timeout(), by_name.poll_timeout());
            prop_assert_eq!(by_enum.state(), by_name.state());
        }
    }
}
