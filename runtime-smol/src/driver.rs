//! The smol driver: one task per peer runs the shared loop step
//! ([`lonc_host::peer_io::PeerIo`]) around that peer's [`lonc_core::peer::Peer`] (no
//! lock around it), with one timer re-armed from its deadline. This file says only what
//! differs on smol: a connect is a task on the reactor ([`crate::connect`]), a
//! connection's reader and writer are tasks, and file work (spool, logs) goes, in order,
//! to the peer's chore queue ([`ChoreQueue`]), which a worker task started on demand
//! (and gone when the queue is empty, so an idle peer holds no task and no buffer for
//! it) runs through
//! `smol::unblock`, sending the answers back as inputs. Nothing blocks an executor
//! thread; every decision is the core's.

use std::net::TcpStream;
use std::sync::Arc;

use lonc_core::io::{ConnId, Input as PeerInput};
use lonc_host::chore_queue::ChoreQueue;
use lonc_host::chores::{self, Chore};
use lonc_host::local_error::is_local_resource_error;
use lonc_host::peer_io::{Dial, Driver, PeerIo, connect_outcome};
use lonc_host::supervisor::PeerContext;
use smol::future::FutureExt;
use smol::{Async, Task, Timer};

use crate::connect::open_tcp;
use crate::streams::{Inbox, Input, PeerRt, SmolOutbox, read_loop, spawn_writer};

/// What the peer task does on smol, for the shared loop step.
pub struct SmolDriver {
    id: String,
    tx: Inbox,
    rt: PeerRt,
    ctx: PeerContext,
    chores: ChoreQueue<Chore>,
    /// The last worker started; awaited when the peer stops (its last log lines).
    worker: Option<Task<()>>,
}

impl SmolDriver {
    /// The driver of peer `id`, whose task takes its inputs from the inbox `tx`.
    pub fn new(id: String, tx: Inbox, ctx: &PeerContext, rt: PeerRt) -> Self {
        SmolDriver {
            id,
            tx,
            rt,
            ctx: ctx.clone(),
            chores: ChoreQueue::default(),
            worker: None,
        }
    }
}

/// Does a peer's queued file work in order, off the executor, until the queue is empty;
/// answers go back as inputs.
async fn do_chores(id: String, chores: ChoreQueue<Chore>, ctx: PeerContext, tx: Inbox) {
    while let Some(chore) = chores.next() {
        let (id, ctx) = (id.clone(), ctx.clone());
        let answer = smol::unblock(move || chores::carry_out(chore, &ctx.spool, &ctx.logs, &id));
        if let Some(input) = answer.await {
            let _ = tx.send(Input::Peer(input)).await;
        }
    }
}

impl Driver for SmolDriver {
    type Outbox = SmolOutbox;
    type Stream = Async<TcpStream>;

    fn connect(&mut self, dial: Dial) -> Option<PeerInput> {
        let (tx, logs) = (self.tx.clone(), self.rt.logs.clone());
        let conn = dial.conn;
        let attempt = async move {
            let result = open_tcp(dial.host, dial.port, dial.timeout).await;
            // A shortage is logged daemon-wide: off the executor.
            let input = match result {
                Err(e) if is_local_resource_error(&e) => {
                    smol::unblock(move || connect_outcome(conn, Err(e), &logs)).await
                }
                result => connect_outcome(conn, result, &logs),
            };
            // A notice: queued at once.
            let _ = tx.post(input);
        };
        self.rt.executor.spawn(attempt).detach();
        None
    }

    fn attach(&mut self, conn: ConnId, stream: Async<TcpStream>) -> Result<SmolOutbox, PeerInput> {
        let stream = Arc::new(stream);
        let tx = self.tx.clone();
        let writer = spawn_writer(&self.rt, stream.clone(), move || {
            let _ = tx.post(Input::Peer(PeerInput::ConnClosed(conn)));
        });
        let tx = self.tx.clone();
        let reader = async move {
            let end = read_loop(&stream, |data| {
                let tx = tx.clone();
                async move {
                    tx.send(Input::Peer(PeerInput::ConnData(conn, data)))
                        .await
                        .is_ok()
                }
            })
            .await;
            if let Some(closed) = end.conn_input(conn) {
                let _ = tx.post(Input::Peer(closed));
            }
        };
        self.rt.executor.spawn(reader).detach();
        Ok(writer)
    }

    fn chore(&mut self, chore: Chore) -> Option<PeerInput> {
        if self.chores.push(chore) {
            let work = do_chores(
                self.id.clone(),
                self.chores.clone(),
                self.ctx.clone(),
                self.tx.clone(),
            );
            // The previous worker has left its loop: letting it finish detached is safe.
            if let Some(done) = self.worker.replace(self.rt.executor.spawn(work)) {
                done.detach();
            }
        }
        None
    }
}

/// A peer task: the shared step after each input or deadline, until the peer stops; then
/// its inbox is closed (what is still queued is dropped, closing its sockets, and later
/// senders are refused), and the file work still queued (its last log lines) is done
/// before the task ends.
pub async fn run(mut io: PeerIo<SmolDriver>, mut driver: SmolDriver) {
    let inputs = driver.tx.clone();
    let mut timer = Timer::never();
    io.settle(&mut driver);
    while !io.is_stopped() {
        match io.deadline() {
            Some(at) => timer.set_at(at),
            None => timer = Timer::never(),
        }
        let input = async { Some(inputs.recv().await) }
            .or(async {
                (&mut timer).await;
                None
            })
            .await;
        io.step(&mut driver, input);
    }
    io.close_all();
    // Answers to chores are not wanted any more: their sends fail at once.
    drop(inputs.close());
    if let Some(worker) = driver.worker.take() {
        worker.await;
    }
}
