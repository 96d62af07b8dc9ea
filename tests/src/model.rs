//! The reference model of the many-peer world ([`crate::swarm`]): what every local client
//! asked, what it may be answered, and which delayed files exist and whether a lond
//! answered them. The world tells the model every client action and every output of
//! every peer; the model says at once when one breaks an invariant (item 3 of issue 9):
//!
//! - every request gets exactly one reply, its own or `con_lost` (an over-long line:
//!   `error:request_too_long`), in the client's order, never one meant for another client;
//! - `close_connection_exit` gets no reply, only the close, after the earlier replies;
//! - a client is closed only after every earlier request was answered, and only when it
//!   asked for it (EOF, an over-long line, `close_connection_exit`) or its peer stops;
//! - never silence: once the network heals, every waiting request is answered within a
//!   bound computed from the knobs ([`Bound`]);
//! - a delayed file is deleted only after a lond answered its request, and every complete
//!   delayed file is answered by a lond at least once.
//!
//! A daemon crash ends its clients: their sockets close, which is the daemon's answer to
//! every request they still waited for.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lonc_core::io::ClientId;

/// The bytes a client may be answered with in place of a reply.
const CON_LOST: &str = "con_lost";
/// The reply to an over-long request line.
const TOO_LONG: &str = "error:request_too_long";
/// The request that restarts a peer's link.
const RECONNECT: &str = "close_connection_exit";

/// What one request may be answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Its own reply (this token) or `con_lost`.
    Token(String),
    /// Only `con_lost` (lond never answers it, or closes instead).
    Lost,
    /// `error:request_too_long`, then the close.
    TooLong,
    /// No reply: the close (`close_connection_exit`).
    Close,
}

/// One request line a client sent, as the model sees it.
#[derive(Debug, Clone)]
struct Request {
    expect: Expect,
    /// By when it must be answered (set once the network heals).
    deadline: Option<Instant>,
}

/// Where a client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Connected; it may send more.
    Open,
    /// It shut its writing side.
    Eof,
    /// It went away: nothing more may be written to it.
    Gone,
    /// The peer closed it.
    Closed,
    /// Its daemon crashed: its socket closed.
    Crashed,
}

/// One local client.
#[derive(Debug, Clone)]
struct Client {
    peer: usize,
    requests: Vec<Request>,
    replies: usize,
    life: Life,
    /// Bytes sent after the last LF.
    partial: Vec<u8>,
    /// An over-long line or `close_connection_exit` was sent: later lines are ignored.
    ended: bool,
    max_request: usize,
    max_reply: usize,
}

/// How long a peer may take, once the network healed, to answer a waiting request: `base`
/// plus `per_request` for it and for each request of the peer waiting ahead of it.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// A whole attempt, a backoff and a delayed round.
    pub base: Duration,
    /// One request's worst case (a transaction timeout, or a reconnect).
    pub per_request: Duration,
}

/// A delayed file, as the model knows it.
#[derive(Debug, Clone)]
struct File {
    token: String,
    complete: bool,
}

/// The reference model: see the module docs.
#[derive(Debug, Default)]
pub struct Model {
    clients: BTreeMap<ClientId, Client>,
    files: BTreeMap<String, File>,
    answered_tokens: BTreeSet<String>,
    healed: Option<(Instant, Vec<Bound>)>,
}

/// What the model expects of a request line: see the module docs of `lond_app` for the
/// requests the world sends.
fn expect_of(line: &[u8], max_request: usize, max_reply: usize) -> Expect {
    if line.len() > max_request {
        return Expect::TooLong;
    }
    let text = String::from_utf8_lossy(line);
    if text == RECONNECT {
        return Expect::Close;
    }
    let text = text.strip_prefix("encrypt:").unwrap_or(&text);
    if let Some(x) = text
        .strip_prefix("echo:")
        .or_else(|| text.strip_prefix("eget:"))
    {
        return Expect::Token(x.to_owned());
    }
    if let Some(rest) = text.strip_prefix("pad:") {
        let (n, x) = rest.split_once(':').unwrap_or((rest, ""));
        let reply = format!("{x}{}", ".".repeat(n.parse().unwrap_or(0)));
        return match reply.len() > max_reply {
            true => Expect::Lost,
            false => Expect::Token(reply),
        };
    }
    if let Some(rest) = text.strip_prefix("sleep:") {
        let token = rest.split_once(':').map_or("", |(_, x)| x);
        return Expect::Token(token.to_owned());
    }
    Expect::Lost
}

