//! The `peer_inputs` harness: one [`Peer`] wired to real [`LondSession`]s from the core,
//! a spool that answers when the fuzz input says so, and the [`Model`] that judges every
//! output. [`World::ready`] starts from a settled, handshaken link (eager mode); each
//! [`World::step`] feeds one input, carries out every output (bytes to a lond session go
//! in at once; lond's bytes come back as later inputs, unless the link is held), and checks
//! the invariants: connections within `loncMaxConnections`, the peer's own count of them,
//! its queue against the model, and silence once stopped (but for a log line).
//!
//! What the clients and the clock do is here; what lond and the network do is
//! `world/lond_ops.rs`, the spool's answers `world/spool_ops.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lonc_core::cipher::{Decoded, LinkCipher};
use lonc_core::config::LinkSettings;
use lonc_core::io::{ClientId, ConnId, Input, Output};
use lonc_core::key::buildkey;
use lonc_core::line::chomp;
use lonc_core::lond::{LondEvent, LondSession};
use lonc_core::peer::{Peer, PeerState, QUEUE_BYTES_LIMIT, QUEUE_LIMIT};

use crate::model::Model;

mod lond_ops;
mod spool_ops;

pub use lond_ops::Answer;

/// The peer's id (lond's own id) and this server's id.
const PEER_ID: &str = "peer";
const OWN_ID: &str = "own";
/// The buildkey every lond session hands out.
const BUILDKEY: &str = "31416A0AFF00000DCBAB7A8577";

/// lond's side of one connection.
#[derive(Debug)]
struct Link {
    session: LondSession,
    /// Requests lond read and has not answered: (session id, line).
    requests: Vec<(u64, Vec<u8>)>,
    /// While held, lond's bytes wait here instead of reaching the peer.
    held: Option<Vec<Bytes>>,
    /// Raw bytes were injected: replies no longer match requests.
    tainted: bool,
    /// Client request keys this connection carried.
    carried: Vec<Vec<u8>>,
}

/// The peer, its londs, its spool and the model; see the module docs.
pub struct World {
    peer: Peer,
    /// The fuzzed clock.
    pub now: Instant,
    max_connections: usize,
    max_request: usize,
    /// Lond's bytes reach the peer in chunks of this size (0: whole).
    chunk: usize,
    cipher: LinkCipher,
    model: Model,
    next_client: u64,
    /// Connections the peer asked for and the fuzz input has not answered yet.
    dialing: Vec<ConnId>,
    /// Connections open from the peer's point of view (asked for, not closed or failed).
    open: BTreeMap<ConnId, Option<Link>>,
    /// Spool questions not answered yet.
    list_asked: bool,
    reads: VecDeque<String>,
    deleted: Vec<String>,
    /// Inputs waiting to be fed, in order.
    inputs: VecDeque<Input>,
}

impl World {
    /// A peer with `settings`, in eager mode its first connection accepted, handshaken
    /// and its first spool round answered empty: the settled ready state. (In on-demand
    /// mode it starts idle.)
    pub fn ready(settings: LinkSettings, chunk: usize) -> World {
        let now = Instant::now();
        let mut w = World {
            max_connections: settings.max_connections,
            max_request: settings.max_request,
            peer: Peer::new(PEER_ID, OWN_ID, "127.0.0.1", 5663, settings, 7, now),
            now,
            chunk,
            cipher: LinkCipher::new(&buildkey(
                PEER_ID,
                OWN_ID,
                format!("{BUILDKEY}\n").as_bytes(),
            )),
            model: Model::default(),
            next_client: 0,
            dialing: Vec::new(),
            open: BTreeMap::new(),
            list_asked: false,
            reads: VecDeque::new(),
            deleted: Vec::new(),
            inputs: VecDeque::new(),
        };
        w.drain();
        if w.dialing.is_empty() {
            return w;
        }
        w.accept(0, false, false);
        if w.peer.state() != PeerState::Ready {
            w.to_deadline(); // the pong delay
        }
        if w.list_asked {
            w.spool_list(&[]);
        }
        assert_eq!(w.peer.state(), PeerState::Ready, "the start is not ready");
        w
    }

    /// Feeds `input` and everything it leads to, checking the invariants after each.
    pub fn step(&mut self, input: Input) {
        self.inputs.push_back(input);
        self.feed();
    }

