//! A peer's inbox ([`Inbox`]): the one handoff by which every other thread or task of a
//! daemon (acceptor, readers, writers, connect attempts, file work, the supervisor)
//! reaches a peer's thread or task, the same type in both runtimes (blocking calls on
//! threads, `async` ones on smol).
//!
//! Two kinds of input share one queue, in the order they were sent:
//!
//! - **data** (a client accepted, client or lond bytes, a client's half-close, the
//!   answers of file work) is bounded: at most [`Inbox::capacity`] wait, and a sender
//!   finding the queue full waits for room (back-pressure on the socket it reads);
//!   nothing is dropped.
//! - **notices** (USR1's revive, the stop, a client gone, a connection closed, the
//!   outcome of a connect attempt) never wait and are never refused for want of room,
//!   so a full queue can lose neither a USR1 nor a close. Their number is bounded by
//!   construction, not by the queue: a revive or a stop is not queued again while one
//!   is still queued, a client's gone notice or a connection's closed notice not while
//!   one for the same client or connection is (it would say nothing new), and a connect
//!   outcome is sent once per attempt (the core bounds the attempts).
//!
//! Order: the peer takes inputs in the order they were queued, notices included, so a
//! connection's closed notice comes after the bytes its reader queued before it, and a
//! stop after every input queued before it. Once the peer has stopped it
//! [`Inbox::close`]s its inbox: what was still queued is handed back to be dropped
//! (closing the sockets it holds), and every later send is refused and given back to
//! its sender, so nothing sent after the stop vanishes unseen.
//!
//! Its primitives come from the crate's `sync` facade, so `tests/loom.rs` checks every
//! interleaving under `--cfg loom`.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use lonc_core::io::{ClientId, ConnId, Input as PeerInput};

use crate::peer_io::Input;
use crate::sync::{Arc, Event, EventListener, Listener, Mutex, MutexGuard};

/// A peer's inbox; clones are handles to the same queue.
pub struct Inbox<W, S>(Arc<Shared<W, S>>);

impl<W, S> Clone for Inbox<W, S> {
    fn clone(&self) -> Self {
        Inbox(self.0.clone())
    }
}

struct Shared<W, S> {
    state: Mutex<State<W, S>>,
    capacity: usize,
    /// Notified when an input is queued (the peer waits on it).
    arrived: Event,
    /// Notified when a data slot frees up or the inbox closes (data senders wait on it).
    room: Event,
}

struct State<W, S> {
    queue: VecDeque<Input<W, S>>,
    /// Data inputs in `queue`.
    data: usize,
    /// The coalesced notices in `queue`.
    queued: BTreeSet<Notice>,
    closed: bool,
}

/// A notice not queued twice while it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Notice {
    Revive,
    Stop,
    Gone(ClientId),
    Closed(ConnId),
}

/// How an input travels.
enum Kind {
    /// Bounded; its sender waits for room.
    Data,
    /// Never waits; queued once while it waits, if it has a key.
    Notice(Option<Notice>),
}

fn kind<W, S>(input: &Input<W, S>) -> Kind {
    match input {
        Input::ClientAccepted(..) => Kind::Data,
        Input::Connected(..) => Kind::Notice(None),
        Input::Peer(p) => match p {
            PeerInput::Revive => Kind::Notice(Some(Notice::Revive)),
            PeerInput::Shutdown(_) => Kind::Notice(Some(Notice::Stop)),
            PeerInput::ClientGone(c) => Kind::Notice(Some(Notice::Gone(*c))),
            PeerInput::ConnClosed(c) => Kind::Notice(Some(Notice::Closed(*c))),
            PeerInput::Connected(_)
            | PeerInput::ConnectFailed(..)
            | PeerInput::ConnectLocalError(..) => Kind::Notice(None),
            _ => Kind::Data,
        },
    }
}

/// What became of a send that may wait.
enum Attempt<T> {
    /// Queued, or refused for good (the peer has stopped).
    Done(Result<(), T>),
    /// Not queued for want of room: try again once the listener fires.
    Wait(T, EventListener),
}

/// Why an input was not queued.
enum Refused<T> {
    /// Data, and the queue holds [`Inbox::capacity`] data inputs.
    Full(T),
    /// The peer has stopped.
    Closed(T),
}

impl<T> Refused<T> {
    fn into_inner(self) -> T {
        match self {
            Refused::Full(t) | Refused::Closed(t) => t,
        }
    }
}

