//! The spool's answers in the `peer_inputs` harness: listings, reads and failed deletes,
//! each given when the fuzz input says so.

use lonc_core::delayed::{DelayedEntry, EntryKind, FileStamp};
use lonc_core::io::Input;

use super::{PEER_ID, World};

impl World {
    /// Answers the spool listing with files `<n>.peer` (or other names and kinds).
    pub fn spool_list(&mut self, files: &[(u8, u8)]) {
        self.list_asked = false;
        let entries = files
            .iter()
            .map(|&(n, kind)| DelayedEntry {
                name: if n % 8 == 0 {
                    format!("{n}.other")
                } else {
                    format!("{n}.{PEER_ID}")
                },
                kind: EntryKind::ALL[usize::from(kind % 8).min(3)],
                stamp: FileStamp {
                    size: u64::from(n),
                    modified_ns: i128::from(kind),
                },
            })
            .collect();
        self.step(Input::DelayedList(entries));
    }

    /// The spool listing fails (`local`: for a shortage of this host's own).
    pub fn spool_list_failed(&mut self, local: bool) {
        self.list_asked = false;
        self.step(if local {
            Input::DelayedListLocalError("fuzz".into())
        } else {
            Input::DelayedListFailed("fuzz".into())
        });
    }

    /// Answers the oldest spool read: its request line, these bytes, or an error.
    pub fn spool_read(&mut self, content: Option<Option<Vec<u8>>>) {
        let Some(name) = self.reads.pop_front() else {
            return;
        };
        let content = match content {
            None => Err("unreadable".into()),
            Some(None) => Ok(format!("d:{name}\n").into_bytes()),
            Some(Some(bytes)) => Ok(bytes),
        };
        self.step(Input::delayed_read(name, content));
    }

    /// The delete of delivered file `i` fails.
    pub fn delete_failed(&mut self, i: u8) {
        if self.deleted.is_empty() {
            return;
        }
        let name = self.deleted.remove(usize::from(i) % self.deleted.len());
        self.step(Input::delayed_delete_failed(name, "fuzz".into()));
    }
}
