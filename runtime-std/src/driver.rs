//! The blocking driver: one thread per peer owns that peer's [`lonc_core::peer::Peer`] state machine and
//! carries out its outputs; small threads move bytes (an acceptor per peer socket, a
//! reader and a writer per client and per TCP connection, a thread per connect attempt).
//! Every decision is the core's: this file only moves bytes, files and timers.
//!
//! Each socket is one file descriptor, shared by its reader and writer threads (an
//! `Arc`, never a `try_clone`), so a peer costs its listening socket and one descriptor
//! per link, and a client one. An acceptor waits for clients in `poll()`, not in a
//! blocked `accept()`: Linux reserves a descriptor number for every blocked `accept()`
//! (one more per peer, and invisible in `/proc/<pid>/fd`). Stopping never goes through
//! the filesystem: the listening socket is shut down, which wakes its acceptor, and the
//! whole stop is bounded in time.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lonc_core::io::{ClientId, ConnId, Severity};
use lonc_core::peer::PeerState;
use lonc_core::roster::PeerSpec;
use lonc_host::hangup;
use lonc_host::link_socket::open_tcp;
use lonc_host::local_error::{alarm, is_local_resource_error};
use lonc_host::logfile::LogFiles;
use lonc_host::peer_io::{
    self, ACCEPT_PAUSE, Action, Backlog, CLOSE_FLUSH, Closer, INPUT_QUEUE, Outbox, PeerIo,
    PeerSnapshot, READ_CHUNK, STOP_SLACK, Writers, spool_delete, spool_list, spool_read,
};
use lonc_host::supervisor::PeerContext;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

type Input = peer_io::Input<StdOutbox, TcpStream>;

/// A socket's write queue, drained by a writer thread.
pub struct StdOutbox {
    tx: Sender<Bytes>,
    backlog: Backlog,
    socket: Arc<dyn ShutdownStream + Send + Sync>,
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

/// A TCP connection's socket as its reader and writer share it, closable from the peer
/// thread.
pub struct StdConn(Arc<TcpStream>);

impl Closer for StdConn {
    fn close_now(&self) {
        self.0.close_now();
    }

    fn close_soon(&self) {
        self.0.close_soon();
    }
}

/// A running peer: its thread, its socket's acceptor, and the way to talk to it.
pub struct PeerHandle {
    spec: PeerSpec,
    socket: PathBuf,
    listener: Arc<UnixListener>,
    inputs: SyncSender<Input>,
    accept_stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    thread: Option<JoinHandle<()>>,
    snapshot: Arc<Mutex<PeerSnapshot>>,
    writers: Writers,
    logs: LogFiles,
    /// Set by [`PeerHandle::begin_stop`]: when the peer's threads must have ended.
    stop_by: Option<Instant>,
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
        listener.set_nonblocking(true)?;
        let listener = Arc::new(listener);
        let accept_stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let acceptor = Acceptor {
                listener: listener.clone(),
                tx: tx.clone(),
                stop: accept_stop.clone(),
                writers: writers.clone(),
                logs: ctx.logs.clone(),
            };
            thread::Builder::new()
                .name(format!("accept {}", spec.id))
                .spawn(move || acceptor.run())
        };
        let acceptor = match acceptor {
            Ok(a) => a,
            Err(e) => {
                // The peer thread stops at once: nothing was accepted.
                let _ = tx.send(Input::Shutdown(Duration::ZERO));
                return Err(e);
            }
        };
        Ok(PeerHandle {
            spec,
            socket,
            listener,
            inputs: tx,
            accept_stop,
            acceptor: Some(acceptor),
            thread: Some(thread),
            snapshot,
            writers,
            logs: ctx.logs.clone(),
            stop_by: None,
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
            })
    }

    /// USR1: revive the peer if dead, look at the delayed spool.
    pub fn revive(&self) {
        send_by(
            &self.inputs,
            Input::Revive,
            Instant::now() + Duration::from_secs(1),
        );
    }

    /// Stops accepting clients at once, then lets requests in flight finish for up to
    /// `grace`, says `exit` to lond, and ends the thread. Returns without waiting; call
    /// [`PeerHandle::join`] to wait.
    ///
    /// Neither the socket's path nor a new descriptor is needed: the listening socket is
    /// shut down, which wakes the acceptor's `poll()` at once (`POLLHUP`), whether the
    /// socket file was removed or the daemon is out of descriptors.
    pub fn begin_stop(&mut self, grace: Duration) {
        self.accept_stop.store(true, Ordering::SeqCst);
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let stop_by = Instant::now() + grace + STOP_SLACK;
        self.stop_by = Some(stop_by);
        send_by(&self.inputs, Input::Shutdown(grace), stop_by);
    }

    /// Waits for the peer's threads to end, and for its writers to flush what the peer
    /// answered (up to [`CLOSE_FLUSH`]). Bounded: a thread still running [`STOP_SLACK`]
    /// after the grace period is logged and left behind (the daemon exits without it),
    /// and the writers get [`CLOSE_FLUSH`] past that at most.
    pub fn join(&mut self) {
        let stop_by = *self
            .stop_by
            .get_or_insert_with(|| Instant::now() + STOP_SLACK);
        for (what, slot) in [
            ("its acceptor", &mut self.acceptor),
            ("its thread", &mut self.thread),
        ] {
            let Some(t) = slot.take() else { continue };
            if !join_by(t, stop_by) {
                let message = format!(
                    "{what} did not stop within {}s of the end of the grace period; left behind",
                    STOP_SLACK.as_secs()
                );
                self.logs.log(&self.spec.id, Severity::Critical, &message);
            }
        }
        let flush_by = (Instant::now() + CLOSE_FLUSH).min(stop_by + CLOSE_FLUSH);
        self.writers
            .wait_idle(flush_by.saturating_duration_since(Instant::now()));
    }
}

