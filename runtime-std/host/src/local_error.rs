//! Local resource errors, for both runtimes (PROTOCOL.md section 7): which errors are the
//! daemon's own shortage rather than a peer's failure ([`is_local_resource_error`]), and
//! the daemon-wide latch that logs a shortage once as CRITICAL, with the limit behind it
//! ([`alarm`]), however many peers and clients run into it.

use std::fmt;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lonc_core::io::Severity;
use nix::libc;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};

use crate::fd_reserve::ReserveReached;
use crate::logfile::{LogFiles, PARENT};

/// What the daemon ran short of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// Its own open files (`EMFILE`, or the reserve kept for clients reached).
    Descriptors,
    /// The system's open files (`ENFILE`).
    SystemFiles,
    /// Memory or socket buffers (`ENOMEM`, `ENOBUFS`).
    Memory,
    /// Threads (a failed thread spawn).
    Threads,
}

impl Shortage {
    fn index(self) -> usize {
        self as usize
    }
}

/// What `e` ran short of, if it is a local resource error.
pub fn shortage(e: &io::Error) -> Option<Shortage> {
    if e.get_ref()
        .is_some_and(|inner| inner.is::<ReserveReached>())
    {
        return Some(Shortage::Descriptors);
    }
    match e.raw_os_error() {
        Some(libc::EMFILE) => Some(Shortage::Descriptors),
        Some(libc::ENFILE) => Some(Shortage::SystemFiles),
        Some(libc::ENOMEM | libc::ENOBUFS) => Some(Shortage::Memory),
        _ if e.kind() == io::ErrorKind::OutOfMemory => Some(Shortage::Memory),
        _ => None,
    }
}

/// Whether `e` is the daemon's own shortage (out of file descriptors, of the system's
/// files, of memory or socket buffers) rather than something the peer or the network did:
/// such an error never counts as a failed attempt.
pub fn is_local_resource_error(e: &io::Error) -> bool {
    shortage(e).is_some()
}

/// An episode ends once no error of its kind was seen for this long; the next one logs
/// again.
pub const QUIET: Duration = Duration::from_secs(60);
/// While an episode lasts, its line is repeated (with a count) at most this often.
pub const REMIND: Duration = Duration::from_secs(600);

/// One shortage that goes on.
#[derive(Debug, Clone, Copy)]
struct Episode {
    last_seen: Instant,
    logged: Instant,
    /// Errors since the last line.
    since_logged: u64,
}

/// Whether a line is due for an error, and how many errors the previous line did not
/// tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The first error of an episode.
    First,
    /// A reminder: the episode goes on; this many errors came since the last line.
    Again(u64),
}

/// The latch of each [`Shortage`]: the first error of an episode is logged, later ones
/// only as a reminder every [`REMIND`]; an episode ends after [`QUIET`] without error.
#[derive(Debug, Default)]
pub struct ResourceAlarm {
    episodes: Mutex<[Option<Episode>; 4]>,
}

impl ResourceAlarm {
    /// A latch with no episode going on.
    pub const fn new() -> Self {
        ResourceAlarm {
            episodes: Mutex::new([None; 4]),
        }
    }

    /// Notes one error of `kind` at `now`; whether a line is due.
    pub fn note(&self, now: Instant, kind: Shortage) -> Option<Due> {
        let mut episodes = self.episodes.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut episodes[kind.index()];
        match slot {
            Some(ep) if now.saturating_duration_since(ep.last_seen) < QUIET => {
                ep.last_seen = now;
                ep.since_logged += 1;
                if now.saturating_duration_since(ep.logged) >= REMIND {
                    let n = ep.since_logged;
                    ep.logged = now;
                    ep.since_logged = 0;
                    Some(Due::Again(n))
                } else {
                    None
                }
            }
            _ => {
                *slot = Some(Episode {
                    last_seen: now,
                    logged: now,
                    since_logged: 0,
                });
                Some(Due::First)
            }
        }
    }

    /// Notes the local resource error `e` met while `doing` (like `accepting a client`),
    /// and logs it as CRITICAL under `PARENT` when a line is due. An error that is not a
    /// local resource error is ignored.
    pub fn report(&self, logs: &LogFiles, doing: &str, e: &io::Error) {
        if let Some(kind) = shortage(e) {
            self.report_kind(logs, kind, doing, e);
        }
    }

    /// [`ResourceAlarm::report`] for a thread that could not be started.
    pub fn report_thread(&self, logs: &LogFiles, doing: &str, e: &io::Error) {
        self.report_kind(logs, Shortage::Threads, doing, e);
    }

    fn report_kind(&self, logs: &LogFiles, kind: Shortage, doing: &str, e: &io::Error) {
        if let Some(due) = self.note(Instant::now(), kind) {
            logs.log(PARENT, Severity::Critical, &line(kind, due, doing, e));
        }
    }
}

/// The daemon's one latch (a shortage is the whole process's, whichever peer meets it).
pub fn alarm() -> &'static ResourceAlarm {
    static ALARM: ResourceAlarm = ResourceAlarm::new();
    &ALARM
}

