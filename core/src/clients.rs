//! The local clients of one peer's Unix socket and the order of their replies: each client
//! gets its answers in the order it asked, whatever connection served them, and is closed
//! once it will ask nothing more and is owed nothing more. Every request gets a slot when
//! it is read; the slot is filled when its answer is known; filled slots at the front are
//! written out.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::io::{ClientId, Output};
use crate::line::{LineDecoder, LineTooLong};

/// A request's identity within a peer.
pub(crate) type ReqId = u64;

/// How one slot ends: the reply line to write (if any), and whether the client is closed
/// after it.
#[derive(Debug)]
struct SlotDone {
    data: Option<Bytes>,
    close: bool,
}

/// One request of a client, in the client's order.
#[derive(Debug)]
struct Slot {
    req: ReqId,
    done: Option<SlotDone>,
}

#[derive(Debug)]
struct Client {
    decoder: LineDecoder,
    slots: VecDeque<Slot>,
    /// No more requests will come (EOF, a too-long line, `close_connection_exit`).
    finished_input: bool,
}

/// The clients of one peer; see the module docs. Methods that write to a client push
/// [`Output::Reply`] and [`Output::CloseClient`] to `out`, in order, and return `true` if
/// the client was closed (and forgotten).
#[derive(Debug, Default)]
pub(crate) struct Clients {
    clients: BTreeMap<ClientId, Client>,
    next_req: ReqId,
}

impl Clients {
    /// A client connected; its request lines may be up to `max_request` bytes. A client
    /// already known is left as it is.
    pub(crate) fn open(&mut self, client: ClientId, max_request: usize) {
        self.clients.entry(client).or_insert_with(|| Client {
            decoder: LineDecoder::new(max_request),
            slots: VecDeque::new(),
            finished_input: false,
        });
    }

    /// How many clients are known (connected, or owed replies).
    pub(crate) fn len(&self) -> usize {
        self.clients.len()
    }

    /// The known clients, in id order.
    pub(crate) fn ids(&self) -> Vec<ClientId> {
        self.clients.keys().copied().collect()
    }

    /// Buffers bytes the client wrote. False (and nothing kept) if the client is unknown
    /// or will ask nothing more.
    pub(crate) fn push(&mut self, client: ClientId, data: &[u8]) -> bool {
        match self.clients.get_mut(&client) {
            Some(c) if !c.finished_input => {
                c.decoder.push(data);
                true
            }
            _ => false,
        }
    }

    /// The client's next complete request line, while it may still ask.
    pub(crate) fn next_line(&mut self, client: ClientId) -> Option<Result<Bytes, LineTooLong>> {
        let c = self.clients.get_mut(&client)?;
        if c.finished_input {
            return None;
        }
        c.decoder.next_line()
    }

    /// A new request of `client`: its slot, in the client's order. `last`: the client will
    /// ask nothing more after it. The id is drawn even for a client not known.
    pub(crate) fn request(&mut self, client: ClientId, last: bool) -> Option<ReqId> {
        let req = self.next_req();
        let c = self.clients.get_mut(&client)?;
        if last {
            c.finished_input = true;
        }
        c.slots.push_back(Slot { req, done: None });
        Some(req)
    }

    /// The client closed its writing side: `None` if it is not known, else whether it
    /// was closed (it was owed nothing more).
    pub(crate) fn eof(&mut self, client: ClientId, out: &mut VecDeque<Output>) -> Option<bool> {
        let c = self.clients.get_mut(&client)?;
        c.finished_input = true;
        Some(self.flush(client, out))
    }

    /// Ends a client now: earlier requests still get their replies, then `last` (if any)
    /// and the close.
    pub(crate) fn finish_now(
        &mut self,
        client: ClientId,
        last: Option<Bytes>,
        out: &mut VecDeque<Output>,
    ) -> bool {
        let req = self.next_req();
        if let Some(c) = self.clients.get_mut(&client) {
            c.finished_input = true;
            c.slots.push_back(Slot {
                req,
                done: Some(SlotDone {
                    data: last,
                    close: true,
                }),
            });
        }
        self.flush(client, out)
    }

    /// The answer to request `req` is known: `data` to write (if any), then the close if
    /// `close`. Whatever is ready at the front of the client's order is written.
    pub(crate) fn complete(
        &mut self,
        client: ClientId,
        req: ReqId,
        data: Option<Bytes>,
        close: bool,
        out: &mut VecDeque<Output>,
    ) -> bool {
        let Some(c) = self.clients.get_mut(&client) else {
            return false;
        };
        if let Some(slot) = c.slots.iter_mut().find(|s| s.req == req) {
            slot.done = Some(SlotDone { data, close });
        }
        self.flush(client, out)
    }

    /// Forgets a client that is gone, without a word to it. False if it was not known.
    pub(crate) fn remove(&mut self, client: ClientId) -> bool {
        self.clients.remove(&client).is_some()
    }

    fn next_req(&mut self) -> ReqId {
        let req = self.next_req;
        self.next_req += 1;
        req
    }

