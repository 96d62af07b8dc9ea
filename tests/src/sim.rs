//! A deterministic world for one [`Peer`]: a virtual clock, an in-memory network and a
//! scripted lond built on the core's [`LondSession`], local clients, and a delayed spool
//! held in memory. Everything is ordered (`BTreeMap`, sequence numbers): a world run twice
//! with the same script gives the same trace.
//!
//! The world carries out every [`Output`] of the peer at once (connections open or fail,
//! bytes reach lond, replies reach clients, spool files are listed, read and deleted), and
//! lond's answers come back as events at the virtual time they are due.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lonc_core::config::LinkSettings;
use lonc_core::delayed::{DelayedEntry, EntryKind, FileStamp, PermLogEntry};
use lonc_core::io::{ClientId, ConnId, Input, LogEvent, Output, Severity};
use lonc_core::lond::{LondConfig, LondEvent, LondSession};
use lonc_core::peer::Peer;

use crate::lond_app::{self, Answer};

/// The peer's host id in every world (the lond side).
pub const PEER_ID: &str = "msul1";
/// This server's host id in every world (the lonc side).
pub const OWN_ID: &str = "msul2";
/// The buildkey the scripted lond hands out.
pub const BUILDKEY: &str = "3451878943AF7E9B2C40812";
/// The challenge the scripted lond sends.
pub const CHALLENGE: &str = "123451016600000";

/// The most steps (events delivered or timeouts handled) one [`World::run_until`] may
/// take, and the most outputs one input may bring: a peer that keeps the world busy beyond
/// it spins (a livelock), and the run panics with the trace instead of hanging.
pub const STEP_LIMIT: usize = 200_000;

/// The most steps one [`World::run_until`] may take without the virtual clock moving: a
/// peer whose deadline is always due (a timer that never clears) spins at one instant.
pub const SAME_INSTANT_LIMIT: usize = 10_000;

/// How the scripted lond and the network behave. Change it at any time; it applies to
/// what happens next.
#[derive(Debug, Clone)]
pub struct Script {
    /// Connections are accepted (else refused at once).
    pub listening: bool,
    /// Connection attempts never complete (the connect timeout must fire).
    pub hang_connect: bool,
    /// lond refuses this client (`refused` to `init`).
    pub refuse: bool,
    /// The network corrupts lonc's echo of the challenge (lond answers `refused`).
    pub corrupt_echo: bool,
    /// lond stops answering after this many lines from lonc on a connection
    /// (0 = at once; 1 = after `init`, ...). `None`: never stalls.
    pub stall_after_lines: Option<usize>,
    /// lond closes every connection after this many lines from lonc.
    pub close_after_lines: Option<usize>,
    /// On every new connection lond first streams this many bytes with no LF (before its
    /// challenge, which then never comes).
    pub babble: Option<usize>,
    /// Opening a connection fails with a local resource error (EMFILE) on this host.
    pub out_of_fds: bool,
    /// Listing the delayed spool fails with this error.
    pub list_fails: Option<String>,
    /// Listing the delayed spool fails for a shortage of this host's own (EMFILE).
    pub list_local_error: bool,
    /// lond reads nothing more of what lonc writes from now on: the bytes wait unwritten
    /// in lonc's socket, and the world reports them as a runtime does
    /// ([`lonc_core::io::Input::ConnBacklog`]).
    pub lond_not_reading: bool,
    /// One-way delay of the network: a connect completes, and every byte or close reaches
    /// the other side, this long after it was sent (zero: at the same instant).
    pub latency: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            listening: true,
            hang_connect: false,
            refuse: false,
            corrupt_echo: false,
            stall_after_lines: None,
            close_after_lines: None,
            babble: None,
            out_of_fds: false,
            list_fails: None,
            list_local_error: false,
            lond_not_reading: false,
            latency: Duration::ZERO,
        }
    }
}

/// What the world does with one input.
#[derive(Debug)]
enum Event {
    Connected(ConnId),
    ToLonc(ConnId, Bytes),
    ToLond(ConnId, Bytes),
    LondClosed(ConnId),
    LondReply {
        conn: ConnId,
        id: u64,
        data: Vec<u8>,
        encrypted: bool,
    },
    LondClose(ConnId),
}

/// One simulated TCP connection, seen from lond.
struct SimConn {
    lond: LondSession,
    lines_seen: usize,
    partial: Vec<u8>,
    /// lond hung on this connection: it reads nothing more, whatever the script says
    /// later (TCP never loses a line in the middle of a stream).
    hung: bool,
    /// Bytes lonc wrote that lond has not read ([`Script::lond_not_reading`]).
    unwritten: usize,
}

