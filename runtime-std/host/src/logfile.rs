//! The daemon's logs (PROTOCOL.md sections 8 and 9): `lonc.log`, one line per event
//! (`<localtime> (<pid>) [<peer or PARENT>] [<SEVERITY>]: <message>`), and
//! `lonnet.perm.log`, one `S` line per delayed message delivered; Perl-style local time
//! stamps; the last message of each peer for the status file; reopening on HUP. The files
//! are opened for append without following a symlink planted in their place.
//!
//! [`LogFiles`] is a cheap handle (`Clone + Send + Sync`) around a mutex: each write is
//! one short `write(2)`, so threads and async tasks alike may call it directly.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, TimeZone, Utc};
use lonc_core::delayed::PermLogEntry;
use lonc_core::io::Severity;

use crate::cli::program_name;
use crate::nofollow::open_nofollow;
use crate::paths::Paths;

/// The peer name of the daemon's own (supervisor) log lines.
pub const PARENT: &str = "PARENT";

/// `t` in the local time zone, as Perl's `scalar localtime` writes it:
/// `Wed Mar 20 03:44:11 2002` (day of month padded with a space to two characters).
pub fn localtime(t: SystemTime) -> String {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() == 0 {
                (-secs, 0)
            } else {
                (-secs - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    };
    // Out of chrono's range (hundreds of thousands of years away): the epoch instead.
    let utc = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default();
    perl_time(&utc.with_timezone(&Local))
}

/// `dt` formatted as Perl's `scalar localtime` does, in `dt`'s own time zone.
pub fn perl_time<Tz: TimeZone>(dt: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    dt.format("%a %b %e %H:%M:%S %Y").to_string()
}

/// One `lonc.log` line, LF included:
/// `<localtime> (<pid>) [<peer>] [<SEVERITY>]: <message>`. CR and LF inside the message
/// become spaces so one event is always one line; an empty peer is written as
/// [`PARENT`].
pub fn log_line(
    localtime: &str,
    pid: u32,
    peer: &str,
    severity: Severity,
    message: &str,
) -> String {
    let peer = if peer.is_empty() { PARENT } else { peer };
    format!(
        "{localtime} ({pid}) [{}] [{}]: {}\n",
        one_line(peer),
        severity.as_str(),
        one_line(message)
    )
}

/// `text` with CR and LF replaced by spaces.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Where the lines go.
#[derive(Debug)]
enum Sink {
    /// `lonc.log` and `lonnet.perm.log`, opened for appending.
    Files {
        /// `lonc.log`.
        log: File,
        /// `lonnet.perm.log`.
        perm: File,
    },
    /// Standard error, both kinds of line (before the config is read).
    Stderr,
}

#[derive(Debug)]
struct Inner {
    /// The files, or stderr.
    sink: Mutex<Sink>,
    /// The paths to (re)open; `None` for stderr.
    paths: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The last message of each peer: `<localtime>: <message>`, without tabs or line
    /// breaks.
    last: Mutex<HashMap<String, String>>,
    /// Whether a failed write was already reported on stderr (reset by a good reopen).
    reported: AtomicBool,
}

/// The daemon's two logs, shared by every peer; clones write to the same files.
#[derive(Debug, Clone)]
pub struct LogFiles {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The mode of a log file the daemon creates.
const LOG_MODE: u32 = 0o644;

/// Opens `path` for appending, creating it (and its directory) if missing. A symlink
/// planted at `path` is refused, not followed; so is anything but a regular file or a
/// character device (`/dev/null`). Errors name the file.
fn open_append(path: &std::path::Path) -> io::Result<File> {
    let named = |e: io::Error| {
        if e.to_string().contains(&*path.to_string_lossy()) {
            e
        } else {
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(named)?;
    }
    let file = open_nofollow(
        OpenOptions::new().create(true).append(true).mode(LOG_MODE),
        path,
    )
    .map_err(named)?;
    let kind = file.metadata().map_err(named)?.file_type();
    if !(kind.is_file() || kind.is_char_device()) {
        return Err(named(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok(file)
}

impl LogFiles {
    /// Opens `lonc.log` and `lonnet.perm.log` for appending, creating their directory
    /// (`lonDaemons/logs`) if missing. A symlink planted at either path is refused (an
    /// error naming it), never followed.
    pub fn open(paths: &Paths) -> io::Result<LogFiles> {
        let log = open_append(&paths.log_file)?;
        let perm = open_append(&paths.perm_log)?;
        Ok(LogFiles {
            inner: Arc::new(Inner {
                sink: Mutex::new(Sink::Files { log, perm }),
                paths: Some((paths.log_file.clone(), paths.perm_log.clone())),
                last: Mutex::new(HashMap::new()),
                reported: AtomicBool::new(false),
            }),
        })
    }

    /// Logs that write both kinds of line to standard error, in the same format: for
    /// before the config is read, and for the operator commands.
    pub fn stderr_only() -> LogFiles {
        LogFiles {
            inner: Arc::new(Inner {
                sink: Mutex::new(Sink::Stderr),
                paths: None,
                last: Mutex::new(HashMap::new()),
                reported: AtomicBool::new(false),
            }),
        }
    }

    /// Appends one line to `lonc.log` for `peer` (or [`PARENT`]) and remembers it as that
    /// peer's last message. Never fails: a write error is reported once on stderr and
    /// otherwise ignored.
    pub fn log(&self, peer: &str, severity: Severity, message: &str) {
        let now = localtime(SystemTime::now());
        let line = log_line(&now, std::process::id(), peer, severity, message);
        let peer_key = if peer.is_empty() { PARENT } else { peer };
        let last = format!("{now}: {}", message.replace(['\n', '\r', '\t'], " "));
        lock(&self.inner.last).insert(peer_key.to_owned(), last);
        self.write(line.as_bytes(), false);
    }

    /// Appends the `S` line of a delivered delayed message to `lonnet.perm.log`, stamped
    /// with the current time.
    pub fn perm_log(&self, entry: &PermLogEntry) {
        let now = SystemTime::now();
        let epoch = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line = entry.line(epoch, &localtime(now));
        self.write(&line, true);
    }

    fn write(&self, bytes: &[u8], perm: bool) {
        let result = {
            let mut sink = lock(&self.inner.sink);
            match &mut *sink {
                Sink::Files { log, perm: p } => {
                    let file = if perm { p } else { log };
                    file.write_all(bytes)
                }
                Sink::Stderr => io::stderr().lock().write_all(bytes),
            }
        };
        if let Err(e) = result
            && !self.inner.reported.swap(true, Ordering::Relaxed)
        {
            let which = if perm { "lonnet.perm.log" } else { "lonc.log" };
            let _ = writeln!(
                io::stderr(),
                "{}: cannot write to {which}: {e} (further errors not reported)",
                program_name()
            );
        }
    }

    /// Closes and reopens both files (after logrotate moved them; on HUP). On failure (a
    /// symlink planted at a path, say: it is not followed) the files already open stay
    /// in use. A no-op for [`LogFiles::stderr_only`].
    pub fn reopen(&self) -> io::Result<()> {
        let Some((log_path, perm_path)) = &self.inner.paths else {
            return Ok(());
        };
        let log = open_append(log_path)?;
        let perm = open_append(perm_path)?;
        *lock(&self.inner.sink) = Sink::Files { log, perm };
        self.inner.reported.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// The last message logged for `peer` (or [`PARENT`]), as `<localtime>: <message>`
    /// on one line without tabs, for the status file.
    pub fn last_line(&self, peer: &str) -> Option<String> {
        let peer = if peer.is_empty() { PARENT } else { peer };
        lock(&self.inner.last).get(peer).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use lonc_core::config::{LinkSettings, Settings};
    use std::time::Duration;
    use tempfile::TempDir;

    fn paths(dir: &std::path::Path) -> Paths {
        Paths::new(&Settings {
            host_id: "me".into(),
            tab_dir: dir.into(),
            sock_dir: dir.join("sock"),
            lond_port: 5663,
            daemons_dir: dir.join("daemons"),
            doc_root: dir.join("html"),
            user: "www".into(),
            link: LinkSettings::default(),
        })
    }

    #[test]
    fn perl_time_format() {
        let t = Utc.with_ymd_and_hms(2002, 3, 20, 3, 44, 11).unwrap();
        assert_eq!(perl_time(&t), "Wed Mar 20 03:44:11 2002");
        let t = Utc.with_ymd_and_hms(2024, 3, 3, 0, 0, 5).unwrap();
        assert_eq!(perl_time(&t), "Sun Mar  3 00:00:05 2024");
        let east = FixedOffset::east_opt(5 * 3600).unwrap();
        let t = Utc
            .with_ymd_and_hms(2001, 12, 31, 22, 30, 0)
            .unwrap()
            .with_timezone(&east);
        assert_eq!(perl_time(&t), "Tue Jan  1 03:30:00 2002");
    }

    #[test]
    fn localtime_uses_the_local_zone_and_never_panics() {
        let t = UNIX_EPOCH + Duration::from_secs(1_016_595_851);
        let want = perl_time(&Local.timestamp_opt(1_016_595_851, 0).unwrap());
        assert_eq!(localtime(t), want);
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::from_millis(1500),
            SystemTime::now(),
            UNIX_EPOCH + Duration::from_secs(u64::MAX / 4),
        ] {
            let s = localtime(t);
            assert!(s.len() >= 24, "{s}");
            assert_eq!(&s[3..4], " ", "{s}");
        }
    }

    #[test]
    fn log_line_format() {
        assert_eq!(
            log_line(
                "Wed Mar 20 03:44:11 2002",
                1234,
                "msul1",
                Severity::Warning,
                "two\nlines\r\n"
            ),
            "Wed Mar 20 03:44:11 2002 (1234) [msul1] [WARNING]: two lines  \n"
        );
        assert_eq!(
            log_line("T", 1, PARENT, Severity::Critical, "x"),
            "T (1) [PARENT] [CRITICAL]: x\n"
        );
        assert_eq!(
            log_line("T", 1, "", Severity::Info, ""),
            "T (1) [PARENT] [INFO]: \n"
        );
    }

    proptest::proptest! {
        #[test]
        fn one_event_is_one_line(peer in "\\PC*", message in "(\\PC|[\r\n])*") {
            for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
                let line = log_line("T", 7, &peer, sev, &message);
                proptest::prop_assert!(line.ends_with('\n'));
                proptest::prop_assert_eq!(line.matches(['\n', '\r']).count(), 1);
                let prefix = format!("T (7) [{}] [{}]: ", if peer.is_empty() { PARENT } else { &peer }, sev.as_str());
                proptest::prop_assert!(line.starts_with(&prefix));
            }
        }
    }

    #[test]
    fn open_creates_dir_and_appends() {
        let dir = TempDir::new().unwrap();
        let p = paths(dir.path());
        fs::create_dir_all(p.log_file.parent().unwrap()).unwrap();
        fs::write(&p.log_file, "old\n").unwrap();
        let logs = LogFiles::open(&p).unwrap();
        logs.log("msul1", Severity::Info, "link up");
        logs.clone().log(PARENT, Severity::Critical, "bad\nthing");
        let text = fs::read_to_string(&p.log_file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "old");
        let pid = std::process::id();
        assert!(
            lines[1].ends_with(&format!(" ({pid}) [msul1] [INFO]: link up")),
            "{text}"
        );
        assert!(
            lines[2].ends_with(&format!(" ({pid}) [PARENT] [CRITICAL]: bad thing")),
            "{text}"
        );
        assert!(p.perm_log.exists());
    }

    #[test]
    fn perm_log_lines() {
        let dir = TempDir::new().unwrap();
        let p = paths(dir.path());
        let logs = LogFiles::open(&p).unwrap();
        logs.perm_log(&PermLogEntry {
            peer: "msul1".into(),
            request: b"put:x".to_vec(),
        });
        let text = fs::read_to_string(&p.perm_log).unwrap();
        let (epoch, rest) = text.split_once(':').unwrap();
        let epoch: u64 = epoch.parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(epoch) < 10);
        assert!(rest.starts_with("S:msul1:put:x:"), "{text}");
        assert!(rest.ends_with('\n'));
        assert_eq!(text.lines().count(), 1);
        // Nothing went to lonc.log.
        assert_eq!(fs::read_to_string(&p.log_file).unwrap(), "");
    }

    #[test]
    fn last_line_per_peer() {
        let logs = LogFiles::stderr_only();
        assert_eq!(logs.last_line("a"), None);
        logs.log("a", Severity::Info, "first");
        logs.log("a", Severity::Warning, "second\twith\ttabs\nand lines");
        logs.log("b", Severity::Info, "other");
        logs.log("", Severity::Info, "parent");
        let a = logs.last_line("a").unwrap();
        assert!(a.ends_with(": second with tabs and lines"), "{a}");
        assert!(!a.contains(['\t', '\n']));
        assert!(logs.last_line("b").unwrap().ends_with(": other"));
        assert!(logs.last_line(PARENT).unwrap().ends_with(": parent"));
        assert!(logs.reopen().is_ok());
    }

    #[test]
    fn reopen_follows_a_rotated_file() {
        let dir = TempDir::new().unwrap();
        let p = paths(dir.path());
        let logs = LogFiles::open(&p).unwrap();
        logs.log(PARENT, Severity::Info, "before");
        let rotated = p.log_file.with_extension("log.1");
        fs::rename(&p.log_file, &rotated).unwrap();
        logs.log(PARENT, Severity::Info, "still old");
        logs.reopen().unwrap();
        logs.log(PARENT, Severity::Info, "after");
        let old = fs::read_to_string(&rotated).unwrap();
        let new = fs::read_to_string(&p.log_file).unwrap();
        assert_eq!(old.lines().count(), 2, "{old}");
        assert_eq!(new.lines().count(), 1, "{new}");
        assert!(new.contains("after"));
    }

    #[test]
    fn open_fails_cleanly_and_write_errors_do_not_panic() {
        let dir = TempDir::new().unwrap();
        let p = paths(dir.path());
        // A file where the logs directory should be.
        fs::create_dir_all(p.log_file.parent().unwrap().parent().unwrap()).unwrap();
        fs::write(p.log_file.parent().unwrap(), "").unwrap();
        assert!(LogFiles::open(&p).is_err());

        // Writes to /dev/full fail; they are reported once and ignored.
        if std::path::Path::new("/dev/full").exists() {
            let full = Paths {
                log_file: "/dev/full".into(),
                perm_log: "/dev/full".into(),
                ..p.clone()
            };
            let logs = LogFiles::open(&full).unwrap();
            logs.log(PARENT, Severity::Info, "lost");
            logs.log(PARENT, Severity::Info, "lost too");
            logs.perm_log(&PermLogEntry {
                peer: "x".into(),
                request: b"y".to_vec(),
            });
            assert!(logs.last_line(PARENT).unwrap().ends_with("lost too"));
        }
    }

    /// Item 5: a symlink planted at `lonc.log` or `lonnet.perm.log` is refused (an error
    /// naming the file), at open and at reopen, and never followed; after a refused
    /// reopen the files open before stay in use.
    #[test]
    fn log_symlinks_are_refused_not_followed() {
        let dir = TempDir::new().unwrap();
        let p = paths(dir.path());
        fs::create_dir_all(p.log_file.parent().unwrap()).unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "keep\n").unwrap();
        for link in [&p.log_file, &p.perm_log] {
            std::os::unix::fs::symlink(&target, link).unwrap();
            let err = LogFiles::open(&p).unwrap_err().to_string();
            let name = link.file_name().unwrap().to_string_lossy();
            assert!(
                err.contains(&*name) && err.contains("is a symbolic link"),
                "{err}"
            );
            assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
            fs::remove_file(link).unwrap();
        }
        let logs = LogFiles::open(&p).unwrap();
        let rotated = p.log_file.with_extension("log.1");
        fs::rename(&p.log_file, &rotated).unwrap();
        std::os::unix::fs::symlink(&target, &p.log_file).unwrap();
        let err = logs.reopen().unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        logs.log(PARENT, Severity::Info, "still here");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
        assert!(fs::read_to_string(&rotated).unwrap().contains("still here"));
    }

    #[test]
    fn logs_are_shared_across_threads() {
        let dir = TempDir::new().unwrap();
        let p = paths(dir.path());
        let logs = LogFiles::open(&p).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let logs = logs.clone();
                std::thread::spawn(move || {
                    for j in 0..50 {
                        logs.log(&format!("p{i}"), Severity::Info, &format!("m{j}"));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let text = fs::read_to_string(&p.log_file).unwrap();
        assert_eq!(text.lines().count(), 200);
        assert!(text.lines().all(|l| l.contains("[INFO]: m")));
    }
}
