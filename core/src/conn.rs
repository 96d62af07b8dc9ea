//! One TCP connection to a peer's lond: its stage (connecting, handshake, ready), the
//! bytes read from it cut into lines, its link cipher once ready, the requests in flight
//! on it, and its own deadline (the connect or handshake step, or the oldest request's
//! timeout). It reports what happened as [`Event`]s; the peer decides what they mean for
//! the clients, the backoff and the delayed flush, and drops a connection that reported
//! [`Event::Lost`], [`Event::Garbled`], [`Event::Failed`] or [`Event::ConnectTimedOut`].

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::cipher::{CipherError, Decoded, LinkCipher};
use crate::clients::ReqId;
use crate::config::LinkSettings;
use crate::handshake::{HANDSHAKE_LINE_LIMIT, Handshake, HandshakeStage, HandshakeStep};
use crate::io::ClientId;
use crate::line::{LineDecoder, chomp, encode_line};

/// Who a request in flight was written for.
#[derive(Debug)]
pub(crate) enum Sent {
    /// A client's request, answered in that client's order.
    Client {
        /// The client.
        client: ClientId,
        /// Its slot.
        req: ReqId,
    },
    /// A delayed message from the spool.
    Delayed {
        /// The spool file.
        name: String,
        /// Its request line, as sent (for `lonnet.perm.log`).
        request: Bytes,
    },
}

/// What a connection reports to its peer.
#[derive(Debug)]
pub(crate) enum Event {
    /// Write these handshake bytes.
    Transmit(Bytes),
    /// The handshake is complete: the connection takes requests.
    Ready {
        /// Whether lond's host line started with the peer's id.
        host_line_matched: bool,
    },
    /// lond answered the oldest request in flight: the line to pass on, LF included
    /// (`None` for an empty line).
    Reply {
        /// The request answered.
        sent: Sent,
        /// The reply, decrypted if it came as `enc:`.
        data: Option<Bytes>,
    },
    /// The answer to `sent` was an `enc:` line that cannot be decrypted: that request is
    /// lost, and the connection is no longer trusted.
    Garbled {
        /// The request answered.
        sent: Sent,
        /// Why it could not be decrypted.
        error: CipherError,
    },
    /// The ready connection is no longer trusted (a protocol error, a request that timed
    /// out): why.
    Lost(String),
    /// The handshake failed (or lond sent a line too long before it was done): why.
    Failed(String),
    /// The TCP connect did not complete within `connect_timeout`.
    ConnectTimedOut,
}

#[derive(Debug)]
struct InFlight {
    sent: Sent,
    deadline: Instant,
}

#[derive(Debug)]
enum Stage {
    Connecting {
        deadline: Instant,
    },
    Handshake {
        hs: Handshake,
        deadline: Instant,
    },
    Ready {
        cipher: Box<LinkCipher>,
        in_flight: VecDeque<InFlight>,
    },
}

/// One connection; see the module docs.
#[derive(Debug)]
pub(crate) struct Conn {
    stage: Stage,
    decoder: LineDecoder,
    last_active: Instant,
}

impl Conn {
    /// A connection being opened at `now`, given `connect_timeout` to come up.
    pub(crate) fn new(now: Instant, settings: &LinkSettings) -> Self {
        Conn {
            stage: Stage::Connecting {
                deadline: now + settings.connect_timeout,
            },
            decoder: LineDecoder::new(HANDSHAKE_LINE_LIMIT.min(settings.max_reply)),
            last_active: now,
        }
    }

