//! Accepting the clients of one peer's socket on a std thread, and reading each client's
//! requests on its own thread. An acceptor waits for clients in `poll()`, not in a blocked
//! `accept()`: Linux reserves a descriptor number for every blocked `accept()` (one more
//! per peer, and invisible in `/proc/<pid>/fd`). It stops when its listening socket is
//! shut down, never through the filesystem.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread;
use std::time::Duration;

use lonc_core::io::{ClientId, Input as PeerInput};
use lonc_host::hangup;
use lonc_host::local_error::{alarm, is_local_resource_error};
use lonc_host::logfile::LogFiles;
use lonc_host::peer_io::{ACCEPT_PAUSE, Writers};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::driver::Input;
use crate::streams::{ReadEnd, read_loop, spawn_writer};

/// Accepts clients on a peer's socket until told to stop.
pub struct Acceptor {
    /// The peer's listening socket, non-blocking.
    pub listener: Arc<UnixListener>,
    /// The peer thread's inputs.
    pub tx: SyncSender<Input>,
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
        let gone = move |tx: &SyncSender<Input>| {
            let _ = tx.send(Input::Peer(PeerInput::ClientGone(client)));
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
        if self.tx.send(Input::ClientAccepted(client, writer)).is_err() {
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
fn read_client(client: ClientId, stream: &UnixStream, tx: &SyncSender<Input>) {
    let send = |input| tx.send(Input::Peer(input)).is_ok();
    let end = read_loop(stream, |data| send(PeerInput::ClientData(client, data)));
    match end {
        ReadEnd::Dropped => {}
        ReadEnd::Failed => {
            send(PeerInput::ClientGone(client));
        }
        ReadEnd::Eof if hangup::closed_both(stream.as_fd()) => {
            send(PeerInput::ClientGone(client));
        }
        ReadEnd::Eof => {
            if send(PeerInput::ClientEof(client)) && hangup::wait_closed_both(stream.as_fd()) {
                // Unknown to the peer by now if its replies were all written.
                send(PeerInput::ClientGone(client));
            }
        }
    }
}
