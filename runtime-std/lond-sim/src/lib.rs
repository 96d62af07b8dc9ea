//! `lond-sim`: a lond-compatible peer for end-to-end tests, the demo and the benchmarks.
//!
//! One [`LondSim`] serves many host ids, one TCP listener per entry ([`SimListener`]). Each
//! accepted connection runs the lond side of the classic handshake with
//! [`lonc_core::lond::LondSession`] (PROTOCOL.md section 4): the challenge is
//! [`standard_challenge`]`(pid, epoch seconds)`, the buildkey a fresh random string of
//! [`BUILDKEY_LEN`] digits and `A`-`F`, as real lond sends. After the handshake every
//! request line (plain, or `enc:` decrypted by the session) is answered:
//!
//! | request | reply |
//! |---|---|
//! | `ping` | the listener's own host id |
//! | `echo:<x>` | `<x>` |
//! | `sleep:<ms>:<x>` | `<x>`, after `<ms>` milliseconds (at most [`MAX_SLEEP`]); other connections and later requests on this one are read meanwhile, replies stay in request order |
//! | `big:<n>` | `n` bytes `x` (at most [`MAX_BIG`]) |
//! | `eget:<x>` | `<x>` as an encrypted `enc:` reply |
//! | `exit` | `bye`, then the connection is closed |
//! | `connections` | how many TCP connections this listener has accepted so far, this one included |
//! | anything else | `unknown_cmd` |
//!
//! Fault knobs ([`SimOptions`], per listener) make it misbehave on purpose: close after N
//! requests, refuse the client, stall or close during the handshake, answer `eget:` with a
//! malformed `enc:` line, or answer with an endless line.
//!
//! ## Threads
//! Plain std threads and sockets, so it runs inside any process (the async daemon's demo
//! starts it in-process): one accept thread per listener, and per connection one thread
//! that owns the session and writes, plus one that reads. [`LondSim::stop`] (and `Drop`)
//! stops accepting (waking each blocked `accept` with a connection of its own), shuts down
//! every open connection and joins every thread; it returns promptly.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lonc_core::lond::{LondConfig, LondEvent, LondSession, standard_challenge};
use rand::Rng;

/// The most bytes a `big:<n>` reply holds; a larger `n` is cut down to this.
pub const MAX_BIG: usize = 512 << 20;
/// The longest request line accepted from lonc (LF not counted); a longer one closes the
/// connection without a reply, as the session does.
pub const MAX_REQUEST: usize = 64 << 20;
/// The longest delay of a `sleep:<ms>:<x>` request; a longer one is cut down to this.
pub const MAX_SLEEP: Duration = Duration::from_secs(24 * 3600);
/// How many characters (digits and `A`-`F`) a buildkey has.
pub const BUILDKEY_LEN: usize = 20;
/// The reply to `eget:` under [`SimOptions::malformed_enc`]: its declared length (99)
/// exceeds the 8 bytes its one block holds.
pub const MALFORMED_ENC: &[u8] = b"enc:99:0123456789abcdef";

/// Writes smaller than this are gathered into one buffer before going to the socket.
const COALESCE: usize = 64 * 1024;
/// How long [`LondSim::stop`] waits for the connection that wakes an accept thread.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause after a failed `accept` (for example out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// How a listener misbehaves on purpose. The default is a well-behaved lond.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// Close each connection once this many requests are answered (requests after the
    /// N-th are never answered). `Some(0)` closes at the first request. Handshake lines
    /// (`init`, the echo, `pong`, `ekey`) do not count.
    pub drop_after: Option<u64>,
    /// Refuse the client: answer its first line (`init`) with `refused` and close
    /// ([`LondConfig::refuse`]).
    pub refuse: bool,
    /// Accept connections and never answer anything (input is read and dropped until the
    /// peer closes).
    pub stall_handshake: bool,
    /// Answer every `eget:` with [`MALFORMED_ENC`], an `enc:` line whose declared length
    /// exceeds its data.
    pub malformed_enc: bool,
    /// After the handshake, answer the first request with an endless stream of bytes
    /// without LF, until the peer closes.
    pub endless_line: bool,
    /// Close the connection right after sending the challenge.
    pub close_during_handshake: bool,
}

/// One listener to start: the host id it serves, where it listens, and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimListener {
    /// The host id this lond answers as (its `own_id`, first in the cipher key).
    pub id: String,
    /// Where to listen; port 0 picks a free port (see [`LondSim::addrs`]).
    pub addr: SocketAddr,
    /// Its fault knobs.
    pub opts: SimOptions,
}

