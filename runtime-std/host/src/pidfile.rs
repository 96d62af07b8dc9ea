//! The pid file `lonDaemons/logs/lonc.pid` (PROTOCOL.md section 9): `<pid>\n`, held
//! under an exclusive `flock` for the daemon's life. The lock, not the pid, says
//! "already running": a file nobody holds locked is stale whatever pid it names (after a
//! reboot that pid may well be alive, and unrelated) and is taken over. Never followed
//! through a symlink; removed when the daemon stops.
//!
//! The daemon must create it *after* detaching ([`crate::process::daemonize`]), so the
//! pid written is the one that stays.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::nofollow::open_nofollow;

/// The longest pid file read: a pid is at most 10 digits; anything much longer is garbage.
const MAX_PID_FILE: u64 = 64;

/// How often [`PidFile::create`] retries when the file it locked was replaced meanwhile.
const LOCK_RETRIES: usize = 20;

/// How long [`PidFile::create`] keeps trying a lock held by someone else before saying
/// "already running": a [`lock_holder`] probe (`lonc status`) holds it for an instant.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Why the pid file could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidError {
    /// Another process holds the file's lock.
    #[error("{}", already_running(*pid, path))]
    AlreadyRunning {
        /// Its pid (0 if it holds the lock but has not written its pid yet).
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
    /// The file or its directory could not be created, locked or written.
    #[error("cannot create pid file {}: {source}", path.display())]
    Io {
        /// The pid file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn already_running(pid: i32, path: &Path) -> String {
    if pid > 0 {
        format!(
            "already running as pid {pid} (it holds the lock on the pid file {}); stop it \
             first",
            path.display()
        )
    } else {
        format!(
            "already running: another process holds the lock on the pid file {}",
            path.display()
        )
    }
}

/// The pid file of this process, locked. Dropping it removes the file if it still holds
/// this process's pid, then releases the lock.
#[derive(Debug)]
pub struct PidFile {
    /// The path it was created at.
    path: PathBuf,
    /// The open file, locked (`flock`, exclusive) until dropped; `None` only while
    /// dropping.
    file: Option<Flock<File>>,
    /// The pid last written.
    pid: u32,
}

/// True if a process with this pid exists (signal 0 succeeds, or fails only for lack of
/// permission). Pids below 1 are never alive (they name process groups).
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
}

/// Parses a pid file's content: the first line, trimmed, a decimal number above 0.
fn parse_pid(content: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(content).ok()?;
    let first = text.lines().next()?.trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    first.parse::<i32>().ok().filter(|&p| p > 0)
}

fn read_pid_from(file: &mut File) -> io::Result<Option<i32>> {
    file.seek(SeekFrom::Start(0))?;
    let mut content = Vec::new();
    file.take(MAX_PID_FILE).read_to_end(&mut content)?;
    Ok(parse_pid(&content))
}