impl Model {
    /// A client of peer `peer` connected; its lines may be `max_request` bytes long, and
    /// its replies `max_reply` bytes (a longer one must come as `con_lost`).
    pub fn opened(&mut self, client: ClientId, peer: usize, max_request: usize, max_reply: usize) {
        self.clients.insert(
            client,
            Client {
                peer,
                requests: Vec::new(),
                replies: 0,
                life: Life::Open,
                partial: Vec::new(),
                ended: false,
                max_request,
                max_reply,
            },
        );
    }

    /// The client wrote `data`: the request lines it completes (and an over-long start).
    pub fn sent(&mut self, now: Instant, client: ClientId, data: &[u8]) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        let mut lines = Vec::new();
        for &b in data {
            if c.ended {
                break;
            }
            if b == b'\n' {
                lines.push(expect_of(&c.partial, c.max_request, c.max_reply));
                c.ended = matches!(lines.last(), Some(Expect::TooLong | Expect::Close));
                c.partial.clear();
            } else {
                c.partial.push(b);
                if c.partial.len() > c.max_request {
                    lines.push(Expect::TooLong);
                    c.ended = true;
                }
            }
        }
        let peer = c.peer;
        for expect in lines {
            let deadline = self.deadline_for(now, peer);
            let c = self.clients.get_mut(&client).expect("checked above");
            c.requests.push(Request { expect, deadline });
        }
    }

    /// The client shut its writing side.
    pub fn eof(&mut self, client: ClientId) {
        if let Some(c) = self.clients.get_mut(&client)
            && c.life == Life::Open
        {
            c.life = Life::Eof;
        }
    }

    /// The client went away.
    pub fn gone(&mut self, client: ClientId) {
        if let Some(c) = self.clients.get_mut(&client)
            && matches!(c.life, Life::Open | Life::Eof)
        {
            c.life = Life::Gone;
        }
    }

    /// Every client of the daemon crashed with it.
    pub fn daemon_crashed(&mut self) {
        for c in self.clients.values_mut() {
            if matches!(c.life, Life::Open | Life::Eof) {
                c.life = Life::Crashed;
            }
        }
    }

    /// True while `client` may still write (open, not ended).
    pub fn may_send(&self, client: ClientId) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|c| c.life == Life::Open)
    }

    /// True once the peer closed `client` (or it went away, or crashed).
    pub fn is_done(&self, client: ClientId) -> bool {
        self.clients
            .get(&client)
            .is_none_or(|c| matches!(c.life, Life::Closed | Life::Gone | Life::Crashed))
    }

    /// The peer wrote `data` to `client`.
    pub fn reply(&mut self, client: ClientId, data: &[u8]) -> Result<(), String> {
        let c = self.live(client, "a reply")?;
        let text = String::from_utf8_lossy(
            data.strip_suffix(b"\n")
                .ok_or_else(|| format!("client {}: a reply without its LF: {data:?}", client.0))?,
        )
        .into_owned();
        let index = c.replies;
        let Some(req) = c.requests.get(index) else {
            return Err(format!(
                "client {}: reply {index} ({text:?}) but only {} requests",
                client.0,
                c.requests.len()
            ));
        };
        let ok = match &req.expect {
            Expect::Token(t) => text == *t || text == CON_LOST,
            Expect::Lost => text == CON_LOST,
            Expect::TooLong => text == TOO_LONG,
            Expect::Close => false,
        };
        if !ok {
            return Err(format!(
                "client {}: reply {index} is {text:?}, expected {:?}",
                client.0, req.expect
            ));
        }
        c.replies += 1;
        Ok(())
    }

    /// The peer closed `client`; `stopping`: its peer is shutting down.
    pub fn closed(&mut self, client: ClientId, stopping: bool) -> Result<(), String> {
        let c = self.live(client, "a close")?;
        let owed = c.requests.len() - c.replies;
        let only_the_close = owed == 1 && c.requests[c.replies].expect == Expect::Close;
        if owed > 0 && !only_the_close {
            return Err(format!(
                "client {} closed with {owed} of {} requests unanswered",
                client.0,
                c.requests.len()
            ));
        }
        if !(stopping || c.ended || c.life == Life::Eof) {
            return Err(format!(
                "client {} closed though it neither ended nor asked",
                client.0
            ));
        }
        c.life = Life::Closed;
        Ok(())
    }

    /// The client the peer writes to must be one it may write to.
    fn live(&mut self, client: ClientId, what: &str) -> Result<&mut Client, String> {
        let c = self
            .clients
            .get_mut(&client)
            .ok_or_else(|| format!("{what} to client {} the world never opened", client.0))?;
        match c.life {
            Life::Open | Life::Eof => Ok(c),
            life => Err(format!("{what} to client {} after {life:?}", client.0)),
        }
    }

    /// Requests of peer `peer` waiting for their reply (of clients that can still read).
    pub fn waiting(&self, peer: usize) -> usize {
        self.clients
            .values()
            .filter(|c| c.peer == peer && matches!(c.life, Life::Open | Life::Eof))
            .map(|c| c.requests.len().saturating_sub(c.replies))
            .sum()
    }

    /// The network healed at `now`; each peer's [`Bound`] (by peer index). Every request
    /// waiting now, and every later one, gets its deadline.
    pub fn heal(&mut self, now: Instant, bounds: Vec<Bound>) {
        self.healed = Some((now, bounds));
        let peers: BTreeSet<usize> = self.clients.values().map(|c| c.peer).collect();
        for peer in peers {
            // The peer serves in arrival order, which the model does not know across
            // clients: every request waiting now may have all the others ahead of it.
            let waiting = u32::try_from(self.waiting(peer)).unwrap_or(u32::MAX);
            let bound = self.bound(peer);
            let deadline = now + bound.base + bound.per_request * waiting;
            for c in self.clients.values_mut().filter(|c| c.peer == peer) {
                if !matches!(c.life, Life::Open | Life::Eof) {
                    continue;
                }
                for r in c.requests.iter_mut().skip(c.replies) {
                    r.deadline = Some(deadline);
                }
            }
        }
    }

    fn bound(&self, peer: usize) -> Bound {
        let (_, bounds) = self.healed.as_ref().expect("healed");
        bounds[peer]
    }

    fn deadline_for(&self, now: Instant, peer: usize) -> Option<Instant> {
        self.healed.as_ref()?;
        let bound = self.bound(peer);
        let ahead = u32::try_from(self.waiting(peer)).unwrap_or(u32::MAX);
        Some(now + bound.base + bound.per_request * (ahead + 1))
    }

    /// A request still waiting past its deadline at `now`.
    pub fn overdue(&self, now: Instant) -> Result<(), String> {
        for (id, c) in &self.clients {
            if !matches!(c.life, Life::Open | Life::Eof) {
                continue;
            }
            let Some(r) = c.requests.get(c.replies) else {
                continue;
            };
            if let Some(d) = r.deadline
                && now > d
            {
                return Err(format!(
                    "silence: client {} of peer {} waits for reply {} ({:?}) past its bound",
                    id.0, c.peer, c.replies, r.expect
                ));
            }
        }
        Ok(())
    }

    /// At the end: every client must be done (closed, gone or crashed).
    pub fn all_done(&self) -> Result<(), String> {
        for (id, c) in &self.clients {
            if matches!(c.life, Life::Open | Life::Eof) {
                return Err(format!(
                    "client {} of peer {} never closed ({} of {} replies)",
                    id.0,
                    c.peer,
                    c.replies,
                    c.requests.len()
                ));
            }
        }
        Ok(())
    }

    /// A delayed file `name` holding the request for `token` was written (`complete`: its
    /// LF too).
    pub fn file_written(&mut self, name: &str, token: &str, complete: bool) {
        self.files.insert(
            name.to_owned(),
            File {
                token: token.to_owned(),
                complete,
            },
        );
    }

    /// The writer finished file `name` (its LF is there).
    pub fn file_completed(&mut self, name: &str) {
        if let Some(f) = self.files.get_mut(name) {
            f.complete = true;
        }
    }

    /// A lond answered the request carrying `token`.
    pub fn lond_answered(&mut self, token: &str) {
        self.answered_tokens.insert(token.to_owned());
    }

    /// A peer deleted file `name`: only after a lond answered it.
    pub fn deleted(&mut self, name: &str) -> Result<(), String> {
        let Some(f) = self.files.get(name) else {
            return Err(format!("deleted {name}, which the world never wrote"));
        };
        if !f.complete || !self.answered_tokens.contains(&f.token) {
            return Err(format!(
                "delayed file {name} deleted before any lond answered it"
            ));
        }
        Ok(())
    }

    /// At the end: every complete delayed file was answered by a lond at least once.
    pub fn all_delivered(&self) -> Result<(), String> {
        for (name, f) in &self.files {
            if f.complete && !self.answered_tokens.contains(&f.token) {
                return Err(format!("delayed file {name} was never delivered"));
            }
        }
        Ok(())
    }
}
