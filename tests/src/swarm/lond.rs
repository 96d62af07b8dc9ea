//! One peer's lond in the many-peer world: it listens or not, refuses this client or not,
//! hangs or not, and crashes and restarts (each incarnation has a new challenge and a new
//! buildkey). Each accepted link is one [`LondSession`] of the core.

use std::collections::BTreeMap;

use lonc_core::lond::{LondConfig, LondEvent, LondSession};
use rand::Rng;
use rand::rngs::SmallRng;

use crate::netem::LinkId;

/// One accepted connection, seen from lond.
#[derive(Debug)]
struct Session {
    lond: LondSession,
    /// lond hung on it: it reads nothing more.
    hung: bool,
}

/// A peer's lond: see the module docs.
#[derive(Debug)]
pub struct Lond {
    /// The peer's host id (lond's own).
    pub peer_id: String,
    /// lonc's host id.
    pub client_id: String,
    /// The process runs (else connections are refused).
    pub up: bool,
    /// It refuses lonc (`refused` to `init`).
    pub refuse: bool,
    /// New connections hang: accepted, never read.
    pub hang: bool,
    /// Its host does not answer: connection requests are lost.
    pub unreachable: bool,
    /// How many times it started.
    pub incarnation: u32,
    challenge: String,
    buildkey: String,
    sessions: BTreeMap<LinkId, Session>,
}

impl Lond {
    /// A running lond for `peer_id`, taking lonc `client_id`.
    pub fn new(peer_id: &str, client_id: &str, rng: &mut SmallRng) -> Self {
        let mut lond = Lond {
            peer_id: peer_id.to_owned(),
            client_id: client_id.to_owned(),
            up: false,
            refuse: false,
            hang: false,
            unreachable: false,
            incarnation: 0,
            challenge: String::new(),
            buildkey: String::new(),
            sessions: BTreeMap::new(),
        };
        lond.start(rng);
        lond
    }

    /// The process starts (again): a new challenge and a new buildkey.
    pub fn start(&mut self, rng: &mut SmallRng) {
        self.up = true;
        self.incarnation += 1;
        self.challenge = format!(
            "{}{}",
            rng.random_range(100..99_999u32),
            rng.random_range(1_000_000_000..2_000_000_000u64)
        );
        let len = rng.random_range(16..40);
        self.buildkey = (0..len)
            .map(|_| char::from(b"0123456789ABCDEF"[rng.random_range(0..16)]))
            .collect();
    }

    /// The process dies: every session is gone. Returns their links.
    pub fn crash(&mut self) -> Vec<LinkId> {
        self.up = false;
        std::mem::take(&mut self.sessions).into_keys().collect()
    }

    /// A connection request came: true if it is accepted (a session starts).
    pub fn accept(&mut self, link: LinkId) -> bool {
        if !self.up {
            return false;
        }
        let cfg = LondConfig {
            own_id: self.peer_id.clone(),
            client_id: self.client_id.clone(),
            challenge: self.challenge.clone(),
            buildkey: self.buildkey.clone(),
            refuse: self.refuse,
            max_line: 1 << 30,
        };
        let session = Session {
            lond: LondSession::new(cfg),
            hung: self.hang,
        };
        self.sessions.insert(link, session);
        true
    }

    /// Bytes from lonc on `link`: what lond does about them.
    pub fn data(&mut self, link: LinkId, data: &[u8]) -> Vec<LondEvent> {
        let Some(s) = self.sessions.get_mut(&link) else {
            return Vec::new();
        };
        if s.hung {
            return Vec::new();
        }
        s.lond.handle_data(data);
        self.events(link)
    }

    /// lonc closed or reset `link`.
    pub fn closed(&mut self, link: LinkId) {
        self.sessions.remove(&link);
    }

    /// lond closes `link` itself.
    pub fn close(&mut self, link: LinkId) -> bool {
        self.sessions.remove(&link).is_some()
    }

    /// The application answers request `id` on `link`: what lond does then. `None` if the
    /// session is gone or was not waiting for it.
    pub fn reply(
        &mut self,
        link: LinkId,
        id: u64,
        data: &[u8],
        encrypted: bool,
    ) -> Option<Vec<LondEvent>> {
        let s = self.sessions.get_mut(&link)?;
        let filled = if encrypted {
            s.lond.reply_encrypted(id, data)
        } else {
            s.lond.reply(id, data)
        };
        filled.then(|| self.events(link))
    }

    /// Links with a session, in order.
    pub fn links(&self) -> Vec<LinkId> {
        self.sessions.keys().copied().collect()
    }

    fn events(&mut self, link: LinkId) -> Vec<LondEvent> {
        let mut out = Vec::new();
        if let Some(s) = self.sessions.get_mut(&link) {
            while let Some(e) = s.lond.poll_event() {
                out.push(e);
            }
        }
        if out.contains(&LondEvent::Close) {
            self.sessions.remove(&link);
        }
        out
    }
}
