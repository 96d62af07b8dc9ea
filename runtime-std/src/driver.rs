//! The blocking driver: one thread per peer owns that peer's [`lonc_core::peer::Peer`] state machine and
//! carries out its outputs; small threads move bytes (an acceptor per peer socket, a
//! reader and a writer per client and per TCP connection, a thread per connect attempt).
//! Every decision is the core's: this file only moves bytes, files and timers.

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
use lonc_core::delayed::DelayedEntry;
use lonc_core::io::{ClientId, ConnId, Severity};
use lonc_core::peer::PeerState;
use lonc_core::roster::PeerSpec;

use crate::logfile::LogFiles;
use crate::peer_io::{
    self, Action, Backlog, CLOSE_FLUSH, Closer, INPUT_QUEUE, Outbox, PeerIo, PeerSnapshot,
    READ_CHUNK, Writers,
};
use crate::spool::Spool;
use crate::supervisor::PeerContext;

type Input = peer_io::Input<StdOutbox, TcpStream>;

/// A socket's write queue, drained by a writer thread.
pub struct StdOutbox {
    tx: Sender<Bytes>,
    backlog: Backlog,
    socket: Box<dyn ShutdownStream + Send>,
}

impl Outbox for StdOutbox {
    fn push(&self, data: Bytes) -> bool {
        let n = data.len();
        self.backlog.take(n) && self.tx.send(data).is_ok()
    }

    fn abort(&self) {
        self.socket.shutdown_both();
    }
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
    writers: Writers,
}

