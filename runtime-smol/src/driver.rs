//! The smol driver: one task per peer owns that peer's [`lonc_core::peer::Peer`] state machine (no lock
//! around it) with one timer re-armed from `poll_timeout()`; small tasks move bytes (an
//! acceptor per peer socket, a reader and a writer per client and per TCP connection);
//! connects, spool files and log writes run through `smol::unblock`, never on an executor
//! thread. Every decision is the core's; the plumbing is `lonc-host`'s.
//!
//! A client that half-closed is watched for a later full close by a zero-timeout `poll`
//! every [`HALF_CLOSED_POLL`], only while it is owed replies: async-io wakes a reader on
//! `POLLRDHUP` too, so waiting for readiness at end of file would spin. Stopping uses
//! channels, never the socket's path, and is bounded in time.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
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
use lonc_host::supervisor::{PeerContext, PeerSet};
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Executor, Task, Timer};

/// A client's or connection's write queue, drained by a writer task.
pub struct SmolOutbox {
    tx: Sender<Bytes>,
    backlog: Backlog,
    abort: Box<dyn Fn() + Send>,
}

impl Outbox for SmolOutbox {
    fn push(&self, data: Bytes) -> bool {
        self.backlog.take(data.len()) && self.tx.try_send(data).is_ok()
    }

    fn abort(&self) {
        (self.abort)();
    }
}

/// How often a half-closed client that is owed replies is checked for a full close.
pub const HALF_CLOSED_POLL: Duration = Duration::from_millis(200);

/// Where a peer's tasks run, the writers its shutdown waits for, and the logs.
#[derive(Clone)]
struct PeerRt {
    executor: Arc<Executor<'static>>,
    writers: Writers,
    logs: LogFiles,
}

/// A TCP connection's socket, closable from the peer task.
pub struct SmolConn {
    stream: Arc<Async<TcpStream>>,
    executor: Arc<Executor<'static>>,
}

impl Closer for SmolConn {
    fn close_now(&self) {
        self.stream.get_ref().shutdown_both();
    }

    fn close_soon(&self) {
        let stream = self.stream.clone();
        self.executor
            .spawn(async move {
                Timer::after(CLOSE_FLUSH).await;
                stream.get_ref().shutdown_both();
            })
            .detach();
    }
}

type Input = peer_io::Input<SmolOutbox, TcpStream>;

/// The smol peers of a daemon: tasks on one multi-threaded executor.
pub struct SmolPeers {
    executor: Arc<Executor<'static>>,
    peers: BTreeMap<String, SmolPeer>,
}

struct SmolPeer {
    spec: PeerSpec,
    inputs: Sender<Input>,
    stop_accept: Sender<()>,
    acceptor: Task<()>,
    task: Task<()>,
    snapshot: Arc<Mutex<PeerSnapshot>>,
    writers: Writers,
    logs: LogFiles,
}

impl SmolPeers {
    /// Peers that will run on `executor` (driven by threads of the caller's).
    pub fn new(executor: Arc<Executor<'static>>) -> Self {
        SmolPeers {
            executor,
            peers: BTreeMap::new(),
        }
    }
}

impl PeerSet for SmolPeers {
    fn start(
        &mut self,
        spec: PeerSpec,
        ctx: &PeerContext,
        listener: UnixListener,
    ) -> io::Result<()> {
        let listener = Async::new(listener)?;
        let (tx, rx) = channel::bounded(INPUT_QUEUE);
        let (io, snapshot) = PeerIo::start(&spec, &ctx.own_id);
        let rt = PeerRt {
            executor: self.executor.clone(),
            writers: Writers::default(),
            logs: ctx.logs.clone(),
        };
        let runner = PeerTask {
            io,
            id: spec.id.clone(),
            inputs: rx,
            self_tx: tx.clone(),
            ctx: ctx.clone(),
            rt: rt.clone(),
        };
        let task = self.executor.spawn(runner.run());
        let (stop_accept, stop_rx) = channel::bounded(1);
        let acceptor = self
            .executor
            .spawn(accept_loop(listener, tx.clone(), stop_rx, rt.clone()));
        self.peers.insert(
            spec.id.clone(),
            SmolPeer {
                spec,
                inputs: tx,
                stop_accept,
                acceptor,
                task,
                snapshot,
                writers: rt.writers,
                logs: rt.logs,
            },
        );
        Ok(())
    }

