//! How the world carries arrivals out: what reaches lond (a connection request, bytes, a
//! close) and what reaches lonc's peers, lond's answers, and the world's timed events.

use std::time::Duration;

use lonc_core::io::Input;
use lonc_core::lond::LondEvent;
use rand::Rng;

use super::{Checked, Event, Swarm, show};
use crate::lond_app::{self, Answer};
use crate::netem::{Arrival, End, LinkId, NetOutput};

impl Swarm {
    /// Something reached an end of a link.
    pub(super) fn arrive(&mut self, out: NetOutput) -> Checked {
        let NetOutput { link, to, what } = out;
        match to {
            End::Lond => self.at_lond(link, what),
            End::Lonc => self.at_lonc(link, what),
        }
    }

    /// Which peer's lond a link leads to: its number is in the link's record, or gone
    /// with a crashed daemon; lond keeps sessions by link, so look there too.
    pub(super) fn lond_of(&self, link: LinkId) -> Option<usize> {
        if let Some((p, _)) = self.links.get(&link) {
            return Some(*p);
        }
        self.slots
            .iter()
            .position(|s| s.lond.links().contains(&link))
    }

    pub(super) fn at_lond(&mut self, link: LinkId, what: Arrival) -> Checked {
        let Some(p) = self.lond_of(link) else {
            // A connect of a daemon that crashed since: nobody remembers it.
            if what == Arrival::Syn {
                self.net.reset(self.now, link, End::Lond);
            }
            return Ok(());
        };
        match what {
            Arrival::Syn if self.slots[p].lond.unreachable => {}
            Arrival::Syn => {
                if self.slots[p].lond.accept(link) {
                    self.net.accept(self.now, link);
                } else {
                    self.net.refuse(self.now, link);
                }
            }
            Arrival::Data(data) => {
                let events = self.slots[p].lond.data(link, &data);
                self.lond_events(p, link, events);
            }
            Arrival::Fin | Arrival::Rst => self.slots[p].lond.closed(link),
            Arrival::Accepted | Arrival::Refused => {}
        }
        Ok(())
    }

    /// Carries out what lond does: bytes to lonc, requests for the application, a close.
    pub(super) fn lond_events(&mut self, p: usize, link: LinkId, events: Vec<LondEvent>) {
        for ev in events {
            match ev {
                LondEvent::Transmit(data) => self.net.send(self.now, link, End::Lond, &data),
                LondEvent::Close => self.net.close(self.now, link, End::Lond),
                LondEvent::Request {
                    id,
                    line,
                    was_encrypted,
                } => {
                    let peer_id = self.slots[p].id.clone();
                    self.note(format!(
                        "lond {peer_id} got {}{}",
                        if was_encrypted { "(enc) " } else { "" },
                        show(&line)
                    ));
                    let life = self.slots[p].lond.incarnation;
                    let answer = lond_app::answer(&peer_id, &line);
                    if answer == Answer::Close {
                        self.schedule(self.now, Event::LondClose { peer: p, link });
                    } else if let Answer::Reply {
                        after,
                        data,
                        encrypted,
                    } = answer
                    {
                        let reply = Event::LondReply {
                            peer: p,
                            link,
                            life,
                            id,
                            data,
                            encrypted,
                        };
                        self.schedule(self.now + after, reply);
                    }
                }
            }
        }
    }

    pub(super) fn at_lonc(&mut self, link: LinkId, what: Arrival) -> Checked {
        let Some(&(p, conn)) = self.links.get(&link) else {
            // The daemon forgot it (closed or crashed): its kernel closes it.
            if what == Arrival::Accepted {
                self.net.close(self.now, link, End::Lonc);
            }
            return Ok(());
        };
        let id = self.slots[p].id.clone();
        match what {
            Arrival::Accepted => {
                let awaited = self.slots[p]
                    .peer
                    .as_ref()
                    .is_some_and(|peer| peer.awaits_connect(conn));
                if awaited {
                    self.note(format!("{id}: conn {} connected", conn.0));
                    self.feed(p, Input::Connected(conn))?;
                } else {
                    self.net.close(self.now, link, End::Lonc);
                }
            }
            Arrival::Refused => {
                self.note(format!("{id}: conn {} refused", conn.0));
                self.forget(p, conn);
                self.feed(p, Input::ConnectFailed(conn, "Connection refused".into()))?;
            }
            Arrival::Data(data) => {
                self.note(format!("{id}: conn {} reads {}", conn.0, show(&data)));
                self.feed(p, Input::ConnData(conn, data.to_vec()))?;
            }
            Arrival::Fin | Arrival::Rst => {
                self.note(format!("{id}: conn {} closed by lond ({what:?})", conn.0));
                self.forget(p, conn);
                self.feed(p, Input::ConnClosed(conn))?;
            }
            Arrival::Syn => {}
        }
        Ok(())
    }

    pub(super) fn event(&mut self, ev: Event) -> Checked {
        match ev {
            Event::LondReply {
                peer,
                link,
                life,
                id,
                data,
                encrypted,
            } => {
                let lond = &mut self.slots[peer].lond;
                if lond.incarnation != life {
                    return Ok(());
                }
                if let Some(events) = lond.reply(link, id, &data, encrypted) {
                    self.model.lond_answered(&String::from_utf8_lossy(&data));
                    self.lond_events(peer, link, events);
                }
            }
            Event::LondClose { peer, link } => {
                if self.slots[peer].lond.close(link) {
                    self.net.close(self.now, link, End::Lond);
                }
            }
            Event::LondStart(p) if self.slots[p].lond.up => {}
            Event::LondStart(p) => {
                self.note(format!("lond {} starts", self.slots[p].id));
                self.slots[p].lond.start(&mut self.rng);
            }
            Event::Unclog(link, to) => self.net.clog(self.now, link, to, false),
            Event::Tick(p) => {
                let next = Duration::from_millis(self.rng.random_range(1..=2_000));
                self.schedule(self.now + next, Event::Tick(p));
                self.feed(p, Input::Timeout)?;
            }
        }
        Ok(())
    }
}