/// The world: a peer, its lond, its clients and its spool, on a virtual clock.
pub struct World {
    /// The virtual time now.
    pub now: Instant,
    /// The state machine under test.
    pub peer: Peer,
    /// How lond and the network behave.
    pub script: Script,
    /// Every reply line each client received, in order.
    pub replies: BTreeMap<ClientId, Vec<Bytes>>,
    /// Clients the peer closed.
    pub closed: BTreeSet<ClientId>,
    /// Clients the peer dropped at once ([`Output::AbortClient`]).
    pub aborted: BTreeSet<ClientId>,
    /// Clients that read none of their replies: the bytes wait unwritten, and the world
    /// reports them as a runtime does ([`Input::ClientBacklog`]).
    pub not_reading: BTreeMap<ClientId, usize>,
    /// Every connection the peer closed, with how long it let it flush.
    pub conn_closes: Vec<(ConnId, Duration)>,
    /// The delayed spool: file name -> content.
    pub spool: BTreeMap<String, Vec<u8>>,
    /// Spool entries that are not regular files (symlinks, directories, fifos): never
    /// to be read or deleted.
    pub spool_odd: BTreeMap<String, EntryKind>,
    /// Spool files whose delete fails (as a root-owned file in a sticky directory).
    pub undeletable: BTreeSet<String>,

    /// `lonnet.perm.log` entries.
    pub perm_log: Vec<PermLogEntry>,
    /// `lonc.log` events.
    pub log: Vec<LogEvent>,
    /// Requests lond received, decrypted, in order (`true` if it came encrypted).
    pub lond_requests: Vec<(Vec<u8>, bool)>,
    /// Connection attempts the peer made, with their virtual time.
    pub connects: Vec<Instant>,
    /// When a connect or handshake attempt failed (the peer's failed-attempt count rose).
    pub failures: Vec<Instant>,
    /// When the peer was revived.
    pub revivals: Vec<Instant>,
    /// When a connection completed its handshake (the INFO line "connection N ready").
    pub readies: Vec<Instant>,
    /// Delayed files deleted before lond had received their request: must stay empty.
    pub deleted_unanswered: Vec<String>,
    /// A readable trace of everything, for failure messages and determinism checks.
    pub trace: Vec<String>,
    start: Instant,
    last_attempts: u32,
    conns: BTreeMap<ConnId, SimConn>,
    events: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    next_client: u64,
    /// What the world learned while carrying outputs out, fed after the drain.
    later: Vec<Input>,
}

impl World {
    /// A world whose peer has these settings and backoff seed, with `start` as time zero.
    pub fn new(start: Instant, settings: LinkSettings, seed: u64) -> Self {
        let peer = Peer::new(PEER_ID, OWN_ID, "127.0.0.1", 5663, settings, seed, start);
        let w = World {
            now: start,
            peer,
            script: Script::default(),
            replies: BTreeMap::new(),
            closed: BTreeSet::new(),
            aborted: BTreeSet::new(),
            not_reading: BTreeMap::new(),
            conn_closes: Vec::new(),
            spool: BTreeMap::new(),
            spool_odd: BTreeMap::new(),
            undeletable: BTreeSet::new(),
            perm_log: Vec::new(),
            log: Vec::new(),
            lond_requests: Vec::new(),
            connects: Vec::new(),
            failures: Vec::new(),
            revivals: Vec::new(),
            readies: Vec::new(),
            deleted_unanswered: Vec::new(),
            trace: Vec::new(),
            start,
            last_attempts: 0,
            conns: BTreeMap::new(),
            events: BTreeMap::new(),
            seq: 0,
            next_client: 1,
            later: Vec::new(),
        };
        // The peer's first outputs (in eager mode, its first connect) are carried out at
        // the first step, so a test can set the script before that.
        w
    }

    /// A world with these settings (backoff seed 7) whose eager peer has completed its
    /// handshake; panics with the trace if it did not.
    pub fn ready(settings: LinkSettings) -> Self {
        let mut w = World::new(Instant::now(), settings, 7);
        w.settle();
        assert_eq!(
            w.peer.state(),
            lonc_core::peer::PeerState::Ready,
            "{}",
            w.trace.join("\n")
        );
        w
    }

    /// Seconds since the world began.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// A new client connects; its id.
    pub fn new_client(&mut self) -> ClientId {
        let id = ClientId(self.next_client);
        self.next_client += 1;
        self.peer.handle_client_opened(self.now, id);
        self.drain();
        id
    }

