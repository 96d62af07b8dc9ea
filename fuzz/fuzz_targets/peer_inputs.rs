//! Fuzz target: a peer fed an arbitrary sequence of inputs (client bytes, lond bytes,
//! connects, failures, closes, spool answers, time jumps, revive, shutdown) never panics,
//! and its outputs only name connections it opened.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lonc_core::config::{ConnectMode, LinkSettings};
use lonc_core::io::{ClientId, ConnId, Output};
use lonc_core::peer::Peer;

#[derive(Debug, Arbitrary)]
enum Op {
    ClientData(u8, Vec<u8>),
    ClientEof(u8),
    ClientGone(u8),
    Connected(u8),
    ConnectFailed(u8),
    ConnData(u8, Vec<u8>),
    ConnClosed(u8),
    DelayedList(Vec<String>),
    DelayedRead(String, Option<Vec<u8>>),
    Advance(u16),
    Revive,
    Shutdown(u8),
}

fuzz_target!(|input: (bool, u8, Vec<Op>)| {
    let (on_demand, pipeline, ops) = input;
    let start = Instant::now();
    let mut now = start;
    let settings = LinkSettings {
        connect_mode: if on_demand {
            ConnectMode::OnDemand
        } else {
            ConnectMode::Eager
        },
        pipeline: usize::from(pipeline % 4) + 1,
        max_connections: 2,
        max_request: 64,
        max_reply: 256,
        ..LinkSettings::default()
    };
    let mut peer = Peer::new("peer", "own", "127.0.0.1", 5663, settings, 1, now);
    let mut opened: BTreeSet<ConnId> = BTreeSet::new();
    for op in ops {
        match op {
            Op::ClientData(c, d) => peer.handle_client_data(now, ClientId(c.into()), &d),
            Op::ClientEof(c) => peer.handle_client_eof(now, ClientId(c.into())),
            Op::ClientGone(c) => peer.handle_client_gone(now, ClientId(c.into())),
            Op::Connected(c) => peer.handle_connected(now, ConnId(c.into())),
            Op::ConnectFailed(c) => peer.handle_connect_failed(now, ConnId(c.into()), "fuzz"),
            Op::ConnData(c, d) => peer.handle_conn_data(now, ConnId(c.into()), &d),
            Op::ConnClosed(c) => peer.handle_conn_closed(now, ConnId(c.into())),
            Op::DelayedList(names) => peer.handle_delayed_list(now, &names),
            Op::DelayedRead(name, content) => match content {
                Some(c) => peer.handle_delayed_read(now, &name, Ok(&c)),
                None => peer.handle_delayed_read(now, &name, Err("unreadable")),
            },
            Op::Advance(s) => {
                now += Duration::from_millis(u64::from(s) * 100);
                peer.handle_timeout(now);
            }
            Op::Revive => peer.revive(now),
            Op::Shutdown(g) => peer.shutdown(now, Duration::from_secs(g.into())),
        }
        while let Some(out) = peer.poll_output() {
            match out {
                Output::Connect { conn, .. } => {
                    assert!(opened.insert(conn), "connection id reused");
                }
                Output::Transmit { conn, .. } => assert!(opened.contains(&conn)),
                _ => {}
            }
        }
        if let Some(t) = peer.poll_timeout() {
            assert!(t >= start);
        }
    }
});
