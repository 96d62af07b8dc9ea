//! Fuzz target: a peer that starts from a settled, handshaken link (eager mode, a real
//! `LondSession` from the core on the other end; or idle in on-demand mode) and is fed what the input chooses:
//! client requests (plain and `encrypt:`, in one or two writes, over-long,
//! `close_connection_exit`), EOFs and losses, lond answers (echoes plain and `enc:`,
//! garbage, undecryptable `enc:`, empty), raw bytes, held and released links, closes, connects that succeed, are
//! refused or fail, backlogs, spool answers, time, USR1 and TERM. After every step the
//! oracle of `lonc_fuzz::world` and `lonc_fuzz::model` holds: one reply per request, in
//! order, to its own client; the queue matches the model; connections within
//! `loncMaxConnections`; silence after stop; at the end every client answered and closed.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lonc_core::config::{ConnectMode, LinkSettings};
use lonc_core::io::Input;
use lonc_fuzz::world::{Answer, World};

/// The knobs, from small ranges so that every deadline is reachable.
#[derive(Debug, Arbitrary)]
struct Knobs {
    on_demand: bool,
    pipeline: u8,
    max_connections: u8,
    transaction_secs: u8,
    idle_secs: u8,
    pong_delay: bool,
    max_attempts: u8,
    chunk: u8,
}

impl Knobs {
    fn settings(&self) -> LinkSettings {
        let secs = |s: u8, max: u8| Duration::from_secs(u64::from(s % max) + 1);
        LinkSettings {
            connect_mode: if self.on_demand {
                ConnectMode::OnDemand
            } else {
                ConnectMode::Eager
            },
            pipeline: usize::from(self.pipeline % 3) + 1,
            max_connections: usize::from(self.max_connections % 3) + 1,
            transaction_timeout: secs(self.transaction_secs, 10),
            idle_timeout: secs(self.idle_secs, 10),
            handshake_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            pong_delay: Duration::from_secs(u64::from(self.pong_delay)),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(3),
            max_attempts: u32::from(self.max_attempts % 4) + 1,
            delayed_rescan: Duration::from_secs(5),
            max_request: 64,
            max_reply: 256,
        }
    }
}

/// One step chosen by the input; indexes pick among what exists (clients, links, ...).
#[derive(Debug, Arbitrary)]
enum Op {
    Open,
    Request {
        client: u8,
        encrypt: bool,
        pad: u8,
        split: u8,
    },
    TooLong(u8),
    Reconnect(u8),
    Eof(u8),
    Gone(u8),
    ClientBacklog(u8, u16),
    Accept {
        conn: u8,
        hold: bool,
        refuse: bool,
    },
    ConnectFailed {
        conn: u8,
        local: bool,
    },
    Answer {
        link: u8,
        request: u8,
        how: How,
    },
    Inject(u8, Vec<u8>),
    Hold(u8, bool),
    LondCloses(u8),
    ConnBacklog(u8, u16),
    SpoolList(Vec<(u8, u8)>),
    SpoolListFailed(bool),
    SpoolRead(Option<Option<Vec<u8>>>),
    DeleteFailed(u8),
    Advance(u16),
    Deadline,
    Revive,
    Shutdown(u8),
}

/// How lond answers.
#[derive(Debug, Arbitrary)]
enum How {
    Echo,
    EchoEncrypted,
    Raw(Vec<u8>),
    Garbled(u8),
}

fuzz_target!(|input: (Knobs, Vec<Op>)| {
    let (knobs, ops) = input;
    let mut w = World::ready(knobs.settings(), usize::from(knobs.chunk % 8));
    for op in ops {
        match op {
            Op::Open => w.open_client(),
            Op::Request {
                client,
                encrypt,
                pad,
                split,
            } => w.request(client, encrypt, pad, split),
            Op::TooLong(c) => w.too_long(c),
            Op::Reconnect(c) => w.reconnect(c),
            Op::Eof(c) => w.eof(c),
            Op::Gone(c) => w.gone(c),
            Op::ClientBacklog(c, kib) => w.client_backlog(c, kib),
            Op::Accept { conn, hold, refuse } => w.accept(conn, hold, refuse),
            Op::ConnectFailed { conn, local } => w.connect_failed(conn, local),
            Op::Answer { link, request, how } => {
                let how = match how {
                    How::Echo => Answer::Echo,
                    How::EchoEncrypted => Answer::EchoEncrypted,
                    How::Raw(b) => Answer::Raw(b),
                    How::Garbled(n) => Answer::Garbled(n),
                };
                w.answer(link, request, how)
            }
            Op::Inject(l, bytes) => w.inject(l, bytes),
            Op::Hold(l, hold) => w.hold(l, hold),
            Op::LondCloses(l) => w.lond_closes(l),
            Op::ConnBacklog(l, kib) => w.conn_backlog(l, kib),
            Op::SpoolList(files) => w.spool_list(&files),
            Op::SpoolListFailed(local) => w.spool_list_failed(local),
            Op::SpoolRead(content) => w.spool_read(content),
            Op::DeleteFailed(i) => w.delete_failed(i),
            Op::Advance(tenths) => w.advance(Duration::from_millis(u64::from(tenths % 600) * 100)),
            Op::Deadline => w.to_deadline(),
            Op::Revive => w.input(Input::Revive),
            Op::Shutdown(secs) => {
                w.input(Input::Shutdown(Duration::from_secs(u64::from(secs % 20))))
            }
        }
    }
    w.finish(Duration::from_secs(1), Duration::from_secs(30));
});
