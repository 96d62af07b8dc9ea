//! The blocking driver: one thread per peer owns that peer's [`Peer`] state machine and
//! carries out its outputs; small threads move bytes (an acceptor per peer socket, a
//! reader and a writer per client and per TCP connection, a thread per connect attempt).
//! Every decision is the core's: this file only moves bytes, files and timers.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lonc_core::io::{ClientId, ConnId, Output, Severity};
use lonc_core::peer::{Peer, PeerState};
use lonc_core::roster::PeerSpec;

use crate::logfile::LogFiles;
use crate::spool::Spool;
use crate::supervisor::PeerContext;

/// How many inputs may wait for a peer thread before readers block (backpressure).
const INPUT_QUEUE: usize = 1024;
/// How much one read takes from a socket.
const READ_CHUNK: usize = 64 * 1024;

/// What reaches a peer thread.
enum Input {
    ClientAccepted(ClientId, Sender<Bytes>),
    ClientData(ClientId, Vec<u8>),
    ClientEof(ClientId),
    ClientGone(ClientId),
    Connected(ConnId, TcpStream),
    ConnectFailed(ConnId, String),
    ConnData(ConnId, Vec<u8>),
    ConnClosed(ConnId),
    Revive,
    Shutdown(Duration),
}

/// What the peer thread shows the rest of the daemon (for the status file).
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    /// The peer's state word.
    pub state: PeerState,
    /// Open TCP connections.
    pub connections: usize,
}

/// A running peer: its thread, its socket's acceptor, and the way to talk to it.
pub struct PeerHandle {
    spec: PeerSpec,
    socket: PathBuf,
    inputs: SyncSender<Input>,
    accept_stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    thread: Option<JoinHandle<()>>,
    snapshot: Arc<Mutex<PeerSnapshot>>,
}

impl PeerHandle {
    /// Starts a peer on an already bound socket: an acceptor thread for `listener` and the
    /// peer thread. `seed` drives the peer's backoff.
    pub fn start(
        spec: PeerSpec,
        ctx: &PeerContext,
        listener: UnixListener,
        seed: u64,
    ) -> io::Result<PeerHandle> {
        let socket = ctx.paths.socket(&spec.id);
        let own_id = ctx.own_id.as_str();
        let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
        let peer = Peer::new(
            &spec.id,
            own_id,
            &spec.host,
            spec.port,
            spec.link.clone(),
            seed,
            Instant::now(),
        );
        let snapshot = Arc::new(Mutex::new(PeerSnapshot {
            state: peer.state(),
            connections: 0,
        }));
        let runner = PeerThread {
            peer,
            id: spec.id.clone(),
            inputs: rx,
            self_tx: tx.clone(),
            logs: ctx.logs.clone(),
            spool: ctx.spool.clone(),
            clients: BTreeMap::new(),
            conns: BTreeMap::new(),
            snapshot: snapshot.clone(),
            connect_timeout: spec.link.connect_timeout,
            local: VecDeque::new(),
        };
        let thread = thread::Builder::new()
            .name(format!("peer {}", spec.id))
            .spawn(move || runner.run())?;
        let accept_stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = accept_stop.clone();
            let tx = tx.clone();
            thread::Builder::new()
                .name(format!("accept {}", spec.id))
                .spawn(move || accept_loop(listener, tx, stop))?
        };
        Ok(PeerHandle {
            spec,
            socket,
            inputs: tx,
            accept_stop,
            acceptor: Some(acceptor),
            thread: Some(thread),
            snapshot,
        })
    }

    /// The peer this handle runs.
    pub fn spec(&self) -> &PeerSpec {
        &self.spec
    }

    /// The peer's socket path.
    pub fn socket(&self) -> &PathBuf {
        &self.socket
    }

    /// The peer's state as of its last step.
    pub fn snapshot(&self) -> PeerSnapshot {
        self.snapshot
            .lock()
            .map(|s| s.clone())
            .unwrap_or(PeerSnapshot {
                state: PeerState::Stopped,
                connections: 0,
            })
    }

    /// USR1: revive the peer if dead, look at the delayed spool.
    pub fn revive(&self) {
        let _ = self.inputs.send(Input::Revive);
    }

    /// Stops accepting clients at once, then lets requests in flight finish for up to
    /// `grace`, says `exit` to lond, and ends the thread. Returns without waiting; call
    /// [`PeerHandle::join`] to wait.
    pub fn begin_stop(&mut self, grace: Duration) {
        self.accept_stop.store(true, Ordering::SeqCst);
        // Wake the acceptor blocked in accept().
        let _ = UnixStream::connect(&self.socket);
        let _ = self.inputs.send(Input::Shutdown(grace));
    }

    /// Waits for the peer's threads to end.
    pub fn join(&mut self) {
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts clients on a peer's socket until told to stop.
fn accept_loop(listener: UnixListener, tx: SyncSender<Input>, stop: Arc<AtomicBool>) {
    static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            // EMFILE and the like: back off a little rather than spin.
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        let client = ClientId(NEXT_CLIENT.fetch_add(1, Ordering::Relaxed));
        let Ok(reader) = stream.try_clone() else {
            continue;
        };
        let tx_reader = tx.clone();
        let writer = spawn_writer(stream, {
            let tx = tx.clone();
            move || {
                let _ = tx.send(Input::ClientGone(client));
            }
        });
        let Ok(writer) = writer else { continue };
        if tx.send(Input::ClientAccepted(client, writer)).is_err() {
            break;
        }
        let spawned = thread::Builder::new()
            .name("client reader".into())
            .spawn(move || {
                read_loop(
                    reader,
                    |data| tx_reader.send(Input::ClientData(client, data)).is_ok(),
                    || {
                        let _ = tx_reader.send(Input::ClientEof(client));
                    },
                    || {
                        let _ = tx_reader.send(Input::ClientGone(client));
                    },
                )
            });
        if spawned.is_err() {
            let _ = tx.send(Input::ClientGone(client));
        }
    }
}