/// Sends `input` to a peer thread, waiting for room in its queue until `deadline` at most
/// (a peer thread that does not take its inputs must not hold up the stop).
fn send_by(tx: &SyncSender<Input>, mut input: Input, deadline: Instant) {
    loop {
        match tx.try_send(input) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => return,
            Err(TrySendError::Full(back)) => {
                if Instant::now() >= deadline {
                    return;
                }
                input = back;
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Joins `t` if it ends by `deadline`; false (and `t` left to run) otherwise.
fn join_by(t: JoinHandle<()>, deadline: Instant) -> bool {
    while !t.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = t.join();
    true
}

/// Accepts clients on a peer's socket until told to stop.
struct Acceptor {
    listener: Arc<UnixListener>,
    tx: SyncSender<Input>,
    stop: Arc<AtomicBool>,
    writers: Writers,
    logs: LogFiles,
}

impl Acceptor {
    fn run(self) {
        static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);
        while !self.stop.load(Ordering::SeqCst) {
            wait_readable(self.listener.as_fd());
            if self.stop.load(Ordering::SeqCst) {
                // Shut down by `begin_stop`.
                break;
            }
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) if is_local_resource_error(&e) => {
                    // The client waits in the listen queue until a descriptor frees.
                    alarm().report(&self.logs, "accepting a client", &e);
                    thread::sleep(ACCEPT_PAUSE);
                    continue;
                }
                Err(_) => {
                    // A client that went away before it was accepted, and the like.
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            if stream.set_nonblocking(false).is_err() {
                continue;
            }
            let client = ClientId(NEXT_CLIENT.fetch_add(1, Ordering::Relaxed));
            if !self.serve(client, Arc::new(stream)) {
                break;
            }
        }
    }

    /// Starts a client's writer and reader; false if the peer thread is gone.
    fn serve(&self, client: ClientId, stream: Arc<UnixStream>) -> bool {
        let writer = spawn_writer(stream.clone(), &self.writers, {
            let tx = self.tx.clone();
            move || {
                let _ = tx.send(Input::ClientGone(client));
            }
        });
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                // Dropping the stream closes the client.
                alarm().report_thread(&self.logs, "starting a client's writer", &e);
                return true;
            }
        };
        if self.tx.send(Input::ClientAccepted(client, writer)).is_err() {
            return false;
        }
        let tx = self.tx.clone();
        let spawned = thread::Builder::new()
            .name("client reader".into())
            .spawn(move || read_client(client, &stream, &tx));
        if let Err(e) = spawned {
            alarm().report_thread(&self.logs, "starting a client's reader", &e);
            let _ = self.tx.send(Input::ClientGone(client));
        }
        true
    }
}

