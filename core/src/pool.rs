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