/// Reads a stream in chunks until EOF (`eof`) or an error (`failed`); `data` returning
/// false (the peer is gone) ends the loop.
fn read_loop<R: Read>(
    mut stream: R,
    mut data: impl FnMut(Vec<u8>) -> bool,
    eof: impl FnOnce(),
    failed: impl FnOnce(),
) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return eof(),
            Ok(n) => {
                if !data(buf[..n].to_vec()) {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return failed(),
        }
    }
}

/// A thread that writes what it is sent to `stream`, in order; when the sender is
/// dropped it shuts the stream down. A write error calls `failed` once and ends it.
fn spawn_writer<W>(stream: W, failed: impl FnOnce() + Send + 'static) -> io::Result<Sender<Bytes>>
where
    W: Write + ShutdownStream + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>();
    thread::Builder::new()
        .name("writer".into())
        .spawn(move || {
            let mut stream = stream;
            for data in rx {
                if stream.write_all(&data).is_err() {
                    failed();
                    stream.shutdown_both();
                    return;
                }
            }
            stream.shutdown_both();
        })?;
    Ok(tx)
}

/// Shutting down both directions of a socket.
trait ShutdownStream {
    fn shutdown_both(&self);
}

impl ShutdownStream for UnixStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl ShutdownStream for TcpStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// One open TCP connection, seen from the peer thread.
struct ConnIo {
    writer: Sender<Bytes>,
    /// To shut the socket down at once (the writer may be blocked).
    stream: TcpStream,
}

/// The state of one peer thread.
struct PeerThread {
    peer: Peer,
    id: String,
    inputs: Receiver<Input>,
    self_tx: SyncSender<Input>,
    logs: LogFiles,
    spool: Spool,
    clients: BTreeMap<ClientId, Sender<Bytes>>,
    conns: BTreeMap<ConnId, Option<ConnIo>>,
    snapshot: Arc<Mutex<PeerSnapshot>>,
    connect_timeout: Duration,
    /// Inputs the peer thread makes for itself (it must never block on its own channel).
    local: VecDeque<Input>,
}

