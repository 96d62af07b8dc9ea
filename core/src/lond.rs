//! The lond side of the classic handshake and of `enc:`: a sans-IO responder so tests, the
//! demo and the benchmarks can run a faithful peer.
//!
//! One [`LondSession`] is one accepted TCP connection, seen from lond (PROTOCOL.md sections
//! 4 to 6). It is driven like the rest of the core (quinn / str0m style): feed the bytes
//! read from lonc to [`LondSession::handle_data`], then drain [`LondSession::poll_event`]
//! until it returns `None`, carrying out every [`LondEvent`] in order:
//!
//! - [`LondEvent::Transmit`]: write these bytes to lonc;
//! - [`LondEvent::Request`]: a request for the application, which answers it (at once or
//!   later) with [`LondSession::reply`] or [`LondSession::reply_encrypted`], then drains
//!   the events again;
//! - [`LondEvent::Close`]: close the TCP connection once everything transmitted before it
//!   is written. Nothing follows it.
//!
//! ## The conversation
//! ```text
//! lonc: init                  anything else first: "refused" + close
//! lond: <challenge>           LondConfig::challenge (real lond: pid then epoch seconds)
//! lonc: <challenge>           echoed; an exact match gets "ok", anything else "refused" + close
//! lond: ok
//! lonc: pong
//! lond: <own_id>:<client_id>
//! lonc: ekey
//! lond: <buildkey>            LondConfig::buildkey; from now on the session has the key
//! ```
//! A session configured with [`LondConfig::refuse`] (an unknown client) answers the first
//! line, whatever it is, with `refused` and closes.
//!
//! After `ok` every line is a request, answered by exactly one reply line, in request order
//! (the wire protocol is strictly one reply per request, in order): replies the application
//! gives out of order are held back until every earlier request is answered.
//! - A plain `pong` or `ekey` line is answered by the session itself, again and again if
//!   lonc asks again (lond allows it); `ekey` makes the key anew from the same configured
//!   buildkey, so the key does not change.
//! - A line starting with `enc:` is decrypted (PROTOCOL.md 6.3) and its plaintext handed to
//!   the application with `was_encrypted: true`. If it cannot be decrypted it is answered
//!   `error:decrypt` by the session and never reaches the application: before `ekey` (no
//!   key yet), when it is not exactly `enc:<decimal L>:<hex, a multiple of 16 digits>`, or
//!   when `L` exceeds the decrypted length. (Real lond took any line starting with `enc`
//!   as encrypted; a lond-side simulator must never hand the application a raw `enc:`
//!   line as if it were plain.)
//! - Any other line (`encrypt:...` included, `exit` included) is handed to the application
//!   as it is, LF removed, with `was_encrypted: false`. Decrypted lines always go to the
//!   application, even an encrypted `pong`.
//!
//! A line longer than [`LondConfig::max_line`] (LF not counted) closes the connection
//! without a reply; so does an `init` or challenge echo longer than
//! [`crate::handshake::HANDSHAKE_LINE_LIMIT`]. After [`LondEvent::Close`] the session ignores every input and reply.
//!
//! ## Differences from the Perl lond, on purpose
//! - The key is made exactly as the client makes it: `buildkey(own_id, client_id,
//!   buildkey + "\n")`, LF included (PROTOCOL.md section 5). Real lond used the buildkey
//!   without its LF; the two only differ when `own_id`, `client_id` and the buildkey
//!   together are shorter than 32 characters.
//! - `init` and the echo are compared exactly (LF removed, nothing else): a test peer
//!   should notice a client that sends stray bytes.
//! - An unknown client is refused in answer to its first line rather than on accept, so
//!   that a sans-IO session never speaks first.
//!
//! The session never panics, whatever bytes it is fed and whatever ids the application
//! replies to.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::cipher::{Decoded, LinkCipher};
use crate::handshake::HANDSHAKE_LINE_LIMIT;
use crate::key::buildkey;
use crate::line::{LineDecoder, chomp, encode_line};

/// The reply to `init` or to a wrong echo, and to every line of a refused client.
const REFUSED: &[u8] = b"refused";
/// The reply to a correct echo of the challenge.
const OK: &[u8] = b"ok";
/// The reply to an `enc:` line that cannot be decrypted (or comes before `ekey`).
pub const DECRYPT_ERROR: &[u8] = b"error:decrypt";
/// What [`LondSession::reply_encrypted`] sends when the session has no key yet.
pub const NO_KEY_ERROR: &[u8] = b"error:no_key";

