//! What lond and the network do to the peer's connections in the `peer_inputs` harness:
//! connects that succeed (refused or not, held or not) or fail, answers to the requests a
//! lond session read, raw bytes, held and released links, closes and backlogs.

use lonc_core::cipher::Decoded;
use lonc_core::io::{ConnId, Input};
use lonc_core::line::chomp;
use lonc_core::lond::{LondConfig, LondSession};
use lonc_core::peer::CON_LOST;

use super::{BUILDKEY, Link, OWN_ID, PEER_ID, World, push_chunked};

/// How lond answers one request it read.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `R:<request>`, plain.
    Echo,
    /// `R:<request>`, `enc:` under the session key.
    EchoEncrypted,
    /// These bytes (LF removed), whatever they are: empty, `enc:` garbage, too long.
    Raw(Vec<u8>),
    /// A well-formed `enc:` line whose length is more than its blocks hold.
    Garbled(u8),
}

impl World {
    /// The TCP connect of dialing connection `i` succeeds; lond refuses the client if
    /// `refuse`; its bytes are held back if `hold`.
    pub fn accept(&mut self, i: u8, hold: bool, refuse: bool) {
        let Some(conn) = Self::pick(&self.dialing, i) else {
            return;
        };
        self.dialing.retain(|c| *c != conn);
        let session = LondSession::new(LondConfig {
            own_id: PEER_ID.into(),
            client_id: OWN_ID.into(),
            challenge: "123451016600000".into(),
            buildkey: BUILDKEY.into(),
            refuse,
            max_line: 4096,
        });
        self.open.insert(
            conn,
            Some(Link {
                session,
                requests: Vec::new(),
                held: hold.then(Vec::new),
                tainted: false,
                carried: Vec::new(),
            }),
        );
        self.step(Input::Connected(conn));
    }

    /// Dialing connection `i` fails: `local` for a shortage of this host's own.
    pub fn connect_failed(&mut self, i: u8, local: bool) {
        let Some(conn) = Self::pick(&self.dialing, i) else {
            return;
        };
        self.dialing.retain(|c| *c != conn);
        self.open.remove(&conn);
        self.step(if local {
            Input::ConnectLocalError(conn, "fuzz".into())
        } else {
            Input::ConnectFailed(conn, "fuzz".into())
        });
    }

    /// lond answers request `r` of link `l`.
    pub fn answer(&mut self, l: u8, r: u8, how: Answer) {
        let with_requests: Vec<ConnId> = self
            .open
            .iter()
            .filter(|(_, l)| l.as_ref().is_some_and(|l| !l.requests.is_empty()))
            .map(|(c, _)| *c)
            .collect();
        let Some(conn) = Self::pick(&with_requests, l) else {
            return;
        };
        let Some(Some(link)) = self.open.get_mut(&conn) else {
            return;
        };
        let (id, line) = link.requests.remove(usize::from(r) % link.requests.len());
        let mut echo = b"R:".to_vec();
        echo.extend_from_slice(&line);
        let seen = match how {
            Answer::Echo => {
                link.session.reply(id, &echo);
                Some(echo)
            }
            Answer::EchoEncrypted => {
                link.session.reply_encrypted(id, &echo);
                Some(echo)
            }
            Answer::Garbled(n) => {
                let blocks = usize::from(n % 4);
                let line = format!(
                    "enc:{}:{}",
                    blocks * 8 + 1 + usize::from(n),
                    "0".repeat(blocks * 16)
                );
                link.session.reply(id, line.as_bytes());
                None
            }
            Answer::Raw(mut raw) => {
                raw.retain(|b| *b != b'\n');
                link.session.reply(id, &raw);
                match self.cipher.decrypt_line(&raw) {
                    _ if raw.is_empty() => None,
                    Ok(Decoded::Plain) => Some(raw),
                    Ok(Decoded::Decrypted(p)) => Some(p),
                    Err(_) => None,
                }
            }
        };
        let mut seen = seen.unwrap_or_else(|| chomp(CON_LOST).to_vec());
        seen.push(b'\n');
        self.model.answered(&line, seen);
        self.pump(conn);
        self.feed();
    }

    /// Raw bytes from lond on link `l`, bypassing its session.
    pub fn inject(&mut self, l: u8, bytes: Vec<u8>) {
        let Some(conn) = Self::pick(&self.links(), l) else {
            return;
        };
        if let Some(Some(link)) = self.open.get_mut(&conn) {
            link.tainted = true;
            for key in &link.carried {
                self.model.taint(key);
            }
        }
        self.step(Input::ConnData(conn, bytes));
    }

    /// Link `l` holds lond's bytes back (`hold`) or lets what it held go.
    pub fn hold(&mut self, l: u8, hold: bool) {
        let Some(conn) = Self::pick(&self.links(), l) else {
            return;
        };
        let Some(Some(link)) = self.open.get_mut(&conn) else {
            return;
        };
        if hold {
            link.held.get_or_insert_with(Vec::new);
        } else if let Some(held) = link.held.take() {
            for b in held {
                push_chunked(&mut self.inputs, conn, &b, self.chunk);
            }
        }
        self.feed();
    }

    /// lond closes link `l` (or the socket breaks).
    pub fn lond_closes(&mut self, l: u8) {
        let Some(conn) = Self::pick(&self.links(), l) else {
            return;
        };
        self.step(Input::ConnClosed(conn));
    }

    /// Link `l` has `kib` KiB of requests unwritten.
    pub fn conn_backlog(&mut self, l: u8, kib: u16) {
        let Some(conn) = Self::pick(&self.links(), l) else {
            return;
        };
        self.step(Input::ConnBacklog(conn, usize::from(kib) * 1024));
    }
}