    /// Feeds the inputs that wait, in order (lond's bytes, after an answer or a release).
    fn feed(&mut self) {
        while let Some(input) = self.inputs.pop_front() {
            let stopped = self.peer.is_stopped();
            self.peer.handle(self.now, input);
            if stopped {
                // Only a log line: a delete asked for in the last drain may still fail.
                while let Some(out) = self.peer.poll_output() {
                    assert!(matches!(out, Output::Log(_)), "{out:?} after stop");
                }
            }
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.peer.poll_output() {
            self.carry_out(out);
        }
        self.check();
    }

    fn check(&self) {
        assert!(
            self.open.len() <= self.max_connections,
            "too many connections"
        );
        assert_eq!(self.peer.connection_count(), self.open.len());
        let queued = self.peer.queued();
        assert!(queued <= QUEUE_LIMIT);
        let bytes = self.peer.queued_bytes();
        assert!(
            bytes <= QUEUE_BYTES_LIMIT.max(self.max_request),
            "queue bytes bound"
        );
        assert!(
            bytes <= queued * self.max_request,
            "queue bytes not taken back"
        );
        match self.peer.state() {
            PeerState::Stopping | PeerState::Stopped => assert_eq!(queued, 0),
            _ => assert_eq!(queued, self.model.queued(), "queued requests"),
        }
        if let Some(t) = self.peer.poll_timeout() {
            assert!(
                t + Duration::from_secs(3600) >= self.now,
                "deadline far in the past"
            );
        }
    }

    fn carry_out(&mut self, out: Output) {
        let stopping = matches!(self.peer.state(), PeerState::Stopping | PeerState::Stopped);
        match out {
            Output::Connect { conn, .. } => {
                assert!(
                    self.open.insert(conn, None).is_none(),
                    "connection id reused"
                );
                self.dialing.push(conn);
            }
            Output::Transmit { conn, data } => self.lond_reads(conn, &data),
            Output::CloseConn { conn, .. } => {
                assert!(
                    self.open.remove(&conn).is_some(),
                    "close of a connection not open"
                );
                self.dialing.retain(|c| *c != conn);
            }
            Output::Reply { client, data } => self.model.on_reply(client, &data),
            Output::CloseClient { client } => self.model.on_close(client, stopping),
            Output::AbortClient { client } => self.model.gone(client),
            Output::ListDelayed => self.list_asked = true,
            Output::ReadDelayed { name } => self.reads.push_back(name),
            Output::DeleteDelayed { name } => self.deleted.push(name),
            Output::PermLog(_) | Output::Log(_) => {}
        }
    }

    /// The peer wrote `data` on `conn`: the model learns which requests left, lond reads it.
    fn lond_reads(&mut self, conn: ConnId, data: &[u8]) {
        let Some(slot) = self.open.get_mut(&conn) else {
            panic!("transmit on connection {} that is not open", conn.0);
        };
        let link = slot
            .as_mut()
            .expect("transmit before the connection opened");
        for line in data.split_inclusive(|b| *b == b'\n') {
            let text = chomp(line);
            let plain = match self.cipher.decrypt_line(text) {
                Ok(Decoded::Decrypted(p)) => p,
                _ => text.to_vec(),
            };
            if let Some(key) = self.model.sent_to_lond(&plain) {
                if link.tainted {
                    self.model.taint(&key);
                }
                link.carried.push(key);
            }
        }
        link.session.handle_data(data);
        self.pump(conn);
    }

    /// Carries out lond's events on `conn`.
    fn pump(&mut self, conn: ConnId) {
        let Some(Some(link)) = self.open.get_mut(&conn) else {
            return;
        };
        while let Some(ev) = link.session.poll_event() {
            match ev {
                LondEvent::Transmit(b) => match &mut link.held {
                    Some(held) => held.push(b),
                    None => push_chunked(&mut self.inputs, conn, &b, self.chunk),
                },
                LondEvent::Request { id, line, .. } => link.requests.push((id, line)),
                LondEvent::Close => self.inputs.push_back(Input::ConnClosed(conn)),
            }
        }
    }

    fn pick<T: Copy>(list: &[T], i: u8) -> Option<T> {
        (!list.is_empty()).then(|| list[usize::from(i) % list.len()])
    }

    fn links(&self) -> Vec<ConnId> {
        self.open
            .iter()
            .filter_map(|(c, l)| l.as_ref().map(|_| *c))
            .collect()
    }

    /// Opens a new client.
    pub fn open_client(&mut self) {
        if self.peer.is_stopped() {
            return;
        }
        self.next_client += 1;
        let client = ClientId(self.next_client);
        self.model.open(client);
        self.step(Input::ClientOpened(client));
    }

    fn client(&self, i: u8) -> Option<ClientId> {
        Self::pick(&self.model.clients(), i)
    }

    /// Client `i` sends a request (split in two writes at `split`).
    pub fn request(&mut self, i: u8, encrypt: bool, pad: u8, split: u8) {
        let Some(c) = self.client(i) else { return };
        let (line, key) = self.model.new_request(c, encrypt, usize::from(pad % 40));
        let at = usize::from(split) % line.len();
        if at > 0 {
            self.step(Input::ClientData(c, line[..at].to_vec()));
        }
        self.model.asked(c, key);
        self.step(Input::ClientData(c, line[at..].to_vec()));
    }

    /// Client `i` sends a line one byte over `loncMaxRequest`.
    pub fn too_long(&mut self, i: u8) {
        let Some(c) = self.client(i) else { return };
        self.model.too_long(c);
        let mut line = vec![b'y'; self.max_request + 1];
        line.push(b'\n');
        self.step(Input::ClientData(c, line));
    }

    /// Client `i` sends `close_connection_exit`.
    pub fn reconnect(&mut self, i: u8) {
        let Some(c) = self.client(i) else { return };
        self.model.reconnect(c);
        self.step(Input::ClientData(c, b"close_connection_exit\n".to_vec()));
    }

    /// Client `i` closes its writing side.
    pub fn eof(&mut self, i: u8) {
        let Some(c) = self.client(i) else { return };
        self.model.eof(c);
        self.step(Input::ClientEof(c));
    }

    /// Client `i` is gone.
    pub fn gone(&mut self, i: u8) {
        let Some(c) = self.client(i) else { return };
        self.model.gone(c);
        self.step(Input::ClientGone(c));
    }

    /// Client `i` has `kib` KiB of replies unread.
    pub fn client_backlog(&mut self, i: u8, kib: u16) {
        let Some(c) = self.client(i) else { return };
        self.step(Input::ClientBacklog(c, usize::from(kib) * 1024));
    }

    /// Time passes by `by`, then the peer's deadline is checked.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.step(Input::Timeout);
    }

