//! Delayed (critical) messages: the spool entries a runtime lists, which of them belong to
//! a peer and in what order, the request a file holds (only a complete first line), and
//! the `S` line appended to `lonnet.perm.log` once one is delivered.

/// What kind of directory entry a spool name is. Only regular files are ever read; the
/// runtime lists without following symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A regular file: a delayed message.
    File,
    /// A symbolic link (never followed).
    Symlink,
    /// A directory.
    Directory,
    /// A fifo, socket or device.
    Other,
}

impl EntryKind {
    /// Every kind, in declaration order (for generators in tests and fuzz targets).
    pub const ALL: [EntryKind; 4] = [
        EntryKind::File,
        EntryKind::Symlink,
        EntryKind::Directory,
        EntryKind::Other,
    ];

    /// The kind in words, for log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "a regular file",
            EntryKind::Symlink => "a symbolic link",
            EntryKind::Directory => "a directory",
            EntryKind::Other => "not a regular file (fifo, socket or device)",
        }
    }
}

/// How a spool file looked when it was listed: it has changed when either differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch, as the runtime read it.
    pub modified_ns: i128,
}

/// One entry of the delayed spool directory, answering `ListDelayed`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DelayedEntry {
    /// The file name, without directory.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its size and modification time.
    pub stamp: FileStamp,
}

impl DelayedEntry {
    /// A regular file with this name and stamp.
    pub fn file(name: &str, stamp: FileStamp) -> Self {
        DelayedEntry {
            name: name.to_owned(),
            kind: EntryKind::File,
            stamp,
        }
    }
}

/// True when `name` is a delayed message name for `peer_id`: it ends exactly in
/// `.<peer_id>`, with something before the dot.
pub fn is_for_peer(name: &str, peer_id: &str) -> bool {
    name.len() > peer_id.len() + 1
        && name.ends_with(peer_id)
        && name.as_bytes()[name.len() - peer_id.len() - 1] == b'.'
}

/// A delivered delayed message, for `lonnet.perm.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermLogEntry {
    /// The peer's host id.
    pub peer: String,
    /// The request as read from the file (first line, LF removed).
    pub request: Vec<u8>,
}

impl PermLogEntry {
    /// `<epoch>:S:<peer>:<request>:<localtime>` plus LF; the runtime supplies the wall
    /// clock (`epoch` seconds and `localtime` like `Wed Mar 20 03:44:11 2002`).
    pub fn line(&self, epoch: u64, localtime: &str) -> Vec<u8> {
        let mut out = format!("{epoch}:S:{}:", self.peer).into_bytes();
        out.extend_from_slice(&self.request);
        out.extend_from_slice(format!(":{localtime}\n").as_bytes());
        out
    }
}

/// The names among `names` that are delayed messages for `peer_id`: those ending exactly
/// in `.<peer_id>`, with something before the dot, in name order (byte order).
pub fn files_for_peer(names: &[String], peer_id: &str) -> Vec<String> {
    let mut mine: Vec<String> = names
        .iter()
        .filter(|n| is_for_peer(n, peer_id))
        .cloned()
        .collect();
    mine.sort();
    mine.dedup();
    mine
}

/// Why a delayed file's content cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DelayedProblem {
    /// No LF yet: the file is still being written (lonnet writes a whole line with its
    /// LF), or it is corrupt. Never sent cut.
    #[error("has no complete first line (no LF)")]
    Incomplete,
    /// The first line is empty.
    #[error("is empty")]
    Empty,
    /// The first line is longer than `loncMaxRequest`.
    #[error("has a first line longer than {0} bytes")]
    TooLong(usize),
}

