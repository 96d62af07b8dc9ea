//! Moving bytes on std threads: a socket's writer thread and its queue ([`StdOutbox`]),
//! the read loop of a reader thread ([`read_loop`]), and the acceptor of a peer's socket
//! with its clients' readers ([`Acceptor`]). Each socket is one file descriptor shared by
//! its reader and writer (an `Arc`, never a `try_clone`).
//!
//! An acceptor waits for clients in `poll()`, not in a blocked `accept()`: Linux reserves
//! a descriptor number for every blocked `accept()` (one more per peer, and invisible in
//! `/proc/<pid>/fd`). It stops when its listening socket is shut down, never through the
//! filesystem.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use lonc_core::io::{ClientId, Input as PeerInput};
use lonc_host::hangup::{self, ReadEnd};
use lonc_host::local_error::alarm;
use lonc_host::logfile::LogFiles;
use lonc_host::peer_io::{self, Backlog, Outbox, READ_CHUNK, Writers, after_accept_error};
use lonc_host::socket_ops::SocketOps;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// What reaches a peer thread.
pub type Input = peer_io::Input<StdOutbox, TcpStream>;

/// A peer thread's inbox.
pub type Inbox = peer_io::Inbox<StdOutbox, TcpStream>;

/// A socket's write queue, drained by a writer thread.
pub struct StdOutbox {
    tx: Sender<Bytes>,
    backlog: Backlog,
    socket: Arc<dyn SocketOps + Send + Sync>,
}

impl Outbox for StdOutbox {
    fn push(&self, data: Bytes) -> Option<usize> {
        let n = data.len();
        let before = self.backlog.add(n);
        self.tx.send(data).ok().map(|()| before)
    }

    fn abort(&self) {
        self.socket.shutdown_both();
    }

    fn linger(&self, linger: Duration) {
        self.socket.write_timeout(linger);
    }
}

/// Reads a stream in chunks until EOF, an error, or `data` returning false (the peer is
/// gone).
pub fn read_loop<R: Read>(mut stream: R, mut data: impl FnMut(Vec<u8>) -> bool) -> ReadEnd {
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
pub fn spawn_writer<S>(
    stream: Arc<S>,
    writers: &Writers,
    failed: impl FnOnce() + Send + 'static,
) -> io::Result<StdOutbox>
where
    S: SocketOps + Send + Sync + 'static,
    for<'a> &'a S: Write,
{
    let (tx, rx) = mpsc::channel::<Bytes>();
    let backlog = Backlog::default();
    let guard = writers.enter();
    let written = backlog.clone();
    let socket: Arc<dyn SocketOps + Send + Sync> = stream.clone();
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

/// Accepts clients on a peer's socket until told to stop.
pub struct Acceptor {
    /// The peer's listening socket, non-blocking.
    pub listener: Arc<UnixListener>,
    /// The peer thread's inputs.
    pub tx: Inbox,
    /// Set when the acceptor must stop (its listener is then shut down).
    pub stop: Arc<AtomicBool>,
    /// The peer's writers, waited for at shutdown.
    pub writers: Writers,
    /// The logs.
    pub logs: LogFiles,
}

impl Acceptor {
    /// Accepts until stopped or the peer thread is gone.
    pub fn run(self) {
        static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);
        while !self.stop.load(Ordering::SeqCst) {
            wait_readable(self.listener.as_fd());
            if self.stop.load(Ordering::SeqCst) {
                // Shut down by `begin_stop`.
                break;
            }
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // A shortage: the client waits in the listen queue meanwhile.
                    let (pause, shortage) = after_accept_error(&e);
                    if shortage {
                        alarm().report(&self.logs, "accepting a client", &e);
                    }
                    thread::sleep(pause);
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
        // A notice: queued at once, even when the peer's queue is full.
        let gone = move |tx: &Inbox| {
            let _ = tx.post(Input::Peer(PeerInput::ClientGone(client)));
        };
        let writer = spawn_writer(stream.clone(), &self.writers, {
            let tx = self.tx.clone();
            move || gone(&tx)
        });
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                // Dropping the stream closes the client.
                alarm().report_thread(&self.logs, "starting a client's writer", &e);
                return true;
            }
        };
        if self
            .tx
            .send_blocking(Input::ClientAccepted(client, Box::new(writer)))
            .is_err()
        {
            return false;
        }
        let tx = self.tx.clone();
        let spawned = thread::Builder::new()
            .name("client reader".into())
            .spawn(move || read_client(client, &stream, &tx));
        if let Err(e) = spawned {
            alarm().report_thread(&self.logs, "starting a client's reader", &e);
            gone(&self.tx);
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
/// directions is gone (`ClientGone`: its requests not yet sent are dropped); one that
/// only half-closed (`ClientEof`) is then watched until it closes or its socket is shut
/// down here (its replies are done).
fn read_client(client: ClientId, stream: &UnixStream, tx: &Inbox) {
    let send = |input| tx.send_blocking(Input::Peer(input)).is_ok();
    let end = read_loop(stream, |data| send(PeerInput::ClientData(client, data)));
    let closed_both = || hangup::closed_both(stream.as_fd());
    let Some(input) = end.client_input(client, closed_both) else {
        return;
    };
    let half_closed = matches!(input, PeerInput::ClientEof(_));
    if send(input) && half_closed && hangup::wait_closed_both(stream.as_fd()) {
        // Unknown to the peer by now if its replies were all written.
        send(PeerInput::ClientGone(client));
    }
}