/// How one lond session behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LondConfig {
    /// This lond's host id (the `<peer id>` of lonc, first in the key and in the `pong`
    /// answer).
    pub own_id: String,
    /// The connecting lonc's host id (its `lonHostID`).
    pub client_id: String,
    /// The challenge sent in answer to `init` (real lond: its pid followed by the epoch
    /// seconds, see [`standard_challenge`]). It should hold no LF.
    pub challenge: String,
    /// The buildkey sent in answer to `ekey` (real lond: digits and `A`-`F`), without LF.
    pub buildkey: String,
    /// Refuse this client (an unknown host): answer its first line `refused` and close.
    pub refuse: bool,
    /// The longest line accepted from lonc, LF not counted; a longer one closes the
    /// connection.
    pub max_line: usize,
}

/// The challenge real lond sends: its pid followed by the epoch seconds, as decimals.
pub fn standard_challenge(pid: u32, epoch_secs: u64) -> String {
    format!("{pid}{epoch_secs}")
}

/// Where a lond session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LondState {
    /// Waiting for `init`.
    AwaitInit,
    /// The challenge was sent; waiting for its echo.
    AwaitEcho,
    /// `ok` was sent: every line is now a request, but there is no key yet (no `ekey`).
    Accepted,
    /// The key exists (`ekey` was answered): the handshake is complete.
    Keyed,
    /// [`LondEvent::Close`] was emitted (refused, too long a line, or [`LondSession::close`]).
    Closed,
}

impl LondState {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LondState::AwaitInit => "await init",
            LondState::AwaitEcho => "await echo",
            LondState::Accepted => "accepted",
            LondState::Keyed => "keyed",
            LondState::Closed => "closed",
        }
    }
}

/// What the owner of a [`LondSession`] must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LondEvent {
    /// Write these bytes to lonc (whole lines, LF included).
    Transmit(Bytes),
    /// A request for the application, in arrival order. Answer it with
    /// [`LondSession::reply`] or [`LondSession::reply_encrypted`] and this `id`.
    Request {
        /// The request's id: ids increase with arrival order but need not be consecutive
        /// (lines the session answers itself, like `pong`, take an id too).
        id: u64,
        /// The request, LF removed; the plaintext if it came as `enc:`.
        line: Vec<u8>,
        /// Whether it came as an `enc:` line.
        was_encrypted: bool,
    },
    /// Close the TCP connection after writing everything transmitted before. The last
    /// event of a session.
    Close,
}

/// One lond connection: the handshake, the key, and the in-order reply queue.
#[derive(Debug)]
pub struct LondSession {
    cfg: LondConfig,
    state: LondState,
    decoder: LineDecoder,
    cipher: Option<LinkCipher>,
    events: VecDeque<LondEvent>,
    /// One slot per request line not yet written, oldest first: `None` while the
    /// application has not answered it, else the reply line (LF included).
    slots: VecDeque<Option<Bytes>>,
    /// The id of the front slot.
    front_id: u64,
}

impl LondSession {
    /// A session for a freshly accepted connection, waiting for `init`.
    pub fn new(cfg: LondConfig) -> Self {
        LondSession {
            decoder: LineDecoder::new(HANDSHAKE_LINE_LIMIT.min(cfg.max_line)),
            cfg,
            state: LondState::AwaitInit,
            cipher: None,
            events: VecDeque::new(),
            slots: VecDeque::new(),
            front_id: 0,
        }
    }

    /// The configuration the session was made with.
    pub fn config(&self) -> &LondConfig {
        &self.cfg
    }

    /// Where the session stands.
    pub fn state(&self) -> LondState {
        self.state
    }

    /// Whether the handshake is complete: the key exists and the session is open.
    pub fn is_ready(&self) -> bool {
        self.state == LondState::Keyed
    }

    /// Whether [`LondEvent::Close`] was emitted (it may still wait in the event queue).
    pub fn is_closed(&self) -> bool {
        self.state == LondState::Closed
    }