impl SimListener {
    /// A listener for host `id` on `addr` with the options `opts`.
    pub fn new(id: impl Into<String>, addr: SocketAddr, opts: SimOptions) -> Self {
        SimListener {
            id: id.into(),
            addr,
            opts,
        }
    }
}

/// Parses a `--listen` value `ID=ADDR:PORT` (for example `msul2=127.0.0.2:5663`,
/// `msul3=[::1]:5663` or `msul4=localhost:5663`; a name is resolved, its first address
/// taken). The message of an error says what is wrong.
pub fn parse_listen(spec: &str) -> Result<(String, SocketAddr), String> {
    let Some((id, addr)) = spec.split_once('=') else {
        return Err(format!("`{spec}` is not ID=ADDR:PORT (no `=`)"));
    };
    if id.is_empty() {
        return Err(format!("`{spec}` has an empty host id"));
    }
    if id.contains(|c: char| c.is_whitespace() || c == ':') {
        return Err(format!(
            "`{spec}`: the host id `{id}` may not hold ':' or whitespace"
        ));
    }
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok((id.to_owned(), a));
    }
    match addr.to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => Ok((id.to_owned(), a)),
            None => Err(format!("`{spec}`: `{addr}` resolves to no address")),
        },
        Err(e) => Err(format!("`{spec}`: `{addr}` is not ADDR:PORT ({e})")),
    }
}

/// A fresh buildkey as real lond sends: [`BUILDKEY_LEN`] random digits and `A`-`F`.
pub fn random_buildkey() -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut rng = rand::rng();
    (0..BUILDKEY_LEN)
        .map(|_| char::from(DIGITS[rng.random_range(0..DIGITS.len())]))
        .collect()
}

/// A running set of simulated lond listeners. Stopped by [`LondSim::stop`] or on drop.
#[derive(Debug)]
pub struct LondSim {
    listeners: Vec<Arc<ListenerInfo>>,
    /// The accept thread of each listener, in the order of `listeners` (`None` once
    /// joined).
    accept_threads: Vec<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

impl LondSim {
    /// Binds every listener (`(id, addr)`, all with the options `opts`) and starts
    /// serving. `client_id` is the host id of the lonc expected to connect (the second
    /// part of the key and of the `pong` answer). Fails if any address cannot be bound;
    /// then nothing is left running.
    pub fn start(
        listeners: Vec<(String, SocketAddr)>,
        client_id: String,
        opts: SimOptions,
    ) -> io::Result<LondSim> {
        let listeners = listeners
            .into_iter()
            .map(|(id, addr)| SimListener::new(id, addr, opts.clone()))
            .collect();
        LondSim::start_listeners(listeners, client_id)
    }

    /// Like [`LondSim::start`], with options of its own for every listener.
    pub fn start_listeners(listeners: Vec<SimListener>, client_id: String) -> io::Result<LondSim> {
        let client_id: Arc<str> = Arc::from(client_id);
        let mut bound = Vec::with_capacity(listeners.len());
        for l in listeners {
            let listener = TcpListener::bind(l.addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}={}: {e}", l.id, l.addr),
                )
            })?;
            let addr = listener.local_addr()?;
            let info = Arc::new(ListenerInfo {
                id: l.id,
                addr,
                opts: l.opts,
                client_id: Arc::clone(&client_id),
                accepted: AtomicU64::new(0),
                requests: AtomicU64::new(0),
            });
            bound.push((info, listener));
        }
        let mut sim = LondSim {
            listeners: Vec::with_capacity(bound.len()),
            accept_threads: Vec::with_capacity(bound.len()),
            shared: Arc::new(Shared::default()),
        };
        for (info, listener) in bound {
            let thread_info = Arc::clone(&info);
            let shared = Arc::clone(&sim.shared);
            // On error `sim` is dropped, which stops the listeners already started.
            let handle = thread::Builder::new()
                .name(format!("lond-sim-accept-{}", info.id))
                .spawn(move || accept_loop(listener, thread_info, shared))?;
            sim.listeners.push(info);
            sim.accept_threads.push(Some(handle));
        }
        Ok(sim)
    }

    /// Every listener's host id and bound address (the real port when 0 was asked), in
    /// the order given to `start`.
    pub fn addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.id.clone(), l.addr))
            .collect()
    }

    /// The bound address of the first listener for host `id`.
    pub fn addr(&self, id: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.id == id).map(|l| l.addr)
    }

    /// How many TCP connections the listeners for host `id` have accepted so far (0 for
    /// an unknown id). A connection counts once `accept` returned it, which may be a
    /// little after the client's `connect` returned.
    pub fn connections(&self, id: &str) -> u64 {
        self.listeners
            .iter()
            .filter(|l| l.id == id)
            .map(|l| l.accepted.load(Ordering::SeqCst))
            .sum()
    }

    /// How many request lines (after the handshake) the listeners for host `id` have
    /// received so far, on all their connections (0 for an unknown id).
    pub fn requests(&self, id: &str) -> u64 {
        self.listeners
            .iter()
            .filter(|l| l.id == id)
            .map(|l| l.requests.load(Ordering::SeqCst))
            .sum()
    }

    /// Stops accepting, closes every open connection and waits for every thread. Returns
    /// promptly (connections are shut down, not drained).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let threads = {
            let mut reg = self.shared.lock();
            if !reg.stopped {
                reg.stopped = true;
                for conn in reg.conns.values() {
                    let _ = conn.shutdown(Shutdown::Both);
                }
            }
            std::mem::take(&mut reg.threads)
        };
        for (info, slot) in self.listeners.iter().zip(self.accept_threads.iter_mut()) {
            let Some(handle) = slot.take() else {
                continue;
            };
            // Wake the blocked accept: it sees `stopped` and returns. If the wake-up
            // cannot connect the thread is left behind rather than waited for forever.
            let woken = TcpStream::connect_timeout(&wake_addr(info.addr), WAKE_TIMEOUT).is_ok();
            if woken || handle.is_finished() {
                let _ = handle.join();
            }
        }
        // Accept threads are gone, so no connection thread starts any more.
        let late = std::mem::take(&mut self.shared.lock().threads);
        for handle in threads.into_iter().chain(late) {
            let _ = handle.join();
        }
    }
}