/// The request of a delayed file: its first line, LF removed, at most `max` bytes. The
/// runtime may hand over only the start of a large file (up to `max + 1` bytes): a first
/// line with no LF within `max` bytes is too long, never cut; a shorter one with no LF is
/// [`DelayedProblem::Incomplete`], never sent as a prefix.
pub fn request_of(content: &[u8], max: usize) -> Result<&[u8], DelayedProblem> {
    let Some(end) = memchr::memchr(b'\n', content) else {
        return Err(if content.len() > max {
            DelayedProblem::TooLong(max)
        } else {
            DelayedProblem::Incomplete
        });
    };
    let first = &content[..end];
    if first.len() > max {
        Err(DelayedProblem::TooLong(max))
    } else if first.is_empty() {
        Err(DelayedProblem::Empty)
    } else {
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_only_exact_suffix_in_name_order() {
        let names: Vec<String> = [
            "3.1.9.put.msul1",
            "1.1.9.put.msul1",
            "2.1.9.put.msul10",
            "x.amsul1",
            ".msul1",
            "msul1",
            "2.1.9.put.msul1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            files_for_peer(&names, "msul1"),
            vec!["1.1.9.put.msul1", "2.1.9.put.msul1", "3.1.9.put.msul1"]
        );
    }

    #[test]
    fn request_is_the_first_line() {
        assert_eq!(request_of(b"put:a:b\nmore\n", 100), Ok(&b"put:a:b"[..]));
        assert_eq!(request_of(b"put:a:b\n", 7), Ok(&b"put:a:b"[..]));
        assert_eq!(request_of(b"put:a:b", 6), Err(DelayedProblem::TooLong(6)));
        assert_eq!(
            request_of(b"put:a:bc\n", 7),
            Err(DelayedProblem::TooLong(7))
        );
        assert_eq!(request_of(b"\nput", 100), Err(DelayedProblem::Empty));
    }

    /// Issue 7 item 1: a first line without its LF is a file still being written.
    #[test]
    fn spool_file_without_lf_is_incomplete_never_a_prefix() {
        assert_eq!(
            request_of(b"echo:par", 100),
            Err(DelayedProblem::Incomplete)
        );
        assert_eq!(request_of(b"put:a:b", 7), Err(DelayedProblem::Incomplete));
        assert_eq!(request_of(b"", 100), Err(DelayedProblem::Incomplete));
        assert_eq!(request_of(b"echo:partial\n", 100), Ok(&b"echo:partial"[..]));
    }

    #[test]
    fn peer_names_need_the_dot_and_a_stem() {
        assert!(is_for_peer("1.put.msul1", "msul1"));
        assert!(is_for_peer("x.msul1", "msul1"));
        assert!(!is_for_peer(".msul1", "msul1"));
        assert!(!is_for_peer("xmsul1", "msul1"));
        assert!(!is_for_peer("x.amsul1", "msul1"));
        assert!(!is_for_peer("msul1", "msul1"));
    }

    #[test]
    fn perm_log_line_format() {
        let e = PermLogEntry {
            peer: "msul1".into(),
            request: b"put:msu:x".to_vec(),
        };
        assert_eq!(
            e.line(1016600000, "Wed Mar 20 03:44:11 2002"),
            b"1016600000:S:msul1:put:msu:x:Wed Mar 20 03:44:11 2002\n".to_vec()
        );
    }

    proptest! {
        #[test]
        fn selection_is_sorted_and_suffixed(names in proptest::collection::vec("[a-z0-9.]{0,12}", 0..30), peer in "[a-z0-9]{1,5}") {
            let picked = files_for_peer(&names, &peer);
            let suffix = format!(".{peer}");
            prop_assert!(picked.windows(2).all(|w| w[0] < w[1]));
            for p in &picked {
                prop_assert!(p.ends_with(&suffix) && p.len() > suffix.len());
                prop_assert!(names.contains(p));
            }
            let expected = names.iter().filter(|n| n.ends_with(&suffix) && n.len() > suffix.len()).count();
            prop_assert!(picked.len() <= expected);
        }

        #[test]
        fn a_request_is_always_a_whole_first_line(content in proptest::collection::vec(proptest::num::u8::ANY, 0..64), max in 0usize..70) {
            if let Ok(request) = request_of(&content, max) {
                prop_assert!(request.len() <= max && !request.is_empty());
                prop_assert!(!request.contains(&b'\n'));
                prop_assert_eq!(content.get(request.len()), Some(&b'\n'));
                prop_assert_eq!(&content[..request.len()], request);
            }
        }
    }
}
