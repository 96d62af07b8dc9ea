//! The delayed flush of one peer (PROTOCOL.md 8): a round lists the spool, then reads,
//! sends and deletes the peer's files one at a time, before any client request. A file is
//! sent only as a whole first line, and deleted only once lond answered it. What the peer
//! remembers about its files between rounds is [`SpoolWatch`]; when a round starts
//! (after each handshake, every `delayed_rescan`, at USR1) is the peer's call.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use crate::delayed::{DelayedEntry, PermLogEntry, request_of};
use crate::io::{ConnId, LogEvent, Output, Severity};
use crate::spool_watch::SpoolWatch;

/// Where a round stands.
#[derive(Debug, PartialEq, Eq)]
enum Stage {
    /// No round.
    Idle,
    /// The spool listing was asked for.
    Listing,
    /// This file's content was asked for.
    Reading(String),
    /// This file's request waits for a free ready connection.
    ReadyToSend { name: String, request: Bytes },
    /// This file's request was written on `conn`.
    InFlight { name: String, conn: ConnId },
    /// A delayed message went unanswered with its connection; the rest of the round goes
    /// on as soon as a connection is ready.
    Resume,
}

/// One peer's delayed flush; see the module docs. Methods that act push their outputs
/// (listing, reads, deletes, `lonnet.perm.log` and `lonc.log` lines) to `out`.
#[derive(Debug)]
pub(crate) struct DelayedFlush {
    stage: Stage,
    /// The files of this round not tried yet, in order.
    pending: VecDeque<String>,
    spool: SpoolWatch,
    /// The last listing failed (and was logged): the next failure is not logged again.
    list_failing: bool,
    /// Files lond did not answer: no round tries them again until the next rescan (or
    /// USR1), so a file that makes lond drop the link is not resent on every new link.
    held: BTreeSet<String>,
}

impl DelayedFlush {
    /// No round yet, nothing remembered.
    pub(crate) fn new() -> Self {
        DelayedFlush {
            stage: Stage::Idle,
            pending: VecDeque::new(),
            spool: SpoolWatch::default(),
            list_failing: false,
            held: BTreeSet::new(),
        }
    }

    /// True when no round is under way.
    pub(crate) fn is_idle(&self) -> bool {
        self.stage == Stage::Idle
    }

    /// True while a delayed message waits for a connection to be sent on (in on-demand
    /// mode this asks for one).
    pub(crate) fn wants_connection(&self) -> bool {
        matches!(self.stage, Stage::ReadyToSend { .. } | Stage::Resume)
    }

    /// Starts a round, unless one is under way.
    pub(crate) fn start(&mut self, out: &mut VecDeque<Output>) {
        if self.is_idle() {
            self.stage = Stage::Listing;
            out.push_back(Output::ListDelayed);
        }
    }

    /// The spool listing came: the round's files, each problem logged once.
    pub(crate) fn listed(
        &mut self,
        entries: &[DelayedEntry],
        peer_id: &str,
        out: &mut VecDeque<Output>,
    ) {
        if self.stage != Stage::Listing {
            return;
        }
        self.list_failing = false;
        let (files, logs) = self.spool.round(entries, peer_id);
        out.extend(logs.into_iter().map(Output::Log));
        self.pending = files
            .into_iter()
            .filter(|name| !self.held.contains(name))
            .collect();
        self.next_file(out);
    }

    /// The spool listing failed (`why`, or `None` for a shortage of the host's own, which
    /// the runtime reports daemon-wide): the round ends, what the flush remembers stays,
    /// and the next rescan tries again. A failure is logged CRITICAL once, until a listing
    /// succeeds again.
    pub(crate) fn list_failed(&mut self, why: Option<&str>, out: &mut VecDeque<Output>) {
        if self.stage != Stage::Listing {
            return;
        }
        self.abort();
        if let Some(why) = why
            && !std::mem::replace(&mut self.list_failing, true)
        {
            log(
                out,
                Severity::Critical,
                format!("cannot list the delayed spool: {why}; retried at every rescan"),
            );
        }
    }

