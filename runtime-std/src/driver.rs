//! The blocking driver: one thread per peer runs the shared loop step
//! ([`lonc_host::peer_io::PeerIo`]) around that peer's [`lonc_core::peer::Peer`]; this
//! file says only what differs on threads: how a connect runs (a thread per attempt), how
//! a connection's reader and writer start (a thread each, on one shared socket), how file
//! work runs (inline: the peer thread may block), and how the thread waits (its
//! [`Inbox`], with a timeout). Every decision is the core's; the thread only moves bytes.

use lonc_core::io::{ConnId, Input as PeerInput};
use lonc_host::chores::{self, Chore};
use lonc_host::link_socket::open_tcp;
use lonc_host::peer_io::{self, Dial, Driver, Outbox, PeerIo, Writers, connect_outcome};
use lonc_host::supervisor::PeerContext;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;

use crate::streams::{Inbox, Input, StdOutbox, read_loop, spawn_writer};

/// What the peer thread does on threads, for the shared loop step.
pub struct StdDriver {
    /// The peer's id.
    pub id: String,
    /// The peer thread's own inputs, for the threads it starts.
    pub tx: Inbox,
    /// What every peer shares.
    pub ctx: PeerContext,
    /// The peer's writers, waited for at shutdown.
    pub writers: Writers,
}

impl Driver for StdDriver {
    type Outbox = StdOutbox;
    type Stream = TcpStream;

    fn connect(&mut self, dial: Dial) -> Option<PeerInput> {
        let Dial {
            conn,
            host,
            port,
            timeout,
        } = dial;
        let (tx, logs) = (self.tx.clone(), self.ctx.logs.clone());
        let spawned = thread::Builder::new()
            .name(format!("connect {}", self.id))
            .spawn(move || {
                let _ = tx.post(connect_outcome(conn, open_tcp(&host, port, timeout), &logs));
            });
        let doing = "starting a connect thread";
        let failed = |e| peer_io::thread_failed(conn, doing, &e, &self.ctx.logs);
        spawned.err().map(failed)
    }

    fn attach(&mut self, conn: ConnId, stream: TcpStream) -> Result<StdOutbox, PeerInput> {
        let stream = Arc::new(stream);
        let logs = &self.ctx.logs;
        let closed = move |tx: &Inbox| {
            let _ = tx.post(Input::Peer(PeerInput::ConnClosed(conn)));
        };
        let tx = self.tx.clone();
        let writer = spawn_writer(stream.clone(), &self.writers, move || closed(&tx))
            .map_err(|e| peer_io::thread_failed(conn, "starting a link's writer", &e, logs))?;
        let (tx, reader) = (self.tx.clone(), stream);
        let spawned = thread::Builder::new()
            .name(format!("lond reader {}", self.id))
            .spawn(move || {
                let end = read_loop(&*reader, |data| {
                    tx.send_blocking(Input::Peer(PeerInput::ConnData(conn, data)))
                        .is_ok()
                });
                if end.conn_input(conn).is_some() {
                    closed(&tx);
                }
            });
        match spawned {
            Ok(_) => Ok(writer),
            Err(e) => {
                writer.abort();
                Err(peer_io::thread_failed(
                    conn,
                    "starting a link's reader",
                    &e,
                    logs,
                ))
            }
        }
    }

    fn chore(&mut self, chore: Chore) -> Option<PeerInput> {
        chores::carry_out(chore, &self.ctx.spool, &self.ctx.logs, &self.id)
    }
}

/// A peer thread: the shared step after each input or deadline, until the peer stops;
/// then its inbox is closed (what is still queued is dropped, closing its sockets, and
/// later senders are refused).
pub fn run(mut io: PeerIo<StdDriver>, mut driver: StdDriver) {
    io.settle(&mut driver);
    while !io.is_stopped() {
        let input = driver.tx.recv_blocking(io.deadline());
        io.step(&mut driver, input);
    }
    io.close_all();
    drop(driver.tx.close());
}
