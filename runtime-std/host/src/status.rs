//! The status file `lonDocRoot/lon-status/loncstatus.txt` (PROTOCOL.md section 9),
//! rewritten on USR1: its text, and writing it so readers never see half of it and no
//! link planted beside it is followed.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;

/// One peer's line of the status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatusLine {
    /// The pid serving the peer (the daemon's own, as there is one process).
    pub pid: u32,
    /// The peer's host id.
    pub peer: String,
    /// Its state in a word (e.g. `connected`, `dead`).
    pub status: String,
    /// Its last log message (empty if none).
    pub last_log: String,
}

/// `text` with tabs, CR and LF replaced by spaces, so a field cannot break the format.
fn field(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

/// The status file's text: `LONC status <localtime> - parent <pid>`, a blank line, then
/// `<pid>\t<peer>\t<status>\t<last log line>` per peer, every line ending in LF. Tabs and
/// line breaks inside a field become spaces.
pub fn status_text(localtime: &str, parent_pid: u32, peers: &[PeerStatusLine]) -> String {
    let mut out = format!("LONC status {} - parent {parent_pid}\n\n", field(localtime));
    for p in peers {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            p.pid,
            field(&p.peer),
            field(&p.status),
            field(&p.last_log)
        ));
    }
    out
}

/// The mode of the status file: the web server shows it (`lon-status` is under
/// `lonDocRoot`).
pub const STATUS_MODE: u32 = 0o644;

/// Replaces the file at `path` with `text`: creates its directory if missing, writes a
/// temporary file beside it and renames it over, so a reader sees the old or the new
/// file, never a part.
///
/// The temporary file has a fresh random name (`.loncstatus.txt.<random>.tmp`) and is
/// created with `O_CREAT | O_EXCL | O_NOFOLLOW`, so nothing planted in the directory
/// (a symlink at a guessed name, say) is ever opened; the rename replaces whatever is
/// at `path`, a symlink included, without following it.
pub fn write_status(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .make_in(dir, |tmp_path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(STATUS_MODE)
                .custom_flags(OFlag::O_NOFOLLOW.bits())
                .open(tmp_path)
        })?;
    // On any error below, dropping `tmp` removes the temporary file.
    tmp.as_file_mut().write_all(text.as_bytes())?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn line(pid: u32, peer: &str, status: &str, last: &str) -> PeerStatusLine {
        PeerStatusLine {
            pid,
            peer: peer.into(),
            status: status.into(),
            last_log: last.into(),
        }
    }

    #[test]
    fn text_format() {
        let text = status_text(
            "Wed Mar 20 03:44:11 2002",
            77,
            &[
                line(
                    77,
                    "msul1",
                    "connected",
                    "Wed Mar 20 03:44:10 2002: link up",
                ),
                line(77, "msul3", "dead", ""),
            ],
        );
        assert_eq!(
            text,
            "LONC status Wed Mar 20 03:44:11 2002 - parent 77\n\n\
             77\tmsul1\tconnected\tWed Mar 20 03:44:10 2002: link up\n\
             77\tmsul3\tdead\t\n"
        );
        assert_eq!(status_text("T", 1, &[]), "LONC status T - parent 1\n\n");
    }

    #[test]
    fn fields_cannot_break_lines() {
        let text = status_text("T", 1, &[line(1, "a\tb", "x\ny", "m\r\n\tz")]);
        assert_eq!(text, "LONC status T - parent 1\n\n1\ta b\tx y\tm   z\n");
    }

    proptest::proptest! {
        #[test]
        fn one_line_per_peer_four_fields(
            peers in proptest::collection::vec(("\\PC*", "(\\PC|[\t\r\n])*", "(\\PC|[\t\r\n])*"), 0..8),
        ) {
            let peers: Vec<PeerStatusLine> =
                peers.iter().map(|(p, s, l)| line(9, p, s, l)).collect();
            let text = status_text("T", 9, &peers);
            let lines: Vec<&str> = text.split('\n').collect();
            // Header, blank line, one line per peer, and the empty rest after the last LF.
            proptest::prop_assert_eq!(lines.len(), peers.len() + 3);
            proptest::prop_assert_eq!(lines[1], "");
            proptest::prop_assert_eq!(*lines.last().unwrap(), "");
            for l in &lines[2..lines.len() - 1] {
                proptest::prop_assert_eq!(l.split('\t').count(), 4);
                proptest::prop_assert!(!l.contains('\r'));
            }
        }
    }

    #[test]
    fn write_creates_dir_and_replaces() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("html/lon-status/loncstatus.txt");
        write_status(&path, "one\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "one\n");
        write_status(&path, "two\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["loncstatus.txt"]);
    }

    /// Item 5: a symlink planted at the old predictable temporary name
    /// (`.loncstatus.txt.<pid>.tmp`) or at the status file's own path is never followed:
    /// the status file becomes a regular file and the links' targets keep their content.
    #[test]
    fn status_write_follows_no_planted_symlink() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("loncstatus.txt");
        let tmp_target = dir.path().join("tmp-target");
        let status_target = dir.path().join("status-target");
        fs::write(&tmp_target, "keep tmp\n").unwrap();
        fs::write(&status_target, "keep status\n").unwrap();
        let old_tmp = dir
            .path()
            .join(format!(".loncstatus.txt.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&tmp_target, &old_tmp).unwrap();
        std::os::unix::fs::symlink(&status_target, &path).unwrap();
        write_status(&path, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&tmp_target).unwrap(), "keep tmp\n");
        assert_eq!(fs::read_to_string(&status_target).unwrap(), "keep status\n");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "{meta:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(fs::read_link(&old_tmp).unwrap(), tmp_target);
        // Readable by the web server, like the file it replaces.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o644, 0o644);
    }

    #[test]
    fn write_errors_are_reported_and_clean() {
        let dir = TempDir::new().unwrap();
        // The target is a non-empty directory: rename fails.
        let path = dir.path().join("loncstatus.txt");
        fs::create_dir_all(path.join("x")).unwrap();
        assert!(write_status(&path, "x").is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["loncstatus.txt"]);
        // A file where the directory should be.
        let file = dir.path().join("f");
        fs::write(&file, "").unwrap();
        assert!(write_status(&file.join("s.txt"), "x").is_err());
        assert!(write_status(Path::new("/"), "x").is_err());
    }
}