impl<W, S> Inbox<W, S> {
    /// An empty inbox holding at most `capacity` data inputs (at least one).
    pub fn new(capacity: usize) -> Self {
        Inbox(Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                data: 0,
                queued: BTreeSet::new(),
                closed: false,
            }),
            capacity: capacity.max(1),
            arrived: Event::new(),
            room: Event::new(),
        }))
    }

    /// How many data inputs may wait.
    pub fn capacity(&self) -> usize {
        self.0.capacity
    }

    /// Queues `input` without waiting: a notice always (a coalesced one that is already
    /// queued is dropped as a duplicate), data only if there is room. Gives `input`
    /// back if it was not queued: data finding the queue full, or anything once the
    /// peer has stopped.
    pub fn post(&self, input: Input<W, S>) -> Result<(), Input<W, S>> {
        self.offer(input).map_err(Refused::into_inner)
    }

    /// Queues `input`, waiting for room if it is data and the queue is full (a notice
    /// never waits). Gives `input` back if the peer has stopped. For threads.
    pub fn send_blocking(&self, mut input: Input<W, S>) -> Result<(), Input<W, S>> {
        loop {
            match self.send_or_listen(input) {
                Attempt::Done(sent) => return sent,
                Attempt::Wait(back, room) => {
                    room.wait();
                    input = back;
                }
            }
        }
    }

    /// [`Inbox::send_blocking`] for tasks: waits for room without blocking a thread.
    pub async fn send(&self, mut input: Input<W, S>) -> Result<(), Input<W, S>> {
        loop {
            match self.send_or_listen(input) {
                Attempt::Done(sent) => return sent,
                Attempt::Wait(back, room) => {
                    room.await;
                    input = back;
                }
            }
        }
    }

    /// Sends `input` if it can go now (or is refused for good); else gives it back with
    /// a listener for room, made before the second look so no freed slot is missed.
    fn send_or_listen(&self, input: Input<W, S>) -> Attempt<Input<W, S>> {
        let input = match self.offer(input) {
            Err(Refused::Full(back)) => back,
            done => return Attempt::Done(done.map_err(Refused::into_inner)),
        };
        let room = self.0.room.listen();
        match self.offer(input) {
            Err(Refused::Full(back)) => Attempt::Wait(back, room),
            done => Attempt::Done(done.map_err(Refused::into_inner)),
        }
    }

    /// The next input, if one is queued.
    pub fn try_recv(&self) -> Option<Input<W, S>> {
        let (input, freed) = {
            let mut state = self.lock();
            let input = state.queue.pop_front()?;
            let freed = match kind(&input) {
                Kind::Data => {
                    state.data -= 1;
                    true
                }
                Kind::Notice(Some(key)) => {
                    state.queued.remove(&key);
                    false
                }
                Kind::Notice(None) => false,
            };
            (input, freed)
        };
        if freed {
            // One more sender may go: each freed slot wakes one more waiter, so none
            // sleeps while a slot is free.
            self.0.room.notify_additional(1);
        }
        Some(input)
    }

    /// The next input, waiting for one until `deadline` (`None`: as long as it takes);
    /// `None` if the deadline passed first or the inbox is closed. For threads.
    pub fn recv_blocking(&self, deadline: Option<Instant>) -> Option<Input<W, S>> {
        loop {
            let arrived = match self.recv_or_listen() {
                Ok(input) => return input,
                Err(arrived) => arrived,
            };
            match deadline {
                None => arrived.wait(),
                Some(at) => arrived.wait_deadline(at)?,
            }
        }
    }

    /// The next input, waiting for one without blocking a thread. Cancel-safe: an
    /// input is taken only when it is returned. Never ends once the inbox is closed.
    pub async fn recv(&self) -> Input<W, S> {
        loop {
            match self.recv_or_listen() {
                Ok(Some(input)) => return input,
                Ok(None) => std::future::pending::<()>().await,
                Err(arrived) => arrived.await,
            }
        }
    }

    /// The next input, or `None` if the inbox is closed; else a listener for the next
    /// arrival, made before the second look so no arrival is missed.
    fn recv_or_listen(&self) -> Result<Option<Input<W, S>>, EventListener> {
        if let Some(input) = self.try_recv() {
            return Ok(Some(input));
        }
        let arrived = self.0.arrived.listen();
        match self.try_recv() {
            Some(input) => Ok(Some(input)),
            None if self.lock().closed => Ok(None),
            None => Err(arrived),
        }
    }

    /// The peer has stopped: every later send is refused, senders waiting for room are
    /// woken (and refused), and what was still queued is returned (dropping it closes
    /// the sockets it holds).
    pub fn close(&self) -> Vec<Input<W, S>> {
        let left = {
            let mut state = self.lock();
            state.closed = true;
            state.data = 0;
            state.queued.clear();
            std::mem::take(&mut state.queue)
        };
        self.0.room.notify(usize::MAX);
        self.0.arrived.notify(usize::MAX);
        left.into()
    }

    /// How many inputs are queued, data and notices.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True if no input is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn offer(&self, input: Input<W, S>) -> Result<(), Refused<Input<W, S>>> {
        {
            let mut state = self.lock();
            if state.closed {
                return Err(Refused::Closed(input));
            }
            match kind(&input) {
                Kind::Data if state.data >= self.0.capacity => return Err(Refused::Full(input)),
                Kind::Data => state.data += 1,
                // Already queued: this one says nothing new.
                Kind::Notice(Some(key)) if !state.queued.insert(key) => return Ok(()),
                Kind::Notice(_) => {}
            }
            state.queue.push_back(input);
        }
        self.0.arrived.notify(1);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State<W, S>> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::peer_io::INPUT_QUEUE;

    type In = Input<(), ()>;

    fn data(n: u8) -> In {
        Input::Peer(PeerInput::ClientData(ClientId(1), vec![n]))
    }

    fn drain(inbox: &Inbox<(), ()>) -> Vec<PeerInput> {
        std::iter::from_fn(|| inbox.try_recv())
            .map(|i| match i {
                Input::Peer(p) => p,
                _ => panic!("not a peer input"),
            })
            .collect()
    }

    /// The deterministic form of item 6: a USR1 and the end notices sent while a peer's
    /// data queue is full are queued at once (nothing waits, nothing is dropped) and
    /// reach the peer after the data queued before them; more data is refused, not
    /// dropped, until the peer takes some.
    #[test]
    fn a_revive_sent_while_the_queue_is_full_is_not_lost() {
        let inbox = Inbox::<(), ()>::new(INPUT_QUEUE);
        for n in 0..INPUT_QUEUE {
            inbox
                .post(data(n as u8))
                .unwrap_or_else(|_| panic!("room for {n}"));
        }
        assert!(inbox.post(data(0)).is_err(), "data beyond the bound");
        inbox.post(Input::Peer(PeerInput::Revive)).ok().unwrap();
        inbox
            .post(Input::Peer(PeerInput::ClientGone(ClientId(1))))
            .ok()
            .unwrap();
        inbox
            .post(Input::Peer(PeerInput::ConnClosed(ConnId(3))))
            .ok()
            .unwrap();
        inbox.post(Input::stop()).ok().unwrap();
        let got = drain(&inbox);
        assert_eq!(got.len(), INPUT_QUEUE + 4);
        assert!(
            got[..INPUT_QUEUE]
                .iter()
                .all(|p| matches!(p, PeerInput::ClientData(..)))
        );
        assert_eq!(
            got[INPUT_QUEUE..],
            [
                PeerInput::Revive,
                PeerInput::ClientGone(ClientId(1)),
                PeerInput::ConnClosed(ConnId(3)),
                PeerInput::Shutdown(lonc_core::limits::SHUTDOWN_GRACE),
            ]
        );
    }

    /// A notice already waiting is not queued again, so notices stay bounded however
    /// often they come; once taken, the next one is queued again.
    #[test]
    fn waiting_notices_are_coalesced() {
        let inbox = Inbox::<(), ()>::new(1);
        for _ in 0..1000 {
            inbox.post(Input::Peer(PeerInput::Revive)).ok().unwrap();
            inbox
                .post(Input::Peer(PeerInput::ClientGone(ClientId(7))))
                .ok()
                .unwrap();
            inbox.post(Input::stop()).ok().unwrap();
        }
        inbox
            .post(Input::Peer(PeerInput::ClientGone(ClientId(8))))
            .ok()
            .unwrap();
        assert_eq!(inbox.len(), 4);
        assert_eq!(drain(&inbox).len(), 4);
        inbox.post(Input::Peer(PeerInput::Revive)).ok().unwrap();
        assert_eq!(drain(&inbox), [PeerInput::Revive]);
    }

    /// After the stop: what was queued is handed back, later sends are refused (their
    /// sender keeps the input), and a sender waiting for room is woken and refused.
    #[test]
    fn a_closed_inbox_hands_everything_back() {
        let inbox = Inbox::<(), ()>::new(1);
        inbox.post(data(1)).ok().unwrap();
        let waiting = {
            let inbox = inbox.clone();
            std::thread::spawn(move || inbox.send_blocking(data(2)).is_err())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(inbox.close().len(), 1);
        assert!(waiting.join().unwrap(), "the waiting sender was refused");
        assert!(inbox.post(Input::Peer(PeerInput::Revive)).is_err());
        assert!(inbox.recv_blocking(None).is_none());
    }

    #[test]
    fn recv_blocking_gives_up_at_its_deadline() {
        let inbox = Inbox::<(), ()>::new(1);
        let start = Instant::now();
        let at = start + std::time::Duration::from_millis(30);
        assert!(inbox.recv_blocking(Some(at)).is_none());
        assert!(Instant::now() >= at);
    }
}
