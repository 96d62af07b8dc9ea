//! The simulated disk that holds the delayed spool (`lonSockDir/delayed/`) across daemon
//! crashes: files lonnet writes (at times only partly: no LF yet), and the faults a disk
//! can have (a listing, a read or a delete that fails), and entries that are not regular
//! files (never to be read or deleted).

use std::collections::{BTreeMap, BTreeSet};

use lonc_core::delayed::{DelayedEntry, EntryKind, FileStamp};

use crate::sim::stamp_of;

/// The spool directory and its faults.
#[derive(Debug, Default)]
pub struct Disk {
    /// File name -> content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Entries that are not regular files (symlinks, directories, fifos).
    pub odd: BTreeMap<String, EntryKind>,
    /// Listing the directory fails.
    pub list_fails: bool,
    /// Reading these files fails.
    pub read_fails: BTreeSet<String>,
    /// Deleting these files fails.
    pub delete_fails: BTreeSet<String>,
}

impl Disk {
    /// The directory listing, or why it failed.
    pub fn list(&self) -> Result<Vec<DelayedEntry>, String> {
        if self.list_fails {
            return Err("Input/output error".into());
        }
        let files = self.files.iter();
        let files = files.map(|(name, content)| DelayedEntry::file(name, stamp_of(content)));
        let odd = self.odd.iter().map(|(name, kind)| DelayedEntry {
            name: name.clone(),
            kind: *kind,
            stamp: FileStamp::default(),
        });
        Ok(files.chain(odd).collect())
    }

    /// A file's content, or why it cannot be read.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        if self.read_fails.contains(name) {
            return Err("Input/output error".into());
        }
        self.files
            .get(name)
            .cloned()
            .ok_or_else(|| "No such file or directory".into())
    }

    /// Deletes a file; why it failed if it did.
    pub fn delete(&mut self, name: &str) -> Result<(), String> {
        if self.delete_fails.contains(name) {
            return Err("Operation not permitted".into());
        }
        self.files.remove(name);
        Ok(())
    }

    /// The disk heals: every operation works again.
    pub fn heal(&mut self) {
        self.list_fails = false;
        self.read_fails.clear();
        self.delete_fails.clear();
    }

    /// Files with no LF yet (lonnet still writing them).
    pub fn partial(&self) -> Vec<String> {
        let files = self.files.iter();
        let partial = files.filter(|(_, c)| !c.contains(&b'\n'));
        partial.map(|(n, _)| n.clone()).collect()
    }
}