    /// Time jumps to the peer's next deadline, if any, which fires.
    pub fn to_deadline(&mut self) {
        if let Some(t) = self.peer.poll_timeout() {
            self.now = self.now.max(t);
        }
        self.step(Input::Timeout);
    }

    /// The peer is stopped with `grace` (unless it was before); time runs past `wait`,
    /// more than any grace given. Then every client must have been answered and closed,
    /// and the peer must stay silent.
    pub fn finish(&mut self, grace: Duration, wait: Duration) {
        self.step(Input::Shutdown(grace));
        self.advance(wait);
        assert!(self.peer.is_stopped(), "not stopped after the grace period");
        assert!(self.model.all_closed(), "clients left open after stop");
        assert!(self.open.is_empty(), "connections left open after stop");
        self.step(Input::ConnData(ConnId(0), b"ok\n".to_vec()));
        self.step(Input::ClientData(ClientId(1), b"ping\n".to_vec()));
        self.step(Input::Revive);
        self.advance(Duration::from_secs(3600));
    }

    /// Passes an input straight to the peer (USR1, shutdown).
    pub fn input(&mut self, input: Input) {
        self.step(input);
    }
}

/// Queues lond's bytes `b` for `conn`, cut in pieces of `chunk` bytes (0: whole).
fn push_chunked(inputs: &mut VecDeque<Input>, conn: ConnId, b: &[u8], chunk: usize) {
    let size = if chunk == 0 { b.len().max(1) } else { chunk };
    for piece in b.chunks(size) {
        inputs.push_back(Input::ConnData(conn, piece.to_vec()));
    }
}