    fn specs(&self) -> Vec<PeerSpec> {
        self.peers.values().map(|p| p.spec.clone()).collect()
    }

    fn states(&self) -> Vec<(String, String)> {
        self.peers
            .iter()
            .map(|(id, p)| {
                let state = p
                    .snapshot
                    .lock()
                    .map(|s| s.state)
                    .unwrap_or(PeerState::Stopped);
                (id.clone(), state.as_str().to_string())
            })
            .collect()
    }

    fn revive_all(&mut self) {
        for p in self.peers.values() {
            let _ = p.inputs.try_send(Input::Revive);
        }
    }

    /// Bounded: a task still running [`STOP_SLACK`] after the grace period is logged and
    /// cancelled, and the writers get [`CLOSE_FLUSH`] past that at most.
    fn stop(&mut self, ids: &[String], grace: Duration) {
        let mut stopping: Vec<SmolPeer> =
            ids.iter().filter_map(|id| self.peers.remove(id)).collect();
        let stop_by = Instant::now() + grace + STOP_SLACK;
        // The supervisor is not an executor thread: waiting here blocks no task.
        smol::block_on(async {
            for p in &stopping {
                let _ = p.stop_accept.try_send(());
                let _ = by(stop_by, p.inputs.send(Input::Shutdown(grace))).await;
            }
            for p in &mut stopping {
                for (what, task) in [("its acceptor", &mut p.acceptor), ("its task", &mut p.task)] {
                    if by(stop_by, task).await.is_none() {
                        let message = format!(
                            "{what} did not stop within {}s of the end of the grace period; cancelled",
                            STOP_SLACK.as_secs()
                        );
                        p.logs.log(&p.spec.id, Severity::Critical, &message);
                    }
                }
            }
        });
        // Replies the peers finished in the grace period are still being written. (A task
        // that did not stop is cancelled when `stopping` is dropped.)
        for p in &stopping {
            let flush_by = (Instant::now() + CLOSE_FLUSH).min(stop_by + CLOSE_FLUSH);
            p.writers
                .wait_idle(flush_by.saturating_duration_since(Instant::now()));
        }
    }
}

/// `f`'s output, or `None` if `deadline` comes first.
async fn by<T>(deadline: Instant, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            Timer::at(deadline).await;
            None
        })
        .await
}

/// Accepts clients on a peer's socket until told to stop.
async fn accept_loop(
    listener: Async<UnixListener>,
    tx: Sender<Input>,
    stop: Receiver<()>,
    rt: PeerRt,
) {
    static NEXT_CLIENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    loop {
        let accepted = async { Some(listener.accept().await) }
            .or(async {
                let _ = stop.recv().await;
                None
            })
            .await;
        let Some(accepted) = accepted else { return };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_local_resource_error(&e) => {
                // The client waits in the listen queue until a descriptor frees.
                let logs = rt.logs.clone();
                smol::unblock(move || alarm().report(&logs, "accepting a client", &e)).await;
                Timer::after(ACCEPT_PAUSE).await;
                continue;
            }
            Err(_) => {
                // A client that went away before it was accepted, and the like.
                Timer::after(Duration::from_millis(20)).await;
                continue;
            }
        };
        let client = ClientId(NEXT_CLIENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let stream = Arc::new(stream);
        let writer = spawn_writer(&rt, stream.clone(), {
            let tx = tx.clone();
            move || {
                let _ = tx.try_send(Input::ClientGone(client));
            }
        });
        if tx
            .send(Input::ClientAccepted(client, writer))
            .await
            .is_err()
        {
            return;
        }
        rt.executor
            .spawn(read_client(client, stream, tx.clone()))
            .detach();
    }
}

