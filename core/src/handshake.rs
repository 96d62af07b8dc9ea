//! The client side of the classic handshake (PROTOCOL.md section 4), one step at a time:
//! `init` -> challenge -> echo -> `ok` -> (pong delay) -> `pong` -> host line -> `ekey` ->
//! buildkey. It only turns lines into steps; the connection that owns it
//! (the core's private `conn` module) keeps the per-step deadline and writes the bytes.

use bytes::Bytes;

use crate::key::{LinkKey, buildkey};
use crate::line::{chomp, encode_line};

/// The longest handshake line either side accepts (a challenge, its echo, `ok`, a host
/// pair and a buildkey are all short), LF not counted. A longer one is a protocol error.
pub const HANDSHAKE_LINE_LIMIT: usize = 1024;

/// Where a handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStage {
    /// `init` sent; waiting for the challenge.
    AwaitChallenge,
    /// The challenge echoed; waiting for `ok`.
    AwaitOk,
    /// `ok` received; the pong delay runs before `pong` is sent.
    PongDelay,
    /// `pong` sent; waiting for the host line.
    AwaitHostLine,
    /// `ekey` sent; waiting for the buildkey.
    AwaitBuildkey,
    /// The key is known.
    Done,
    /// The handshake failed.
    Failed,
}

impl HandshakeStage {
    /// A short name for logs and the status file.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeStage::AwaitChallenge => "challenge",
            HandshakeStage::AwaitOk => "ok",
            HandshakeStage::PongDelay => "pong delay",
            HandshakeStage::AwaitHostLine => "pong",
            HandshakeStage::AwaitBuildkey => "ekey",
            HandshakeStage::Done => "done",
            HandshakeStage::Failed => "failed",
        }
    }
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// lond answered `refused` (unknown client or wrong echo).
    #[error("lond refused the connection")]
    Refused,
    /// lond answered something other than `ok` to the echoed challenge.
    #[error("unexpected answer to the challenge echo ({len} bytes)")]
    NotOk {
        /// Length of the answer, for the log (its text is not logged).
        len: usize,
    },
    /// The buildkey line was empty.
    #[error("empty buildkey")]
    EmptyBuildkey,
    /// A line came when none was expected (during the pong delay or after the end).
    #[error("unexpected line during the handshake")]
    Unexpected,
}

/// What the owner of a handshake must do after feeding it a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeStep {
    /// Write these bytes, then wait for the next line (a new step deadline starts).
    Send(Bytes),
    /// Start the pong delay; call [`Handshake::pong_now`] when it has passed.
    DelayPong,
    /// The handshake is complete: this is the link key.
    Done {
        /// The key for [`crate::cipher::LinkCipher`].
        key: LinkKey,
        /// Whether the host line lond sent started with the peer's id (a mismatch is only
        /// logged, as the seed did).
        host_line_matched: bool,
    },
    /// The handshake failed; the connection must be closed.
    Failed(HandshakeError),
}

/// The client side of one classic handshake.
#[derive(Debug)]
pub struct Handshake {
    peer_id: String,
    own_id: String,
    stage: HandshakeStage,
    pong_delay: bool,
    host_line_matched: bool,
}

impl Handshake {
    /// A handshake with lond on `peer_id`, from `own_id` (`lonHostID`). `pong_delay` says
    /// whether a pause is configured between `ok` and `pong`.
    pub fn new(peer_id: &str, own_id: &str, pong_delay: bool) -> Self {
        Handshake {
            peer_id: peer_id.to_owned(),
            own_id: own_id.to_owned(),
            stage: HandshakeStage::AwaitChallenge,
            pong_delay,
            host_line_matched: false,
        }
    }

    /// The first bytes to write once the TCP connection is up: `init\n`.
    pub fn start(&self) -> Bytes {
        Bytes::from_static(b"init\n")
    }

    /// Where the handshake stands.
    pub fn stage(&self) -> HandshakeStage {
        self.stage
    }