    /// True while the TCP connect has not completed.
    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.stage, Stage::Connecting { .. })
    }

    /// True once the handshake is complete.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self.stage, Stage::Ready { .. })
    }

    /// Requests written and not answered yet.
    pub(crate) fn in_flight(&self) -> usize {
        match &self.stage {
            Stage::Ready { in_flight, .. } => in_flight.len(),
            _ => 0,
        }
    }

    /// The TCP connection is up: the handshake `hs` starts, and these are its first bytes
    /// to write. `None` if the connection was not waiting for that.
    pub(crate) fn connected(
        &mut self,
        now: Instant,
        hs: Handshake,
        settings: &LinkSettings,
    ) -> Option<Bytes> {
        if !matches!(self.stage, Stage::Connecting { .. }) {
            return None;
        }
        let init = hs.start();
        self.stage = Stage::Handshake {
            hs,
            deadline: now + settings.handshake_timeout,
        };
        self.last_active = now;
        Some(init)
    }

    /// Bytes lond sent; read them with [`Conn::next_event`].
    pub(crate) fn push(&mut self, now: Instant, data: &[u8]) {
        self.decoder.push(data);
        self.last_active = now;
    }

    /// What the next complete line from lond means, if any line says anything.
    pub(crate) fn next_event(&mut self, now: Instant, settings: &LinkSettings) -> Option<Event> {
        loop {
            let line = match self.decoder.next_line()? {
                Ok(line) => line,
                Err(e) if self.is_ready() => {
                    return Some(Event::Lost(format!("protocol error: reply {e}")));
                }
                Err(e) => return Some(Event::Failed(format!("handshake failed: lond sent a {e}"))),
            };
            match &mut self.stage {
                Stage::Connecting { .. } => {}
                Stage::Handshake { hs, deadline } => match hs.handle_line(&line) {
                    HandshakeStep::Send(data) => {
                        *deadline = now + settings.handshake_timeout;
                        return Some(Event::Transmit(data));
                    }
                    HandshakeStep::DelayPong => *deadline = now + settings.pong_delay,
                    HandshakeStep::Done {
                        key,
                        host_line_matched,
                    } => {
                        self.stage = Stage::Ready {
                            cipher: Box::new(LinkCipher::new(&key)),
                            in_flight: VecDeque::new(),
                        };
                        self.decoder.set_max_line(settings.max_reply);
                        return Some(Event::Ready { host_line_matched });
                    }
                    HandshakeStep::Failed(err) => {
                        return Some(Event::Failed(format!("handshake failed: {err}")));
                    }
                },
                Stage::Ready { cipher, in_flight } => {
                    let Some(f) = in_flight.pop_front() else {
                        return Some(Event::Lost("protocol error: reply with no request".into()));
                    };
                    let text = chomp(&line);
                    let data = if text.is_empty() {
                        None
                    } else {
                        match cipher.decrypt_line(text) {
                            Ok(Decoded::Plain) => Some(line.clone()),
                            Ok(Decoded::Decrypted(mut plain)) => {
                                plain.push(b'\n');
                                Some(Bytes::from(plain))
                            }
                            Err(error) => {
                                return Some(Event::Garbled {
                                    sent: f.sent,
                                    error,
                                });
                            }
                        }
                    };
                    return Some(Event::Reply { sent: f.sent, data });
                }
            }
        }
    }

    /// Writes one request (encrypting an `encrypt:` one) and records it in flight until
    /// `deadline`: the bytes to write. `None` if the connection is not ready.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        request: &[u8],
        sent: Sent,
        deadline: Instant,
    ) -> Option<Bytes> {
        let Stage::Ready { cipher, in_flight } = &mut self.stage else {
            return None;
        };
        let data = match request.strip_prefix(b"encrypt:") {
            Some(payload) => {
                let mut wire = cipher.encrypt_line(payload);
                wire.push(b'\n');
                Bytes::from(wire)
            }
            None => encode_line(request),
        };
        in_flight.push_back(InFlight { sent, deadline });
        self.last_active = now;
        Some(data)
    }

    /// The connection's own deadline: its connect or handshake step, or its oldest
    /// request's timeout. `None` for a ready connection with nothing in flight (whether it
    /// may close when idle is the peer's rule, from [`Conn::idle_since`]).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Connecting { deadline } | Stage::Handshake { deadline, .. } => Some(*deadline),
            Stage::Ready { in_flight, .. } => in_flight.iter().map(|f| f.deadline).min(),
        }
    }

    /// When a ready connection with nothing in flight last wrote or read.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        (self.is_ready() && self.in_flight() == 0).then_some(self.last_active)
    }

    /// Time has passed: what is due at `now` on this connection, if anything.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        settings: &LinkSettings,
    ) -> Option<Event> {
        match &mut self.stage {
            Stage::Connecting { deadline } if *deadline <= now => Some(Event::ConnectTimedOut),
            Stage::Handshake { hs, deadline } if *deadline <= now => {
                if hs.stage() != HandshakeStage::PongDelay {
                    let step = hs.stage().as_str();
                    return Some(Event::Failed(format!(
                        "handshake timed out waiting for {step}"
                    )));
                }
                let HandshakeStep::Send(data) = hs.pong_now() else {
                    return None;
                };
                *deadline = now + settings.handshake_timeout;
                Some(Event::Transmit(data))
            }
            Stage::Ready { in_flight, .. } if in_flight.iter().any(|f| f.deadline <= now) => {
                Some(Event::Lost("request timed out".into()))
            }
            _ => None,
        }
    }

    /// The requests in flight, oldest first, that will now never be answered.
    pub(crate) fn into_unanswered(self) -> impl Iterator<Item = Sent> {
        let in_flight = match self.stage {
            Stage::Ready { in_flight, .. } => in_flight,
            _ => VecDeque::new(),
        };
        in_flight.into_iter().map(|f| f.sent)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::key::buildkey;

    const PEER: &str = "msul1";
    const OWN: &str = "msul2";
    const BUILDKEY: &[u8] = b"3451878943AF7E9B2C40812\n";

    fn settings() -> LinkSettings {
        LinkSettings {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(60),
            pong_delay: Duration::from_secs(2),
            max_reply: 1024,
            ..LinkSettings::default()
        }
    }

    /// The cipher lond keys for the link once it answered `ekey` with [`BUILDKEY`].
    fn lond_cipher() -> LinkCipher {
        LinkCipher::new(&buildkey(PEER, OWN, BUILDKEY))
    }

    /// Feeds one line from lond and reads the one event it makes.
    fn line(c: &mut Conn, now: Instant, s: &LinkSettings, line: &[u8]) -> Option<Event> {
        c.push(now, line);
        c.next_event(now, s)
    }

    /// The bytes of a `Transmit` event.
    fn transmitted(event: Option<Event>) -> Bytes {
        match event {
            Some(Event::Transmit(data)) => data,
            other => panic!("expected Transmit, got {other:?}"),
        }
    }

    /// Why a `Failed` event gave up.
    fn failed(event: Option<Event>) -> String {
        match event {
            Some(Event::Failed(why)) => why,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    /// Why a `Lost` event gave up.
    fn lost(event: Option<Event>) -> String {
        match event {
            Some(Event::Lost(why)) => why,
            other => panic!("expected Lost, got {other:?}"),
        }
    }

    /// What is due at `due` on `c`, after checking that nothing is a nanosecond before.
    fn fires_at(c: &mut Conn, s: &LinkSettings, due: Instant) -> Option<Event> {
        let early = c.handle_timeout(due - Duration::from_nanos(1), s);
        assert!(early.is_none(), "{early:?} before {due:?}");
        c.handle_timeout(due, s)
    }

    fn client(req: ReqId) -> Sent {
        Sent::Client {
            client: ClientId(1),
            req,
        }
    }

    /// A connection opened at `now` and brought through the whole handshake (no pong
    /// delay): ready, nothing in flight.
    pub(crate) fn ready(now: Instant, s: &LinkSettings) -> Conn {
        let mut c = Conn::new(now, s);
        c.connected(now, Handshake::new(PEER, OWN, false), s)
            .expect("a new connection waits for its connect");
        transmitted(line(&mut c, now, s, b"12345\n"));
        transmitted(line(&mut c, now, s, b"ok\n"));
        transmitted(line(&mut c, now, s, b"msul1:msul2\n"));
        let event = line(&mut c, now, s, BUILDKEY);
        assert!(
            matches!(
                event,
                Some(Event::Ready {
                    host_line_matched: true
                })
            ),
            "{event:?}"
        );
        c
    }

    #[test]
    fn the_handshake_steps_are_written_in_order_and_end_ready() {
        let s = settings();
        let now = Instant::now();
        let mut c = Conn::new(now, &s);
        assert!(c.is_connecting() && !c.is_ready());
        assert_eq!(c.in_flight(), 0);
        assert_eq!(c.idle_since(), None, "not ready: never idle");
        assert!(
            c.send(now, b"ping", client(0), now).is_none(),
            "nothing is sent before the handshake"
        );
        let init = c.connected(now, Handshake::new(PEER, OWN, false), &s);
        assert_eq!(init.as_deref(), Some(&b"init\n"[..]));
        assert!(
            c.connected(now, Handshake::new(PEER, OWN, false), &s)
                .is_none(),
            "a second connect report starts no second handshake"
        );
        assert!(!c.is_connecting());
        assert_eq!(
            &transmitted(line(&mut c, now, &s, b"12345\n"))[..],
            b"12345\n"
        );
        assert_eq!(&transmitted(line(&mut c, now, &s, b"ok\n"))[..], b"pong\n");
        assert_eq!(
            &transmitted(line(&mut c, now, &s, b"someone:else\n"))[..],
            b"ekey\n"
        );
        let event = line(&mut c, now, &s, BUILDKEY);
        assert!(
            matches!(
                event,
                Some(Event::Ready {
                    host_line_matched: false
                })
            ),
            "{event:?}"
        );
        assert!(c.is_ready());
        assert_eq!(c.idle_since(), Some(now));
        assert_eq!(c.deadline(), None, "ready and idle: no deadline of its own");
    }

    #[test]
    fn encrypt_requests_go_out_encrypted_and_enc_replies_come_back_decrypted() {
        let s = settings();
        let t0 = Instant::now();
        let mut c = ready(t0, &s);
        let lond = lond_cipher();
        let t1 = t0 + Duration::from_secs(1);
        let wire = c.send(t1, b"encrypt:passwd", client(0), t1 + s.transaction_timeout);
        let wire = wire.expect("a ready connection sends");
        assert_eq!(wire.last(), Some(&b'\n'));
        assert_eq!(
            lond.decrypt_line(chomp(&wire)),
            Ok(Decoded::Decrypted(b"passwd".to_vec()))
        );
        let plain = c.send(t1, b"ping", client(1), t1 + s.transaction_timeout);
        assert_eq!(plain.as_deref(), Some(&b"ping\n"[..]));
        assert_eq!(c.in_flight(), 2);
        assert_eq!(c.idle_since(), None, "requests in flight: not idle");

        let mut reply = lond.encrypt_line(b"ok:secret");
        reply.push(b'\n');
        match line(&mut c, t1, &s, &reply) {
            Some(Event::Reply {
                sent: Sent::Client { req: 0, .. },
                data: Some(data),
            }) => assert_eq!(&data[..], b"ok:secret\n"),
            other => panic!("{other:?}"),
        }
        match line(&mut c, t1, &s, b"pong\n") {
            Some(Event::Reply {
                sent: Sent::Client { req: 1, .. },
                data: Some(data),
            }) => assert_eq!(&data[..], b"pong\n", "a plain reply passes as read"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.idle_since(), Some(t1));
    }

    #[test]
    fn an_empty_reply_carries_no_data() {
        let s = settings();
        let now = Instant::now();
        let mut c = ready(now, &s);
        c.send(now, b"ping", client(7), now + s.transaction_timeout);
        match line(&mut c, now, &s, b"\n") {
            Some(Event::Reply {
                sent: Sent::Client { req: 7, .. },
                data: None,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_enc_reply_that_cannot_be_decrypted_is_garbled() {
        let s = settings();
        let now = Instant::now();
        let mut c = ready(now, &s);
        c.send(now, b"ping", client(3), now + s.transaction_timeout);
        match line(&mut c, now, &s, b"enc:99:0011223344556677\n") {
            Some(Event::Garbled {
                sent: Sent::Client { req: 3, .. },
                error: CipherError::LengthTooLarge { declared: 99, .. },
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reply_with_no_request_or_too_long_loses_the_connection() {
        let s = settings();
        let now = Instant::now();
        let mut c = ready(now, &s);
        let why = lost(line(&mut c, now, &s, b"unasked\n"));
        assert_eq!(why, "protocol error: reply with no request");
        let mut c = ready(now, &s);
        c.send(now, b"ping", client(0), now + s.transaction_timeout);
        let why = lost(line(&mut c, now, &s, &vec![b'x'; s.max_reply + 1]));
        assert_eq!(why, "protocol error: reply line longer than 1024 bytes");
    }

    #[test]
    fn a_handshake_line_is_held_to_the_handshake_limit() {
        let s = LinkSettings {
            max_reply: 10 * HANDSHAKE_LINE_LIMIT,
            ..settings()
        };
        let now = Instant::now();
        let mut c = Conn::new(now, &s);
        c.connected(now, Handshake::new(PEER, OWN, false), &s);
        let why = failed(line(&mut c, now, &s, &vec![b'1'; HANDSHAKE_LINE_LIMIT + 1]));
        assert_eq!(
            why,
            "handshake failed: lond sent a line longer than 1024 bytes"
        );
    }

    #[test]
    fn lines_before_the_connect_completes_say_nothing() {
        let s = settings();
        let now = Instant::now();
        let mut c = Conn::new(now, &s);
        assert!(line(&mut c, now, &s, b"12345\n").is_none());
        assert!(c.is_connecting());
    }

    #[test]
    fn the_connect_times_out_at_its_deadline() {
        let s = settings();
        let t0 = Instant::now();
        let mut c = Conn::new(t0, &s);
        let due = t0 + s.connect_timeout;
        assert_eq!(c.deadline(), Some(due));
        let event = fires_at(&mut c, &s, due);
        assert!(matches!(event, Some(Event::ConnectTimedOut)), "{event:?}");
    }

    #[test]
    fn each_handshake_step_has_its_own_deadline() {
        let s = settings();
        let t0 = Instant::now();
        let mut c = Conn::new(t0, &s);
        let t1 = t0 + Duration::from_secs(1);
        c.connected(t1, Handshake::new(PEER, OWN, false), &s);
        assert_eq!(c.deadline(), Some(t1 + s.handshake_timeout));
        let t2 = t1 + Duration::from_secs(1);
        transmitted(line(&mut c, t2, &s, b"12345\n"));
        let due = t2 + s.handshake_timeout;
        assert_eq!(c.deadline(), Some(due), "the echo starts a new step");
        assert_eq!(
            failed(fires_at(&mut c, &s, due)),
            "handshake timed out waiting for ok"
        );
    }

    #[test]
    fn the_pong_waits_for_the_pong_delay() {
        let s = settings();
        let t0 = Instant::now();
        let mut c = Conn::new(t0, &s);
        c.connected(t0, Handshake::new(PEER, OWN, true), &s);
        transmitted(line(&mut c, t0, &s, b"12345\n"));
        assert!(line(&mut c, t0, &s, b"ok\n").is_none(), "no pong yet");
        let due = t0 + s.pong_delay;
        assert_eq!(c.deadline(), Some(due));
        assert_eq!(&transmitted(fires_at(&mut c, &s, due))[..], b"pong\n");
        assert_eq!(c.deadline(), Some(due + s.handshake_timeout));
        let why = failed(fires_at(&mut c, &s, due + s.handshake_timeout));
        assert_eq!(why, "handshake timed out waiting for pong");
    }

    #[test]
    fn the_oldest_request_sets_the_deadline_and_its_timeout_loses_the_link() {
        let s = settings();
        let t0 = Instant::now();
        let mut c = ready(t0, &s);
        let (early, late) = (t0 + Duration::from_secs(3), t0 + Duration::from_secs(9));
        c.send(t0, b"a", client(0), late);
        c.send(t0, b"b", client(1), early);
        assert_eq!(c.deadline(), Some(early), "the earliest of those in flight");
        assert_eq!(lost(fires_at(&mut c, &s, early)), "request timed out");
    }

    #[test]
    fn the_unanswered_requests_come_back_in_order() {
        let s = settings();
        let now = Instant::now();
        let mut c = ready(now, &s);
        c.send(now, b"a", client(4), now);
        c.send(
            now,
            b"b",
            Sent::Delayed {
                name: "1.x.msul1".into(),
                request: Bytes::from_static(b"b"),
            },
            now,
        );
        let left: Vec<_> = c.into_unanswered().collect();
        assert!(
            matches!(
                &left[..],
                [Sent::Client { req: 4, .. }, Sent::Delayed { name, .. }] if name == "1.x.msul1"
            ),
            "{left:?}"
        );
        let opening = Conn::new(now, &s);
        assert_eq!(
            opening.into_unanswered().count(),
            0,
            "no request is ever sent before the handshake"
        );
    }
}
