//! Moving bytes on smol tasks: a socket's writer task and its queue ([`SmolOutbox`]), the
//! read loop of a reader task ([`read_loop`]), and the acceptor of a peer's socket with
//! its clients' readers ([`accept_loop`]).
//!
//! A client that half-closed is watched for a later full close by a zero-timeout `poll`
//! every [`HALF_CLOSED_POLL`], only while it is owed replies: async-io wakes a reader on
//! `POLLRDHUP` too, so waiting for readiness at end of file would spin.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use lonc_core::io::{ClientId, Input as PeerInput};
use lonc_host::hangup::{self, ReadEnd};
use lonc_host::local_error::alarm;
use lonc_host::logfile::LogFiles;
use lonc_host::peer_io::{self, Backlog, Outbox, READ_CHUNK, Writers, after_accept_error};
use lonc_host::socket_ops::SocketOps;
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Executor, Timer};

/// How often a half-closed client that is owed replies is checked for a full close
/// (mechanics: see the module docs).
pub const HALF_CLOSED_POLL: Duration = Duration::from_millis(200);

/// What reaches a peer task.
pub type Input = peer_io::Input<SmolOutbox, Async<TcpStream>>;

/// A peer task's inbox (the same type as the std daemon's, `lonc_host::inbox`).
pub type Inbox = peer_io::Inbox<SmolOutbox, Async<TcpStream>>;

/// Where a peer's tasks run, the writers its shutdown waits for, and the logs.
#[derive(Clone)]
pub struct PeerRt {
    /// The daemon's executor.
    pub executor: Arc<Executor<'static>>,
    /// The peer's writers, waited for at shutdown.
    pub writers: Writers,
    /// The logs.
    pub logs: LogFiles,
}

/// A client's or connection's write queue, drained by a writer task.
pub struct SmolOutbox {
    tx: Sender<Bytes>,
    backlog: Backlog,
    socket: Arc<dyn SocketOps + Send + Sync>,
    executor: Arc<Executor<'static>>,
}

impl Outbox for SmolOutbox {
    fn push(&self, data: Bytes) -> Option<usize> {
        let before = self.backlog.add(data.len());
        self.tx.try_send(data).ok().map(|()| before)
    }

    fn abort(&self) {
        self.socket.shutdown_both();
    }

    fn linger(&self, linger: Duration) {
        let socket = self.socket.clone();
        let expired = async move {
            Timer::after(linger).await;
            socket.shutdown_both();
        };
        self.executor.spawn(expired).detach();
    }
}

/// A task that writes what it is sent to `stream`, in order; when the queue is dropped
/// it shuts the stream down. A write error calls `failed` once and ends it.
pub fn spawn_writer<T>(
    rt: &PeerRt,
    stream: Arc<Async<T>>,
    failed: impl FnOnce() + Send + 'static,
) -> SmolOutbox
where
    T: SocketOps + Send + Sync + 'static,
    for<'a> &'a T: io::Write,
{
    let (tx, rx) = channel::unbounded::<Bytes>();
    let backlog = Backlog::default();
    let written = backlog.clone();
    let guard = rt.writers.enter();
    let socket: Arc<Async<T>> = stream.clone();
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
        socket: Arc::new(Shared(socket)),
        executor: rt.executor.clone(),
    }
}

/// A registered socket, shut down through its inner one.
struct Shared<T>(Arc<Async<T>>);

impl<T: SocketOps> SocketOps for Shared<T> {
    fn shutdown_both(&self) {
        self.0.get_ref().shutdown_both();
    }

    fn write_timeout(&self, limit: Duration) {
        self.0.get_ref().write_timeout(limit);
    }
}

/// Reads a stream in chunks until EOF, an error, or `data` returning false.
pub async fn read_loop<T, F, Fut>(stream: &Async<T>, mut data: F) -> ReadEnd
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

/// Accepts clients on a peer's socket until told to stop.
pub async fn accept_loop(listener: Async<UnixListener>, tx: Inbox, stop: Receiver<()>, rt: PeerRt) {
    static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);
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
            Err(e) => {
                // A shortage: the client waits in the listen queue meanwhile.
                let (pause, shortage) = after_accept_error(&e);
                if shortage {
                    let logs = rt.logs.clone();
                    smol::unblock(move || alarm().report(&logs, "accepting a client", &e)).await;
                }
                Timer::after(pause).await;
                continue;
            }
        };
        let client = ClientId(NEXT_CLIENT.fetch_add(1, Ordering::Relaxed));
        let stream = Arc::new(stream);
        let writer = spawn_writer(&rt, stream.clone(), {
            let tx = tx.clone();
            // A notice: queued at once, even when the peer's queue is full.
            move || {
                let _ = tx.post(Input::Peer(PeerInput::ClientGone(client)));
            }
        });
        if tx
            .send(Input::ClientAccepted(client, Box::new(writer)))
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
async fn read_client(client: ClientId, stream: Arc<Async<UnixStream>>, tx: Inbox) {
    let send = |input| {
        let tx = tx.clone();
        async move { tx.send(Input::Peer(input)).await.is_ok() }
    };
    let end = read_loop(&stream, |data| send(PeerInput::ClientData(client, data))).await;
    let gone = |s: &Async<UnixStream>| hangup::closed_both(s.get_ref().as_fd());
    let Some(input) = end.client_input(client, || gone(&stream)) else {
        return;
    };
    let half_closed = matches!(input, PeerInput::ClientEof(_));
    if !send(input).await || !half_closed {
        return;
    }
    loop {
        Timer::after(HALF_CLOSED_POLL).await;
        if gone(&stream) {
            // Unknown to the peer by now if its replies were all written.
            send(PeerInput::ClientGone(client)).await;
            return;
        }
    }
}
