//! The reference model behind the `peer_inputs` oracle: what each local client asked, in
//! order, which requests reached lond, and which reply lines each request may get. The
//! harness feeds it what it sends and what the peer outputs; every method panics (a fuzz
//! finding) when the peer broke a rule:
//!
//! - every request gets exactly one reply line, in its client's order: its own lond's
//!   answer or `con_lost` (`error:request_too_long` for an over-long line); a
//!   `close_connection_exit` gets none, only the close;
//! - no reply to a client that asked nothing, is closed, or never existed; a reply naming
//!   another client's request is not its own answer and fails;
//! - a request reaches lond at most once;
//! - a client is closed only when it will ask nothing more (EOF, `close_connection_exit`,
//!   an over-long line) or the peer stops, and never with a request unanswered.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use lonc_core::io::ClientId;
use lonc_core::peer::{CON_LOST, REQUEST_TOO_LONG};

/// What a client waits for, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// The reply to the request whose text (after `encrypt:`, if any) is this key.
    Request(Vec<u8>),
    /// `error:request_too_long`, then the close.
    TooLong,
    /// `close_connection_exit`: no reply line, only the close.
    Reconnect,
}

/// One open client as the model sees it.
#[derive(Debug, Default)]
struct Client {
    pending: VecDeque<Expect>,
    /// EOF, `close_connection_exit` or an over-long line: the peer reads nothing more.
    finished: bool,
}

/// The model; see the module docs.
#[derive(Debug, Default)]
pub struct Model {
    clients: BTreeMap<ClientId, Client>,
    /// Every request key ever made (so other lines sent to lond are told apart).
    known: HashSet<Vec<u8>>,
    /// Keys that have reached lond.
    sent: HashSet<Vec<u8>>,
    /// Key -> the reply line its client must get from lond's answer (LF included).
    answers: HashMap<Vec<u8>, Vec<u8>>,
    /// Keys whose reply may be any line: raw bytes were injected on their connection.
    tainted: HashSet<Vec<u8>>,
    next_seq: u64,
}

impl Model {
    /// The open clients, by id.
    pub fn clients(&self) -> Vec<ClientId> {
        self.clients.keys().copied().collect()
    }

    /// A client connected.
    pub fn open(&mut self, client: ClientId) {
        self.clients.insert(client, Client::default());
    }

    /// A new request line for `client` (LF included) and its key; see [`Model::asked`].
    pub fn new_request(
        &mut self,
        client: ClientId,
        encrypt: bool,
        pad: usize,
    ) -> (Vec<u8>, Vec<u8>) {
        self.next_seq += 1;
        let mut key = format!("c{}q{}", client.0, self.next_seq).into_bytes();
        key.resize(key.len() + pad, b'x');
        let mut line = if encrypt {
            b"encrypt:".to_vec()
        } else {
            Vec::new()
        };
        line.extend_from_slice(&key);
        line.push(b'\n');
        self.known.insert(key.clone());
        (line, key)
    }

    /// `client` wrote the last byte of the request `key`: it waits for its reply, if the
    /// peer still reads from the client.
    pub fn asked(&mut self, client: ClientId, key: Vec<u8>) {
        self.expect(client, Expect::Request(key), false);
    }

    /// `client` sent a line longer than `loncMaxRequest`.
    pub fn too_long(&mut self, client: ClientId) {
        self.expect(client, Expect::TooLong, true);
    }

    /// `client` sent `close_connection_exit`.
    pub fn reconnect(&mut self, client: ClientId) {
        self.expect(client, Expect::Reconnect, true);
    }

    fn expect(&mut self, client: ClientId, what: Expect, last: bool) {
        if let Some(c) = self.clients.get_mut(&client).filter(|c| !c.finished) {
            c.pending.push_back(what);
            c.finished |= last;
        }
    }

    /// `client` closed its writing side.
    pub fn eof(&mut self, client: ClientId) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.finished = true;
        }
    }

    /// `client` is gone (or was aborted by the peer): nothing more is owed to it.
    pub fn gone(&mut self, client: ClientId) {
        self.clients.remove(&client);
    }

    /// A line the peer wrote to lond, as lond reads it (decrypted). Returns the request
    /// key if it is a client request.
    pub fn sent_to_lond(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        if !self.known.contains(text) {
            return None;
        }
        assert!(
            self.sent.insert(text.to_vec()),
            "request {:?} sent to lond twice",
            String::from_utf8_lossy(text)
        );
        Some(text.to_vec())
    }

    /// lond answered request `key` so that its client must read `reply`.
    pub fn answered(&mut self, key: &[u8], reply: Vec<u8>) {
        self.answers.insert(key.to_vec(), reply);
    }

    /// Raw bytes went to the peer on a connection carrying `key`: any reply line will do.
    pub fn taint(&mut self, key: &[u8]) {
        self.tainted.insert(key.to_vec());
    }

    /// The peer wrote `data` to `client`.
    pub fn on_reply(&mut self, client: ClientId, data: &[u8]) {
        let c = self
            .clients
            .get_mut(&client)
            .unwrap_or_else(|| panic!("reply to client {} that is not open", client.0));
        let newlines = data.iter().filter(|b| **b == b'\n').count();
        assert!(
            newlines == 1 && data.ends_with(b"\n"),
            "a reply is one line: {data:?}"
        );
        match c.pending.pop_front() {
            None => panic!("reply to client {} that asked nothing", client.0),
            Some(Expect::Request(key)) => assert!(
                data == CON_LOST
                    || self.answers.get(&key).is_some_and(|a| a == data)
                    || self.tainted.contains(&key),
                "request {:?} got {:?}, lond answered {:?}",
                String::from_utf8_lossy(&key),
                String::from_utf8_lossy(data),
                self.answers.get(&key).map(|a| String::from_utf8_lossy(a))
            ),
            Some(Expect::TooLong) => assert_eq!(data, REQUEST_TOO_LONG),
            Some(Expect::Reconnect) => panic!("close_connection_exit got a reply line"),
        }
    }

    /// The peer closed `client` (`stopping`: the peer is shutting down).
    pub fn on_close(&mut self, client: ClientId, stopping: bool) {
        let mut c = self
            .clients
            .remove(&client)
            .unwrap_or_else(|| panic!("close of client {} that is not open", client.0));
        if c.pending.front() == Some(&Expect::Reconnect) {
            c.pending.pop_front();
        }
        assert!(
            c.pending.is_empty(),
            "client {} closed with {:?} unanswered",
            client.0,
            c.pending
        );
        assert!(
            c.finished || stopping,
            "client {} closed while it may still ask",
            client.0
        );
    }

    /// Requests that must be waiting in the peer's queue: those of open clients not yet
    /// sent to lond (a `close_connection_exit` waits there too until it is carried out).
    pub fn queued(&self) -> usize {
        let waits = |e: &Expect| match e {
            Expect::Request(key) => !self.sent.contains(key),
            Expect::Reconnect => true,
            Expect::TooLong => false,
        };
        self.clients
            .values()
            .map(|c| c.pending.iter().filter(|e| waits(e)).count())
            .sum()
    }

    /// True when every client was closed.
    pub fn all_closed(&self) -> bool {
        self.clients.is_empty()
    }
}