/// The pid in the file at `path`, if it exists and holds one (for `status`).
pub fn read_pid(path: &Path) -> Option<i32> {
    let mut file = open_existing(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    read_pid_from(&mut file).ok().flatten()
}

/// Opens an existing file for reading without following a symlink or blocking on a FIFO.
fn open_existing(path: &Path) -> io::Result<File> {
    open_nofollow(OpenOptions::new().read(true), path)
}

/// True if `path` still names the same file as `file` (the lock holder may have removed
/// it, or a newer holder replaced it, between our open and our lock).
fn same_file(path: &Path, file: &File) -> io::Result<bool> {
    let open = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == open.dev() && now.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces the content of `file` with `<pid>\n`: the new content is written over the
/// old before the file is cut to length, so a reader never sees an empty file.
fn write_pid(file: &mut File, pid: u32) -> io::Result<()> {
    let text = format!("{pid}\n");
    file.seek(SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.set_len(text.len() as u64)?;
    file.sync_data()
}

impl PidFile {
    /// Takes the pid file at `path`, creating its directory if missing, and writes this
    /// process's pid into it.
    ///
    /// Fails with [`PidError::AlreadyRunning`] if another process holds its lock. A file
    /// nobody holds locked is overwritten, whatever it says: the pid in it may be alive
    /// and unrelated (pids are reused after a reboot). A symlink at `path` is refused,
    /// not followed; so is a file with other hard links.
    pub fn create(path: &Path) -> Result<PidFile, PidError> {
        let io_err = |source: io::Error| PidError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        let me = std::process::id();
        for _ in 0..LOCK_RETRIES {
            let file = open_nofollow(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644),
                path,
            )
            .map_err(io_err)?;
            let meta = file.metadata().map_err(io_err)?;
            if !meta.is_file() {
                return Err(io_err(io::Error::other("not a regular file")));
            }
            // Writing the pid would overwrite the file another name shares.
            if meta.nlink() > 1 {
                return Err(io_err(io::Error::other(
                    "it has other hard links, so it is not lonc's own file: remove it",
                )));
            }
            let mut file = match lock_exclusive(file) {
                Ok(locked) => locked,
                Err((mut file, Errno::EWOULDBLOCK)) => {
                    let pid = holder_pid(&mut file);
                    return Err(PidError::AlreadyRunning {
                        pid,
                        path: path.to_owned(),
                    });
                }
                Err((_, errno)) => return Err(io_err(errno.into())),
            };
            match claim(path, &mut file, me) {
                Ok(true) => {
                    return Ok(PidFile {
                        path: path.to_owned(),
                        file: Some(file),
                        pid: me,
                    });
                }
                // Locked a file its holder removed (or replaced) meanwhile: start again.
                Ok(false) => release(file),
                Err(e) => {
                    release(file);
                    return Err(e);
                }
            }
        }
        Err(io_err(io::Error::other(
            "the file keeps being replaced by another process",
        )))
    }

    /// The path of the pid file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid last written to the file.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// With the lock on `file` held: checks that `path` still names it (`Ok(false)` if not),
/// then writes `me` into it. Whatever pid the file held is stale: its writer would still
/// hold the lock.
fn claim(path: &Path, file: &mut File, me: u32) -> Result<bool, PidError> {
    let io_err = |source: io::Error| PidError::Io {
        path: path.to_owned(),
        source,
    };
    if !same_file(path, file).map_err(io_err)? {
        return Ok(false);
    }
    write_pid(file, me).map_err(io_err)?;
    Ok(true)
}

/// Unlocks and closes `file` without the panic `Flock`'s own drop has when unlocking
/// fails; in that (unheard-of) case the descriptor, and the lock, live until the
/// process exits.
fn release(file: Flock<File>) {
    if let Err((guard, _)) = file.unlock() {
        std::mem::forget(guard);
    }
}

/// Takes the exclusive lock on `file` without blocking, trying again for [`BUSY_WAIT`]
/// while someone else holds it (a passing [`lock_holder`] probe lets go at once; a
/// running daemon does not).
fn lock_exclusive(file: File) -> Result<Flock<File>, (File, Errno)> {
    let deadline = std::time::Instant::now() + BUSY_WAIT;
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Err((f, Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Who runs, according to the pid file at `path`: `Some(pid)` of the process that holds
/// its lock (0 if it has not written its pid yet), `None` if nobody holds it (no file,
/// not a regular file, a symlink, or a stale file whatever pid it names). The probe
/// takes a shared lock for an instant when the file is free.
pub fn lock_holder(path: &Path) -> Option<i32> {
    let file = open_existing(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(locked) => {
            release(locked);
            None
        }
        Err((mut file, Errno::EWOULDBLOCK)) => Some(holder_pid(&mut file)),
        Err(_) => None,
    }
}

/// The pid written by whoever holds the lock; it may still be writing it, so a few short
/// waits are allowed. 0 if none appears.
fn holder_pid(file: &mut File) -> i32 {
    for _ in 0..5 {
        if let Ok(Some(pid)) = read_pid_from(file) {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    0
}

impl Drop for PidFile {
    /// Removes the file if it is still ours and still holds this process's pid; the lock
    /// is released afterwards (when the file closes), so a daemon starting meanwhile
    /// notices the removal and retries.
    fn drop(&mut self) {
        let Some(mut file) = self.file.take() else {
            return;
        };
        let me = std::process::id();
        let ours = same_file(&self.path, &file).unwrap_or(false);
        let holds_me = read_pid_from(&mut file).ok().flatten() == Some(me as i32);
        if ours && holds_me {
            let _ = fs::remove_file(&self.path);
        }
        release(file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use tempfile::TempDir;

    fn me() -> i32 {
        std::process::id() as i32
    }

    /// A pid that is certainly dead: a child that has exited and been reaped.
    fn dead_pid() -> i32 {
        let mut child = Command::new("true").stdin(Stdio::null()).spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    #[test]
    fn parse_pid_accepts_only_positive_decimals() {
        assert_eq!(parse_pid(b"123\n"), Some(123));
        assert_eq!(parse_pid(b"  42  \nextra"), Some(42));
        assert_eq!(parse_pid(b"7"), Some(7));
        for bad in [
            &b""[..],
            b"\n",
            b"0\n",
            b"-1\n",
            b"+5\n",
            b"12a\n",
            b"99999999999\n",
            b"\xff\n",
            b"1 2\n",
        ] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn is_alive_for_self_dead_and_nonsense() {
        assert!(is_alive(me()));
        assert!(!is_alive(dead_pid()));
        assert!(!is_alive(0));
        assert!(!is_alive(-1));
        assert!(!is_alive(i32::MIN));
    }

    #[test]
    fn create_writes_pid_in_new_dir_and_drop_removes() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("logs/sub/lonc.pid");
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", me()));
        assert_eq!(read_pid(&path), Some(me()));
        assert_eq!(pf.path(), path);
        assert_eq!(pf.pid(), me() as u32);
        drop(pf);
        assert!(!path.exists());
        assert_eq!(read_pid(&path), None);
    }

    /// Item 9: the lock decides, not `kill(pid, 0)`: a live but unrelated pid (1, as
    /// after a reboot) in a file nobody holds locked is stale, and the file is taken.
    #[test]
    fn unrelated_live_pid_is_stale_when_the_lock_is_free() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("lonc.pid");
        // pid 1 is alive (init).
        assert!(is_alive(1));
        fs::write(&path, "1\n").unwrap();
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", me()));
        drop(pf);
        assert!(!path.exists());
    }

    /// Item 5: a symlink at the pid file's path is refused with an error saying so, and
    /// neither followed nor removed.
    #[test]
    fn symlink_pid_file_is_refused_clearly() {
        let dir = TempDir::new().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "keep\n").unwrap();
        let link = dir.path().join("lonc.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = PidFile::create(&link).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("lonc.pid") && msg.contains("is a symbolic link"),
            "{msg}"
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A dangling link too (O_CREAT would create its target if it were followed).
        let missing = dir.path().join("missing");
        let dangling = dir.path().join("dangling.pid");
        std::os::unix::fs::symlink(&missing, &dangling).unwrap();
        let msg = PidFile::create(&dangling).unwrap_err().to_string();
        assert!(msg.contains("is a symbolic link"), "{msg}");
        assert!(!missing.exists());
    }

    #[test]
    fn locked_file_means_already_running() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("lonc.pid");
        let first = PidFile::create(&path).unwrap();
        // The same process may not take it twice: the lock is per open file.
        let err = PidFile::create(&path).unwrap_err();
        assert!(
            matches!(err, PidError::AlreadyRunning { pid, .. } if pid == me()),
            "{err:?}"
        );
        // The failed attempt did not remove the file.
        assert_eq!(read_pid(&path), Some(me()));
        drop(first);
        assert!(!path.exists());
        let again = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(&path), Some(me()));
        drop(again);
    }

    #[test]
    fn stale_and_garbage_files_are_replaced() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("lonc.pid");
        for old in [
            format!("{}\n", dead_pid()),
            "garbage\n".to_owned(),
            String::new(),
            "0\n".to_owned(),
            "-1\n".to_owned(),
            "x".repeat(10_000),
            format!("{}\n", me()),
        ] {
            fs::write(&path, &old).unwrap();
            let pf = PidFile::create(&path).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", me()));
            drop(pf);
            assert!(!path.exists());
        }
    }

    /// Item 9: the lock tells who runs: nobody for a missing, stale or linked file, the
    /// holder's pid for a held one; a probe does not stop a daemon from starting.
    #[test]
    fn lock_holder_follows_the_lock_not_the_pid() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("lonc.pid");
        assert_eq!(lock_holder(&path), None);
        fs::write(&path, "1\n").unwrap();
        assert_eq!(lock_holder(&path), None);
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(lock_holder(&path), Some(me()));
        drop(pf);
        assert_eq!(lock_holder(&path), None);
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(lock_holder(&link), None);
        // Probing while a daemon starts does not make it fail.
        fs::write(&path, "1\n").unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    lock_holder(&path);
                }
            });
            for _ in 0..20 {
                drop(PidFile::create(&path).unwrap());
                fs::write(&path, "1\n").unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }

    /// Item 5: a hard link planted at the pid file's path (another file of the daemon's
    /// user) is refused, not overwritten.
    #[test]
    fn hard_linked_pid_file_is_refused() {
        let dir = TempDir::new().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "keep\n").unwrap();
        let path = dir.path().join("lonc.pid");
        fs::hard_link(&target, &path).unwrap();
        let err = PidFile::create(&path).unwrap_err();
        assert!(err.to_string().contains("hard link"), "{err}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
    }

    #[test]
    fn drop_leaves_a_file_holding_another_pid() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("lonc.pid");
        let pf = PidFile::create(&path).unwrap();
        fs::write(&path, "1\n").unwrap(); // same inode, other content
        drop(pf);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n");
    }

    #[test]
    fn drop_leaves_a_replaced_file() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("lonc.pid");
        let pf = PidFile::create(&path).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, format!("{}\n", me())).unwrap(); // a new inode
        drop(pf);
        assert!(path.exists());
    }

    #[test]
    fn unusable_paths_are_io_errors() {
        let dir = TempDir::new().unwrap();
        // A directory where the file should be.
        let d = dir.path().join("lonc.pid");
        fs::create_dir(&d).unwrap();
        assert!(matches!(PidFile::create(&d), Err(PidError::Io { .. })));
        assert_eq!(read_pid(&d), None);
        // A symlink is not followed.
        let target = dir.path().join("target");
        fs::write(&target, "").unwrap();
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = PidFile::create(&link).unwrap_err();
        assert!(matches!(err, PidError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("link.pid"), "{err}");
        // A file where the directory should be.
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(matches!(
            PidFile::create(&file.join("lonc.pid")),
            Err(PidError::Io { .. })
        ));
    }

    #[test]
    fn racing_creators_get_one_pid_file() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("logs/lonc.pid");
        for _ in 0..5 {
            let barrier = std::sync::Barrier::new(8);
            let results: Vec<Result<PidFile, PidError>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            PidFile::create(&path)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let ok = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(ok, 1, "{results:?}");
            assert!(
                results
                    .iter()
                    .all(|r| matches!(r, Ok(_) | Err(PidError::AlreadyRunning { .. })))
            );
            drop(results);
            assert!(!path.exists());
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_pid_never_panics(content in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Some(pid) = parse_pid(&content) {
                proptest::prop_assert!(pid > 0);
            }
        }
    }

    #[test]
    fn read_pid_of_missing_or_garbage_file() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("lonc.pid");
        assert_eq!(read_pid(&path), None);
        fs::write(&path, "abc\n").unwrap();
        assert_eq!(read_pid(&path), None);
        fs::write(&path, "4242\n").unwrap();
        assert_eq!(read_pid(&path), Some(4242));
    }
}