    /// Feeds one line from lond, LF included as read.
    pub fn handle_line(&mut self, line: &[u8]) -> HandshakeStep {
        let text = chomp(line);
        match self.stage {
            HandshakeStage::AwaitChallenge => {
                if text == b"refused" {
                    return self.fail(HandshakeError::Refused);
                }
                self.stage = HandshakeStage::AwaitOk;
                // The challenge line is echoed back as read.
                HandshakeStep::Send(encode_line(text))
            }
            HandshakeStage::AwaitOk => {
                if text == b"refused" {
                    return self.fail(HandshakeError::Refused);
                }
                if text != b"ok" {
                    return self.fail(HandshakeError::NotOk { len: text.len() });
                }
                if self.pong_delay {
                    self.stage = HandshakeStage::PongDelay;
                    HandshakeStep::DelayPong
                } else {
                    self.pong_now()
                }
            }
            HandshakeStage::AwaitHostLine => {
                self.host_line_matched = text.starts_with(self.peer_id.as_bytes());
                self.stage = HandshakeStage::AwaitBuildkey;
                HandshakeStep::Send(Bytes::from_static(b"ekey\n"))
            }
            HandshakeStage::AwaitBuildkey => {
                if text.is_empty() {
                    return self.fail(HandshakeError::EmptyBuildkey);
                }
                self.stage = HandshakeStage::Done;
                HandshakeStep::Done {
                    // The buildkey line as read, LF included (section 5).
                    key: buildkey(&self.peer_id, &self.own_id, line),
                    host_line_matched: self.host_line_matched,
                }
            }
            HandshakeStage::PongDelay | HandshakeStage::Done | HandshakeStage::Failed => {
                self.fail(HandshakeError::Unexpected)
            }
        }
    }

    /// Sends `pong`: called when the pong delay has passed (or at once without one).
    pub fn pong_now(&mut self) -> HandshakeStep {
        self.stage = HandshakeStage::AwaitHostLine;
        HandshakeStep::Send(Bytes::from_static(b"pong\n"))
    }

    fn fail(&mut self, err: HandshakeError) -> HandshakeStep {
        self.stage = HandshakeStage::Failed;
        HandshakeStep::Failed(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(step: HandshakeStep) -> Bytes {
        match step {
            HandshakeStep::Send(b) => b,
            other => panic!("expected Send, got {other:?}"),
        }
    }

    #[test]
    fn full_handshake_without_delay() {
        let mut h = Handshake::new("msul1", "msul2", false);
        assert_eq!(&h.start()[..], b"init\n");
        assert_eq!(
            &send(h.handle_line(b"123451016600000\n"))[..],
            b"123451016600000\n"
        );
        assert_eq!(&send(h.handle_line(b"ok\n"))[..], b"pong\n");
        assert_eq!(&send(h.handle_line(b"msul1:msul2\n"))[..], b"ekey\n");
        match h.handle_line(b"3451878943AF7E9B2C40812\n") {
            HandshakeStep::Done {
                key,
                host_line_matched,
            } => {
                assert!(host_line_matched);
                assert_eq!(
                    key,
                    buildkey("msul1", "msul2", b"3451878943AF7E9B2C40812\n")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.stage(), HandshakeStage::Done);
    }

    #[test]
    fn pong_delay_and_mismatched_host_line() {
        let mut h = Handshake::new("a", "b", true);
        send(h.handle_line(b"1\n"));
        assert_eq!(h.handle_line(b"ok\n"), HandshakeStep::DelayPong);
        assert_eq!(h.stage(), HandshakeStage::PongDelay);
        assert_eq!(
            h.handle_line(b"x\n"),
            HandshakeStep::Failed(HandshakeError::Unexpected)
        );
        let mut h = Handshake::new("a", "b", true);
        send(h.handle_line(b"1\n"));
        h.handle_line(b"ok\n");
        assert_eq!(&send(h.pong_now())[..], b"pong\n");
        send(h.handle_line(b"zz:b\n"));
        match h.handle_line(b"AB\n") {
            HandshakeStep::Done {
                host_line_matched, ..
            } => assert!(!host_line_matched),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_and_bad_answers() {
        let mut h = Handshake::new("a", "b", false);
        assert_eq!(
            h.handle_line(b"refused\n"),
            HandshakeStep::Failed(HandshakeError::Refused)
        );
        let mut h = Handshake::new("a", "b", false);
        send(h.handle_line(b"1\n"));
        assert_eq!(
            h.handle_line(b"refused\n"),
            HandshakeStep::Failed(HandshakeError::Refused)
        );
        let mut h = Handshake::new("a", "b", false);
        send(h.handle_line(b"1\n"));
        assert_eq!(
            h.handle_line(b"nope\n"),
            HandshakeStep::Failed(HandshakeError::NotOk { len: 4 })
        );
        let mut h = Handshake::new("a", "b", false);
        send(h.handle_line(b"1\n"));
        send(h.handle_line(b"ok\n"));
        send(h.handle_line(b"a:b\n"));
        assert_eq!(
            h.handle_line(b"\n"),
            HandshakeStep::Failed(HandshakeError::EmptyBuildkey)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..10), delay in proptest::bool::ANY) {
            let mut h = Handshake::new("peer", "own", delay);
            for l in lines {
                let _ = h.handle_line(&l);
            }
        }
    }
}
