//! The delayed (critical) message spool `lonSockDir/delayed/` (PROTOCOL.md section 8):
//! listing its files, reading the first line of one (bounded), deleting one. Which files
//! belong to which peer, and in what order, is the core's business
//! (`lonc_core::delayed`).

use std::fs::{self, FileType, Metadata, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use lonc_core::delayed::{DelayedEntry, EntryKind, FileStamp};
use nix::fcntl::OFlag;

/// The delayed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    dir: PathBuf,
}

/// Rejects names that are not a plain file name inside the directory.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a delayed message file name"),
        ));
    }
    Ok(())
}

/// The core's word for a file type.
fn kind_of(kind: FileType) -> EntryKind {
    if kind.is_file() {
        EntryKind::File
    } else if kind.is_symlink() {
        EntryKind::Symlink
    } else if kind.is_dir() {
        EntryKind::Directory
    } else {
        EntryKind::Other
    }
}

/// A file's size and modification time, as the core compares them.
fn stamp_of(meta: &Metadata) -> FileStamp {
    FileStamp {
        size: meta.size(),
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    }
}

impl Spool {
    /// The spool in `dir` (`lonSockDir/delayed`). The directory need not exist.
    pub fn new(dir: PathBuf) -> Self {
        Spool { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry of the directory with its kind, size and modification time, symbolic
    /// links not followed (the core decides what to do with an entry that is not a
    /// regular file), sorted by name. Names that are not UTF-8 are skipped (no peer id
    /// can match them). A missing directory is an empty spool.
    pub fn list(&self) -> io::Result<Vec<DelayedEntry>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut listed = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // `DirEntry::metadata` does not follow a symbolic link. An entry removed
            // meanwhile (a file just delivered) is simply skipped.
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            listed.push(DelayedEntry {
                name,
                kind: kind_of(meta.file_type()),
                stamp: stamp_of(&meta),
            });
        }
        listed.sort();
        Ok(listed)
    }

    /// The start of the file `name`: up to and including its first LF, or its first
    /// `max + 1` bytes if no LF comes before (so a line longer than `max` shows as
    /// `max + 1` bytes without LF), or the whole file if shorter. Never reads more.
    /// A name with `/`, or `.`/`..`, is [`io::ErrorKind::InvalidInput`]; so is a file
    /// that is not a regular file (symlinks are not followed).
    pub fn read_request(&self, name: &str, max: usize) -> io::Result<Vec<u8>> {
        check_name(name)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
            .open(self.dir.join(name))
            .map_err(|e| {
                if e.raw_os_error() == Some(nix::libc::ELOOP) {
                    io::Error::new(io::ErrorKind::InvalidInput, "is a symbolic link")
                } else {
                    e
                }
            })?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
        let mut reader = BufReader::new(Read::take(file, limit));
        let mut content = Vec::new();
        reader.read_until(b'\n', &mut content)?;
        Ok(content)
    }

