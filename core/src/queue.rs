//! The requests of one peer that wait for a connection, in arrival order, and their
//! bounds: at most [`QUEUE_LIMIT`] requests and [`QUEUE_BYTES_LIMIT`] bytes (a request
//! that does not fit is answered `con_lost` by the peer).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::clients::ReqId;
use crate::io::ClientId;

/// The most requests that may wait for a connection, per peer.
pub const QUEUE_LIMIT: usize = 10_000;
/// The most request bytes that may wait for a connection, per peer (at least one request
/// of `max_request` bytes always fits).
pub const QUEUE_BYTES_LIMIT: usize = 64 * 1024 * 1024;

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
    fn bytes(&self) -> usize {
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
}

impl RequestQueue {
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
        self.items.len() >= QUEUE_LIMIT
            || (self.bytes + item.bytes() > QUEUE_BYTES_LIMIT.max(max_request)
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
}