    /// A file's content (or why it could not be read) came. False if this round was not
    /// waiting for it.
    pub(crate) fn read(
        &mut self,
        name: &str,
        content: Result<&[u8], &str>,
        max_request: usize,
        out: &mut VecDeque<Output>,
    ) -> bool {
        if !matches!(&self.stage, Stage::Reading(n) if n == name) {
            return false;
        }
        let problem = match content {
            Err(why) => self.spool.unreadable(name, why),
            Ok(content) => match request_of(content, max_request) {
                Err(problem) => self.spool.problem(name, problem),
                Ok(request) => {
                    self.stage = Stage::ReadyToSend {
                        name: name.to_owned(),
                        request: Bytes::copy_from_slice(request),
                    };
                    return true;
                }
            },
        };
        out.extend(problem.map(Output::Log));
        self.next_file(out);
        true
    }

    /// The request to send now, if one waits.
    pub(crate) fn to_send(&self) -> Option<(String, Bytes)> {
        match &self.stage {
            Stage::ReadyToSend { name, request } => Some((name.clone(), request.clone())),
            _ => None,
        }
    }

    /// The waiting request of file `name` was written on `conn`.
    pub(crate) fn sent(&mut self, name: String, conn: ConnId) {
        self.stage = Stage::InFlight { name, conn };
    }

    /// lond answered file `name`'s `request`: delete the file, log it, go on.
    pub(crate) fn delivered(
        &mut self,
        name: String,
        request: &[u8],
        peer_id: &str,
        out: &mut VecDeque<Output>,
    ) {
        out.push_back(Output::DeleteDelayed { name: name.clone() });
        out.push_back(Output::PermLog(PermLogEntry {
            peer: peer_id.to_owned(),
            request: request.to_vec(),
        }));
        log(
            out,
            Severity::Info,
            format!("delayed message {name} delivered"),
        );
        self.next_file(out);
    }

    /// lond answered file `name` with an empty line: it stays; go on.
    pub(crate) fn empty_reply(&mut self, name: &str, out: &mut VecDeque<Output>) {
        left_in_place(out, name, "got an empty reply");
        self.next_file(out);
    }

    /// File `name` was in flight on a connection that is gone: it stays, and the rest of
    /// the round goes on at the next ready connection.
    pub(crate) fn unanswered(&mut self, name: &str, out: &mut VecDeque<Output>) {
        left_in_place(out, name, "was not answered");
        self.held.insert(name.to_owned());
        self.stage = Stage::Resume;
    }

    /// Goes on with the round after [`DelayedFlush::unanswered`], once a connection is
    /// ready.
    pub(crate) fn resume(&mut self, out: &mut VecDeque<Output>) {
        if self.stage == Stage::Resume {
            self.next_file(out);
        }
    }

    /// A delivered file could not be deleted: not sent again until it changes or USR1.
    pub(crate) fn delete_failed(&mut self, name: &str, why: &str, out: &mut VecDeque<Output>) {
        out.extend(self.spool.delete_failed(name, why).map(Output::Log));
    }

    /// USR1: files that could not be deleted, and files lond did not answer, are tried
    /// again.
    pub(crate) fn retry_skipped(&mut self) {
        self.spool.retry_undeletable();
        self.held.clear();
    }

    /// The rescan time came: files lond did not answer are tried again.
    pub(crate) fn rescan(&mut self) {
        self.held.clear();
    }

    /// No connection is left to send on: a round not yet sending ends; the files stay
    /// for the next round.
    pub(crate) fn abort_unsent(&mut self) {
        if matches!(
            self.stage,
            Stage::ReadyToSend { .. } | Stage::Reading(_) | Stage::Listing
        ) {
            self.abort();
        }
    }

    /// Shutting down: the round ends, unless a message is in flight (its answer may still
    /// come in the grace period).
    pub(crate) fn stop(&mut self) {
        if !matches!(self.stage, Stage::InFlight { .. }) {
            self.abort();
        }
    }