/// Reads a client's requests until it stops writing. A client that closed both
/// directions is gone (`ClientGone`: its requests not yet sent are dropped); one that only
/// half-closed (`ClientEof`) is then checked every [`HALF_CLOSED_POLL`] until it closes
/// or its socket is shut down here (its replies are done).
async fn read_client(client: ClientId, stream: Arc<Async<UnixStream>>, tx: Sender<Input>) {
    let end = read_loop(&stream, |data| {
        let tx = tx.clone();
        async move { tx.send(Input::ClientData(client, data)).await.is_ok() }
    })
    .await;
    let gone = |s: &Async<UnixStream>| hangup::closed_both(s.get_ref().as_fd());
    match end {
        ReadEnd::Dropped => {}
        ReadEnd::Failed => {
            let _ = tx.send(Input::ClientGone(client)).await;
        }
        ReadEnd::Eof if gone(&stream) => {
            let _ = tx.send(Input::ClientGone(client)).await;
        }
        ReadEnd::Eof => {
            if tx.send(Input::ClientEof(client)).await.is_err() {
                return;
            }
            loop {
                Timer::after(HALF_CLOSED_POLL).await;
                if gone(&stream) {
                    // Unknown to the peer by now if its replies were all written.
                    let _ = tx.send(Input::ClientGone(client)).await;
                    return;
                }
            }
        }
    }
}

/// How a read loop ended.
enum ReadEnd {
    Eof,
    Failed,
    Dropped,
}

/// Reads a stream in chunks until EOF, an error, or `data` returning false.
async fn read_loop<T, F, Fut>(stream: &Async<T>, mut data: F) -> ReadEnd
where
    for<'a> &'a T: io::Read,
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut buf = vec![0u8; READ_CHUNK];
    let mut reader = stream;
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return ReadEnd::Eof,
            Ok(n) => {
                if !data(buf[..n].to_vec()).await {
                    return ReadEnd::Dropped;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return ReadEnd::Failed,
        }
    }
}

/// Shutting down both directions of a socket.
trait ShutdownBoth {
    fn shutdown_both(&self);
}

impl ShutdownBoth for UnixStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl ShutdownBoth for TcpStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// A task that writes what it is sent to `stream`, in order; when the queue is dropped
/// it shuts the stream down. A write error calls `failed` once and ends it.
fn spawn_writer<T>(
    rt: &PeerRt,
    stream: Arc<Async<T>>,
    failed: impl FnOnce() + Send + 'static,
) -> SmolOutbox
where
    T: ShutdownBoth + Send + Sync + 'static,
    for<'a> &'a T: io::Write,
{
    let (tx, rx) = channel::unbounded::<Bytes>();
    let backlog = Backlog::default();
    let written = backlog.clone();
    let guard = rt.writers.enter();
    let socket = stream.clone();
    rt.executor
        .spawn(async move {
            let _guard = guard;
            let mut writer = &*stream;
            while let Ok(data) = rx.recv().await {
                if writer.write_all(&data).await.is_err() {
                    failed();
                    stream.get_ref().shutdown_both();
                    return;
                }
                written.written(data.len());
            }
            let _ = writer.flush().await;
            stream.get_ref().shutdown_both();
        })
        .detach();
    SmolOutbox {
        tx,
        backlog,
        abort: Box::new(move || socket.get_ref().shutdown_both()),
    }
}

/// The state of one peer task.
struct PeerTask {
    io: PeerIo<SmolOutbox, SmolConn>,
    id: String,
    inputs: Receiver<Input>,
    self_tx: Sender<Input>,
    ctx: PeerContext,
    rt: PeerRt,
}

