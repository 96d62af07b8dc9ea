//! What one peer remembers about its delayed spool files from one flush round to the next:
//! which files a round tries, which it skips (a delivered file that could not be deleted,
//! until it changes or USR1 asks), and which problems were already reported, so a file
//! that stays odd (still being written, corrupt, unreadable, not a regular file) is logged
//! once, not at every rescan.

use std::collections::BTreeMap;

use crate::delayed::{DelayedEntry, DelayedProblem, EntryKind, FileStamp, is_for_peer};
use crate::io::{LogEvent, Severity};

/// Rounds a file may be seen without its LF (and unchanged) before it is reported as
/// probably corrupt. It is kept, and still tried at every round.
pub const INCOMPLETE_ROUNDS: u32 = 3;

/// A problem already reported for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    /// Not a regular file.
    Odd(EntryKind),
    /// Reported as probably corrupt (no LF for [`INCOMPLETE_ROUNDS`] rounds).
    Incomplete,
    /// Could not be used (empty, too long).
    Unusable,
    /// Could not be read.
    Unreadable,
}

/// What is known about one of the peer's spool names.
#[derive(Debug, Clone, Default)]
struct Note {
    /// How it looked at the last listing.
    stamp: FileStamp,
    /// Rounds in a row it was read without a LF, unchanged.
    incomplete_rounds: u32,
    /// The problem logged for it, as long as the file stays as it was.
    reported: Option<Reported>,
    /// It was delivered but could not be deleted: skipped while its stamp is this.
    undeletable: Option<FileStamp>,
}

/// The peer's memory of its spool; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct SpoolWatch {
    notes: BTreeMap<String, Note>,
}

impl SpoolWatch {
    /// A new round from a listing of the whole spool: the peer's files to try, in name
    /// order, and what to log (each problem once). Names that are gone are forgotten; a
    /// file whose size or modification time changed is looked at afresh.
    pub fn round(
        &mut self,
        entries: &[DelayedEntry],
        peer_id: &str,
    ) -> (Vec<String>, Vec<LogEvent>) {
        let mut mine: Vec<&DelayedEntry> = entries
            .iter()
            .filter(|e| is_for_peer(&e.name, peer_id))
            .collect();
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        mine.dedup_by(|a, b| a.name == b.name);
        self.notes
            .retain(|name, _| mine.iter().any(|e| &e.name == name));
        let mut files = Vec::new();
        let mut logs = Vec::new();
        for entry in mine {
            let note = self.notes.entry(entry.name.clone()).or_default();
            if note.stamp != entry.stamp {
                note.stamp = entry.stamp;
                note.incomplete_rounds = 0;
                note.reported = None;
                note.undeletable = None;
            }
            if entry.kind != EntryKind::File {
                if note.reported != Some(Reported::Odd(entry.kind)) {
                    note.reported = Some(Reported::Odd(entry.kind));
                    logs.push(LogEvent {
                        severity: Severity::Warning,
                        message: format!(
                            "delayed entry {} is {}; skipped, never followed or read",
                            entry.name,
                            entry.kind.as_str()
                        ),
                    });
                }
                continue;
            }
            if note.undeletable.is_some() {
                continue;
            }
            files.push(entry.name.clone());
        }
        (files, logs)
    }

    /// A file of this round could not be used. Logged once while the file stays as it
    /// is; a file without its LF is only reported (CRITICAL) once it has stayed so for
    /// [`INCOMPLETE_ROUNDS`] rounds. The file is always kept.
    pub fn problem(&mut self, name: &str, problem: DelayedProblem) -> Option<LogEvent> {
        let note = self.notes.entry(name.to_owned()).or_default();
        let (reported, severity, what) = match problem {
            DelayedProblem::Incomplete => {
                note.incomplete_rounds += 1;
                if note.incomplete_rounds < INCOMPLETE_ROUNDS {
                    return None;
                }
                (
                    Reported::Incomplete,
                    Severity::Critical,
                    format!(
                        "has had no complete first line (no LF) for {} rounds; probably corrupt",
                        note.incomplete_rounds
                    ),
                )
            }
            DelayedProblem::Empty | DelayedProblem::TooLong(_) => {
                (Reported::Unusable, Severity::Warning, problem.to_string())
            }
        };
        if note.reported == Some(reported) {
            return None;
        }
        note.reported = Some(reported);
        Some(LogEvent {
            severity,
            message: format!(
                "delayed message {name} {what}; kept, never sent cut, tried again at every rescan"
            ),
        })
    }

    /// A file of this round could not be read. Logged once while it stays as it is.
    pub fn unreadable(&mut self, name: &str, why: &str) -> Option<LogEvent> {
        let note = self.notes.entry(name.to_owned()).or_default();
        if note.reported == Some(Reported::Unreadable) {
            return None;
        }
        note.reported = Some(Reported::Unreadable);
        Some(LogEvent {
            severity: Severity::Critical,
            message: format!(
                "delayed message {name} could not be read ({why}); kept, tried again at every rescan"
            ),
        })
    }

