//! Fuzz target: a peer fed an arbitrary sequence of inputs (client bytes, lond bytes,
//! connects, failures, closes, unwritten backlogs, spool answers, time jumps, revive, shutdown) never panics,
//! and its outputs only name connections it opened.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lonc_core::config::{ConnectMode, LinkSettings};
use lonc_core::delayed::{DelayedEntry, EntryKind, FileStamp};
use lonc_core::io::{ClientId, ConnId, Input, Output};
use lonc_core::peer::Peer;

/// An input with small ids, so they meet; turned into the core's [`Input`].
#[derive(Debug, Arbitrary)]
enum Op {
    ClientOpened(u8),
    ClientData(u8, Vec<u8>),
    ClientEof(u8),
    ClientGone(u8),
    ClientBacklog(u8, u32),
    Connected(u8),
    ConnectFailed(u8),
    ConnectLocalError(u8),
    ConnData(u8, Vec<u8>),
    ConnClosed(u8),
    ConnBacklog(u8, u32),
    DelayedListFailed,
    DelayedListLocalError,
    DelayedList(Vec<(String, u8, u64, i64)>),
    DelayedRead(String, Option<Vec<u8>>),
    DelayedDeleteFailed(String),
    Timeout,
    Revive,
    Shutdown(u8),
}

impl From<Op> for Input {
    fn from(op: Op) -> Input {
        let client = |c: u8| ClientId(c.into());
        let conn = |c: u8| ConnId(c.into());
        match op {
            Op::ClientOpened(c) => Input::ClientOpened(client(c)),
            Op::ClientData(c, d) => Input::ClientData(client(c), d),
            Op::ClientEof(c) => Input::ClientEof(client(c)),
            Op::ClientGone(c) => Input::ClientGone(client(c)),
            Op::ClientBacklog(c, n) => Input::ClientBacklog(client(c), n as usize * 1024),
            Op::Connected(c) => Input::Connected(conn(c)),
            Op::ConnectFailed(c) => Input::ConnectFailed(conn(c), "fuzz".into()),
            Op::ConnectLocalError(c) => Input::ConnectLocalError(conn(c), "fuzz".into()),
            Op::ConnData(c, d) => Input::ConnData(conn(c), d),
            Op::ConnClosed(c) => Input::ConnClosed(conn(c)),
            Op::ConnBacklog(c, n) => Input::ConnBacklog(conn(c), n as usize * 1024),
            Op::DelayedListFailed => Input::DelayedListFailed("fuzz".into()),
            Op::DelayedListLocalError => Input::DelayedListLocalError("fuzz".into()),
            Op::DelayedList(entries) => Input::DelayedList(
                entries
                    .into_iter()
                    .map(|(name, kind, size, modified)| DelayedEntry {
                        name,
                        kind: EntryKind::ALL[usize::from(kind % 4)],
                        stamp: FileStamp {
                            size,
                            modified_ns: modified.into(),
                        },
                    })
                    .collect(),
            ),
            Op::DelayedDeleteFailed(name) => Input::delayed_delete_failed(name, "fuzz".into()),
            Op::DelayedRead(name, c) => {
                Input::delayed_read(name, c.ok_or_else(|| "unreadable".into()))
            }
            Op::Timeout => Input::Timeout,
            Op::Revive => Input::Revive,
            Op::Shutdown(g) => Input::Shutdown(Duration::from_secs(g.into())),
        }
    }
}

fuzz_target!(|input: (bool, u8, Vec<(u8, Op)>)| {
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
    for (pause, op) in ops {
        now += Duration::from_millis(u64::from(pause) * 100);
        peer.handle(now, op.into());
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