/// A resource limit as text.
struct Limit(Option<u64>);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) if n != RLIM_INFINITY => write!(f, "{n}"),
            Some(_) => f.write_str("unlimited"),
            None => f.write_str("unknown"),
        }
    }
}

fn soft_limit(resource: Resource) -> Limit {
    Limit(getrlimit(resource).ok().map(|(soft, _)| soft))
}

fn sysctl(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The CRITICAL line for a shortage: what ran out and its limit, what the daemon was
/// doing, and what follows.
fn line(kind: Shortage, due: Due, doing: &str, e: &io::Error) -> String {
    let what = match kind {
        Shortage::Descriptors => format!(
            "out of file descriptors (limit {} by RLIMIT_NOFILE)",
            soft_limit(Resource::RLIMIT_NOFILE)
        ),
        Shortage::SystemFiles => format!(
            "the system is out of file descriptors (fs.file-max {})",
            sysctl("/proc/sys/fs/file-max")
        ),
        Shortage::Memory => "out of memory".to_owned(),
        Shortage::Threads => format!(
            "out of threads (limit {} by RLIMIT_NPROC, kernel.threads-max {})",
            soft_limit(Resource::RLIMIT_NPROC),
            sysctl("/proc/sys/kernel/threads-max")
        ),
    };
    let advice = match kind {
        Shortage::Descriptors => {
            "; raise `ulimit -n` (LimitNOFILE= in the unit) or serve fewer peers"
        }
        Shortage::Threads => {
            "; raise the limit or use lonc (one thread per core) instead of lonc-std"
        }
        Shortage::SystemFiles | Shortage::Memory => "",
    };
    match due {
        Due::First => format!(
            "{what}: {doing}: {e}; not the peers' fault: links and clients wait and are retried{advice}"
        ),
        Due::Again(n) => {
            format!("still {what}: {n} more times since the last report, last {doing}: {e}{advice}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_resource_errors_are_told_apart() {
        let os = io::Error::from_raw_os_error;
        for (errno, kind) in [
            (libc::EMFILE, Shortage::Descriptors),
            (libc::ENFILE, Shortage::SystemFiles),
            (libc::ENOMEM, Shortage::Memory),
            (libc::ENOBUFS, Shortage::Memory),
        ] {
            assert_eq!(shortage(&os(errno)), Some(kind), "errno {errno}");
            assert!(is_local_resource_error(&os(errno)));
        }
        for errno in [
            libc::ECONNREFUSED,
            libc::ETIMEDOUT,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::ECONNRESET,
            libc::EINVAL,
            libc::EAGAIN,
        ] {
            assert!(!is_local_resource_error(&os(errno)), "errno {errno}");
        }
        assert!(is_local_resource_error(&io::Error::from(
            io::ErrorKind::OutOfMemory
        )));
        assert!(!is_local_resource_error(&io::Error::other("no address")));
        let reserve = ReserveReached {
            lowest_free: 60,
            limit: 64,
            reserve: 8,
        };
        assert_eq!(
            shortage(&io::Error::other(reserve)),
            Some(Shortage::Descriptors)
        );
        // As fd_reserve makes it for a link over the reserve.
        let err = crate::fd_reserve::check_fd(1020, 1024).unwrap_err();
        assert!(is_local_resource_error(&err));
    }

    #[test]
    fn the_alarm_logs_once_per_episode_and_reminds() {
        let alarm = ResourceAlarm::new();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(alarm.note(t0, Shortage::Descriptors), Some(Due::First));
        // Every peer and client meets it, again and again: no more lines.
        for i in 1..REMIND.as_secs() {
            assert_eq!(alarm.note(t0 + s(i), Shortage::Descriptors), None);
        }
        // Another shortage is its own episode.
        assert_eq!(alarm.note(t0 + s(500), Shortage::Threads), Some(Due::First));
        // Still going on after REMIND: one reminder, counting the errors not logged and
        // this one.
        assert_eq!(
            alarm.note(t0 + REMIND, Shortage::Descriptors),
            Some(Due::Again(REMIND.as_secs()))
        );
        assert_eq!(alarm.note(t0 + REMIND + s(1), Shortage::Descriptors), None);
        // Quiet for QUIET: the episode is over, the next error starts a new one.
        let later = t0 + REMIND + s(1) + QUIET;
        assert_eq!(alarm.note(later, Shortage::Descriptors), Some(Due::First));
        assert_eq!(alarm.note(later + s(1), Shortage::Descriptors), None);
    }

    #[test]
    fn the_line_says_what_ran_out_and_the_limit() {
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        let text = line(Shortage::Descriptors, Due::First, "accepting a client", &e);
        let limit = getrlimit(Resource::RLIMIT_NOFILE).unwrap().0;
        assert!(
            text.starts_with(&format!(
                "out of file descriptors (limit {limit} by RLIMIT_NOFILE): accepting a client: "
            )),
            "{text}"
        );
        assert!(text.contains("ulimit -n"), "{text}");
        let text = line(Shortage::Threads, Due::Again(7), "connecting", &e);
        assert!(text.starts_with("still out of threads (limit "), "{text}");
        assert!(text.contains("7 more times"), "{text}");
    }
}
