//! The requests of one peer that wait for a connection, in arrival order, and their
//! bounds ([`QueueBounds`]): by default at most [`QUEUE_LIMIT`] requests and
//! [`QUEUE_BYTES_LIMIT`] bytes, the daemon's values (a request that does not fit is
//! answered `con_lost` by the peer).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::clients::ReqId;
use crate::io::ClientId;

/// The most requests that may wait for a connection, per peer.
pub const QUEUE_LIMIT: usize = 10_000;
/// The most request bytes that may wait for a connection, per peer (at least one request
/// of `max_request` bytes always fits).
pub const QUEUE_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// The bounds of one peer's request queue: at most `count` requests and `bytes` request
/// bytes wait for a connection. The byte bound in force is never below `loncMaxRequest`
/// ([`QueueBounds::effective_bytes`]), and an empty queue takes any request: one request
/// of the largest legal size always fits.
///
/// The daemons always use the default ([`QUEUE_LIMIT`], [`QUEUE_BYTES_LIMIT`]); this is no
/// configuration knob. Other bounds exist for simulation and tests, which reach a full
/// queue with a handful of requests
/// ([`Peer::with_queue_bounds`](crate::peer::Peer::with_queue_bounds)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    /// The most requests that may wait.
    pub count: usize,
    /// The most request bytes that may wait (see the type's docs for one large request).
    pub bytes: usize,
}

impl Default for QueueBounds {
    fn default() -> Self {
        QueueBounds {
            count: QUEUE_LIMIT,
            bytes: QUEUE_BYTES_LIMIT,
        }
    }
}

impl QueueBounds {
    /// The byte bound in force when requests may be `max_request` bytes long.
    pub fn effective_bytes(&self, max_request: usize) -> usize {
        self.bytes.max(max_request)
    }
}

/// What a waiting request asks for.
#[derive(Debug)]
pub(crate) enum QueuedKind {
    /// A line for lond, chomped.
    Request(Bytes),
    /// `close_connection_exit`: close every connection once none has a request in flight.
    Reconnect,
}

/// One waiting request.
#[derive(Debug)]
pub(crate) struct Queued {
    /// Its slot in its client's order.
    pub(crate) req: ReqId,
    /// Who asked.
    pub(crate) client: ClientId,
    /// What it asks for.
    pub(crate) kind: QueuedKind,
}

impl Queued {
    /// Its request bytes (none for `close_connection_exit`).
    pub(crate) fn bytes(&self) -> usize {
        match &self.kind {
            QueuedKind::Request(b) => b.len(),
            QueuedKind::Reconnect => 0,
        }
    }
}

/// The waiting requests of one peer; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct RequestQueue {
    items: VecDeque<Queued>,
    bytes: usize,
    bounds: QueueBounds,
}

impl RequestQueue {
    /// Sets the bounds later requests are held to (see [`QueueBounds`]).
    pub(crate) fn set_bounds(&mut self, bounds: QueueBounds) {
        self.bounds = bounds;
    }

    /// The bounds in force.
    pub(crate) fn bounds(&self) -> QueueBounds {
        self.bounds
    }

    /// Request bytes waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// True if nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True if `item` may not join the queue: the count is at its limit, or its bytes
    /// would pass the byte limit (raised to `max_request`, and never for an empty queue).
    pub(crate) fn is_full_for(&self, item: &Queued, max_request: usize) -> bool {
        self.items.len() >= self.bounds.count
            || (self.bytes + item.bytes() > self.bounds.effective_bytes(max_request)
                && !self.items.is_empty())
    }

    /// Adds `item` at the back (the bounds are the caller's, see
    /// [`RequestQueue::is_full_for`]).
    pub(crate) fn push(&mut self, item: Queued) {
        self.bytes += item.bytes();
        self.items.push_back(item);
    }

    /// The request that goes next.
    pub(crate) fn front(&self) -> Option<&Queued> {
        self.items.front()
    }

    /// Takes the request that goes next.
    pub(crate) fn pop_front(&mut self) -> Option<Queued> {
        let item = self.items.pop_front()?;
        self.bytes -= item.bytes();
        Some(item)
    }