impl PeerTask {
    async fn run(mut self) {
        let mut timer = Timer::never();
        loop {
            self.carry_out().await;
            if self.io.peer.is_stopped() {
                break;
            }
            match self.io.peer.poll_timeout() {
                Some(at) => timer.set_at(at),
                None => timer = Timer::never(),
            }
            let next = async { self.inputs.recv().await.ok().map(Some) }
                .or(async {
                    (&mut timer).await;
                    Some(None)
                })
                .await;
            let now = Instant::now();
            match next {
                None => break,
                Some(None) => self.io.peer.handle_timeout(now),
                Some(Some(input)) => {
                    if let Some((conn, stream)) = self.io.handle(now, input) {
                        self.connected(now, conn, stream);
                    }
                }
            }
        }
        self.io.close_all();
    }

    /// Starts the reader and writer tasks of a new connection.
    fn connected(&mut self, now: Instant, conn: ConnId, stream: TcpStream) {
        let stream = match Async::new(stream) {
            Ok(s) => Arc::new(s),
            Err(e) if is_local_resource_error(&e) => {
                alarm().report(&self.ctx.logs, "registering a link", &e);
                return self.io.attach_local_error(now, conn, &e.to_string());
            }
            Err(e) => return self.io.attach_failed(now, conn, &e.to_string()),
        };
        let tx = self.self_tx.clone();
        let writer = spawn_writer(&self.rt, stream.clone(), move || {
            let _ = tx.try_send(Input::ConnClosed(conn));
        });
        let tx = self.self_tx.clone();
        let reader = stream.clone();
        self.rt
            .executor
            .spawn(async move {
                let end = read_loop(&reader, |data| {
                    let tx = tx.clone();
                    async move { tx.send(Input::ConnData(conn, data)).await.is_ok() }
                })
                .await;
                if !matches!(end, ReadEnd::Dropped) {
                    let _ = tx.send(Input::ConnClosed(conn)).await;
                }
            })
            .detach();
        let closer = SmolConn {
            stream,
            executor: self.rt.executor.clone(),
        };
        self.io.attach(now, conn, writer, closer);
    }

    /// Carries out the peer's outputs; spool and log work runs through `smol::unblock`.
    async fn carry_out(&mut self) {
        while let Some(action) = self.io.next_action() {
            let (spool, logs, id) = (
                self.ctx.spool.clone(),
                self.ctx.logs.clone(),
                self.id.clone(),
            );
            match action {
                Action::Connect { conn, host, port } => self.connect(conn, host, port),
                Action::ListDelayed => {
                    let entries = smol::unblock(move || spool_list(&spool, &logs, &id)).await;
                    self.io.peer.handle_delayed_list(Instant::now(), &entries);
                }
                Action::ReadDelayed(name) => {
                    let max = self.io.peer.settings().max_request;
                    let n = name.clone();
                    let content = smol::unblock(move || spool_read(&spool, &n, max)).await;
                    let content = content.as_deref().map_err(String::as_str);
                    self.io
                        .peer
                        .handle_delayed_read(Instant::now(), &name, content);
                }
                Action::DeleteDelayed(name) => {
                    let n = name.clone();
                    if let Err(why) = smol::unblock(move || spool_delete(&spool, &n)).await {
                        self.io
                            .peer
                            .handle_delayed_delete_failed(Instant::now(), &name, &why);
                    }
                }
                Action::PermLog(entry) => smol::unblock(move || logs.perm_log(&entry)).await,
                Action::Log(event) => {
                    smol::unblock(move || logs.log(&id, event.severity, &event.message)).await;
                }
            }
        }
    }

    fn connect(&mut self, conn: ConnId, host: String, port: u16) {
        let tx = self.self_tx.clone();
        let logs = self.ctx.logs.clone();
        let timeout = self.io.peer.settings().connect_timeout;
        self.rt
            .executor
            .spawn(async move {
                let input = smol::unblock(move || {
                    peer_io::connect_outcome(conn, open_tcp(&host, port, timeout), &logs)
                })
                .await;
                let _ = tx.send(input).await;
            })
            .detach();
    }
}
