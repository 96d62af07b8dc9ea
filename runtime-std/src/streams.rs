//! Moving bytes on std threads: a socket's writer thread and its queue ([`StdOutbox`]),
//! and the read loop of a reader thread ([`read_loop`]). Each socket is one file
//! descriptor shared by its reader and writer (an `Arc`, never a `try_clone`).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use lonc_host::peer_io::{Backlog, Outbox, READ_CHUNK, Writers};
use lonc_host::socket_ops::SocketOps;

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

/// How a read loop ended.
pub enum ReadEnd {
    /// End of file.
    Eof,
    /// A read error.
    Failed,
    /// The receiver of the data is gone.
    Dropped,
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