    /// How many requests wait for a reply line to be written: unanswered ones and
    /// answered ones held back behind an unanswered one.
    pub fn pending_replies(&self) -> usize {
        self.slots.len()
    }

    /// Feeds bytes read from lonc, in any chunking. Ignored once the session is closed.
    pub fn handle_data(&mut self, data: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.decoder.push(data);
        while !self.is_closed() {
            match self.decoder.next_line() {
                None => break,
                Some(Ok(line)) => self.handle_line(chomp(&line)),
                Some(Err(_)) => {
                    self.close();
                    break;
                }
            }
        }
    }

    /// The next thing to do, or `None` when there is nothing for now.
    pub fn poll_event(&mut self) -> Option<LondEvent> {
        self.events.pop_front()
    }

    /// Answers request `id` with the plain line `data` (an LF is added; `data` is sent as
    /// given, so it should hold no LF of its own). Returns `false`, doing nothing, if `id`
    /// is not a request waiting for an answer or the session is closed.
    pub fn reply(&mut self, id: u64, data: &[u8]) -> bool {
        let line = encode_line(data);
        self.fill(id, line)
    }

    /// Answers request `id` with `data` encrypted as `enc:<L>:<hex>` (plus LF). Without a
    /// key (no `ekey` yet) the reply is the plain line `error:no_key` instead. Returns
    /// `false`, doing nothing, if `id` is not a request waiting for an answer or the
    /// session is closed.
    pub fn reply_encrypted(&mut self, id: u64, data: &[u8]) -> bool {
        if self.slot_index(id).is_none() {
            return false;
        }
        let line = match &self.cipher {
            Some(cipher) => encode_line(&cipher.encrypt_line(data)),
            None => encode_line(NO_KEY_ERROR),
        };
        self.fill(id, line)
    }

    /// Closes the connection: [`LondEvent::Close`] follows what was already transmitted;
    /// replies not yet written are dropped. Does nothing if already closed.
    pub fn close(&mut self) {
        if self.is_closed() {
            return;
        }
        self.state = LondState::Closed;
        self.slots.clear();
        self.cipher = None;
        self.events.push_back(LondEvent::Close);
    }

    fn handle_line(&mut self, line: &[u8]) {
        match self.state {
            LondState::AwaitInit => {
                if self.cfg.refuse || line != b"init" {
                    self.refuse();
                } else {
                    self.state = LondState::AwaitEcho;
                    let challenge = encode_line(self.cfg.challenge.as_bytes());
                    self.transmit(challenge);
                }
            }
            LondState::AwaitEcho => {
                if line == self.cfg.challenge.as_bytes() {
                    self.state = LondState::Accepted;
                    self.decoder.set_max_line(self.cfg.max_line);
                    self.transmit(encode_line(OK));
                } else {
                    self.refuse();
                }
            }
            LondState::Accepted | LondState::Keyed => self.handle_request(line),
            LondState::Closed => {}
        }
    }

    fn handle_request(&mut self, line: &[u8]) {
        if line == b"pong" {
            let answer = format!("{}:{}", self.cfg.own_id, self.cfg.client_id);
            self.push_answered(encode_line(answer.as_bytes()));
        } else if line == b"ekey" {
            let mut buildkey_line = self.cfg.buildkey.clone().into_bytes();
            buildkey_line.push(b'\n');
            let key = buildkey(&self.cfg.own_id, &self.cfg.client_id, &buildkey_line);
            self.cipher = Some(LinkCipher::new(&key));
            self.state = LondState::Keyed;
            self.push_answered(Bytes::from(buildkey_line));
        } else if line.starts_with(b"enc:") {
            let decrypted = match &self.cipher {
                Some(cipher) => match cipher.decrypt_line(line) {
                    Ok(Decoded::Decrypted(plain)) => Some(plain),
                    Ok(Decoded::Plain) | Err(_) => None,
                },
                None => None,
            };
            match decrypted {
                Some(plain) => self.push_request(plain, true),
                None => self.push_answered(encode_line(DECRYPT_ERROR)),
            }
        } else {
            self.push_request(line.to_vec(), false);
        }
    }

    fn refuse(&mut self) {
        self.transmit(encode_line(REFUSED));
        self.close();
    }