    /// Writes the filled slots at the front; closes the client after a closing slot, or
    /// once it asks nothing more and is owed nothing.
    fn flush(&mut self, client: ClientId, out: &mut VecDeque<Output>) -> bool {
        let Some(c) = self.clients.get_mut(&client) else {
            return false;
        };
        let mut close = false;
        while let Some(done) = c.slots.front_mut().and_then(|s| s.done.take()) {
            c.slots.pop_front();
            if let Some(data) = done.data {
                out.push_back(Output::Reply { client, data });
            }
            if done.close {
                close = true;
                break;
            }
        }
        if close || (c.finished_input && c.slots.is_empty()) {
            self.clients.remove(&client);
            out.push_back(Output::CloseClient { client });
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut VecDeque<Output>) -> Vec<Output> {
        out.drain(..).collect()
    }

    fn reply(client: ClientId, text: &'static str) -> Output {
        Output::Reply {
            client,
            data: Bytes::from_static(text.as_bytes()),
        }
    }

    /// Client 1 with two requests, the second answered `b` first: the first's id.
    fn second_answered_first(out: &mut VecDeque<Output>) -> (Clients, ReqId) {
        let c = ClientId(1);
        let mut clients = Clients::default();
        clients.open(c, 100);
        let first = clients.request(c, false).unwrap();
        let second = clients.request(c, false).unwrap();
        assert!(!clients.complete(c, second, Some("b\n".into()), false, out));
        (clients, first)
    }

    #[test]
    fn replies_go_out_in_the_clients_order() {
        let c = ClientId(1);
        let mut out = VecDeque::new();
        let (mut clients, first) = second_answered_first(&mut out);
        assert!(out.is_empty(), "the second waits for the first");
        assert!(!clients.complete(c, first, Some("a\n".into()), false, &mut out));
        assert_eq!(drain(&mut out), [reply(c, "a\n"), reply(c, "b\n")]);
        assert_eq!(clients.eof(c, &mut out), Some(true));
        assert_eq!(drain(&mut out), [Output::CloseClient { client: c }]);
        assert_eq!(clients.len(), 0);
    }

    #[test]
    fn finish_now_closes_after_the_replies_owed() {
        let c = ClientId(1);
        let mut clients = Clients::default();
        let mut out = VecDeque::new();
        clients.open(c, 100);
        let req = clients.request(c, false).unwrap();
        assert!(!clients.finish_now(c, Some("bye\n".into()), &mut out));
        assert!(clients.next_line(c).is_none(), "no more requests read");
        assert!(clients.complete(c, req, Some("a\n".into()), false, &mut out));
        assert_eq!(
            drain(&mut out),
            [
                reply(c, "a\n"),
                reply(c, "bye\n"),
                Output::CloseClient { client: c }
            ]
        );
    }

    #[test]
    fn a_client_not_known_gets_nothing() {
        let c = ClientId(9);
        let mut clients = Clients::default();
        let mut out = VecDeque::new();
        assert!(!clients.push(c, b"x\n"));
        assert_eq!(clients.request(c, false), None);
        assert_eq!(clients.eof(c, &mut out), None);
        assert!(!clients.complete(c, 0, None, true, &mut out));
        assert!(!clients.finish_now(c, Some("bye\n".into()), &mut out));
        assert!(!clients.remove(c));
        assert!(out.is_empty());
    }

    #[test]
    fn a_closing_reply_ends_the_client_before_later_ones() {
        let c = ClientId(1);
        let mut out = VecDeque::new();
        let (mut clients, first) = second_answered_first(&mut out);
        assert!(clients.complete(c, first, None, true, &mut out));
        assert_eq!(
            drain(&mut out),
            [Output::CloseClient { client: c }],
            "nothing is written after the close"
        );
        assert_eq!(clients.len(), 0);
    }

    #[test]
    fn a_client_opened_twice_keeps_its_requests() {
        let (a, b) = (ClientId(2), ClientId(1));
        let mut clients = Clients::default();
        let mut out = VecDeque::new();
        clients.open(a, 100);
        clients.open(b, 100);
        let req = clients.request(a, false).unwrap();
        clients.open(a, 100);
        assert_eq!(clients.ids(), [b, a]);
        assert_eq!(clients.len(), 2);
        assert!(!clients.complete(a, req, Some("x\n".into()), false, &mut out));
        assert_eq!(drain(&mut out), [reply(a, "x\n")]);
        assert!(clients.remove(a));
        assert_eq!(clients.ids(), [b]);
    }

    #[test]
    fn a_line_over_the_limit_is_an_error() {
        let c = ClientId(1);
        let mut clients = Clients::default();
        clients.open(c, 3);
        clients.push(c, b"abcd\n");
        assert_eq!(clients.next_line(c), Some(Err(LineTooLong { limit: 3 })));
        assert_eq!(clients.next_line(ClientId(5)), None, "not known");
    }

    #[test]
    fn lines_are_read_until_the_last_request() {
        let c = ClientId(1);
        let mut clients = Clients::default();
        clients.open(c, 100);
        assert!(clients.push(c, b"a\nb\n"));
        assert_eq!(clients.next_line(c).unwrap().unwrap(), "a\n");
        clients.request(c, true);
        assert!(clients.next_line(c).is_none());
        assert!(!clients.push(c, b"c\n"));
    }
}