    /// A client writes bytes to the peer's socket.
    pub fn client_send(&mut self, client: ClientId, data: &[u8]) {
        self.trace(format!("client {} sends {} bytes", client.0, data.len()));
        self.peer.handle_client_data(self.now, client, data);
        self.drain();
    }

    /// A new client sends one request line (LF added) and shuts its writing side, the
    /// lonnet pattern. Returns its id.
    pub fn request(&mut self, line: &[u8]) -> ClientId {
        let c = self.new_client();
        let mut data = line.to_vec();
        data.push(b'\n');
        self.client_send(c, &data);
        self.peer.handle_client_eof(self.now, c);
        self.drain();
        c
    }

    /// The client vanishes.
    pub fn client_gone(&mut self, client: ClientId) {
        self.peer.handle_client_gone(self.now, client);
        self.drain();
    }

    /// lond closes every connection it has now (a crash of the peer's lond processes).
    pub fn lond_closes_all(&mut self) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.schedule(self.now, Event::LondClose(conn));
        }
        self.settle();
    }

    /// USR1.
    pub fn revive(&mut self) {
        self.revivals.push(self.now);
        self.peer.revive(self.now);
        self.drain();
    }

    /// The replies `client` received so far, as text lines without LF.
    pub fn replies_of(&self, client: ClientId) -> Vec<String> {
        self.replies
            .get(&client)
            .map(|v| {
                v.iter()
                    .map(|b| {
                        String::from_utf8_lossy(b.strip_suffix(b"\n").unwrap_or(b)).into_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The one reply `client` received, or a panic with the trace.
    pub fn reply_of(&self, client: ClientId) -> String {
        let r = self.replies_of(client);
        assert_eq!(
            r.len(),
            1,
            "client {} replies {r:?}\n{}",
            client.0,
            self.trace.join("\n")
        );
        r[0].clone()
    }

    /// Open connections on the lond side.
    pub fn lond_connections(&self) -> usize {
        self.conns.len()
    }

    /// Runs until virtual time `now + d`, delivering events and timeouts in order.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until nothing is due before `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Instant) {
        self.drain();
        let mut same_instant = 0;
        for step in 0.. {
            let next_event = self.events.keys().next().map(|k| k.0);
            let next_timeout = self.peer.poll_timeout();
            let next = match (next_event, next_timeout) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            same_instant = if next > self.now { 0 } else { same_instant + 1 };
            if step >= STEP_LIMIT || same_instant >= SAME_INSTANT_LIMIT {
                self.spinning(step, same_instant);
            }
            self.now = self.now.max(next);
            if next_event.is_some_and(|e| e <= next) {
                let key = *self.events.keys().next().expect("event present");
                let ev = self.events.remove(&key).expect("event present");
                self.deliver(ev);
            } else {
                self.peer.handle_timeout(self.now);
                self.drain();
            }
        }
        self.now = self.now.max(until);
    }

    /// The world stopped making progress: panic with the end of the trace.
    fn spinning(&self, steps: usize, same_instant: usize) -> ! {
        let tail = self.trace.len().saturating_sub(40);
        panic!(
            "livelock: {steps} steps in one run, {same_instant} of them at {:?} without \
             the clock moving; the peer keeps the world busy\n{}",
            self.elapsed(),
            self.trace[tail..].join("\n")
        );
    }

    /// Delivers everything due now (zero-latency network), without advancing time.
    pub fn settle(&mut self) {
        self.run_for(Duration::ZERO);
    }

    /// When what is sent now reaches the other side.
    fn arrival(&self) -> Instant {
        self.now + self.script.latency
    }

    fn schedule(&mut self, at: Instant, ev: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    fn trace(&mut self, s: String) {
        let t = self.elapsed().as_secs_f64();
        self.trace.push(format!("{t:10.3} {s}"));
    }

    fn deliver(&mut self, ev: Event) {
        match ev {
            Event::Connected(conn) => {
                self.trace(format!("conn {} connected", conn.0));
                self.peer.handle_connected(self.now, conn);
            }
            Event::ToLonc(conn, data) => {
                if !self.conns.contains_key(&conn) {
                    return;
                }
                self.trace(format!(
                    "lond -> conn {}: {:?}",
                    conn.0,
                    String::from_utf8_lossy(&data)
                ));
                self.peer.handle_conn_data(self.now, conn, &data);
            }
            Event::ToLond(conn, data) => self.send_to_lond(conn, &data),
            Event::LondClosed(conn) => {
                if self.conns.remove(&conn).is_some() {
                    self.trace(format!("lond closed conn {}", conn.0));
                    self.peer.handle_conn_closed(self.now, conn);
                }
            }
            Event::LondReply {
                conn,
                id,
                data,
                encrypted,
            } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    if encrypted {
                        c.lond.reply_encrypted(id, &data);
                    } else {
                        c.lond.reply(id, &data);
                    }
                    self.pump_lond(conn);
                }
            }
            Event::LondClose(conn) => {
                self.schedule(self.arrival(), Event::LondClosed(conn));
            }
        }
        self.drain();
    }

    /// Carries out every output of the peer; then feeds what was learned meanwhile (bytes
    /// left unwritten), one input per drain, as a runtime does.
    fn drain(&mut self) {
        let mut outputs = 0;
        loop {
            while let Some(out) = self.peer.poll_output() {
                outputs += 1;
                if outputs > STEP_LIMIT {
                    self.spinning(outputs, 0);
                }
                self.note_attempts();
                self.carry_out(out);
            }
            self.note_attempts();
            if self.later.is_empty() {
                return;
            }
            let input = self.later.remove(0);
            self.trace(format!("runtime reports {input:?}"));
            self.peer.handle(self.now, input);
        }
    }

    /// Every input is followed by a drain, so a rise of the failed-attempt count is seen
    /// at the virtual time of the input that caused it.
    fn note_attempts(&mut self) {
        let attempts = self.peer.failed_attempts();
        if attempts > self.last_attempts {
            self.failures.push(self.now);
        }
        self.last_attempts = attempts;
    }

    fn carry_out(&mut self, out: Output) {
        match out {
            Output::Connect { conn, .. } => {
                self.connects.push(self.now);
                self.trace(format!("connect conn {}", conn.0));
                if self.script.hang_connect {
                    return;
                }
                if self.script.out_of_fds {
                    self.trace(format!("conn {}: too many open files", conn.0));
                    self.peer
                        .handle_connect_local_error(self.now, conn, "Too many open files");
                    return;
                }
                if !self.script.listening {
                    self.trace(format!("conn {} refused", conn.0));
                    self.peer
                        .handle_connect_failed(self.now, conn, "connection refused");
                    return;
                }
                let cfg = LondConfig {
                    own_id: PEER_ID.into(),
                    client_id: OWN_ID.into(),
                    challenge: CHALLENGE.into(),
                    buildkey: BUILDKEY.into(),
                    refuse: self.script.refuse,
                    max_line: 1 << 30,
                };
                self.conns.insert(
                    conn,
                    SimConn {
                        lond: LondSession::new(cfg),
                        lines_seen: 0,
                        partial: Vec::new(),
                        hung: false,
                        unwritten: 0,
                    },
                );
                self.schedule(self.arrival(), Event::Connected(conn));
                if let Some(n) = self.script.babble {
                    self.conns.get_mut(&conn).expect("just added").hung = true;
                    self.schedule(self.arrival(), Event::ToLonc(conn, vec![b'x'; n].into()));
                }
            }
            Output::Transmit { conn, data } if self.script.latency.is_zero() => {
                self.send_to_lond(conn, &data)
            }
            Output::Transmit { conn, data } => {
                self.schedule(self.arrival(), Event::ToLond(conn, data))
            }
            Output::CloseConn { conn, linger } => {
                self.conn_closes.push((conn, linger));
                if self.conns.remove(&conn).is_some() {
                    self.trace(format!("lonc closed conn {} (linger {linger:?})", conn.0));
                }
            }
            Output::Reply { client, data } => {
                self.trace(format!(
                    "reply to client {}: {:?}",
                    client.0,
                    String::from_utf8_lossy(&data[..data.len().min(80)])
                ));
                if let Some(unwritten) = self.not_reading.get_mut(&client) {
                    let before = *unwritten;
                    *unwritten += data.len();
                    if before > 0 {
                        self.later.push(Input::ClientBacklog(client, before));
                    }
                }
                self.replies.entry(client).or_default().push(data);
            }
            Output::AbortClient { client } => {
                self.trace(format!("abort client {}", client.0));
                self.aborted.insert(client);
            }
            Output::CloseClient { client } => {
                self.trace(format!("close client {}", client.0));
                self.closed.insert(client);
            }
            Output::ListDelayed => {
                if self.script.list_local_error {
                    self.trace("list delayed: too many open files".into());
                    self.peer
                        .handle_delayed_list_local_error(self.now, "Too many open files");
                    return;
                }
                if let Some(why) = self.script.list_fails.clone() {
                    self.trace(format!("list delayed failed: {why}"));
                    self.peer.handle_delayed_list_failed(self.now, &why);
                    return;
                }
                let mut entries: Vec<DelayedEntry> = self
                    .spool
                    .iter()
                    .map(|(name, content)| DelayedEntry::file(name, stamp_of(content)))
                    .collect();
                entries.extend(self.spool_odd.iter().map(|(name, kind)| DelayedEntry {
                    name: name.clone(),
                    kind: *kind,
                    stamp: FileStamp::default(),
                }));
                let names: Vec<&String> = entries.iter().map(|e| &e.name).collect();
                self.trace(format!("list delayed: {names:?}"));
                self.peer.handle_delayed_list(self.now, &entries);
            }
            Output::ReadDelayed { name } => {
                if self.spool_odd.contains_key(&name) {
                    panic!("the peer read {name}, which is not a regular file");
                }
                let content = self.spool.get(&name).cloned();
                match content {
                    Some(c) => self.peer.handle_delayed_read(self.now, &name, Ok(&c)),
                    None => self
                        .peer
                        .handle_delayed_read(self.now, &name, Err("no such file")),
                }
            }
            Output::DeleteDelayed { name } => {
                self.trace(format!("delete delayed {name}"));
                if self.spool_odd.contains_key(&name) {
                    panic!("the peer deleted {name}, which is not a regular file");
                }
                if self.undeletable.contains(&name) {
                    self.trace(format!("delete of {name} failed"));
                    self.peer.handle_delayed_delete_failed(
                        self.now,
                        &name,
                        "Operation not permitted",
                    );
                    return;
                }
                if let Some(content) = self.spool.remove(&name) {
                    let request = content.split(|&b| b == b'\n').next().unwrap_or(&[]);
                    let request = request.strip_prefix(b"encrypt:").unwrap_or(request);
                    if !self.lond_requests.iter().any(|(r, _)| r == request) {
                        self.deleted_unanswered.push(name);
                    }
                }
            }
            Output::PermLog(e) => self.perm_log.push(e),
            Output::Log(e) => {
                self.trace(format!("log {}: {}", e.severity.as_str(), e.message));
                if e.severity == Severity::Info && e.message.ends_with(" ready") {
                    self.readies.push(self.now);
                }
                self.log.push(e);
            }
        }
    }

    /// Bytes from lonc reach lond, line by line, through the script's faults.
    fn send_to_lond(&mut self, conn: ConnId, data: &[u8]) {
        let script = self.script.clone();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if script.lond_not_reading {
            let before = c.unwritten;
            c.unwritten += data.len();
            if before > 0 {
                self.later.push(Input::ConnBacklog(conn, before));
            }
            return;
        }
        c.partial.extend_from_slice(data);
        while let Some(end) = c.partial.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = c.partial.drain(..=end).collect();
            let index = c.lines_seen;
            c.lines_seen += 1;
            if script.close_after_lines.is_some_and(|n| index >= n) {
                self.schedule(self.now, Event::LondClose(conn));
                return;
            }
            if c.hung || script.stall_after_lines.is_some_and(|n| index >= n) {
                c.hung = true;
                continue;
            }
            if script.corrupt_echo && index == 1 {
                line = b"wrong\n".to_vec();
            }
            c.lond.handle_data(&line);
        }
        self.pump_lond(conn);
    }

    /// Carries out lond's events: bytes to lonc, requests to answer, a close.
    fn pump_lond(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(ev) = c.lond.poll_event() else {
                return;
            };
            match ev {
                LondEvent::Transmit(data) => {
                    self.schedule(self.arrival(), Event::ToLonc(conn, data))
                }
                LondEvent::Close => self.schedule(self.now, Event::LondClose(conn)),
                LondEvent::Request {
                    id,
                    line,
                    was_encrypted,
                } => {
                    self.lond_requests.push((line.clone(), was_encrypted));
                    self.answer(conn, id, &line);
                }
            }
        }
    }

    /// The scripted application behind lond ([`crate::lond_app`]).
    fn answer(&mut self, conn: ConnId, id: u64, line: &[u8]) {
        match lond_app::answer(PEER_ID, line) {
            Answer::Reply {
                after,
                data,
                encrypted,
            } => self.schedule(
                self.now + after,
                Event::LondReply {
                    conn,
                    id,
                    data,
                    encrypted,
                },
            ),
            Answer::Close => self.schedule(self.now, Event::LondClose(conn)),
            Answer::Silent => {}
        }
    }
}

/// A spool file's stamp in the world: its size, and its content's FNV-1a hash for a
/// modification time (any rewrite with other bytes changes it).
pub fn stamp_of(content: &[u8]) -> FileStamp {
    let hash = content.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    FileStamp {
        size: content.len() as u64,
        modified_ns: i128::from(hash),
    }
}
