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
