//! The connections of one peer, by id (its pool): new ids, which connection takes the
//! next client request (the least loaded with room in its pipeline) or a delayed message
//! (a free one), and whether one more connection is worth opening.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::LinkSettings;
use crate::conn::Conn;
use crate::io::ConnId;

/// One peer's connections; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    conns: BTreeMap<ConnId, Conn>,
    next_id: u64,
}

impl Pool {
    /// A new connection being opened at `now`: its id (never used before in this pool).
    pub(crate) fn open(&mut self, now: Instant, settings: &LinkSettings) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.conns.insert(id, Conn::new(now, settings));
        id
    }

    /// The connection `id`, if it is still open.
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(&id)
    }

    /// The connection `id`, if it is still open.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(&id)
    }

    /// Forgets the connection `id`.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn> {
        self.conns.remove(&id)
    }

    /// Forgets every connection, handing them over in id order.
    pub(crate) fn take_all(&mut self) -> BTreeMap<ConnId, Conn> {
        std::mem::take(&mut self.conns)
    }

    /// Every connection, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.conns.values()
    }

    /// Every connection's id, in order.
    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    /// The connections still connecting or in their handshake, in id order.
    pub(crate) fn opening(&self) -> Vec<ConnId> {
        let opening = self.conns.iter().filter(|(_, c)| !c.is_ready());
        opening.map(|(id, _)| *id).collect()
    }

    /// Open connections, in any stage.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// True if no connection is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// True if some connection is ready.
    pub(crate) fn any_ready(&self) -> bool {
        self.conns.values().any(Conn::is_ready)
    }

    /// How many connections are ready.
    pub(crate) fn ready_count(&self) -> usize {
        self.conns.values().filter(|c| c.is_ready()).count()
    }

    /// True if some connection waits for a reply.
    pub(crate) fn any_in_flight(&self) -> bool {
        self.conns.values().any(|c| c.in_flight() > 0)
    }

    /// The ready connection with nothing in flight and the lowest id: where a delayed
    /// message goes.
    pub(crate) fn free(&self) -> Option<ConnId> {
        let mut free = self.conns.iter();
        free.find(|(_, c)| c.is_ready() && c.in_flight() == 0)
            .map(|(id, _)| *id)
    }

    /// The ready connection with room in its pipeline and the fewest requests in flight
    /// (the lowest id among equals): where the next client request goes.
    pub(crate) fn least_loaded(&self, settings: &LinkSettings) -> Option<ConnId> {
        let pipeline = settings.pipeline.max(1);
        self.conns
            .iter()
            .filter(|(_, c)| c.is_ready() && c.in_flight() < pipeline)
            .min_by_key(|(id, c)| (c.in_flight(), **id))
            .map(|(id, _)| *id)
    }

    /// True if requests that wait deserve one more connection: every ready one is full,
    /// none is being opened, and `max_connections` is not reached.
    pub(crate) fn wants_another(&self, settings: &LinkSettings) -> bool {
        let pipeline = settings.pipeline.max(1);
        let all_full = self
            .conns
            .values()
            .filter(|c| c.is_ready())
            .all(|c| c.in_flight() >= pipeline);
        let opening = self.conns.values().any(|c| !c.is_ready());
        all_full && !opening && self.conns.len() < settings.max_connections.max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::conn::Sent;
    use crate::conn::tests::ready;
    use crate::io::ClientId;

    fn settings(pipeline: usize, max_connections: usize) -> LinkSettings {
        LinkSettings {
            pipeline,
            max_connections,
            ..LinkSettings::default()
        }
    }

    /// Puts `n` requests in flight on connection `id`.
    fn load(pool: &mut Pool, id: ConnId, n: u64, now: Instant) {
        let c = pool.get_mut(id).expect("open");
        for req in 0..n {
            let sent = Sent::Client {
                client: ClientId(1),
                req,
            };
            c.send(now, b"x", sent, now + Duration::from_secs(1))
                .expect("ready");
        }
    }

    /// A pool of ready connections, with ids 0, 1, ...
    fn ready_pool(n: usize, now: Instant, s: &LinkSettings) -> Pool {
        let mut pool = Pool::default();
        for _ in 0..n {
            let id = pool.open(now, s);
            pool.conns.insert(id, ready(now, s));
        }
        pool
    }

    #[test]
    fn ids_are_never_reused() {
        let s = LinkSettings::default();
        let now = Instant::now();
        let mut pool = Pool::default();
        assert!(pool.is_empty());
        let a = pool.open(now, &s);
        let b = pool.open(now, &s);
        assert_ne!(a, b);
        assert!(pool.remove(a).is_some());
        assert!(pool.remove(a).is_none(), "forgotten");
        let c = pool.open(now, &s);
        assert!(c != a && c != b, "{c:?}");
        assert_eq!(pool.ids(), [b, c]);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.opening(), [b, c]);
        assert!(pool.get(b).is_some() && pool.get(a).is_none());
        let all = pool.take_all();
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), [b, c]);
        assert!(pool.is_empty());
    }

    #[test]
    fn a_request_goes_to_the_least_loaded_ready_connection_with_room() {
        let s = settings(2, 4);
        let now = Instant::now();
        let mut pool = ready_pool(3, now, &s);
        let opening = pool.open(now, &s);
        assert_eq!(pool.ready_count(), 3);
        assert_eq!(pool.opening(), [opening]);
        assert_eq!(
            pool.least_loaded(&s),
            Some(ConnId(0)),
            "lowest id among equals"
        );
        load(&mut pool, ConnId(0), 1, now);
        load(&mut pool, ConnId(1), 2, now);
        assert_eq!(pool.least_loaded(&s), Some(ConnId(2)));
        load(&mut pool, ConnId(2), 1, now);
        assert_eq!(pool.least_loaded(&s), Some(ConnId(0)));
        load(&mut pool, ConnId(0), 1, now);
        load(&mut pool, ConnId(2), 1, now);
        assert_eq!(pool.least_loaded(&s), None, "every pipeline is full");
        let loads: Vec<usize> = pool.iter().map(Conn::in_flight).collect();
        assert_eq!(loads, [2, 2, 2, 0], "in id order, the opening one last");
    }

    #[test]
    fn a_delayed_message_goes_to_a_free_connection_only() {
        let s = settings(4, 4);
        let now = Instant::now();
        let mut pool = ready_pool(2, now, &s);
        assert!(!pool.any_in_flight());
        assert_eq!(pool.free(), Some(ConnId(0)));
        load(&mut pool, ConnId(0), 1, now);
        assert!(pool.any_in_flight());
        assert_eq!(pool.free(), Some(ConnId(1)));
        load(&mut pool, ConnId(1), 1, now);
        assert_eq!(pool.free(), None, "a pipeline with room is not free");
        assert!(pool.least_loaded(&s).is_some());
    }

    #[test]
    fn another_connection_is_wanted_only_when_every_ready_one_is_full() {
        let s = settings(1, 2);
        let now = Instant::now();
        let mut pool = Pool::default();
        assert!(pool.wants_another(&s), "none at all");
        let first = pool.open(now, &s);
        assert!(!pool.is_empty() && !pool.any_ready());
        assert!(!pool.wants_another(&s), "one is being opened");
        pool.conns.insert(first, ready(now, &s));
        assert!(pool.any_ready());
        assert!(!pool.wants_another(&s), "the ready one has room");
        load(&mut pool, first, 1, now);
        assert!(pool.wants_another(&s));
        let second = pool.open(now, &s);
        assert!(!pool.wants_another(&s), "one is being opened");
        pool.conns.insert(second, ready(now, &s));
        load(&mut pool, second, 1, now);
        assert!(!pool.wants_another(&s), "max_connections reached");
        assert!(
            Pool::default().wants_another(&settings(1, 0)),
            "max_connections 0 still allows one"
        );
    }
}
