//! A running std peer ([`PeerHandle`]): its thread, its socket's acceptor, and the way to
//! reach it. Stopping never goes through the filesystem: the listening socket is shut
//! down, which wakes its acceptor, and the whole stop is bounded in time by the core's
//! limits (grace, slack, close linger).

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use lonc_core::io::{Input as PeerInput, Severity};
use lonc_core::limits::{CLOSE_LINGER, SHUTDOWN_GRACE, STOP_SLACK};
use lonc_core::roster::PeerSpec;
use lonc_host::logfile::LogFiles;
use lonc_host::peer_io::{INPUT_QUEUE, PeerIo, PeerSnapshot, Writers};
use lonc_host::snapshot::Snapshot;
use lonc_host::supervisor::PeerContext;

use crate::driver::{self, StdDriver};
use crate::streams::{Acceptor, Inbox, Input};

/// A running peer: its thread, its socket's acceptor, and the way to talk to it.
pub struct PeerHandle {
    spec: PeerSpec,
    socket: PathBuf,
    listener: Arc<UnixListener>,
    inputs: Inbox,
    accept_stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    thread: Option<JoinHandle<()>>,
    snapshot: Snapshot<PeerSnapshot>,
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
        let tx = Inbox::new(INPUT_QUEUE);
        let (io, snapshot) = PeerIo::start(&spec, &ctx.own_id);
        let writers = Writers::default();
        let driver = StdDriver {
            id: spec.id.clone(),
            tx: tx.clone(),
            ctx: ctx.clone(),
            writers: writers.clone(),
        };
        let thread = thread::Builder::new()
            .name(format!("peer {}", spec.id))
            .spawn(move || driver::run(io, driver))?;
        listener.set_nonblocking(true)?;
        let listener = Arc::new(listener);
        let accept_stop = Arc::new(AtomicBool::new(false));
        let acceptor = Acceptor {
            listener: listener.clone(),
            tx: tx.clone(),
            stop: accept_stop.clone(),
            writers: writers.clone(),
            logs: ctx.logs.clone(),
        };
        let acceptor = thread::Builder::new()
            .name(format!("accept {}", spec.id))
            .spawn(move || acceptor.run());
        let acceptor = match acceptor {
            Ok(a) => a,
            Err(e) => {
                // The peer thread stops at once: nothing was accepted.
                let _ = tx.post(Input::Peer(PeerInput::Shutdown(Duration::ZERO)));
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
        self.snapshot.read()
    }

    /// USR1: revive the peer if dead, look at the delayed spool. A notice: queued at
    /// once, even when the peer's queue is full.
    pub fn revive(&self) {
        let _ = self.inputs.post(Input::Peer(PeerInput::Revive));
    }

    /// Stops accepting clients at once, then lets requests in flight finish for the
    /// core's grace, says `exit` to lond, and ends the thread. Returns without waiting;
    /// call [`PeerHandle::join`] to wait.
    ///
    /// Neither the socket's path nor a new descriptor is needed: the listening socket is
    /// shut down, which wakes the acceptor's `poll()` at once (`POLLHUP`), whether the
    /// socket file was removed or the daemon is out of descriptors.
    pub fn begin_stop(&mut self) {
        self.accept_stop.store(true, Ordering::SeqCst);
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let stop_by = Instant::now() + SHUTDOWN_GRACE + STOP_SLACK;
        self.stop_by = Some(stop_by);
        // A notice: queued at once, after every input queued before it.
        let _ = self.inputs.post(Input::stop());
    }

    /// Waits for the peer's threads to end, and for its writers to flush what the peer
    /// answered (up to [`CLOSE_LINGER`]). Bounded: a thread still running [`STOP_SLACK`]
    /// after the grace period is logged and left behind (the daemon exits without it),
    /// and the writers get [`CLOSE_LINGER`] past that at most.
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
        let flush_by = (Instant::now() + CLOSE_LINGER).min(stop_by + CLOSE_LINGER);
        self.writers
            .wait_idle(flush_by.saturating_duration_since(Instant::now()));
    }
}

/// Joins `t` if it ends by `deadline`; false (and `t` left to run) otherwise.
pub fn join_by(t: JoinHandle<()>, deadline: Instant) -> bool {
    while !t.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = t.join();
    true
}