    /// Deletes the file `name`; one already gone is fine.
    pub fn delete(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use tempfile::TempDir;

    fn spool() -> (TempDir, Spool) {
        let dir = TempDir::new().unwrap();
        let spool = Spool::new(dir.path().join("delayed"));
        fs::create_dir(spool.dir()).unwrap();
        (dir, spool)
    }

    #[test]
    fn missing_directory_is_empty() {
        let dir = TempDir::new().unwrap();
        let spool = Spool::new(dir.path().join("nope"));
        assert!(spool.list().unwrap().is_empty());
    }

    #[test]
    fn list_gives_every_utf8_entry_with_its_kind_sorted() {
        let (_d, s) = spool();
        for n in ["b.msul1", "a.msul1", "c.msul2"] {
            fs::write(s.dir().join(n), "x\n").unwrap();
        }
        fs::create_dir(s.dir().join("sub.msul1")).unwrap();
        std::os::unix::fs::symlink(s.dir().join("a.msul1"), s.dir().join("link.msul1")).unwrap();
        nix::unistd::mkfifo(
            &s.dir().join("f.msul1"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"\xff.msul1");
        fs::write(s.dir().join(bad), "x\n").unwrap();
        let listed: Vec<(String, EntryKind)> = s
            .list()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        let want = [
            ("a.msul1", EntryKind::File),
            ("b.msul1", EntryKind::File),
            ("c.msul2", EntryKind::File),
            ("f.msul1", EntryKind::Other),
            ("link.msul1", EntryKind::Symlink),
            ("sub.msul1", EntryKind::Directory),
        ]
        .map(|(n, k)| (n.to_string(), k));
        assert_eq!(listed, want);
    }

    #[test]
    fn list_stamps_change_when_a_file_grows() {
        let (_d, s) = spool();
        fs::write(s.dir().join("a.p"), "echo:par").unwrap();
        let before = s.list().unwrap()[0].stamp;
        assert_eq!(before.size, 8);
        fs::write(s.dir().join("a.p"), "echo:partial\n").unwrap();
        let after = s.list().unwrap()[0].stamp;
        assert_ne!(before, after);
        assert_eq!(after.size, 13);
    }

    #[test]
    fn list_of_a_file_is_an_error() {
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join("f"), "").unwrap();
        assert!(Spool::new(dir.path().join("f")).list().is_err());
    }

    #[test]
    fn read_stops_at_the_first_lf() {
        let (_d, s) = spool();
        fs::write(s.dir().join("m.p"), "put:a\nsecond\n").unwrap();
        assert_eq!(s.read_request("m.p", 100).unwrap(), b"put:a\n");
        fs::write(s.dir().join("n.p"), "no newline").unwrap();
        assert_eq!(s.read_request("n.p", 100).unwrap(), b"no newline");
        fs::write(s.dir().join("e.p"), "").unwrap();
        assert_eq!(s.read_request("e.p", 100).unwrap(), b"");
        fs::write(s.dir().join("l.p"), "\nx").unwrap();
        assert_eq!(s.read_request("l.p", 0).unwrap(), b"\n");
    }

    #[test]
    fn read_is_bounded() {
        let (_d, s) = spool();
        fs::write(s.dir().join("big.p"), vec![b'a'; 100_000]).unwrap();
        assert_eq!(s.read_request("big.p", 10).unwrap(), vec![b'a'; 11]);
        assert_eq!(s.read_request("big.p", 0).unwrap(), b"a");
        fs::write(s.dir().join("exact.p"), "0123456789\n").unwrap();
        assert_eq!(s.read_request("exact.p", 10).unwrap(), b"0123456789\n");
        assert_eq!(s.read_request("exact.p", 9).unwrap(), b"0123456789");
        assert_eq!(
            s.read_request("exact.p", usize::MAX).unwrap(),
            b"0123456789\n"
        );
    }

    #[test]
    fn bad_names_are_rejected() {
        let (_d, s) = spool();
        for name in ["", ".", "..", "a/b", "../x", "/etc/passwd", "a\0b"] {
            let e = s.read_request(name, 10).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
            let e = s.delete(name).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }

    #[test]
    fn read_refuses_non_regular_files() {
        let (_d, s) = spool();
        fs::create_dir(s.dir().join("d.p")).unwrap();
        assert_eq!(
            s.read_request("d.p", 10).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        fs::write(s.dir().join("t"), "secret\n").unwrap();
        std::os::unix::fs::symlink(s.dir().join("t"), s.dir().join("l.p")).unwrap();
        assert_eq!(
            s.read_request("l.p", 10).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        nix::unistd::mkfifo(
            &s.dir().join("f.p"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert_eq!(
            s.read_request("f.p", 10).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            s.read_request("missing.p", 10).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn delete_removes_and_tolerates_missing() {
        let (_d, s) = spool();
        fs::write(s.dir().join("m.p"), "x\n").unwrap();
        s.delete("m.p").unwrap();
        assert!(!s.dir().join("m.p").exists());
        s.delete("m.p").unwrap();
        let gone = Spool::new(PathBuf::from("/nonexistent/dir"));
        gone.delete("x").unwrap();
    }
}
