//! The scripted application behind every simulated lond, as lond-sim answers: what a
//! request line asks for and how it is answered. Both simulated worlds (`sim`, one peer,
//! and `swarm`, many) answer through it.
//!
//! | request            | answer                                          |
//! |--------------------|-------------------------------------------------|
//! | `ping`             | the peer's id                                   |
//! | `echo:<x>`         | `<x>`                                           |
//! | `eget:<x>`         | `<x>`, encrypted (`enc:`)                       |
//! | `raw:<x>`          | `<x>`                                           |
//! | `sleep:<ms>:<x>`   | `<x>`, `<ms>` milliseconds later                |
//! | `pad:<n>:<x>`      | `<x>` followed by `<n>` dots                    |
//! | `close`            | lond closes the connection, no answer           |
//! | `silent`           | never answered                                  |
//! | anything else      | `unknown_cmd`                                   |

use std::time::Duration;

/// How the application answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// This line (no LF), `after` this long, encrypted or not.
    Reply {
        /// How long the application takes.
        after: Duration,
        /// The reply line, LF not included.
        data: Vec<u8>,
        /// Sent as `enc:` (lond's `reply_encrypted`).
        encrypted: bool,
    },
    /// lond closes the connection instead of answering.
    Close,
    /// No answer, ever.
    Silent,
}

/// What the application answers to `line` (LF removed, decrypted) on lond `peer_id`.
pub fn answer(peer_id: &str, line: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(line);
    let now = |data: &str, encrypted| Answer::Reply {
        after: Duration::ZERO,
        data: data.as_bytes().to_vec(),
        encrypted,
    };
    if text == "ping" {
        now(peer_id, false)
    } else if let Some(x) = text.strip_prefix("echo:") {
        now(x, false)
    } else if let Some(x) = text.strip_prefix("eget:") {
        now(x, true)
    } else if let Some(x) = text.strip_prefix("raw:") {
        now(x, false)
    } else if let Some(rest) = text.strip_prefix("sleep:") {
        let (ms, x) = rest.split_once(':').unwrap_or((rest, ""));
        Answer::Reply {
            after: Duration::from_millis(ms.parse().unwrap_or(0)),
            data: x.as_bytes().to_vec(),
            encrypted: false,
        }
    } else if let Some(rest) = text.strip_prefix("pad:") {
        let (n, x) = rest.split_once(':').unwrap_or((rest, ""));
        let dots = ".".repeat(n.parse().unwrap_or(0));
        now(&format!("{x}{dots}"), false)
    } else if text == "close" {
        Answer::Close
    } else if text == "silent" {
        Answer::Silent
    } else {
        now("unknown_cmd", false)
    }
}