    fn transmit(&mut self, data: Bytes) {
        self.events.push_back(LondEvent::Transmit(data));
    }

    /// The id the next slot gets.
    fn next_id(&self) -> u64 {
        // The slot count always fits in u64.
        self.front_id.wrapping_add(self.slots.len() as u64)
    }

    /// A request for the application: a new empty slot and a Request event.
    fn push_request(&mut self, line: Vec<u8>, was_encrypted: bool) {
        let id = self.next_id();
        self.slots.push_back(None);
        self.events.push_back(LondEvent::Request {
            id,
            line,
            was_encrypted,
        });
    }

    /// A line the session answers itself: its reply takes its place in the order.
    fn push_answered(&mut self, reply: Bytes) {
        self.slots.push_back(Some(reply));
        self.flush();
    }

    /// Where request `id` waits for its answer, if it does.
    fn slot_index(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(self.front_id)?).ok()?;
        matches!(self.slots.get(index), Some(None)).then_some(index)
    }

    fn fill(&mut self, id: u64, line: Bytes) -> bool {
        let Some(index) = self.slot_index(id) else {
            return false;
        };
        self.slots[index] = Some(line);
        self.flush();
        true
    }

    /// Transmits the answered replies at the front of the queue.
    fn flush(&mut self) {
        while let Some(Some(_)) = self.slots.front() {
            if let Some(Some(line)) = self.slots.pop_front() {
                self.front_id = self.front_id.wrapping_add(1);
                self.transmit(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Handshake, HandshakeStep};
    use proptest::prelude::*;

    const CHALLENGE: &str = "123451016600000";
    const BUILDKEY: &str = "31416A0AFF00000DCBAB7A8577";

    fn cfg() -> LondConfig {
        LondConfig {
            own_id: "msul1".into(),
            client_id: "msul2".into(),
            challenge: CHALLENGE.into(),
            buildkey: BUILDKEY.into(),
            refuse: false,
            max_line: 1 << 20,
        }
    }

    fn events(s: &mut LondSession) -> Vec<LondEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn handshake_lines_are_bounded_tightly_requests_are_not() {
        let mut s = LondSession::new(cfg());
        s.handle_data(&vec![b'x'; HANDSHAKE_LINE_LIMIT + 1]);
        assert_eq!(events(&mut s), vec![LondEvent::Close]);
        let mut s = LondSession::new(cfg());
        s.handle_data(b"init\n");
        s.handle_data(format!("{CHALLENGE}\n").as_bytes());
        events(&mut s);
        let mut long = vec![b'y'; HANDSHAKE_LINE_LIMIT * 4];
        long.push(b'\n');
        s.handle_data(&long);
        assert!(
            matches!(events(&mut s).as_slice(), [LondEvent::Request { line, .. }] if line.len() == HANDSHAKE_LINE_LIMIT * 4)
        );
    }

    fn tx(data: &[u8]) -> LondEvent {
        LondEvent::Transmit(Bytes::copy_from_slice(data))
    }

    fn req(id: u64, line: &[u8], was_encrypted: bool) -> LondEvent {
        LondEvent::Request {
            id,
            line: line.to_vec(),
            was_encrypted,
        }
    }

    /// The cipher lonc makes from the buildkey line it read.
    fn client_cipher(c: &LondConfig) -> LinkCipher {
        let line = format!("{}\n", c.buildkey);
        LinkCipher::new(&buildkey(&c.own_id, &c.client_id, line.as_bytes()))
    }

    /// A session past `ekey`, its events drained.
    fn keyed() -> LondSession {
        let mut s = LondSession::new(cfg());
        s.handle_data(format!("init\n{CHALLENGE}\npong\nekey\n").as_bytes());
        assert_eq!(events(&mut s).len(), 4);
        assert!(s.is_ready());
        s
    }

    #[test]
    fn full_handshake_by_hand() {
        let mut s = LondSession::new(cfg());
        assert_eq!(s.state(), LondState::AwaitInit);
        assert_eq!(s.poll_event(), None);

        s.handle_data(b"init\n");
        assert_eq!(events(&mut s), [tx(b"123451016600000\n")]);
        assert_eq!(s.state(), LondState::AwaitEcho);

        // The echo in two pieces.
        s.handle_data(b"12345101");
        assert_eq!(s.poll_event(), None);
        s.handle_data(b"6600000\n");
        assert_eq!(events(&mut s), [tx(b"ok\n")]);
        assert_eq!(s.state(), LondState::Accepted);
        assert!(!s.is_ready());

        s.handle_data(b"pong\n");
        assert_eq!(events(&mut s), [tx(b"msul1:msul2\n")]);
        assert!(!s.is_ready());

        s.handle_data(b"ekey\n");
        assert_eq!(events(&mut s), [tx(b"31416A0AFF00000DCBAB7A8577\n")]);
        assert_eq!(s.state(), LondState::Keyed);
        assert!(s.is_ready());
        assert!(!s.is_closed());
        assert_eq!(s.pending_replies(), 0);
    }

    #[test]
    fn handshake_with_the_core_client() {
        let mut s = LondSession::new(cfg());
        let mut h = Handshake::new("msul1", "msul2", false);
        let mut to_lond = h.start();
        loop {
            s.handle_data(&to_lond);
            let evs = events(&mut s);
            assert_eq!(evs.len(), 1, "{evs:?}");
            let LondEvent::Transmit(line) = &evs[0] else {
                panic!("{evs:?}");
            };
            match h.handle_line(line) {
                HandshakeStep::Send(b) => to_lond = b,
                HandshakeStep::Done {
                    key,
                    host_line_matched,
                } => {
                    assert!(host_line_matched);
                    let c = LinkCipher::new(&key);
                    let mut wire = c.encrypt_line(b"userload");
                    wire.push(b'\n');
                    s.handle_data(&wire);
                    assert_eq!(events(&mut s), [req(2, b"userload", true)]);
                    assert!(s.reply_encrypted(2, b"0.25"));
                    let [LondEvent::Transmit(back)] = &events(&mut s)[..] else {
                        panic!("no reply");
                    };
                    assert_eq!(
                        c.decrypt_line(chomp(back)),
                        Ok(Decoded::Decrypted(b"0.25".to_vec()))
                    );
                    return;
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn refused_on_wrong_echo() {
        let mut s = LondSession::new(cfg());
        s.handle_data(b"init\n123451016600001\npong\n");
        assert_eq!(
            events(&mut s),
            [tx(b"123451016600000\n"), tx(b"refused\n"), LondEvent::Close]
        );
        assert!(s.is_closed());
        assert_eq!(s.state(), LondState::Closed);
        // Everything after the close is ignored.
        s.handle_data(b"ekey\n");
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn echo_must_match_exactly() {
        for echo in [
            "",
            "123451016600000\r",
            " 123451016600000",
            "1234510166000000",
            "12345101660000",
        ] {
            let mut s = LondSession::new(cfg());
            s.handle_data(format!("init\n{echo}\n").as_bytes());
            let evs = events(&mut s);
            assert_eq!(evs[1..], [tx(b"refused\n"), LondEvent::Close], "{echo:?}");
        }
    }

    #[test]
    fn refused_client_is_refused_at_init() {
        let mut s = LondSession::new(LondConfig {
            refuse: true,
            ..cfg()
        });
        s.handle_data(b"init\n");
        assert_eq!(events(&mut s), [tx(b"refused\n"), LondEvent::Close]);
        assert!(s.is_closed());
        s.handle_data(format!("{CHALLENGE}\n").as_bytes());
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn refused_when_the_first_line_is_not_init() {
        for first in ["pong", "ekey", "init ", "INIT", "", "ping", "init\r"] {
            let mut s = LondSession::new(cfg());
            s.handle_data(format!("{first}\ninit\n").as_bytes());
            assert_eq!(
                events(&mut s),
                [tx(b"refused\n"), LondEvent::Close],
                "{first:?}"
            );
        }
    }

    #[test]
    fn pong_and_ekey_may_be_repeated() {
        let mut s = keyed();
        s.handle_data(b"pong\nekey\npong\n");
        assert_eq!(
            events(&mut s),
            [
                tx(b"msul1:msul2\n"),
                tx(b"31416A0AFF00000DCBAB7A8577\n"),
                tx(b"msul1:msul2\n"),
            ]
        );
        // The key is the same after a second ekey.
        let c = client_cipher(&cfg());
        let mut wire = c.encrypt_line(b"ping");
        wire.push(b'\n');
        s.handle_data(&wire);
        let [LondEvent::Request { line, .. }] = &events(&mut s)[..] else {
            panic!();
        };
        assert_eq!(line, b"ping");
    }

    #[test]
    fn requests_before_ekey_are_plain_requests() {
        let mut s = LondSession::new(cfg());
        s.handle_data(format!("init\n{CHALLENGE}\nping\n").as_bytes());
        let evs = events(&mut s);
        assert_eq!(evs[2], req(0, b"ping", false));
        assert!(s.reply(0, b"msul1"));
        assert_eq!(events(&mut s), [tx(b"msul1\n")]);
        // No key yet: an encrypted reply is impossible.
        s.handle_data(b"eget\n");
        assert_eq!(events(&mut s), [req(1, b"eget", false)]);
        assert!(s.reply_encrypted(1, b"x"));
        assert_eq!(events(&mut s), [tx(b"error:no_key\n")]);
    }

    #[test]
    fn encrypted_request_arrives_decrypted() {
        let mut s = keyed();
        let c = client_cipher(&cfg());
        for payload in [&b""[..], b"ping", b"userload", b"put:dom:user:a%20b=c\xff"] {
            let mut wire = c.encrypt_line(payload);
            wire.push(b'\n');
            s.handle_data(&wire);
            let evs = events(&mut s);
            let [
                LondEvent::Request {
                    id,
                    line,
                    was_encrypted,
                },
            ] = &evs[..]
            else {
                panic!("{evs:?}");
            };
            assert_eq!(line, payload);
            assert!(was_encrypted);
            assert!(s.reply(*id, b"ok"));
            assert_eq!(events(&mut s), [tx(b"ok\n")]);
        }
    }

    #[test]
    fn key_includes_the_buildkey_lf() {
        // Short ids and buildkey: the LF is part of S32, so it changes the key.
        let c = LondConfig {
            own_id: "s1".into(),
            client_id: "s2".into(),
            buildkey: "9".into(),
            ..cfg()
        };
        let mut s = LondSession::new(c.clone());
        s.handle_data(format!("init\n{CHALLENGE}\nekey\n").as_bytes());
        events(&mut s);
        let with_lf = client_cipher(&c);
        let mut wire = with_lf.encrypt_line(b"secret");
        wire.push(b'\n');
        s.handle_data(&wire);
        assert_eq!(events(&mut s), [req(1, b"secret", true)]);
        let without_lf = LinkCipher::new(&buildkey("s1", "s2", b"9"));
        let mut wire = without_lf.encrypt_line(b"secret");
        wire.push(b'\n');
        s.handle_data(&wire);
        let [LondEvent::Request { line, .. }] = &events(&mut s)[..] else {
            panic!();
        };
        assert_ne!(line, b"secret");
    }

    #[test]
    fn bad_enc_lines_get_error_decrypt() {
        // Before the key exists.
        let mut s = LondSession::new(cfg());
        s.handle_data(format!("init\n{CHALLENGE}\n").as_bytes());
        events(&mut s);
        let c = client_cipher(&cfg());
        let mut wire = c.encrypt_line(b"ping");
        wire.push(b'\n');
        s.handle_data(&wire);
        assert_eq!(events(&mut s), [tx(b"error:decrypt\n")]);

        // Malformed or too long an L, with the key.
        let mut s = keyed();
        for bad in [
            &b"enc:"[..],
            b"enc:4:",
            b"enc:x:0011223344556677",
            b"enc:4:00112233445566",
            b"enc:9:0011223344556677",
            b"enc:4:0011223344556677 ",
        ] {
            let mut line = bad.to_vec();
            line.push(b'\n');
            s.handle_data(&line);
            assert_eq!(events(&mut s), [tx(b"error:decrypt\n")], "{bad:?}");
        }
        // Lines merely starting with "enc" are plain requests.
        s.handle_data(b"encrypt:ping\nenc\n");
        let evs = events(&mut s);
        assert!(matches!(&evs[..], [
            LondEvent::Request { line: a, was_encrypted: false, .. },
            LondEvent::Request { line: b, was_encrypted: false, .. },
        ] if a == b"encrypt:ping" && b == b"enc"));
    }

    #[test]
    fn out_of_order_replies_go_out_in_order() {
        let mut s = keyed();
        s.handle_data(b"a\nb\nc\n");
        let ids: Vec<u64> = events(&mut s)
            .into_iter()
            .map(|e| match e {
                LondEvent::Request { id, .. } => id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.pending_replies(), 3);

        assert!(s.reply(ids[2], b"C"));
        assert_eq!(s.poll_event(), None);
        assert!(s.reply(ids[1], b"B"));
        assert_eq!(s.poll_event(), None);
        // A second answer to the same request is refused.
        assert!(!s.reply(ids[2], b"C2"));
        assert!(s.reply(ids[0], b"A"));
        assert_eq!(events(&mut s), [tx(b"A\n"), tx(b"B\n"), tx(b"C\n")]);
        assert_eq!(s.pending_replies(), 0);
        // Already written, or never handed out.
        assert!(!s.reply(ids[0], b"again"));
        assert!(!s.reply(u64::MAX, b"x"));
        assert!(!s.reply_encrypted(ids[2] + 100, b"x"));
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn session_answers_wait_behind_pending_requests() {
        let mut s = keyed();
        s.handle_data(b"slow\npong\nenc:1:\nfast\n");
        let evs = events(&mut s);
        assert_eq!(evs.len(), 2, "{evs:?}");
        let (LondEvent::Request { id: slow, .. }, LondEvent::Request { id: fast, .. }) =
            (&evs[0], &evs[1])
        else {
            panic!("{evs:?}");
        };
        assert!(s.reply(*fast, b"F"));
        assert_eq!(s.poll_event(), None);
        assert!(s.reply(*slow, b"S"));
        assert_eq!(
            events(&mut s),
            [
                tx(b"S\n"),
                tx(b"msul1:msul2\n"),
                tx(b"error:decrypt\n"),
                tx(b"F\n")
            ]
        );
    }

    #[test]
    fn reply_encrypted_decrypts_on_the_client() {
        let mut s = keyed();
        let c = client_cipher(&cfg());
        s.handle_data(b"eget:x\neget:y\n");
        let evs = events(&mut s);
        let ids: Vec<u64> = evs
            .iter()
            .map(|e| match e {
                LondEvent::Request { id, .. } => *id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(s.reply_encrypted(ids[1], b"12345678"));
        assert!(s.reply_encrypted(ids[0], b"secret reply \x00\xff"));
        let lines: Vec<Bytes> = events(&mut s)
            .into_iter()
            .map(|e| match e {
                LondEvent::Transmit(b) => b,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines.len(), 2);
        for (line, payload) in lines
            .iter()
            .zip([&b"secret reply \x00\xff"[..], b"12345678"])
        {
            assert!(line.starts_with(b"enc:"));
            assert!(line.ends_with(b"\n"));
            assert_eq!(
                c.decrypt_line(chomp(line)),
                Ok(Decoded::Decrypted(payload.to_vec()))
            );
        }
    }

    #[test]
    fn too_long_a_line_closes() {
        let mut s = LondSession::new(LondConfig {
            max_line: 8,
            ..cfg()
        });
        s.handle_data(b"init\n1234567890");
        assert_eq!(events(&mut s), [tx(b"123451016600000\n"), LondEvent::Close]);
        assert!(s.is_closed());
        s.handle_data(b"\ninit\n");
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn close_by_the_application() {
        let mut s = keyed();
        s.handle_data(b"a\nb\n");
        let evs = events(&mut s);
        let LondEvent::Request { id: a, .. } = evs[0] else {
            panic!();
        };
        let LondEvent::Request { id: b, .. } = evs[1] else {
            panic!();
        };
        assert!(s.reply(a, b"A"));
        s.close();
        s.close();
        assert_eq!(events(&mut s), [tx(b"A\n"), LondEvent::Close]);
        assert!(!s.reply(b, b"B"));
        s.handle_data(b"c\n");
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.pending_replies(), 0);
        assert!(!s.is_ready());
    }

    #[test]
    fn the_state_follows_the_conversation() {
        let mut s = LondSession::new(cfg());
        assert_eq!(s.config(), &cfg());
        let mut seen = vec![s.state()];
        for line in ["init\n", &format!("{CHALLENGE}\n"), "pong\n", "ekey\n"] {
            s.handle_data(line.as_bytes());
            seen.push(s.state());
        }
        s.close();
        seen.push(s.state());
        let words: Vec<&str> = seen.iter().map(|state| state.as_str()).collect();
        assert_eq!(
            words,
            [
                "await init",
                "await echo",
                "accepted",
                "accepted",
                "keyed",
                "closed"
            ]
        );
    }

    #[test]
    fn standard_challenge_is_pid_then_seconds() {
        assert_eq!(standard_challenge(12345, 1016600000), "123451016600000");
        assert_eq!(standard_challenge(0, 0), "00");
        assert_eq!(LondState::Keyed.as_str(), "keyed");
    }

    /// Handshake lines lonc could send, and garbage.
    fn wire_piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"init\n".to_vec()),
            Just(format!("{CHALLENGE}\n").into_bytes()),
            Just(b"pong\n".to_vec()),
            Just(b"ekey\n".to_vec()),
            Just(b"enc:".to_vec()),
            Just(b"enc:8:0011223344556677\n".to_vec()),
            Just(b"enc:99999999999999999999:0011223344556677\n".to_vec()),
            prop::collection::vec(any::<u8>(), 0..40),
        ]
    }

    #[derive(Debug, Clone)]
    enum Act {
        Data(Vec<u8>),
        Reply(u64, Vec<u8>, bool),
        Close,
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            8 => wire_piece().prop_map(Act::Data),
            4 => (0u64..12, prop::collection::vec(any::<u8>(), 0..20), any::<bool>())
                .prop_map(|(id, d, e)| Act::Reply(id, d, e)),
            1 => (any::<u64>(), any::<bool>()).prop_map(|(id, e)| Act::Reply(id, Vec::new(), e)),
            1 => Just(Act::Close),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
            max_line in 0usize..32,
            refuse in any::<bool>(),
        ) {
            let mut s = LondSession::new(LondConfig { max_line, refuse, ..cfg() });
            for c in &chunks {
                s.handle_data(c);
                while let Some(ev) = s.poll_event() {
                    if let LondEvent::Request { id, line, .. } = ev {
                        s.reply(id, &line);
                    }
                }
            }
        }

        #[test]
        fn replies_in_any_order_go_out_in_request_order(
            order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
            internal in prop::collection::vec(any::<bool>(), 12),
        ) {
            let mut s = keyed();
            let mut expected = Vec::new();
            for (i, &pong) in internal.iter().enumerate() {
                s.handle_data(format!("r{i}\n").as_bytes());
                expected.push(format!("R{i}\n").into_bytes());
                if pong {
                    s.handle_data(b"pong\n");
                    expected.push(b"msul1:msul2\n".to_vec());
                }
            }
            let ids: Vec<u64> = events(&mut s)
                .into_iter()
                .map(|e| match e {
                    LondEvent::Request { id, .. } => id,
                    other => panic!("{other:?}"),
                })
                .collect();
            prop_assert_eq!(ids.len(), 12);
            let mut written = Vec::new();
            for &i in &order {
                let answer = format!("R{i}");
                prop_assert!(s.reply(ids[i], answer.as_bytes()));
                for e in events(&mut s) {
                    match e {
                        LondEvent::Transmit(b) => written.push(b.to_vec()),
                        other => panic!("{other:?}"),
                    }
                }
            }
            prop_assert_eq!(written, expected);
            prop_assert_eq!(s.pending_replies(), 0);
        }

        #[test]
        fn arbitrary_sessions_never_panic_and_close_is_last(
            acts in prop::collection::vec(act(), 0..40),
        ) {
            let mut s = LondSession::new(cfg());
            let mut closed = false;
            for a in acts {
                match a {
                    Act::Data(d) => s.handle_data(&d),
                    Act::Reply(id, d, true) => { s.reply_encrypted(id, &d); }
                    Act::Reply(id, d, false) => { s.reply(id, &d); }
                    Act::Close => s.close(),
                }
                while let Some(ev) = s.poll_event() {
                    prop_assert!(!closed, "event after Close: {:?}", ev);
                    if ev == LondEvent::Close {
                        closed = true;
                    }
                }
                prop_assert_eq!(closed, s.is_closed());
            }
        }
    }
}
