//! Process setup (PROTOCOL.md section 9): checking the user the daemon runs as,
//! detaching from the terminal, raising the open-file limit, and signalling a running
//! daemon.

use std::io;

use nix::fcntl::{OFlag, open};
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid, Uid, User, chdir, fork, geteuid, setsid};

use crate::cli::program_name;

/// A uid with its user name when it has one: `www (uid 33)` or `uid 1234`.
fn who(uid: Uid) -> String {
    match User::from_uid(uid) {
        Ok(Some(user)) => format!("{} (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// Checks that the process runs as the user `name` (its effective uid is that user's);
/// otherwise says which user is wanted and which one this is, or that `name` does not
/// exist.
pub fn check_user(name: &str) -> Result<(), String> {
    let user = match User::from_name(name) {
        Ok(Some(user)) => user,
        Ok(None) => {
            return Err(format!(
                "user {name} does not exist (see loncUser or --user)"
            ));
        }
        Err(e) => return Err(format!("cannot look up user {name}: {e}")),
    };
    let me = geteuid();
    if me == user.uid {
        Ok(())
    } else {
        Err(format!(
            "must run as user {name} (uid {}), but runs as {}; start it as {name} or name \
             another user with --user",
            user.uid,
            who(me)
        ))
    }
}

/// The detached child's line back to the parent, which waits for it: the parent exits 0
/// once the daemon says it is ready, or 1 with the daemon's message if it failed to
/// start (so failures after detaching are not lost in `/dev/null`).
#[derive(Debug)]
pub struct Detached {
    pipe: std::io::PipeWriter,
}

impl Detached {
    /// Startup is complete: the parent exits 0.
    pub fn ready(mut self) {
        use std::io::Write;
        let _ = self.pipe.write_all(b"OK\n");
    }

    /// Startup failed: the parent prints `message` on its stderr and exits 1.
    pub fn failed(mut self, message: &str) {
        use std::io::Write;
        let _ = self.pipe.write_all(format!("ERR {message}\n").as_bytes());
    }
}

/// Detaches from the terminal: forks, starts a new session, changes to `/` and points
/// stdin, stdout and stderr at `/dev/null`. The parent waits until the child reports
/// through the returned [`Detached`] (or dies), then exits with 0 or 1.
///
/// Call it before any thread is started (signal listeners included): only the calling
/// thread survives a fork. Create the pid file afterwards, so it holds the final pid.
pub fn daemonize() -> io::Result<Detached> {
    use std::io::{Read, Write};
    // Whatever the parent buffered must not be written twice.
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let devnull = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    let (mut reader, writer) = std::io::pipe()?;
    // SAFETY: the caller guarantees no other thread runs, so the child may use any
    // function, not only async-signal-safe ones.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => {
            drop(writer);
            let mut said = String::new();
            let _ = reader.read_to_string(&mut said);
            if said.starts_with("OK") {
                std::process::exit(0);
            }
            match said.strip_prefix("ERR ") {
                Some(msg) => eprintln!("{}: {}", program_name(), msg.trim_end()),
                None => eprintln!(
                    "{}: the daemon exited during startup (see its log)",
                    program_name()
                ),
            }
            std::process::exit(1);
        }
        ForkResult::Child => {}
    }
    drop(reader);
    setsid()?;
    chdir("/")?;
    nix::unistd::dup2_stdin(&devnull)?;
    nix::unistd::dup2_stdout(&devnull)?;
    nix::unistd::dup2_stderr(&devnull)?;
    Ok(Detached { pipe: writer })
}

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit and returns
/// the soft limit now in force. An unlimited hard limit, which Linux does not accept as a
/// soft limit, is capped at `/proc/sys/fs/nr_open` (or 1048576).
// `rlim_t` is `u64` on Linux and macOS but not everywhere (`i64` on the BSDs).
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile_limit() -> Result<u64, String> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(NOFILE): {e}"))?;
    if soft == hard {
        return Ok(soft as u64);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Ok(hard as u64),
        Err(first) => {
            if hard != RLIM_INFINITY {
                return Err(format!("setrlimit(NOFILE, {hard}): {first}"));
            }
            let cap = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1_048_576);
            if cap <= soft {
                return Ok(soft as u64);
            }
            setrlimit(Resource::RLIMIT_NOFILE, cap, hard)
                .map(|()| cap as u64)
                .map_err(|e| format!("setrlimit(NOFILE, {cap}): {e}"))
        }
    }
}

/// Sends `sig` to the process `pid`. Pids below 1 (process groups, "every process") are
/// refused with [`io::ErrorKind::InvalidInput`].
pub fn send_signal(pid: i32, sig: Signal) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid {pid}"),
        ));
    }
    kill(Pid::from_raw(pid), sig).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn current_user() -> String {
        User::from_uid(geteuid()).unwrap().unwrap().name
    }

    #[test]
    fn check_user_accepts_the_current_user() {
        assert_eq!(check_user(&current_user()), Ok(()));
    }

    #[test]
    fn check_user_names_both_users() {
        let me = current_user();
        // root if we are not root, else some other account that exists.
        let other = if geteuid().is_root() {
            ["nobody", "daemon", "bin"]
                .into_iter()
                .find(|n| matches!(User::from_name(n), Ok(Some(_))))
                .map(str::to_owned)
        } else {
            Some("root".to_owned())
        };
        if let Some(other) = other {
            let err = check_user(&other).unwrap_err();
            assert!(err.contains(&format!("must run as user {other}")), "{err}");
            assert!(err.contains(&me), "{err}");
        }
    }

    #[test]
    fn check_user_of_a_missing_user() {
        let err = check_user("no-such-user-lonc-test").unwrap_err();
        assert!(
            err.contains("no-such-user-lonc-test does not exist"),
            "{err}"
        );
        assert!(check_user("").is_err());
        assert!(check_user("a\0b").is_err());
    }

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn raise_nofile_limit_reaches_the_hard_limit() {
        let limit = raise_nofile_limit().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(limit, soft as u64);
        assert!(soft == hard || hard == RLIM_INFINITY);
        // Idempotent.
        assert_eq!(raise_nofile_limit().unwrap(), limit);
    }

    #[test]
    fn send_signal_to_a_child_and_to_nonsense() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        send_signal(child.id() as i32, Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        // Now reaped: no such process.
        let err = send_signal(child.id() as i32, Signal::SIGTERM).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ESRCH));
        for pid in [0, -1, i32::MIN] {
            let err = send_signal(pid, Signal::SIGTERM).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
