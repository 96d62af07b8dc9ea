//! The `lond_session` harness: a lonc side that is well-formed most of the time (`init`,
//! the echoed challenge, `pong`, `ekey`, requests plain and `enc:` under the right key)
//! and a small model of what lond must answer each line, checked against every event:
//!
//! - `init` is answered by the challenge, its echo by `ok`, anything else first by
//!   `refused` and the close;
//! - after `ok`: `pong` by the host line, `ekey` by the buildkey (the key exists from
//!   then on), an `enc:` line that decrypts under that key becomes a request with its
//!   plaintext, any other `enc:` line gets `error:decrypt`, every other line becomes a
//!   request as it is;
//! - exactly one reply line per line, in order, whatever order the application answers
//!   in; an encrypted reply decrypts on lonc's side to what the application said;
//! - a line over the limit closes without a reply; nothing follows the close.
//!
//! After raw bytes (which may hold half a line or many) the model stops judging replies
//! and only the close rule is checked.

use std::collections::VecDeque;

use lonc_core::cipher::{Decoded, LinkCipher};
use lonc_core::key::buildkey;
use lonc_core::line::chomp;
use lonc_core::lond::{DECRYPT_ERROR, LondConfig, LondEvent, LondSession};

const CHALLENGE: &str = "123451016600000";
const BUILDKEY: &str = "31416A0AFF00000DCBAB7A8577";
/// The longest line the session accepts in this harness.
pub const MAX_LINE: usize = 600;

/// Where lond stands, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AwaitInit,
    AwaitEcho,
    Accepted,
    Keyed,
    Closed,
}

/// One reply line lond owes, in order.
#[derive(Debug)]
enum Owed {
    /// This exact line (LF included).
    Line(Vec<u8>),
    /// The application's answer to a request.
    App(AppReply),
}

/// A request lond must hand to the application, and its answer once given.
#[derive(Debug)]
struct AppReply {
    /// The line the application must see (decrypted) and whether it came as `enc:`.
    line: Vec<u8>,
    encrypted: bool,
    /// The session's id for it, once handed out.
    id: Option<u64>,
    /// The answer once given, and whether it went `enc:`.
    answer: Option<(Vec<u8>, bool)>,
}

impl Owed {
    fn app(line: &[u8], encrypted: bool) -> Owed {
        Owed::App(AppReply {
            line: line.to_vec(),
            encrypted,
            id: None,
            answer: None,
        })
    }
}

/// A lond session and its model; see the module docs.
pub struct LondHarness {
    session: LondSession,
    cipher: LinkCipher,
    stage: Stage,
    owed: VecDeque<Owed>,
    /// Requests the application has not answered yet: session id and line.
    requests: Vec<(u64, Vec<u8>)>,
    /// Raw bytes were sent: replies are no longer judged.
    free: bool,
    refuse: bool,
    closed: bool,
}

impl LondHarness {
    /// A fresh session for a client that is `refuse`d or not.
    pub fn new(refuse: bool) -> LondHarness {
        let cfg = LondConfig {
            own_id: "lond".into(),
            client_id: "lonc".into(),
            challenge: CHALLENGE.into(),
            buildkey: BUILDKEY.into(),
            refuse,
            max_line: MAX_LINE,
        };
        LondHarness {
            cipher: LinkCipher::new(&buildkey(
                &cfg.own_id,
                &cfg.client_id,
                format!("{BUILDKEY}\n").as_bytes(),
            )),
            session: LondSession::new(cfg),
            stage: Stage::AwaitInit,
            owed: VecDeque::new(),
            requests: Vec::new(),
            free: false,
            refuse,
            closed: false,
        }
    }

    /// lonc sends `line` (no LF in it) in pieces cut every `chunk` bytes (0: whole).
    pub fn send_line(&mut self, line: &[u8], chunk: usize) {
        let mut wire = line.to_vec();
        wire.retain(|b| *b != b'\n');
        self.expect(&wire);
        wire.push(b'\n');
        let size = if chunk == 0 { wire.len() } else { chunk };
        for piece in wire.chunks(size) {
            self.session.handle_data(piece);
            self.events();
        }
        if !self.free && self.stage == Stage::Closed && self.owed.is_empty() {
            assert!(self.closed, "the session did not close");
        }
    }

    /// lonc sends the handshake lines a real lonc sends, up to `steps` of them.
    pub fn handshake(&mut self, steps: u8) {
        let lines = [&b"init"[..], CHALLENGE.as_bytes(), b"pong", b"ekey"];
        for line in lines.iter().take(usize::from(steps)) {
            self.send_line(line, 0);
        }
    }

    /// lonc sends an `enc:` request for `payload` under the link key.
    pub fn send_encrypted(&mut self, payload: &[u8], chunk: usize) {
        let line = self.cipher.encrypt_line(payload);
        self.send_line(&line, chunk);
    }