    /// Drops every request of `client`; how many there were.
    pub(crate) fn remove_client(&mut self, client: ClientId) -> usize {
        let (before, mut freed) = (self.items.len(), 0);
        self.items.retain(|q| {
            let keep = q.client != client;
            if !keep {
                freed += q.bytes();
            }
            keep
        });
        self.bytes -= freed;
        before - self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(client: u64, len: usize) -> Queued {
        Queued {
            req: 0,
            client: ClientId(client),
            kind: QueuedKind::Request(vec![b'x'; len].into()),
        }
    }

    #[test]
    fn the_bounds_are_the_documented_ones() {
        // docs/PROTOCOL.md, section "Queueing": 10000 requests and 64 MiB.
        assert_eq!(QUEUE_LIMIT, 10_000);
        assert_eq!(QUEUE_BYTES_LIMIT, 64 << 20);
    }

    #[test]
    fn the_count_bound_holds() {
        let mut q = RequestQueue::default();
        assert!(q.is_empty());
        for n in 0..QUEUE_LIMIT {
            assert_eq!(q.len(), n);
            assert!(!q.is_full_for(&request(1, 1), 100));
            q.push(request(1, 1));
            assert!(!q.is_empty());
        }
        assert!(q.is_full_for(&request(1, 1), 100));
        let reconnect = Queued {
            req: 0,
            client: ClientId(1),
            kind: QueuedKind::Reconnect,
        };
        assert!(q.is_full_for(&reconnect, 100));
    }

    #[test]
    fn one_request_of_max_request_bytes_always_fits() {
        let mut q = RequestQueue::default();
        let big = QUEUE_BYTES_LIMIT + 10;
        assert!(
            !q.is_full_for(&request(1, big * 2), big),
            "an empty queue takes it"
        );
        q.push(request(1, big));
        assert!(!q.is_full_for(&request(1, 0), big));
        assert!(q.is_full_for(&request(1, 11), big));
        q.pop_front();
        assert!(!q.is_full_for(&request(1, big), big));
    }

    #[test]
    fn a_clients_requests_leave_together_and_the_bytes_follow() {
        let mut q = RequestQueue::default();
        q.push(request(1, 10));
        q.push(request(2, 20));
        q.push(request(1, 30));
        assert_eq!(q.remove_client(ClientId(1)), 2);
        assert_eq!(q.len(), 1);
        assert_eq!(q.front().map(|i| i.client), Some(ClientId(2)));
        assert!(!q.is_full_for(&request(3, QUEUE_BYTES_LIMIT - 20), 0));
        assert!(q.is_full_for(&request(3, QUEUE_BYTES_LIMIT - 19), 0));
        assert_eq!(q.remove_client(ClientId(1)), 0);
        assert!(!q.is_full_for(&request(3, QUEUE_BYTES_LIMIT - 20), 0));
    }

    #[test]
    fn a_request_taken_gives_its_bytes_back() {
        let mut q = RequestQueue::default();
        q.push(request(1, 10));
        q.push(request(2, 20));
        q.push(request(3, 30));
        assert_eq!(q.pop_front().map(|i| i.client), Some(ClientId(1)));
        assert!(!q.is_full_for(&request(4, QUEUE_BYTES_LIMIT - 50), 0));
        assert!(q.is_full_for(&request(4, QUEUE_BYTES_LIMIT - 49), 0));
        q.pop_front();
        q.pop_front();
        assert!(q.pop_front().is_none() && q.is_empty());
    }

    // Bounds other than the daemon's (Peer::with_queue_bounds).

    fn bounded(count: usize, bytes: usize) -> RequestQueue {
        let mut q = RequestQueue::default();
        q.set_bounds(QueueBounds { count, bytes });
        q
    }

    #[test]
    fn the_default_bounds_are_the_daemons() {
        let q = RequestQueue::default();
        assert_eq!(q.bounds(), QueueBounds::default());
        assert_eq!(q.bounds().count, QUEUE_LIMIT);
        assert_eq!(q.bounds().bytes, QUEUE_BYTES_LIMIT);
    }

    #[test]
    fn a_configured_count_bound_holds() {
        let mut q = bounded(3, 1_000);
        for _ in 0..3 {
            assert!(!q.is_full_for(&request(1, 1), 10));
            q.push(request(1, 1));
        }
        assert!(q.is_full_for(&request(1, 1), 10));
        let reconnect = Queued {
            req: 0,
            client: ClientId(1),
            kind: QueuedKind::Reconnect,
        };
        assert!(q.is_full_for(&reconnect, 10), "a reconnect counts too");
        q.pop_front();
        assert!(!q.is_full_for(&reconnect, 10));
    }

    #[test]
    fn a_configured_byte_bound_holds_and_follows_every_exit() {
        let mut q = bounded(100, 50);
        q.push(request(1, 20));
        q.push(request(2, 20));
        assert_eq!(q.bytes(), 40);
        assert!(
            !q.is_full_for(&request(3, 10), 10),
            "exactly the bound fits"
        );
        assert!(q.is_full_for(&request(3, 11), 10));
        q.pop_front();
        assert_eq!(q.bytes(), 20);
        assert!(!q.is_full_for(&request(3, 30), 10));
        assert!(q.is_full_for(&request(3, 31), 10));
        q.push(request(3, 30));
        assert_eq!(q.remove_client(ClientId(2)), 1);
        assert_eq!(q.bytes(), 30);
        q.pop_front();
        assert_eq!((q.len(), q.bytes()), (0, 0));
    }

    #[test]
    fn a_small_byte_bound_is_raised_to_max_request() {
        let mut q = bounded(100, 10);
        assert_eq!(q.bounds().effective_bytes(64), 64);
        assert_eq!(q.bounds().effective_bytes(5), 10);
        q.push(request(1, 40));
        assert!(!q.is_full_for(&request(1, 24), 64), "40 + 24 = max_request");
        assert!(q.is_full_for(&request(1, 25), 64));
        assert!(
            q.is_full_for(&request(1, 1), 40),
            "past the bound once raised to 40"
        );
        let q = bounded(100, 10);
        assert!(
            !q.is_full_for(&request(1, 500), 64),
            "an empty queue takes any request"
        );
    }

    #[test]
    fn a_zero_count_bound_refuses_everything() {
        let q = bounded(0, 1_000);
        assert!(q.is_full_for(&request(1, 0), 10));
    }
}