impl PeerHandle {
    /// Starts a peer on an already bound socket: an acceptor thread for `listener` and the
    /// peer thread.
    pub fn start(
        spec: PeerSpec,
        ctx: &PeerContext,
        listener: UnixListener,
    ) -> io::Result<PeerHandle> {
        let socket = ctx.paths.socket(&spec.id);
        let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
        let (io, snapshot) = PeerIo::start(&spec, &ctx.own_id);
        let writers = Writers::default();
        let runner = PeerThread {
            io,
            id: spec.id.clone(),
            inputs: rx,
            self_tx: tx.clone(),
            ctx: ctx.clone(),
            writers: writers.clone(),
        };
        let thread = thread::Builder::new()
            .name(format!("peer {}", spec.id))
            .spawn(move || runner.run())?;
        let accept_stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = accept_stop.clone();
            let tx = tx.clone();
            let writers = writers.clone();
            thread::Builder::new()
                .name(format!("accept {}", spec.id))
                .spawn(move || accept_loop(listener, tx, stop, writers))?
        };
        Ok(PeerHandle {
            spec,
            socket,
            inputs: tx,
            accept_stop,
            acceptor: Some(acceptor),
            thread: Some(thread),
            snapshot,
            writers,
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

    /// Waits for the peer's threads to end, and for its writers to flush what the peer
    /// answered (up to [`CLOSE_FLUSH`]).
    pub fn join(&mut self) {
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.writers.wait_idle(CLOSE_FLUSH);
    }
}

/// Accepts clients on a peer's socket until told to stop.
fn accept_loop(
    listener: UnixListener,
    tx: SyncSender<Input>,
    stop: Arc<AtomicBool>,
    writers: Writers,
) {
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
        let writer = spawn_writer(stream, &writers, {
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

/// A thread that writes what it is sent to `stream`, in order; when the queue is dropped
/// it shuts the stream down. A write error calls `failed` once and ends it.
fn spawn_writer<W>(
    stream: W,
    writers: &Writers,
    failed: impl FnOnce() + Send + 'static,
) -> io::Result<StdOutbox>
where
    W: Write + ShutdownStream + TryCloneStream + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>();
    let backlog = Backlog::default();
    let socket = Box::new(stream.try_clone_stream()?);
    let guard = writers.enter();
    let written = backlog.clone();
    thread::Builder::new()
        .name("writer".into())
        .spawn(move || {
            let _guard = guard;
            let mut stream = stream;
            for data in rx {
                if stream.write_all(&data).is_err() {
                    failed();
                    stream.shutdown_both();
                    return;
                }
                written.written(data.len());
            }
            stream.shutdown_both();
        })?;
    Ok(StdOutbox {
        tx,
        backlog,
        socket,
    })
}

/// Cloning a socket's handle.
trait TryCloneStream: Sized {
    fn try_clone_stream(&self) -> io::Result<Self>;
}

impl TryCloneStream for UnixStream {
    fn try_clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
}

impl TryCloneStream for TcpStream {
    fn try_clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
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

/// The state of one peer thread.
struct PeerThread {
    io: PeerIo<StdOutbox, TcpStream>,
    id: String,
    inputs: Receiver<Input>,
    self_tx: SyncSender<Input>,
    ctx: PeerContext,
    writers: Writers,
}

impl PeerThread {
    fn run(mut self) {
        loop {
            self.carry_out();
            if self.io.peer.is_stopped() {
                break;
            }
            let input = match self.io.peer.poll_timeout() {
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
                None => self.io.peer.handle_timeout(now),
                Some(input) => {
                    if let Some((conn, stream)) = self.io.handle(now, input) {
                        self.connected(now, conn, stream);
                    }
                }
            }
        }
        self.io.close_all();
    }

    /// Starts the reader and writer of a new connection.
    fn connected(&mut self, now: Instant, conn: ConnId, stream: TcpStream) {
        let (reader, closer) = match (stream.try_clone(), stream.try_clone()) {
            (Ok(r), Ok(c)) => (r, c),
            _ => return self.io.attach_failed(now, conn, "cannot clone the socket"),
        };
        let tx = self.self_tx.clone();
        let writer = match spawn_writer(stream, &self.writers, move || {
            let _ = tx.send(Input::ConnClosed(conn));
        }) {
            Ok(w) => w,
            Err(e) => return self.io.attach_failed(now, conn, &e.to_string()),
        };
        let tx = self.self_tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("lond reader {}", self.id))
            .spawn(move || {
                let closed = tx.clone();
                let data = |data| tx.send(Input::ConnData(conn, data)).is_ok();
                let end = move || {
                    let _ = closed.send(Input::ConnClosed(conn));
                };
                read_loop(reader, data, end.clone(), end)
            });
        match spawned {
            Ok(_) => self.io.attach(now, conn, writer, closer),
            Err(e) => {
                closer.close_now();
                self.io.attach_failed(now, conn, &e.to_string());
            }
        }
    }

    /// Carries out the peer's outputs; spool answers go straight back to the peer.
    fn carry_out(&mut self) {
        while let Some(action) = self.io.next_action() {
            let now = Instant::now();
            let (spool, logs, id) = (&self.ctx.spool, &self.ctx.logs, self.id.as_str());
            match action {
                Action::Connect { conn, host, port } => self.connect(conn, host, port),
                Action::ListDelayed => {
                    let entries = spool_list(spool, logs, id);
                    self.io.peer.handle_delayed_list(now, &entries);
                }
                Action::ReadDelayed(name) => {
                    let max = self.io.peer.settings().max_request;
                    let content = spool_read(spool, &name, max);
                    let content = content.as_deref().map_err(String::as_str);
                    self.io.peer.handle_delayed_read(now, &name, content);
                }
                Action::DeleteDelayed(name) => {
                    if let Err(why) = spool_delete(spool, &name) {
                        self.io.peer.handle_delayed_delete_failed(now, &name, &why);
                    }
                }
                Action::PermLog(entry) => logs.perm_log(&entry),
                Action::Log(event) => logs.log(id, event.severity, &event.message),
            }
        }
    }

    fn connect(&mut self, conn: ConnId, host: String, port: u16) {
        let tx = self.self_tx.clone();
        let timeout = self.io.peer.settings().connect_timeout;
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
            let input = Input::ConnectFailed(conn, e.to_string());
            let _ = self.io.handle::<TcpStream>(Instant::now(), input);
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

/// The delayed spool's entries for `ListDelayed`; an unreadable spool is
/// logged and taken as empty.
pub fn spool_list(spool: &Spool, logs: &LogFiles, peer: &str) -> Vec<DelayedEntry> {
    spool.list().unwrap_or_else(|e| {
        let message = format!("cannot list the delayed spool: {e}");
        logs.log(peer, Severity::Critical, &message);
        Vec::new()
    })
}

/// A delayed file's start for `ReadDelayed` (at most `max + 1` bytes), or why
/// it cannot be read.
pub fn spool_read(spool: &Spool, name: &str, max: usize) -> Result<Vec<u8>, String> {
    spool.read_request(name, max).map_err(|e| e.to_string())
}

/// Deletes a delivered delayed file (`DeleteDelayed`); why it failed goes back to the
/// core (`handle_delayed_delete_failed`), which decides what it means.
pub fn spool_delete(spool: &Spool, name: &str) -> Result<(), String> {
    spool.delete(name).map_err(|e| e.to_string())
}