    /// lonc sends raw bytes: the model stops judging replies.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.free = true;
        self.session.handle_data(bytes);
        self.events();
    }

    /// The application answers pending request `i` with `data` (encrypted if `enc`).
    pub fn answer(&mut self, i: u8, data: &[u8], enc: bool) {
        if self.requests.is_empty() {
            return;
        }
        let (id, _) = self.requests.remove(usize::from(i) % self.requests.len());
        let mut data = data.to_vec();
        data.retain(|b| *b != b'\n');
        let keyed = self.stage == Stage::Keyed;
        let accepted = if enc {
            self.session.reply_encrypted(id, &data)
        } else {
            self.session.reply(id, &data)
        };
        assert!(
            accepted || self.closed,
            "a pending request's reply was refused"
        );
        let answer = match (enc, keyed) {
            (true, false) => (b"error:no_key".to_vec(), false),
            _ => (data, enc),
        };
        for owed in &mut self.owed {
            if let Owed::App(app) = owed
                && app.id == Some(id)
            {
                app.answer = Some(answer.clone());
            }
        }
        assert!(
            !self.session.reply(id, b"again"),
            "a request answered twice"
        );
        self.events();
    }

    /// The application closes the connection.
    pub fn close(&mut self) {
        self.stage = Stage::Closed;
        self.session.close();
        self.events();
        assert!(self.closed, "no Close after close()");
    }

    /// What lond must do with the line lonc sends now.
    fn expect(&mut self, line: &[u8]) {
        let too_long = match self.stage {
            Stage::AwaitInit | Stage::AwaitEcho => line.len() > MAX_LINE.min(1024),
            _ => line.len() > MAX_LINE,
        };
        if too_long || self.stage == Stage::Closed {
            self.stage = Stage::Closed;
            return;
        }
        let owed = match (self.stage, line) {
            (Stage::AwaitInit, _) if self.refuse => {
                self.stage = Stage::Closed;
                Owed::Line(b"refused\n".to_vec())
            }
            (Stage::AwaitInit, b"init") => {
                self.stage = Stage::AwaitEcho;
                Owed::Line(format!("{CHALLENGE}\n").into_bytes())
            }
            (Stage::AwaitEcho, echo) if echo == CHALLENGE.as_bytes() => {
                self.stage = Stage::Accepted;
                Owed::Line(b"ok\n".to_vec())
            }
            (Stage::AwaitInit | Stage::AwaitEcho, _) => {
                self.stage = Stage::Closed;
                Owed::Line(b"refused\n".to_vec())
            }
            (_, b"pong") => Owed::Line(b"lond:lonc\n".to_vec()),
            (_, b"ekey") => {
                self.stage = Stage::Keyed;
                Owed::Line(format!("{BUILDKEY}\n").into_bytes())
            }
            (stage, enc) if enc.starts_with(b"enc:") => match self.cipher.decrypt_line(enc) {
                Ok(Decoded::Decrypted(plain)) if stage == Stage::Keyed => Owed::app(&plain, true),
                _ => Owed::Line([DECRYPT_ERROR, b"\n"].concat()),
            },
            _ => Owed::app(line, false),
        };
        self.owed.push_back(owed);
    }

    /// Drains the session's events and checks each against the model.
    fn events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            assert!(!self.closed, "{ev:?} after Close");
            match ev {
                LondEvent::Close => self.closed = true,
                LondEvent::Transmit(bytes) => {
                    assert!(bytes.ends_with(b"\n"), "a reply is a whole line");
                    if !self.free {
                        self.transmitted(&bytes);
                    }
                }
                LondEvent::Request {
                    id,
                    line,
                    was_encrypted,
                } => {
                    if !self.free {
                        self.requested(id, &line, was_encrypted);
                    }
                    self.requests.push((id, line));
                }
            }
        }
    }

    fn transmitted(&mut self, bytes: &[u8]) {
        let (want, encrypted) = match self.owed.pop_front() {
            Some(Owed::Line(mut want)) => {
                want.pop();
                (want, false)
            }
            Some(Owed::App(AppReply {
                answer: Some((want, encrypted)),
                ..
            })) => (want, encrypted),
            other => panic!("lond wrote {bytes:?}, but owed {other:?}"),
        };
        if !encrypted {
            assert_eq!(bytes, [&want[..], b"\n"].concat(), "lond's reply");
            return;
        }
        let plain = self.cipher.decrypt_line(chomp(bytes));
        assert_eq!(
            plain,
            Ok(Decoded::Decrypted(want)),
            "lond's encrypted reply"
        );
    }

    fn requested(&mut self, id: u64, line: &[u8], was_encrypted: bool) {
        let app = self
            .owed
            .iter_mut()
            .find_map(|o| match o {
                Owed::App(app) if app.id.is_none() => Some(app),
                _ => None,
            })
            .expect("a request lonc never sent");
        assert_eq!(
            (&app.line[..], app.encrypted),
            (line, was_encrypted),
            "request handed to the application"
        );
        app.id = Some(id);
    }
}