/// Waits until the listening socket `fd` has a client waiting, or is shut down (or
/// `poll` fails: the `accept()` that follows tells what is wrong).
fn wait_readable(fd: BorrowedFd<'_>) {
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// Reads a client's requests until it stops writing. A client that closed both
/// directions is gone ([`Input::ClientGone`](peer_io::Input::ClientGone): its requests
/// not yet sent are dropped); one that only half-closed ([`Input::ClientEof`](peer_io::Input::ClientEof)) is
/// then watched until it closes or its socket is shut down here (its replies are done).
fn read_client(client: ClientId, stream: &UnixStream, tx: &SyncSender<Input>) {
    let end = read_loop(stream, |data| {
        tx.send(Input::ClientData(client, data)).is_ok()
    });
    match end {
        ReadEnd::Dropped => {}
        ReadEnd::Failed => {
            let _ = tx.send(Input::ClientGone(client));
        }
        ReadEnd::Eof if hangup::closed_both(stream.as_fd()) => {
            let _ = tx.send(Input::ClientGone(client));
        }
        ReadEnd::Eof => {
            if tx.send(Input::ClientEof(client)).is_ok() && hangup::wait_closed_both(stream.as_fd())
            {
                // Unknown to the peer by now if its replies were all written.
                let _ = tx.send(Input::ClientGone(client));
            }
        }
    }
}

/// How a read loop ended.
enum ReadEnd {
    /// End of file.
    Eof,
    /// A read error.
    Failed,
    /// The receiver of the data is gone.
    Dropped,
}

/// Reads a stream in chunks until EOF, an error, or `data` returning false (the peer is
/// gone).
fn read_loop<R: Read>(mut stream: R, mut data: impl FnMut(Vec<u8>) -> bool) -> ReadEnd {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return ReadEnd::Eof,
            Ok(n) => {
                if !data(buf[..n].to_vec()) {
                    return ReadEnd::Dropped;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return ReadEnd::Failed,
        }
    }
}

/// A thread that writes what it is sent to `stream`, in order; when the queue is dropped
/// it shuts the stream down. A write error calls `failed` once and ends it.
fn spawn_writer<S>(
    stream: Arc<S>,
    writers: &Writers,
    failed: impl FnOnce() + Send + 'static,
) -> io::Result<StdOutbox>
where
    S: ShutdownStream + Send + Sync + 'static,
    for<'a> &'a S: Write,
{
    let (tx, rx) = mpsc::channel::<Bytes>();
    let backlog = Backlog::default();
    let guard = writers.enter();
    let written = backlog.clone();
    let socket: Arc<dyn ShutdownStream + Send + Sync> = stream.clone();
    thread::Builder::new()
        .name("writer".into())
        .spawn(move || {
            let _guard = guard;
            let mut out = &*stream;
            for data in rx {
                if out.write_all(&data).is_err() {
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
    io: PeerIo<StdOutbox, StdConn>,
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

    /// Starts the reader and writer of a new connection (both on the one socket).
    fn connected(&mut self, now: Instant, conn: ConnId, stream: TcpStream) {
        let stream = Arc::new(stream);
        let tx = self.self_tx.clone();
        let writer = match spawn_writer(stream.clone(), &self.writers, move || {
            let _ = tx.send(Input::ConnClosed(conn));
        }) {
            Ok(w) => w,
            Err(e) => return self.thread_failed(now, conn, "starting a link's writer", &e),
        };
        let tx = self.self_tx.clone();
        let reader = stream.clone();
        let spawned = thread::Builder::new()
            .name(format!("lond reader {}", self.id))
            .spawn(move || {
                let end = read_loop(&*reader, |data| {
                    tx.send(Input::ConnData(conn, data)).is_ok()
                });
                if !matches!(end, ReadEnd::Dropped) {
                    let _ = tx.send(Input::ConnClosed(conn));
                }
            });
        match spawned {
            Ok(_) => self.io.attach(now, conn, writer, StdConn(stream)),
            Err(e) => {
                stream.close_now();
                self.thread_failed(now, conn, "starting a link's reader", &e);
            }
        }
    }

    /// A thread for the connection `conn` could not be started: the daemon's shortage,
    /// not the peer's failure.
    fn thread_failed(&mut self, now: Instant, conn: ConnId, doing: &str, e: &io::Error) {
        alarm().report_thread(&self.ctx.logs, doing, e);
        self.io
            .attach_local_error(now, conn, &format!("{doing}: {e}"));
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
        let logs = self.ctx.logs.clone();
        let timeout = self.io.peer.settings().connect_timeout;
        let spawned = thread::Builder::new()
            .name(format!("connect {}", self.id))
            .spawn(move || {
                let input = peer_io::connect_outcome(conn, open_tcp(&host, port, timeout), &logs);
                let _ = tx.send(input);
            });
        if let Err(e) = spawned {
            let input =
                peer_io::thread_failed(conn, "starting a connect thread", &e, &self.ctx.logs);
            let _ = self.io.handle::<TcpStream>(Instant::now(), input);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::Receiver;

    use super::*;

    /// An acceptor on a fresh socket, as `PeerHandle::start` makes it.
    fn acceptor(dir: &std::path::Path) -> (Acceptor, Receiver<Input>, PathBuf) {
        let path = dir.join("peer");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
        let acceptor = Acceptor {
            listener: Arc::new(listener),
            tx,
            stop: Arc::new(AtomicBool::new(false)),
            writers: Writers::default(),
            logs: LogFiles::stderr_only(),
        };
        (acceptor, rx, path)
    }

    /// Stops an acceptor as `begin_stop` does; true if its thread ended within 2 s.
    fn stop_acceptor(listener: &UnixListener, stop: &AtomicBool, t: JoinHandle<()>) -> bool {
        stop.store(true, Ordering::SeqCst);
        nix::sys::socket::shutdown(listener.as_raw_fd(), nix::sys::socket::Shutdown::Both).unwrap();
        join_by(t, Instant::now() + Duration::from_secs(2))
    }

    #[test]
    fn shutting_the_listener_down_wakes_its_acceptor_without_the_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let (acceptor, rx, path) = acceptor(dir.path());
        let (listener, stop) = (acceptor.listener.clone(), acceptor.stop.clone());
        let t = thread::spawn(move || acceptor.run());
        // It serves clients...
        let client = UnixStream::connect(&path).unwrap();
        let first = rx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert!(matches!(first, Input::ClientAccepted(..)));
        drop(client);
        // ...and once its file is gone, it still stops at once, waiting in poll().
        std::fs::remove_file(&path).unwrap();
        thread::sleep(Duration::from_millis(50));
        assert!(
            stop_acceptor(&listener, &stop, t),
            "the acceptor did not stop"
        );
    }

    /// The lowest free descriptor number of this process.
    fn lowest_free() -> i32 {
        std::fs::File::open("/dev/null").unwrap().as_raw_fd()
    }

    #[test]
    fn an_acceptor_waiting_holds_no_descriptor() {
        // Other tests of this process open and close descriptors meanwhile: the check runs
        // alone, in a child process running only this test.
        const ALONE: &str = "LONC_TEST_ACCEPTOR_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "driver::tests::an_acceptor_waiting_holds_no_descriptor",
                    "--test-threads=1",
                ])
                .env(ALONE, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (acceptor, _rx, _path) = acceptor(dir.path());
        let (listener, stop) = (acceptor.listener.clone(), acceptor.stop.clone());
        let before = lowest_free();
        let t = thread::spawn(move || acceptor.run());
        thread::sleep(Duration::from_millis(100));
        // A blocked accept() would hold the lowest free number until a client came.
        assert_eq!(
            lowest_free(),
            before,
            "the waiting acceptor holds a descriptor"
        );
        assert!(stop_acceptor(&listener, &stop, t));
    }

    #[test]
    fn join_by_gives_up_on_a_thread_that_does_not_end() {
        let (tx, rx) = mpsc::channel::<()>();
        let stuck = thread::spawn(move || {
            let _ = rx.recv();
        });
        let start = Instant::now();
        assert!(!join_by(stuck, start + Duration::from_millis(100)));
        assert!(start.elapsed() < Duration::from_secs(1));
        drop(tx);
        let quick = thread::spawn(|| {});
        assert!(join_by(quick, Instant::now() + Duration::from_secs(2)));
    }

    #[test]
    fn send_by_gives_up_on_a_full_queue() {
        let (tx, rx) = mpsc::sync_channel::<Input>(1);
        send_by(&tx, Input::Revive, Instant::now());
        let start = Instant::now();
        send_by(&tx, Input::Revive, start + Duration::from_millis(100));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(matches!(rx.try_recv(), Ok(Input::Revive)));
        assert!(rx.try_recv().is_err(), "the second input was dropped");
    }
}