impl Drop for LondSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One bound listener.
#[derive(Debug)]
struct ListenerInfo {
    id: String,
    addr: SocketAddr,
    opts: SimOptions,
    client_id: Arc<str>,
    accepted: AtomicU64,
    requests: AtomicU64,
}

/// What the accept threads, the connection threads and `stop` share.
#[derive(Debug, Default)]
struct Shared {
    reg: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    /// `stop` was called: accept nothing more.
    stopped: bool,
    /// The key of the next connection.
    next_conn: u64,
    /// A handle on every open connection, to shut it down on `stop`.
    conns: HashMap<u64, TcpStream>,
    /// Connection threads not yet known to be finished.
    threads: Vec<JoinHandle<()>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where to connect to reach a listener bound to `addr` (the unspecified address is
/// reached through loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn accept_loop(listener: TcpListener, info: Arc<ListenerInfo>, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        let mut reg = shared.lock();
        if reg.stopped {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                drop(reg);
                thread::sleep(ACCEPT_ERROR_PAUSE);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        info.accepted.fetch_add(1, Ordering::SeqCst);
        let key = reg.next_conn;
        reg.next_conn += 1;
        reg.conns.insert(key, handle);
        reg.threads.retain(|t| !t.is_finished());
        let conn_info = Arc::clone(&info);
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("lond-sim-{}", info.id))
            .spawn(move || {
                serve(stream, conn_info);
                conn_shared.lock().conns.remove(&key);
            });
        match spawned {
            Ok(t) => reg.threads.push(t),
            Err(_) => {
                if let Some(s) = reg.conns.remove(&key) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// What the reader thread of a connection hands to its session thread.
enum Input {
    /// Bytes read from lonc.
    Data(Vec<u8>),
    /// lonc closed (or the socket failed, or was shut down).
    Eof,
}

/// Serves one accepted connection until it ends; closes it.
fn serve(stream: TcpStream, info: Arc<ListenerInfo>) {
    if info.opts.stall_handshake {
        discard_input(&stream);
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let Ok(read_half) = stream.try_clone() else {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    };
    let (tx, rx) = mpsc::channel();
    let reader = thread::Builder::new()
        .name(format!("lond-sim-read-{}", info.id))
        .spawn(move || read_loop(read_half, tx));
    let Ok(reader) = reader else {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    };
    let mut conn = Conn::new(stream, info);
    conn.run(&rx);
    // FIN after everything written, then wake the reader.
    let _ = conn.stream.shutdown(Shutdown::Write);
    let _ = conn.stream.shutdown(Shutdown::Both);
    let _ = reader.join();
}

/// Reads and drops everything until the peer closes or the socket is shut down.
fn discard_input(mut stream: &TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn read_loop(mut stream: TcpStream, tx: Sender<Input>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tx.send(Input::Data(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = tx.send(Input::Eof);
}

/// A `sleep:` reply waiting for its time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    due: Instant,
    /// Tie-breaker: equal deadlines fire in request order.
    seq: u64,
    id: u64,
    reply: Vec<u8>,
}

/// A request the simulator understands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command<'a> {
    Ping,
    Echo(&'a [u8]),
    Sleep(Duration, &'a [u8]),
    Big(usize),
    Eget(&'a [u8]),
    Exit,
    Connections,
    Unknown,
}

/// A decimal number of ASCII digits only (no sign, not empty), or `None`; saturates.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn command(line: &[u8]) -> Command<'_> {
    if line == b"ping" {
        Command::Ping
    } else if line == b"exit" {
        Command::Exit
    } else if line == b"connections" {
        Command::Connections
    } else if let Some(x) = line.strip_prefix(b"echo:") {
        Command::Echo(x)
    } else if let Some(x) = line.strip_prefix(b"eget:") {
        Command::Eget(x)
    } else if let Some(rest) = line.strip_prefix(b"sleep:") {
        let Some(colon) = rest.iter().position(|&b| b == b':') else {
            return Command::Unknown;
        };
        match decimal(&rest[..colon]) {
            Some(ms) => {
                Command::Sleep(Duration::from_millis(ms).min(MAX_SLEEP), &rest[colon + 1..])
            }
            None => Command::Unknown,
        }
    } else if let Some(n) = line.strip_prefix(b"big:") {
        match decimal(n) {
            Some(n) => Command::Big(usize::try_from(n).unwrap_or(usize::MAX).min(MAX_BIG)),
            None => Command::Unknown,
        }
    } else {
        Command::Unknown
    }
}

/// One connection's session, its pending `sleep:` replies and its write side.
struct Conn {
    stream: TcpStream,
    info: Arc<ListenerInfo>,
    session: LondSession,
    timers: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
    /// Requests taken on (those beyond `drop_after`, or after `exit`, are not).
    taken: u64,
    /// Close once every request taken on is answered and written.
    closing: bool,
    /// Lines transmitted so far.
    transmitted: u64,
    /// Small writes gathered before they go to the socket.
    out: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream, info: Arc<ListenerInfo>) -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cfg = LondConfig {
            own_id: info.id.clone(),
            client_id: info.client_id.to_string(),
            challenge: standard_challenge(std::process::id(), epoch),
            buildkey: random_buildkey(),
            refuse: info.opts.refuse,
            max_line: MAX_REQUEST,
        };
        Conn {
            stream,
            info,
            session: LondSession::new(cfg),
            timers: BinaryHeap::new(),
            next_seq: 0,
            taken: 0,
            closing: false,
            transmitted: 0,
            out: Vec::new(),
        }
    }

    /// Runs until the connection is to be closed.
    fn run(&mut self, rx: &Receiver<Input>) {
        loop {
            let input = match self.timers.peek() {
                None => rx.recv().ok(),
                Some(Reverse(t)) => {
                    let wait = t.due.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(input) => Some(input),
                        Err(RecvTimeoutError::Timeout) => Some(Input::Data(Vec::new())),
                        Err(RecvTimeoutError::Disconnected) => None,
                    }
                }
            };
            match input {
                Some(Input::Data(data)) => self.session.handle_data(&data),
                Some(Input::Eof) | None => return,
            }
            self.fire_timers();
            if self.drain().is_break() {
                return;
            }
        }
    }

    /// Gives the session every `sleep:` reply that is due.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|Reverse(t)| t.due <= now) {
            if let Some(Reverse(t)) = self.timers.pop() {
                self.session.reply(t.id, &t.reply);
            }
        }
    }

    /// Carries out every session event; `Break` when the connection is to be closed.
    fn drain(&mut self) -> ControlFlow<()> {
        while let Some(event) = self.session.poll_event() {
            match event {
                LondEvent::Transmit(bytes) => {
                    self.write(&bytes)?;
                    self.transmitted += 1;
                    if self.info.opts.close_during_handshake && self.transmitted == 1 {
                        self.flush()?;
                        return ControlFlow::Break(());
                    }
                }
                LondEvent::Request { id, line, .. } => self.request(id, &line)?,
                LondEvent::Close => {
                    self.flush()?;
                    return ControlFlow::Break(());
                }
            }
        }
        self.flush()?;
        if self.closing && self.timers.is_empty() {
            // Every request taken on is answered, and those come first in the reply
            // order, so all their replies are written.
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn request(&mut self, id: u64, line: &[u8]) -> ControlFlow<()> {
        self.info.requests.fetch_add(1, Ordering::SeqCst);
        if self.closing {
            return ControlFlow::Continue(());
        }
        let SimOptions {
            drop_after,
            malformed_enc,
            endless_line,
            ..
        } = self.info.opts;
        if drop_after.is_some_and(|n| self.taken >= n) {
            self.closing = true;
            return ControlFlow::Continue(());
        }
        self.taken += 1;
        if endless_line {
            self.flush()?;
            return self.endless();
        }
        match command(line) {
            Command::Ping => {
                let id_bytes = self.info.id.clone().into_bytes();
                self.session.reply(id, &id_bytes);
            }
            Command::Echo(x) => {
                self.session.reply(id, x);
            }
            Command::Sleep(delay, x) => {
                let now = Instant::now();
                let due = now.checked_add(delay).unwrap_or(now);
                let seq = self.next_seq;
                self.next_seq += 1;
                self.timers.push(Reverse(Timer {
                    due,
                    seq,
                    id,
                    reply: x.to_vec(),
                }));
            }
            Command::Big(n) => {
                let data = vec![b'x'; n];
                self.session.reply(id, &data);
            }
            Command::Eget(x) => {
                if malformed_enc {
                    self.session.reply(id, MALFORMED_ENC);
                } else {
                    self.session.reply_encrypted(id, x);
                }
            }
            Command::Exit => {
                self.session.reply(id, b"bye");
                self.closing = true;
            }
            Command::Connections => {
                let n = self.info.accepted.load(Ordering::SeqCst).to_string();
                self.session.reply(id, n.as_bytes());
            }
            Command::Unknown => {
                self.session.reply(id, b"unknown_cmd");
            }
        }
        if drop_after.is_some_and(|n| self.taken >= n) {
            self.closing = true;
        }
        ControlFlow::Continue(())
    }

    /// Writes bytes without LF until the peer closes (or the socket is shut down).
    fn endless(&mut self) -> ControlFlow<()> {
        let chunk = vec![b'x'; COALESCE];
        loop {
            if self.stream.write_all(&chunk).is_err() {
                return ControlFlow::Break(());
            }
        }
    }

    /// Queues `bytes` for the socket (large ones go out at once).
    fn write(&mut self, bytes: &[u8]) -> ControlFlow<()> {
        if bytes.len() >= COALESCE {
            self.flush()?;
            return self.write_now(bytes);
        }
        self.out.extend_from_slice(bytes);
        if self.out.len() >= COALESCE {
            self.flush()?;
        }
        ControlFlow::Continue(())
    }

    fn flush(&mut self) -> ControlFlow<()> {
        if self.out.is_empty() {
            return ControlFlow::Continue(());
        }
        let out = std::mem::take(&mut self.out);
        let flow = self.write_now(&out);
        self.out = out;
        self.out.clear();
        flow
    }

    fn write_now(&mut self, bytes: &[u8]) -> ControlFlow<()> {
        match self.stream.write_all(bytes) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    use lonc_core::cipher::{Decoded, LinkCipher};
    use lonc_core::handshake::{Handshake, HandshakeStep};
    use lonc_core::key::buildkey;
    use lonc_core::line::chomp;

    const IO_TIMEOUT: Duration = Duration::from_secs(5);

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn sim(ids: &[&str], opts: SimOptions) -> LondSim {
        let listeners = ids.iter().map(|id| (id.to_string(), local())).collect();
        LondSim::start(listeners, "msul2".into(), opts).unwrap()
    }

    struct Client {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
        cipher: Option<LinkCipher>,
        buildkey_line: Vec<u8>,
        host_line: Vec<u8>,
    }

    impl Client {
        fn connect(addr: SocketAddr) -> Client {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            Client {
                reader: BufReader::new(s.try_clone().unwrap()),
                writer: s,
                cipher: None,
                buildkey_line: Vec::new(),
                host_line: Vec::new(),
            }
        }

        /// Connects and runs the classic handshake as lonc on `msul2`.
        fn keyed(addr: SocketAddr, peer: &str) -> Client {
            let mut c = Client::connect(addr);
            let mut h = Handshake::new(peer, "msul2", false);
            c.send(&h.start());
            loop {
                let line = c.line();
                let stage = h.stage();
                match h.handle_line(&line) {
                    HandshakeStep::Send(b) => {
                        if stage == lonc_core::handshake::HandshakeStage::AwaitHostLine {
                            c.host_line = line;
                        }
                        c.send(&b);
                    }
                    HandshakeStep::Done {
                        key,
                        host_line_matched,
                    } => {
                        assert!(host_line_matched);
                        c.cipher = Some(LinkCipher::new(&key));
                        c.buildkey_line = line;
                        return c;
                    }
                    other => panic!("handshake: {other:?}"),
                }
            }
        }

        fn send(&mut self, bytes: &[u8]) {
            self.writer.write_all(bytes).unwrap();
        }

        /// One line, LF included (empty at EOF).
        fn line(&mut self) -> Vec<u8> {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            line
        }

        fn request(&mut self, req: &[u8]) -> Vec<u8> {
            let mut wire = req.to_vec();
            wire.push(b'\n');
            self.send(&wire);
            let line = self.line();
            assert!(
                line.ends_with(b"\n"),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
            chomp(&line).to_vec()
        }

        fn encrypted_request(&mut self, req: &[u8]) -> Vec<u8> {
            let mut wire = self.cipher.as_ref().unwrap().encrypt_line(req);
            wire.push(b'\n');
            self.send(&wire);
            chomp(&self.line()).to_vec()
        }

        /// Whether the server closed: EOF (or a reset) on the next read.
        fn at_eof(&mut self) -> bool {
            let mut buf = [0u8; 1];
            match self.reader.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
            }
        }
    }

    #[test]
    fn handshake_ping_echo_unknown_and_encrypted() {
        let sim = sim(&["msul1"], SimOptions::default());
        let (id, addr) = sim.addrs()[0].clone();
        assert_eq!(id, "msul1");
        assert_ne!(addr.port(), 0);
        assert_eq!(sim.addr("msul1"), Some(addr));
        assert_eq!(sim.addr("nope"), None);

        let mut c = Client::keyed(addr, "msul1");
        assert_eq!(c.host_line, b"msul1:msul2\n");
        let key = chomp(&c.buildkey_line);
        assert_eq!(key.len(), BUILDKEY_LEN);
        assert!(
            key.iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
        );

        assert_eq!(c.request(b"ping"), b"msul1");
        assert_eq!(c.request(b"echo:hello world"), b"hello world");
        assert_eq!(c.request(b"echo:"), b"");
        assert_eq!(c.request(b"foo"), b"unknown_cmd");
        assert_eq!(c.request(b"sleep:x:y"), b"unknown_cmd");
        assert_eq!(c.request(b"big:-1"), b"unknown_cmd");
        // Encrypted requests are answered the same way.
        assert_eq!(c.encrypted_request(b"echo:secret"), b"secret");
        assert_eq!(c.encrypted_request(b"ping"), b"msul1");
    }

    #[test]
    fn eget_is_encrypted_with_the_client_key() {
        let sim = sim(&["msul1"], SimOptions::default());
        let mut c = Client::keyed(sim.addr("msul1").unwrap(), "msul1");
        let reply = c.request(b"eget:the secret payload");
        assert!(reply.starts_with(b"enc:18:"), "{reply:?}");
        // A cipher made independently from the buildkey line as read.
        let cipher = LinkCipher::new(&buildkey("msul1", "msul2", &c.buildkey_line));
        assert_eq!(
            cipher.decrypt_line(&reply),
            Ok(Decoded::Decrypted(b"the secret payload".to_vec()))
        );
        let reply = c.encrypted_request(b"eget:x");
        assert_eq!(
            cipher.decrypt_line(&reply),
            Ok(Decoded::Decrypted(b"x".to_vec()))
        );
    }

    #[test]
    fn big_reply() {
        let sim = sim(&["msul1"], SimOptions::default());
        let mut c = Client::keyed(sim.addr("msul1").unwrap(), "msul1");
        let reply = c.request(b"big:300000");
        assert_eq!(reply.len(), 300_000);
        assert!(reply.iter().all(|&b| b == b'x'));
        assert_eq!(c.request(b"big:0"), b"");
        assert_eq!(c.request(b"ping"), b"msul1");
    }

    #[test]
    fn sleep_keeps_order_and_blocks_no_other_connection() {
        let sim = sim(&["msul1"], SimOptions::default());
        let addr = sim.addr("msul1").unwrap();
        let mut slow = Client::keyed(addr, "msul1");
        let mut other = Client::keyed(addr, "msul1");
        let start = Instant::now();
        slow.send(b"sleep:400:late\necho:early\nsleep:0:zero\n");
        // Another connection is served while the first one sleeps.
        assert_eq!(other.request(b"ping"), b"msul1");
        assert!(start.elapsed() < Duration::from_millis(300));
        assert_eq!(chomp(&slow.line()), b"late");
        assert!(start.elapsed() >= Duration::from_millis(400));
        assert_eq!(chomp(&slow.line()), b"early");
        assert_eq!(chomp(&slow.line()), b"zero");
        assert_eq!(slow.request(b"ping"), b"msul1");
    }

    #[test]
    fn exit_says_bye_and_closes() {
        let sim = sim(&["msul1"], SimOptions::default());
        let mut c = Client::keyed(sim.addr("msul1").unwrap(), "msul1");
        // A sleeping request before `exit` is still answered first.
        c.send(b"sleep:50:first\n");
        assert_eq!(c.request(b"exit"), b"first");
        assert_eq!(chomp(&c.line()), b"bye");
        assert!(c.at_eof());
    }

    #[test]
    fn connections_are_counted_per_listener() {
        let sim = sim(&["msul1", "msul3"], SimOptions::default());
        assert_eq!(sim.connections("msul1"), 0);
        let a = sim.addr("msul1").unwrap();
        let mut first = Client::keyed(a, "msul1");
        assert_eq!(first.request(b"connections"), b"1");
        let mut second = Client::keyed(a, "msul1");
        assert_eq!(second.request(b"connections"), b"2");
        assert_eq!(first.request(b"connections"), b"2");
        assert_eq!(sim.connections("msul1"), 2);
        assert_eq!(sim.connections("msul3"), 0);
        assert_eq!(sim.connections("unknown"), 0);
        let mut third = Client::keyed(sim.addr("msul3").unwrap(), "msul3");
        assert_eq!(third.request(b"ping"), b"msul3");
        assert_eq!(third.request(b"connections"), b"1");
        assert_eq!(sim.connections("msul3"), 1);
    }

    #[test]
    fn refuse_answers_refused_and_closes() {
        let sim = sim(
            &["msul1"],
            SimOptions {
                refuse: true,
                ..SimOptions::default()
            },
        );
        let mut c = Client::connect(sim.addr("msul1").unwrap());
        c.send(b"init\n");
        assert_eq!(c.line(), b"refused\n");
        assert!(c.at_eof());
    }

    #[test]
    fn wrong_echo_is_refused() {
        let sim = sim(&["msul1"], SimOptions::default());
        let mut c = Client::connect(sim.addr("msul1").unwrap());
        c.send(b"init\n");
        let challenge = c.line();
        let pid = std::process::id().to_string();
        assert!(challenge.starts_with(pid.as_bytes()), "{challenge:?}");
        c.send(b"0\n");
        assert_eq!(c.line(), b"refused\n");
        assert!(c.at_eof());
    }

    #[test]
    fn drop_after_closes_after_n_answers() {
        let sim = sim(
            &["msul1"],
            SimOptions {
                drop_after: Some(2),
                ..SimOptions::default()
            },
        );
        let addr = sim.addr("msul1").unwrap();
        let mut c = Client::keyed(addr, "msul1");
        assert_eq!(c.request(b"ping"), b"msul1");
        assert_eq!(c.request(b"echo:2"), b"2");
        assert!(c.at_eof());
        // Pipelined: the third request is never answered.
        let mut c = Client::keyed(addr, "msul1");
        c.send(b"sleep:30:a\necho:b\necho:c\n");
        assert_eq!(c.line(), b"a\n");
        assert_eq!(c.line(), b"b\n");
        assert!(c.at_eof());
        assert_eq!(sim.connections("msul1"), 2);
    }

    #[test]
    fn drop_after_zero_closes_at_the_first_request() {
        let sim = sim(
            &["msul1"],
            SimOptions {
                drop_after: Some(0),
                ..SimOptions::default()
            },
        );
        let mut c = Client::keyed(sim.addr("msul1").unwrap(), "msul1");
        c.send(b"ping\n");
        assert!(c.at_eof());
    }

    #[test]
    fn stall_handshake_never_answers() {
        let sim = sim(
            &["msul1"],
            SimOptions {
                stall_handshake: true,
                ..SimOptions::default()
            },
        );
        let mut c = Client::connect(sim.addr("msul1").unwrap());
        c.writer
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        c.send(b"init\n");
        let mut buf = [0u8; 1];
        let err = c.reader.read(&mut buf).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{err:?}"
        );
        // Stopping closes the stalled connection too.
        c.writer.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        sim.stop();
        assert!(c.at_eof());
    }

    #[test]
    fn close_during_handshake_closes_after_the_challenge() {
        let sim = sim(
            &["msul1"],
            SimOptions {
                close_during_handshake: true,
                ..SimOptions::default()
            },
        );
        let mut c = Client::connect(sim.addr("msul1").unwrap());
        c.send(b"init\n");
        let challenge = c.line();
        assert!(challenge.len() > 1 && challenge.ends_with(b"\n"));
        assert!(c.at_eof());
    }

    #[test]
    fn malformed_enc_reply() {
        let sim = sim(
            &["msul1"],
            SimOptions {
                malformed_enc: true,
                ..SimOptions::default()
            },
        );
        let mut c = Client::keyed(sim.addr("msul1").unwrap(), "msul1");
        let reply = c.request(b"eget:x");
        assert_eq!(reply, MALFORMED_ENC);
        assert!(c.cipher.as_ref().unwrap().decrypt_line(&reply).is_err());
        assert_eq!(c.request(b"echo:still fine"), b"still fine");
    }

    #[test]
    fn endless_line_after_the_handshake() {
        let sim = sim(
            &["msul1"],
            SimOptions {
                endless_line: true,
                ..SimOptions::default()
            },
        );
        let mut c = Client::keyed(sim.addr("msul1").unwrap(), "msul1");
        c.send(b"ping\n");
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while got < 1 << 20 {
            let n = c.reader.read(&mut buf).unwrap();
            assert!(n > 0);
            assert!(!buf[..n].contains(&b'\n'));
            got += n;
        }
        drop(c);
        // The writer notices the close; stop still returns promptly either way.
        let start = Instant::now();
        sim.stop();
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn per_listener_options() {
        let listeners = vec![
            SimListener::new("good", local(), SimOptions::default()),
            SimListener::new(
                "bad",
                local(),
                SimOptions {
                    refuse: true,
                    ..SimOptions::default()
                },
            ),
        ];
        let sim = LondSim::start_listeners(listeners, "msul2".into()).unwrap();
        let mut good = Client::keyed(sim.addr("good").unwrap(), "good");
        assert_eq!(good.request(b"ping"), b"good");
        let mut bad = Client::connect(sim.addr("bad").unwrap());
        bad.send(b"init\n");
        assert_eq!(bad.line(), b"refused\n");
    }

    #[test]
    fn stop_is_prompt_and_closes_everything() {
        let sim = sim(&["msul1", "msul3"], SimOptions::default());
        let addrs = sim.addrs();
        let mut c = Client::keyed(addrs[0].1, "msul1");
        // A connection with a long sleep pending, and one mid-handshake.
        c.send(b"sleep:60000:never\n");
        let mut half = Client::connect(addrs[1].1);
        half.send(b"init\n");
        half.line();
        let start = Instant::now();
        sim.stop();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(c.at_eof());
        assert!(half.at_eof());
        for (_, addr) in addrs {
            assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
        }
    }

    #[test]
    fn drop_stops_too() {
        let sim = sim(&["msul1"], SimOptions::default());
        let addr = sim.addr("msul1").unwrap();
        let mut c = Client::keyed(addr, "msul1");
        drop(sim);
        assert!(c.at_eof());
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn bind_failure_names_the_listener() {
        let taken = TcpListener::bind(local()).unwrap();
        let addr = taken.local_addr().unwrap();
        let err = LondSim::start(
            vec![("ok".into(), local()), ("busy".into(), addr)],
            "msul2".into(),
            SimOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("busy="), "{err}");
    }

    #[test]
    fn commands_are_parsed_as_bytes() {
        assert_eq!(command(b"ping"), Command::Ping);
        assert_eq!(command(b"ping "), Command::Unknown);
        assert_eq!(command(b"echo:a:b"), Command::Echo(b"a:b"));
        assert_eq!(command(b"echo:\xff"), Command::Echo(b"\xff"));
        assert_eq!(
            command(b"sleep:15:a:b"),
            Command::Sleep(Duration::from_millis(15), b"a:b")
        );
        assert_eq!(
            command(b"sleep:99999999999999999999999:x"),
            Command::Sleep(MAX_SLEEP, b"x")
        );
        assert_eq!(command(b"sleep:15"), Command::Unknown);
        assert_eq!(command(b"sleep::x"), Command::Unknown);
        assert_eq!(command(b"sleep:+1:x"), Command::Unknown);
        assert_eq!(command(b"big:12"), Command::Big(12));
        assert_eq!(command(b"big:99999999999"), Command::Big(MAX_BIG));
        assert_eq!(command(b"big:"), Command::Unknown);
        assert_eq!(command(b"eget:"), Command::Eget(b""));
        assert_eq!(command(b"exit"), Command::Exit);
        assert_eq!(command(b"connections"), Command::Connections);
        assert_eq!(command(b""), Command::Unknown);
    }

    #[test]
    fn listen_specs() {
        assert_eq!(
            parse_listen("msul2=127.0.0.2:5663"),
            Ok(("msul2".into(), "127.0.0.2:5663".parse().unwrap()))
        );
        assert_eq!(
            parse_listen("v6=[::1]:0"),
            Ok(("v6".into(), "[::1]:0".parse().unwrap()))
        );
        assert!(parse_listen("127.0.0.1:5663").is_err());
        assert!(parse_listen("=127.0.0.1:5663").is_err());
        assert!(parse_listen("a:b=127.0.0.1:5663").is_err());
        assert!(parse_listen("msul2=127.0.0.1").is_err());
        assert!(parse_listen("msul2=127.0.0.1:notaport").is_err());
    }

    #[test]
    fn buildkeys_are_hex_and_fresh() {
        let a = random_buildkey();
        assert_eq!(a.len(), BUILDKEY_LEN);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
        assert_ne!(a, random_buildkey());
    }
}