    /// The round ends here.
    pub(crate) fn abort(&mut self) {
        self.stage = Stage::Idle;
        self.pending.clear();
    }

    fn next_file(&mut self, out: &mut VecDeque<Output>) {
        match self.pending.pop_front() {
            Some(name) => {
                out.push_back(Output::ReadDelayed { name: name.clone() });
                self.stage = Stage::Reading(name);
            }
            None => self.stage = Stage::Idle,
        }
    }
}

/// A delayed file stays in place; it is tried again in the next round.
fn left_in_place(out: &mut VecDeque<Output>, name: &str, what: &str) {
    log(
        out,
        Severity::Warning,
        format!("delayed message {name} {what}; left in place, retried at the next rescan"),
    );
}

fn log(out: &mut VecDeque<Output>, severity: Severity, message: String) {
    out.push_back(Output::Log(LogEvent { severity, message }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delayed::FileStamp;

    fn entry(name: &str) -> DelayedEntry {
        DelayedEntry::file(
            name,
            FileStamp {
                size: 1,
                modified_ns: 1,
            },
        )
    }

    /// A round of `1.a.p` and `2.b.p`, the first sent; no output left.
    fn first_of_two_in_flight() -> (DelayedFlush, VecDeque<Output>) {
        let mut f = DelayedFlush::new();
        let mut out = VecDeque::new();
        f.start(&mut out);
        f.listed(&[entry("1.a.p"), entry("2.b.p")], "p", &mut out);
        f.read("1.a.p", Ok(b"ping\n"), 100, &mut out);
        f.sent("1.a.p".into(), ConnId(0));
        out.clear();
        (f, out)
    }

    #[test]
    fn a_round_reads_sends_and_deletes_one_file_at_a_time() {
        let mut f = DelayedFlush::new();
        let mut out = VecDeque::new();
        assert!(!f.wants_connection());
        f.start(&mut out);
        f.start(&mut out);
        assert_eq!(out.drain(..).collect::<Vec<_>>(), [Output::ListDelayed]);
        assert!(!f.wants_connection(), "listing needs no connection");
        f.listed(
            &[entry("2.b.p"), entry("1.a.p"), entry("3.c.q")],
            "p",
            &mut out,
        );
        let read = |name: &str| Output::ReadDelayed { name: name.into() };
        assert_eq!(out.drain(..).collect::<Vec<_>>(), [read("1.a.p")]);
        assert!(!f.read("2.b.p", Ok(b"x\n"), 100, &mut out), "not asked yet");
        assert!(f.read("1.a.p", Ok(b"ping\n"), 100, &mut out));
        assert!(f.wants_connection());
        let (name, request) = f.to_send().unwrap();
        assert_eq!((name.as_str(), &request[..]), ("1.a.p", &b"ping"[..]));
        f.sent(name.clone(), ConnId(0));
        assert!(f.to_send().is_none());
        assert!(!f.wants_connection(), "in flight: its connection is there");
        f.delivered(name, &request, "p", &mut out);
        let outs: Vec<_> = out.drain(..).collect();
        assert_eq!(
            outs[0],
            Output::DeleteDelayed {
                name: "1.a.p".into()
            }
        );
        assert!(matches!(outs[1], Output::PermLog(_)));
        assert_eq!(outs[3], read("2.b.p"));
        assert!(f.read("2.b.p", Err("denied"), 100, &mut out));
        assert!(f.is_idle(), "the round is over");
    }

    #[test]
    fn an_empty_reply_keeps_the_file_and_goes_on() {
        let (mut f, mut out) = first_of_two_in_flight();
        f.empty_reply("1.a.p", &mut out);
        let outs: Vec<_> = out.drain(..).collect();
        assert!(
            !outs
                .iter()
                .any(|o| matches!(o, Output::DeleteDelayed { .. } | Output::PermLog(_))),
            "not delivered: {outs:?}"
        );
        assert!(
            matches!(&outs[0], Output::Log(e) if e.severity == Severity::Warning
                && e.message.contains("1.a.p got an empty reply; left in place")),
            "{outs:?}"
        );
        assert_eq!(
            outs[1],
            Output::ReadDelayed {
                name: "2.b.p".into()
            }
        );
    }

    #[test]
    fn a_listing_failure_is_logged_once_until_a_listing_succeeds() {
        let mut f = DelayedFlush::new();
        let mut out = VecDeque::new();
        let criticals = |out: &mut VecDeque<Output>| {
            out.drain(..)
                .filter(|o| matches!(o, Output::Log(e) if e.severity == Severity::Critical))
                .count()
        };
        f.list_failed(Some("denied"), &mut out);
        assert!(out.is_empty(), "no listing was asked for");
        for _ in 0..2 {
            f.start(&mut out);
            f.list_failed(Some("denied"), &mut out);
            assert!(f.is_idle(), "the round ends");
        }
        assert_eq!(criticals(&mut out), 1);
        f.start(&mut out);
        f.list_failed(None, &mut out);
        f.start(&mut out);
        f.listed(&[], "p", &mut out);
        assert!(f.is_idle(), "an empty spool ends the round at once");
        f.start(&mut out);
        f.list_failed(Some("denied"), &mut out);
        assert_eq!(criticals(&mut out), 1, "logged again after a success");
        f.listed(&[entry("1.a.p")], "p", &mut out);
        assert!(out.is_empty(), "a listing not asked for is ignored");
    }

    #[test]
    fn an_unusable_file_is_skipped_and_a_failed_delete_skips_it_next_round() {
        let mut f = DelayedFlush::new();
        let mut out = VecDeque::new();
        f.start(&mut out);
        f.listed(&[entry("1.a.p"), entry("2.b.p")], "p", &mut out);
        f.read("1.a.p", Ok(b"\n"), 100, &mut out);
        assert_eq!(
            out.pop_back(),
            Some(Output::ReadDelayed {
                name: "2.b.p".into()
            }),
            "an empty file is not sent"
        );
        f.read("2.b.p", Ok(b"ping\n"), 100, &mut out);
        f.sent("2.b.p".into(), ConnId(0));
        f.delivered("2.b.p".into(), b"ping", "p", &mut out);
        out.clear();
        f.delete_failed("2.b.p", "denied", &mut out);
        assert!(
            matches!(&out.pop_back(), Some(Output::Log(e)) if e.severity == Severity::Critical)
        );
        f.start(&mut out);
        f.listed(&[entry("2.b.p")], "p", &mut out);
        assert!(f.is_idle(), "the undeletable file is not sent again");
        f.retry_skipped();
        f.start(&mut out);
        f.listed(&[entry("2.b.p")], "p", &mut out);
        assert!(!f.is_idle(), "USR1 tries it again");
    }

    #[test]
    fn stop_and_abort_unsent_end_a_round_not_yet_sending() {
        let mut f = DelayedFlush::new();
        let mut out = VecDeque::new();
        f.start(&mut out);
        f.stop();
        assert!(f.is_idle(), "a listing is dropped at shutdown");
        f.start(&mut out);
        f.listed(&[entry("1.a.p")], "p", &mut out);
        f.read("1.a.p", Ok(b"ping\n"), 100, &mut out);
        f.sent("1.a.p".into(), ConnId(0));
        f.abort_unsent();
        assert!(!f.is_idle(), "a message in flight stays");
        f.resume(&mut out);
        assert!(
            !f.is_idle(),
            "resume only goes on after an unanswered message"
        );
        f.abort();
        assert!(f.is_idle());
    }

    #[test]
    fn an_unanswered_message_resumes_the_round_later() {
        let (mut f, mut out) = first_of_two_in_flight();
        f.stop();
        assert!(!f.is_idle(), "a message in flight outlives stop");
        f.unanswered("1.a.p", &mut out);
        assert!(f.wants_connection());
        f.resume(&mut out);
        assert_eq!(
            out.pop_back(),
            Some(Output::ReadDelayed {
                name: "2.b.p".into()
            })
        );
        f.abort_unsent();
        assert!(f.is_idle());
    }
}
