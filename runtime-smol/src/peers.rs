//! The smol peers of a daemon ([`SmolPeers`]): each a task on one multi-threaded
//! executor with its socket's acceptor task, started and stopped for the shared
//! supervisor. Stopping uses channels, never the socket's path, and is bounded in time by
//! the core's limits (grace, slack, close linger).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Instant;

use lonc_core::io::{Input as PeerInput, Severity};
use lonc_core::limits::{CLOSE_LINGER, SHUTDOWN_GRACE, STOP_SLACK};
use lonc_core::roster::PeerSpec;
use lonc_host::logfile::LogFiles;
use lonc_host::peer_io::{INPUT_QUEUE, PeerIo, PeerSnapshot, Writers};
use lonc_host::snapshot::Snapshot;
use lonc_host::supervisor::{PeerContext, PeerSet};
use smol::channel::{self, Sender};
use smol::future::FutureExt;
use smol::{Async, Executor, Task, Timer};

use crate::driver::{self, SmolDriver};
use crate::streams::{Inbox, Input, PeerRt, accept_loop};

/// The smol peers of a daemon: tasks on one multi-threaded executor.
pub struct SmolPeers {
    executor: Arc<Executor<'static>>,
    peers: BTreeMap<String, SmolPeer>,
}

struct SmolPeer {
    spec: PeerSpec,
    inputs: Inbox,
    stop_accept: Sender<()>,
    acceptor: Task<()>,
    task: Task<()>,
    snapshot: Snapshot<PeerSnapshot>,
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
        let tx = Inbox::new(INPUT_QUEUE);
        let (io, snapshot) = PeerIo::start(&spec, &ctx.own_id);
        let rt = PeerRt {
            executor: self.executor.clone(),
            writers: Writers::default(),
            logs: ctx.logs.clone(),
        };
        let driver = SmolDriver::new(spec.id.clone(), tx.clone(), ctx, rt.clone());
        let task = self.executor.spawn(driver::run(io, driver));
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
            .map(|(id, p)| (id.clone(), p.snapshot.read().state.as_str().to_string()))
            .collect()
    }

    fn revive_all(&mut self) {
        // A notice: queued at once, even when a peer's queue is full.
        for p in self.peers.values() {
            let _ = p.inputs.post(Input::Peer(PeerInput::Revive));
        }
    }

    /// Bounded: a task still running [`STOP_SLACK`] after the grace period is logged and
    /// cancelled, and the writers get [`CLOSE_LINGER`] past that at most.
    fn stop(&mut self, ids: &[String]) {
        let mut stopping: Vec<SmolPeer> =
            ids.iter().filter_map(|id| self.peers.remove(id)).collect();
        let stop_by = Instant::now() + SHUTDOWN_GRACE + STOP_SLACK;
        // The supervisor is not an executor thread: waiting here blocks no task.
        smol::block_on(async {
            for p in &stopping {
                let _ = p.stop_accept.try_send(());
                // A notice: queued at once, after every input queued before it.
                let _ = p.inputs.post(Input::stop());
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
            let flush_by = (Instant::now() + CLOSE_LINGER).min(stop_by + CLOSE_LINGER);
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
