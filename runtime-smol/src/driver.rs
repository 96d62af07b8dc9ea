//! The smol driver: one task per peer runs the shared loop step
//! ([`lonc_host::peer_io::PeerIo`]) around that peer's [`lonc_core::peer::Peer`] (no
//! lock around it), with one timer re-armed from its deadline. This file says only what
//! differs on smol: a connect is a task on the reactor ([`crate::connect`]), a
//! connection's reader and writer are tasks, and file work (spool, logs) goes, in order,
//! to the peer's chore task, which runs it through `smol::unblock` and sends the answers
//! back as inputs. Nothing blocks an executor thread; every decision is the core's.

use std::net::TcpStream;
use std::sync::Arc;

use lonc_core::io::{ConnId, Input as PeerInput};
use lonc_host::chores::{self, Chore};
use lonc_host::local_error::is_local_resource_error;
use lonc_host::peer_io::{Dial, Driver, PeerIo, connect_outcome};
use lonc_host::supervisor::PeerContext;
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::{Async, Task, Timer};

use crate::connect::open_tcp;
use crate::streams::{Input, PeerRt, ReadEnd, SmolOutbox, read_loop, spawn_writer};

/// What the peer task does on smol, for the shared loop step.
pub struct SmolDriver {
    tx: Sender<Input>,
    rt: PeerRt,
    chores: Sender<Chore>,
    chore_task: Task<()>,
}

impl SmolDriver {
    /// The driver of peer `id`, whose task takes its inputs from `tx`'s channel.
    pub fn new(id: String, tx: Sender<Input>, ctx: &PeerContext, rt: PeerRt) -> Self {
        let (chores, todo) = channel::unbounded();
        let chore_task = rt
            .executor
            .spawn(do_chores(id, todo, ctx.clone(), tx.clone()));
        SmolDriver {
            tx,
            rt,
            chores,
            chore_task,
        }
    }
}

/// Does a peer's file work in order, off the executor; answers go back as inputs.
async fn do_chores(id: String, todo: Receiver<Chore>, ctx: PeerContext, tx: Sender<Input>) {
    while let Ok(chore) = todo.recv().await {
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
            let _ = tx.send(input).await;
        };
        self.rt.executor.spawn(attempt).detach();
        None
    }

    fn attach(&mut self, conn: ConnId, stream: Async<TcpStream>) -> Result<SmolOutbox, PeerInput> {
        let stream = Arc::new(stream);
        let tx = self.tx.clone();
        let writer = spawn_writer(&self.rt, stream.clone(), move || {
            let _ = tx.try_send(Input::Peer(PeerInput::ConnClosed(conn)));
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
            if !matches!(end, ReadEnd::Dropped) {
                let _ = tx.send(Input::Peer(PeerInput::ConnClosed(conn))).await;
            }
        };
        self.rt.executor.spawn(reader).detach();
        Ok(writer)
    }

    fn chore(&mut self, chore: Chore) -> Option<PeerInput> {
        let _ = self.chores.try_send(chore);
        None
    }
}

/// A peer task: the shared step after each input or deadline, until the peer stops; then
/// the file work still queued (its last log lines) is done before the task ends.
pub async fn run(mut io: PeerIo<SmolDriver>, mut driver: SmolDriver, inputs: Receiver<Input>) {
    let mut timer = Timer::never();
    io.settle(&mut driver);
    while !io.is_stopped() {
        match io.deadline() {
            Some(at) => timer.set_at(at),
            None => timer = Timer::never(),
        }
        let next = async { inputs.recv().await.ok().map(Some) }
            .or(async {
                (&mut timer).await;
                Some(None)
            })
            .await;
        let Some(input) = next else { break };
        io.step(&mut driver, input);
    }
    io.close_all();
    // Answers to chores are not wanted any more: their sends fail at once.
    drop(inputs);
    let SmolDriver {
        chores, chore_task, ..
    } = driver;
    drop(chores);
    chore_task.await;
}
