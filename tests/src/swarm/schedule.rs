//! The faulty phase's schedule: one random action at a time, among those the seed's plan
//! allows (client traffic, delayed files, and every fault).

use std::time::Duration;

use lonc_core::delayed::EntryKind;
use lonc_core::io::{ClientId, Input};
use rand::Rng;

use super::lond::Lond;
use super::{Checked, Client, Daemon, Event, Swarm, show};
use crate::netem::{End, LinkId, Partition};

impl Swarm {
    /// One random action of the faulty phase, among those the plan allows.
    pub(super) fn act(&mut self) -> Checked {
        let f = self.plan.faults;
        let roll = self.rng.random_range(0..100u32);
        match roll {
            0..30 => self.new_client(),
            30..55 => self.client_writes(),
            55..62 => self.write_delayed_file(),
            62..64 if f.partial_files => self.complete_a_file(),
            64..66 if f.partitions => self.partition(),
            66..70 if f.clogs => self.clog(),
            70..73 if f.resets => self.reset_a_link(),
            73..75 if f.lond_crashes => self.crash_a_lond(),
            75..77 if f.lond_refuses => self.toggle(|l| &mut l.refuse, "refuses"),
            77 if f.lond_hangs => self.toggle(|l| &mut l.hang, "hangs"),
            78 if f.lond_hangs => self.toggle(|l| &mut l.unreachable, "is unreachable"),
            79..80 if f.daemon_crashes && !matches!(self.daemon, Daemon::Down(_)) => {
                let after = Duration::from_millis(self.rng.random_range(0..=3_000));
                self.crash_daemon(after);
                Ok(())
            }
            80..82 if f.shutdowns => self.shutdown(),
            82..85 if f.disk_errors => self.disk_fault(),
            85..87 if f.time_jumps => {
                let jump = Duration::from_millis(self.rng.random_range(100..=20_000));
                self.note(format!("the clock jumps {jump:?}"));
                self.now += jump;
                Ok(())
            }
            87..89 if f.out_of_fds => {
                self.out_of_fds = !self.out_of_fds;
                self.note(format!("out of file descriptors: {}", self.out_of_fds));
                Ok(())
            }
            89..91 if f.revives => self.revive_all(),
            91 if f.flood && !self.flooded => self.flood(),
            _ => Ok(()),
        }
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.random_range(0..items.len())])
    }

    /// A token no other request or file carries.
    pub(super) fn token(&mut self, what: &str) -> String {
        self.seq += 1;
        format!("{what}{}", self.seq)
    }

    /// A client connects to a random peer's socket with a script of requests.
    pub(super) fn new_client(&mut self) -> Checked {
        if self.daemon != Daemon::Up {
            return Ok(());
        }
        let p = self.rng.random_range(0..self.slots.len());
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let max_request = self.plan.settings.max_request;
        let tiny_bytes = self.plan.queue.bytes < max_request * 4;
        let mut script = Vec::new();
        for _ in 0..self.rng.random_range(1..=4) {
            let token = self.token(&format!("c{}r", client.0));
            let line = match self.rng.random_range(0..100u32) {
                0..10 | 96..100 if tiny_bytes => self.bulky_echo(&token),
                0..40 => format!("echo:{token}"),
                40..55 => format!("encrypt:echo:{token}"),
                55..65 => format!("eget:{token}"),
                65..80 => format!("sleep:{}:{token}", self.rng.random_range(0..3_000u32)),
                80..84 => "close_connection_exit".to_owned(),
                84..87 => "x".repeat(max_request + 1),
                87..90 => "silent".to_owned(),
                90..93 => "close".to_owned(),
                93..96 => {
                    let max_reply = self.plan.settings.max_reply;
                    let n = self.rng.random_range(max_reply - 200..max_reply + 200);
                    format!("pad:{n}:{token}")
                }
                _ => format!("echo:{token}"),
            };
            script.extend_from_slice(line.as_bytes());
            script.push(b'\n');
        }
        if self.rng.random_bool(0.05) {
            // A last line that never gets its LF: no request, no reply.
            script.extend_from_slice(b"echo:tail");
        }
        let leaves = self.rng.random_bool(0.1);
        self.open_client(p, client, script, leaves)?;
        self.client_chunk(client)
    }

    /// An echo request of a few hundred bytes up to the longest legal one (nor longer than
    /// a reply may be): with a tiny byte bound, a few of them fill a peer's queue.
    fn bulky_echo(&mut self, token: &str) -> String {
        let s = &self.plan.settings;
        let longest = s.max_request.min(s.max_reply + "echo:".len());
        let len = self.rng.random_range(300..=longest);
        let pad = len.saturating_sub("echo:-".len() + token.len());
        format!("echo:{token}-{}", "y".repeat(pad))
    }

    /// A client floods a peer: more requests than its queue holds, in one write, while
    /// the peer may well have no connection (the queue bound must hold, the rest be
    /// answered `con_lost`).
    pub(super) fn flood(&mut self) -> Checked {
        if self.daemon != Daemon::Up {
            return Ok(());
        }
        self.flooded = true;
        let p = self.rng.random_range(0..self.slots.len());
        let client = ClientId(self.next_client);
        self.next_client += 1;
        // Each line is at least 9 bytes ("echo:c1r1"): enough of them pass either bound.
        let bounds = self.plan.queue;
        let bytes = bounds.effective_bytes(self.plan.settings.max_request);
        let mut script = Vec::new();
        for _ in 0..bounds.count.min(bytes / 9) + 50 {
            let token = self.token(&format!("c{}r", client.0));
            script.extend_from_slice(format!("echo:{token}\n").as_bytes());
        }
        self.open_client(p, client, script, false)?;
        let data = std::mem::take(&mut self.clients.get_mut(&client).expect("just opened").to_send);
        self.model.sent(self.now, client, &data);
        self.feed(p, Input::ClientData(client, data))
    }

    /// `client` connects to peer `p`'s socket with this script.
    fn open_client(
        &mut self,
        p: usize,
        client: ClientId,
        script: Vec<u8>,
        leaves: bool,
    ) -> Checked {
        self.note(format!(
            "client {} of {} opens: {} ({})",
            client.0,
            self.slots[p].id,
            show(&script),
            if leaves { "then leaves" } else { "then EOF" }
        ));
        let s = &self.plan.settings;
        self.model.opened(client, p, s.max_request, s.max_reply);
        self.clients.insert(
            client,
            Client {
                peer: p,
                to_send: script,
                leaves,
            },
        );
        self.feed(p, Input::ClientOpened(client))
    }

    /// A random client with bytes left writes some of them.
    pub(super) fn client_writes(&mut self) -> Checked {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        let Some(client) = self.pick(&ids) else {
            return Ok(());
        };
        if self.rng.random_bool(0.03)
            && let Some(c) = self.clients.get_mut(&client)
        {
            // It leaves before its script is over, perhaps in the middle of a line.
            c.to_send.clear();
            c.leaves = true;
        }
        self.client_chunk(client)
    }

    /// `client` writes the next chunk of its script; EOF or leaving once all is written.
    pub(super) fn client_chunk(&mut self, client: ClientId) -> Checked {
        if !self.model.may_send(client) {
            return Ok(());
        }
        let Some(c) = self.clients.get_mut(&client) else {
            return Ok(());
        };
        let p = c.peer;
        if c.to_send.is_empty() {
            let leaves = c.leaves;
            self.note(format!(
                "client {} {}",
                client.0,
                if leaves { "leaves" } else { "EOF" }
            ));
            if leaves {
                self.model.gone(client);
                self.clients.remove(&client);
                return self.feed(p, Input::ClientGone(client));
            }
            self.model.eof(client);
            return self.feed(p, Input::ClientEof(client));
        }
        let n = match self.rng.random_range(0..3u32) {
            0 => c.to_send.len(),
            _ => self.rng.random_range(1..=c.to_send.len()),
        };
        let c = self.clients.get_mut(&client).expect("checked above");
        let data: Vec<u8> = c.to_send.drain(..n).collect();
        self.model.sent(self.now, client, &data);
        self.feed(p, Input::ClientData(client, data))
    }

    /// lonnet spools a delayed message for a random peer (partly, at times).
    pub(super) fn write_delayed_file(&mut self) -> Checked {
        let p = self.rng.random_range(0..self.slots.len());
        let token = self.token("d");
        self.next_file += 1;
        let name = format!(
            "{}.{}.delay.{}",
            1_000_000 + self.next_file,
            self.seed,
            self.slots[p].id
        );
        if self.rng.random_bool(0.1) {
            let kind = EntryKind::ALL[self.rng.random_range(1..EntryKind::ALL.len())];
            self.note(format!("{name} appears: {}", kind.as_str()));
            self.disk.odd.insert(name, kind);
            return Ok(());
        }
        let request = if self.rng.random_bool(0.3) {
            format!("encrypt:echo:{token}")
        } else {
            format!("echo:{token}")
        };
        let partial = self.plan.faults.partial_files && self.rng.random_bool(0.5);
        let mut content = request.into_bytes();
        if !partial {
            content.push(b'\n');
        }
        self.note(format!("lonnet writes {name}: {}", show(&content)));
        self.model.file_written(&name, &token, !partial);
        self.disk.files.insert(name, content);
        Ok(())
    }

    /// lonnet finishes a partly written file.
    pub(super) fn complete_a_file(&mut self) -> Checked {
        let partial = self.disk.partial();
        if let Some(i) = (!partial.is_empty()).then(|| self.rng.random_range(0..partial.len())) {
            let name = &partial[i];
            self.note(format!("lonnet finishes {name}"));
            self.disk.files.get_mut(name).expect("listed").push(b'\n');
            self.model.file_completed(name);
        }
        Ok(())
    }

    pub(super) fn partition(&mut self) -> Checked {
        match self.net.partition() {
            Some(_) => {
                self.note("the network heals".into());
                self.net.heal(self.now);
            }
            None => {
                let kind = if self.rng.random_bool(0.5) {
                    Partition::Hold
                } else {
                    Partition::Drop
                };
                self.note(format!("the network splits ({kind:?})"));
                self.net.split(kind);
            }
        }
        Ok(())
    }

    pub(super) fn clog(&mut self) -> Checked {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        if let Some(link) = self.pick(&links) {
            let to = if self.rng.random_bool(0.5) {
                End::Lonc
            } else {
                End::Lond
            };
            let d = Duration::from_millis(self.rng.random_range(10..=5_000));
            self.note(format!("link {} clogged toward {to:?} for {d:?}", link.0));
            self.net.clog(self.now, link, to, true);
            self.schedule(self.now + d, Event::Unclog(link, to));
        }
        Ok(())
    }

    pub(super) fn reset_a_link(&mut self) -> Checked {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        if let Some(link) = self.pick(&links) {
            self.note(format!("lond resets link {}", link.0));
            if let Some(p) = self.lond_of(link) {
                self.slots[p].lond.closed(link);
            }
            self.net.reset(self.now, link, End::Lond);
        }
        Ok(())
    }

    pub(super) fn crash_a_lond(&mut self) -> Checked {
        let p = self.rng.random_range(0..self.slots.len());
        if !self.slots[p].lond.up {
            return Ok(());
        }
        let reset = self.rng.random_bool(0.5);
        self.note(format!("lond {} crashes (reset {reset})", self.slots[p].id));
        let links = self.slots[p].lond.crash();
        self.net.end_crashed(self.now, &links, End::Lond, reset);
        let after = Duration::from_millis(self.rng.random_range(0..=5_000));
        self.schedule(self.now + after, Event::LondStart(p));
        Ok(())
    }

    pub(super) fn toggle(&mut self, flag: fn(&mut Lond) -> &mut bool, what: &str) -> Checked {
        let p = self.rng.random_range(0..self.slots.len());
        let f = flag(&mut self.slots[p].lond);
        *f = !*f;
        let on = *f;
        self.note(format!("lond {} {what}: {on}", self.slots[p].id));
        Ok(())
    }

    pub(super) fn disk_fault(&mut self) -> Checked {
        let names: Vec<String> = self.disk.files.keys().cloned().collect();
        match self.rng.random_range(0..3u32) {
            0 => {
                self.disk.list_fails = !self.disk.list_fails;
                self.note(format!("listing the spool fails: {}", self.disk.list_fails));
            }
            1 if !names.is_empty() => {
                let name = names[self.rng.random_range(0..names.len())].clone();
                self.note(format!("reading {name} fails"));
                self.disk.read_fails.insert(name);
            }
            2 if !names.is_empty() => {
                let name = names[self.rng.random_range(0..names.len())].clone();
                self.note(format!("deleting {name} fails"));
                self.disk.delete_fails.insert(name);
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn revive_all(&mut self) -> Checked {
        self.note("USR1".into());
        for p in 0..self.slots.len() {
            self.usr1(p)?;
        }
        Ok(())
    }

    /// USR1 to peer `p`: its backoffs are forgotten.
    pub(super) fn usr1(&mut self, p: usize) -> Checked {
        self.slots[p].gate = None;
        self.slots[p].extra_gate = None;
        self.feed(p, Input::Revive)
    }
}