impl PeerThread {
    fn run(mut self) {
        loop {
            self.carry_out();
            if self.peer.is_stopped() {
                break;
            }
            if let Some(input) = self.local.pop_front() {
                self.handle(Instant::now(), input);
                continue;
            }
            let input = match self.peer.poll_timeout() {
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    match self.inputs.recv_timeout(wait) {
                        Ok(input) => Some(input),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.inputs.recv() {
                    Ok(input) => Some(input),
                    Err(_) => break,
                },
            };
            let now = Instant::now();
            match input {
                None => self.peer.handle_timeout(now),
                Some(input) => self.handle(now, input),
            }
        }
        // Whatever is left: close it.
        for (_, io) in std::mem::take(&mut self.conns) {
            if let Some(io) = io {
                io.stream.shutdown_both();
            }
        }
        self.clients.clear();
        self.publish();
    }

    fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::ClientAccepted(client, writer) => {
                self.clients.insert(client, writer);
            }
            // Bytes from a client the core already closed are dropped: the core would take
            // them for a new client.
            Input::ClientData(client, data) => {
                if self.clients.contains_key(&client) {
                    self.peer.handle_client_data(now, client, &data);
                }
            }
            Input::ClientEof(client) => {
                if self.clients.contains_key(&client) {
                    self.peer.handle_client_eof(now, client);
                }
            }
            Input::ClientGone(client) => {
                if self.clients.remove(&client).is_some() {
                    self.peer.handle_client_gone(now, client);
                }
            }
            Input::Connected(conn, stream) => self.connected(now, conn, stream),
            Input::ConnectFailed(conn, why) => {
                if self.conns.remove(&conn).is_some() {
                    self.peer.handle_connect_failed(now, conn, &why);
                }
            }
            Input::ConnData(conn, data) => self.peer.handle_conn_data(now, conn, &data),
            Input::ConnClosed(conn) => {
                if let Some(Some(io)) = self.conns.remove(&conn) {
                    io.stream.shutdown_both();
                    self.peer.handle_conn_closed(now, conn);
                }
            }
            Input::Revive => self.peer.revive(now),
            Input::Shutdown(grace) => self.peer.shutdown(now, grace),
        }
    }

    fn connected(&mut self, now: Instant, conn: ConnId, stream: TcpStream) {
        // Abandoned attempts (the core timed them out) are simply dropped.
        if !matches!(self.conns.get(&conn), Some(None)) {
            return;
        }
        let reader = stream.try_clone();
        let shutdown = stream.try_clone();
        let tx = self.self_tx.clone();
        let writer = spawn_writer(stream, move || {
            let _ = tx.send(Input::ConnClosed(conn));
        });
        let (Ok(reader), Ok(shutdown), Ok(writer)) = (reader, shutdown, writer) else {
            self.conns.remove(&conn);
            self.peer
                .handle_connect_failed(now, conn, "could not set up the connection");
            return;
        };
        let tx = self.self_tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("lond reader {}", self.id))
            .spawn(move || {
                let tx2 = tx.clone();
                let tx3 = tx.clone();
                read_loop(
                    reader,
                    |data| tx.send(Input::ConnData(conn, data)).is_ok(),
                    move || {
                        let _ = tx2.send(Input::ConnClosed(conn));
                    },
                    move || {
                        let _ = tx3.send(Input::ConnClosed(conn));
                    },
                )
            });
        if spawned.is_err() {
            shutdown.shutdown_both();
            self.conns.remove(&conn);
            self.peer
                .handle_connect_failed(now, conn, "could not start a reader thread");
            return;
        }
        self.conns.insert(
            conn,
            Some(ConnIo {
                writer,
                stream: shutdown,
            }),
        );
        self.peer.handle_connected(now, conn);
    }

    /// Drains the peer's outputs and carries them out, feeding back what answers at once
    /// (spool listings and reads).
    fn carry_out(&mut self) {
        while let Some(out) = self.peer.poll_output() {
            match out {
                Output::Connect { conn, host, port } => self.connect(conn, host, port),
                Output::Transmit { conn, data } => {
                    if let Some(Some(io)) = self.conns.get(&conn)
                        && io.writer.send(data).is_err()
                    {
                        self.local.push_back(Input::ConnClosed(conn));
                    }
                }
                Output::CloseConn { conn } => {
                    // Dropping the writer flushes what was queued and shuts the socket.
                    if let Some(Some(io)) = self.conns.remove(&conn) {
                        drop(io.writer);
                        let stream = io.stream;
                        // Do not let a lond that never reads hold the socket open.
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
                    }
                }
                Output::Reply { client, data } => {
                    if let Some(w) = self.clients.get(&client)
                        && w.send(data).is_err()
                    {
                        self.clients.remove(&client);
                        self.peer.handle_client_gone(Instant::now(), client);
                    }
                }
                Output::CloseClient { client } => {
                    self.clients.remove(&client);
                }
                Output::ListDelayed => {
                    let names = spool_list(&self.spool, &self.logs, &self.id);
                    self.peer.handle_delayed_list(Instant::now(), &names);
                }
                Output::ReadDelayed { name } => {
                    let max = self.peer.settings().max_request;
                    let content = spool_read(&self.spool, &name, max);
                    let content = content.as_deref().map_err(String::as_str);
                    self.peer
                        .handle_delayed_read(Instant::now(), &name, content);
                }
                Output::DeleteDelayed { name } => {
                    spool_delete(&self.spool, &self.logs, &self.id, &name);
                }
                Output::PermLog(entry) => self.logs.perm_log(&entry),
                Output::Log(event) => self.logs.log(&self.id, event.severity, &event.message),
            }
        }
        self.publish();
    }

    fn connect(&mut self, conn: ConnId, host: String, port: u16) {
        self.conns.insert(conn, None);
        let tx = self.self_tx.clone();
        let timeout = self.connect_timeout;
        let spawned = thread::Builder::new()
            .name(format!("connect {}", self.id))
            .spawn(move || {
                let input = match open_tcp(&host, port, timeout) {
                    Ok(stream) => Input::Connected(conn, stream),
                    Err(e) => Input::ConnectFailed(conn, e.to_string()),
                };
                let _ = tx.send(input);
            });
        if let Err(e) = spawned {
            self.local
                .push_back(Input::ConnectFailed(conn, e.to_string()));
        }
    }

    fn publish(&self) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.state = self.peer.state();
            s.connections = self.peer.connection_count();
        }
    }
}