    /// A delivered file could not be deleted: it is not sent again until it changes or
    /// [`SpoolWatch::retry_undeletable`]. Logged once.
    pub fn delete_failed(&mut self, name: &str, why: &str) -> Option<LogEvent> {
        let note = self.notes.entry(name.to_owned()).or_default();
        if note.undeletable.is_some() {
            return None;
        }
        note.undeletable = Some(note.stamp);
        Some(LogEvent {
            severity: Severity::Critical,
            message: format!(
                "delayed message {name} was delivered but cannot be deleted ({why}); \
                 not sent again until the file changes or USR1"
            ),
        })
    }

    /// USR1: files that could not be deleted are tried again.
    pub fn retry_undeletable(&mut self) {
        for note in self.notes.values_mut() {
            note.undeletable = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> DelayedEntry {
        DelayedEntry::file(
            name,
            FileStamp {
                size,
                modified_ns: 1,
            },
        )
    }

    #[test]
    fn a_round_takes_the_peers_regular_files_in_order() {
        let mut w = SpoolWatch::default();
        let entries = vec![
            file("2.b.msul1", 5),
            file("1.a.msul1", 5),
            file("3.c.msul10", 5),
            DelayedEntry {
                kind: EntryKind::Symlink,
                ..file("0.link.msul1", 0)
            },
            DelayedEntry {
                kind: EntryKind::Directory,
                ..file("0.dir.other", 0)
            },
        ];
        let (files, logs) = w.round(&entries, "msul1");
        assert_eq!(files, ["1.a.msul1", "2.b.msul1"]);
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(logs[0].message.contains("0.link.msul1 is a symbolic link"));
        let (_, logs) = w.round(&entries, "msul1");
        assert!(logs.is_empty(), "an odd entry is reported once: {logs:?}");
    }

    #[test]
    fn incomplete_is_critical_once_after_some_rounds_and_resets_on_change() {
        let mut w = SpoolWatch::default();
        let mut events = Vec::new();
        for _ in 0..INCOMPLETE_ROUNDS + 3 {
            w.round(&[file("1.a.msul1", 8)], "msul1");
            events.push(w.problem("1.a.msul1", DelayedProblem::Incomplete));
        }
        let reported: Vec<usize> = (0..events.len()).filter(|&i| events[i].is_some()).collect();
        assert_eq!(
            reported,
            [INCOMPLETE_ROUNDS as usize - 1],
            "once, at the round that makes {INCOMPLETE_ROUNDS}: {events:?}"
        );
        let event = events[reported[0]].as_ref().unwrap();
        assert_eq!(event.severity, Severity::Critical);
        assert!(
            event
                .message
                .contains(&format!("for {INCOMPLETE_ROUNDS} rounds"))
        );
        // Growing: being written, counted afresh.
        w.round(&[file("1.a.msul1", 9)], "msul1");
        assert_eq!(w.problem("1.a.msul1", DelayedProblem::Incomplete), None);
    }

    #[test]
    fn an_undeletable_file_is_skipped_until_it_changes_or_usr1() {
        let mut w = SpoolWatch::default();
        w.round(&[file("1.a.msul1", 8)], "msul1");
        assert!(w.delete_failed("1.a.msul1", "denied").is_some());
        assert_eq!(w.delete_failed("1.a.msul1", "denied"), None);
        assert!(w.round(&[file("1.a.msul1", 8)], "msul1").0.is_empty());
        assert_eq!(w.round(&[file("1.a.msul1", 9)], "msul1").0, ["1.a.msul1"]);
        assert!(w.delete_failed("1.a.msul1", "denied").is_some());
        assert!(w.round(&[file("1.a.msul1", 9)], "msul1").0.is_empty());
        w.retry_undeletable();
        assert_eq!(w.round(&[file("1.a.msul1", 9)], "msul1").0, ["1.a.msul1"]);
    }

    #[test]
    fn a_file_that_went_away_is_forgotten() {
        let mut w = SpoolWatch::default();
        w.round(&[file("1.a.msul1", 8)], "msul1");
        assert!(w.delete_failed("1.a.msul1", "denied").is_some());
        w.round(&[], "msul1");
        assert_eq!(w.round(&[file("1.a.msul1", 8)], "msul1").0, ["1.a.msul1"]);
    }

    #[test]
    fn unreadable_and_unusable_are_logged_once() {
        let mut w = SpoolWatch::default();
        w.round(&[file("1.a.msul1", 8)], "msul1");
        assert!(w.unreadable("1.a.msul1", "denied").is_some());
        assert!(w.unreadable("1.a.msul1", "denied").is_none());
        assert!(w.problem("1.a.msul1", DelayedProblem::Empty).is_some());
        assert!(w.problem("1.a.msul1", DelayedProblem::Empty).is_none());
    }
}