/// Resolves `host` and connects to the first address that answers within `timeout`,
/// with TCP keepalive and no Nagle delay.
pub fn open_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1))) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let _ = nix::sys::socket::setsockopt(
                    &stream,
                    nix::sys::socket::sockopt::KeepAlive,
                    &true,
                );
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The delayed spool's file names for [`Output::ListDelayed`]; an unreadable spool is
/// logged and taken as empty.
pub fn spool_list(spool: &Spool, logs: &LogFiles, peer: &str) -> Vec<String> {
    spool.list().unwrap_or_else(|e| {
        let message = format!("cannot list the delayed spool: {e}");
        logs.log(peer, Severity::Critical, &message);
        Vec::new()
    })
}

/// A delayed file's start for [`Output::ReadDelayed`] (at most `max + 1` bytes), or why
/// it cannot be read.
pub fn spool_read(spool: &Spool, name: &str, max: usize) -> Result<Vec<u8>, String> {
    spool.read_request(name, max).map_err(|e| e.to_string())
}

/// Deletes a delivered delayed file ([`Output::DeleteDelayed`]), logging a failure.
pub fn spool_delete(spool: &Spool, logs: &LogFiles, peer: &str, name: &str) {
    if let Err(e) = spool.delete(name) {
        let message = format!("cannot delete delayed message {name}: {e}");
        logs.log(peer, Severity::Critical, &message);
    }
}
