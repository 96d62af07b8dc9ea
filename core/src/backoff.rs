//! Backoff and dead (PROTOCOL.md 6): how many connects or handshakes failed in a row, how
//! long to wait before the next one (drawn from `[retry_min, retry_max)` with the peer's
//! seeded generator), when the peer gives up until USR1, and the once-only report of a
//! local resource shortage, which is never the peer's fault. The retry deadline itself is
//! the peer's [`Timer::Retry`](crate::timer::Timer).

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::LinkSettings;
use crate::io::{LogEvent, Severity};

/// How long a peer waits before it tries to connect again after a local resource error
/// (EMFILE, ENFILE, ENOMEM): short, since the peer is not at fault.
pub const LOCAL_ERROR_RETRY: Duration = Duration::from_secs(1);

/// The failed-attempt count, the dead flag and the backoff randomness of one peer.
#[derive(Debug)]
pub(crate) struct Backoff {
    rng: SmallRng,
    attempts: u32,
    dead: bool,
    /// A local resource error was logged and no connection has opened since.
    local_error_logged: bool,
}

impl Backoff {
    /// A fresh count, with the backoff randomness drawn from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Backoff {
            rng: SmallRng::seed_from_u64(seed),
            attempts: 0,
            dead: false,
            local_error_logged: false,
        }
    }

    /// Consecutive failed attempts so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// True once `max_attempts` failed in a row, until revived or a handshake succeeds.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead
    }

    /// A connect or handshake failed because of `why`. `serving`: another connection is
    /// ready, so only the next extra connection waits, and the failure does not count
    /// toward `max_attempts` (the peer is reachable: only its own link's failures in a
    /// row can make it dead, each after its backoff). Returns how long to wait before the
    /// next attempt (`None`: the peer is now dead) and the line for `lonc.log`.
    pub(crate) fn failed(
        &mut self,
        settings: &LinkSettings,
        serving: bool,
        why: String,
    ) -> (Option<Duration>, LogEvent) {
        if serving {
            let wait = self.draw(settings);
            let message = format!(
                "{why}; extra connection retried in {:.1}s (another connection serves; not a failed attempt of the peer)",
                wait.as_secs_f64()
            );
            return (Some(wait), warning(message));
        }
        self.attempts += 1;
        if self.attempts >= settings.max_attempts {
            self.dead = true;
            let message = format!(
                "{why}; {} failed attempts, peer is dead until revived (USR1)",
                self.attempts
            );
            return (
                None,
                LogEvent {
                    severity: Severity::Critical,
                    message,
                },
            );
        }
        let wait = self.draw(settings);
        let message = format!(
            "{why}; attempt {} of {}, retry in {:.1}s",
            self.attempts,
            settings.max_attempts,
            wait.as_secs_f64()
        );
        (Some(wait), warning(message))
    }

    /// A handshake completed, or USR1 came: the count starts again and the peer lives.
    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
        self.dead = false;
    }

    /// A connection opened: a later local resource error is reported again.
    pub(crate) fn connected(&mut self) {
        self.local_error_logged = false;
    }

    /// Opening a connection to `host:port` failed for a local reason. Not a failed
    /// attempt; the line for `lonc.log` comes once until a connection opens again.
    pub(crate) fn local_error(&mut self, host: &str, port: u16, reason: &str) -> Option<LogEvent> {
        if self.local_error_logged {
            return None;
        }
        self.local_error_logged = true;
        // INFO: the daemon-wide CRITICAL line (with the limit) is the runtime's, once for
        // all peers; this one only says which peers wait.
        Some(LogEvent {
            severity: Severity::Info,
            message: format!(
                "cannot open a connection to {host}:{port}: local resource limit ({reason}); \
                 not the peer's fault, not counted as a failed attempt; retrying every {}s",
                LOCAL_ERROR_RETRY.as_secs_f64()
            ),
        })
    }

    /// A backoff drawn uniformly from `[retry_min, retry_max)`.
    fn draw(&mut self, settings: &LinkSettings) -> Duration {
        let min = settings.retry_min.as_nanos() as u64;
        let max = settings.retry_max.as_nanos() as u64;
        if max <= min {
            return Duration::from_nanos(min);
        }
        Duration::from_nanos(self.rng.random_range(min..max))
    }
}

fn warning(message: String) -> LogEvent {
    LogEvent {
        severity: Severity::Warning,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LinkSettings {
        LinkSettings {
            retry_min: Duration::from_secs(10),
            retry_max: Duration::from_secs(30),
            max_attempts: 3,
            ..LinkSettings::default()
        }
    }

    #[test]
    fn waits_stay_in_the_range_and_the_last_attempt_kills() {
        let s = settings();
        let mut b = Backoff::new(7);
        for n in 1..3 {
            let (wait, event) = b.failed(&s, false, "refused".into());
            let wait = wait.expect("not dead yet");
            assert!(wait >= s.retry_min && wait < s.retry_max, "{wait:?}");
            assert_eq!(event.severity, Severity::Warning);
            assert!(event.message.contains(&format!("attempt {n} of 3")));
        }
        let (wait, event) = b.failed(&s, false, "refused".into());
        assert_eq!(wait, None);
        assert!(b.is_dead());
        assert_eq!(event.severity, Severity::Critical);
        b.reset();
        assert!(!b.is_dead());
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn a_serving_peer_only_delays_its_extra_connection() {
        let s = settings();
        let mut b = Backoff::new(7);
        for _ in 0..5 {
            let (wait, event) = b.failed(&s, true, "refused".into());
            assert!(wait.is_some());
            assert!(event.message.contains("extra connection"));
        }
        assert!(!b.is_dead());
        assert_eq!(
            b.attempts(),
            0,
            "an extra connection's failures are not the peer's"
        );
        let (wait, _) = b.failed(&s, false, "refused".into());
        assert!(wait.is_some(), "the peer's own first failure backs off");
        assert_eq!(b.attempts(), 1);
    }

    #[test]
    fn equal_bounds_wait_exactly_that_long() {
        let s = LinkSettings {
            retry_min: Duration::from_millis(1500),
            retry_max: Duration::from_millis(1500),
            ..settings()
        };
        let mut b = Backoff::new(3);
        for serving in [false, true] {
            let (wait, _) = b.failed(&s, serving, "refused".into());
            assert_eq!(wait, Some(Duration::from_millis(1500)));
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_waits() {
        let s = settings();
        let (mut a, mut b) = (Backoff::new(42), Backoff::new(42));
        for _ in 0..2 {
            assert_eq!(
                b.failed(&s, false, "x".into()).0,
                a.failed(&s, false, "x".into()).0
            );
        }
    }

    #[test]
    fn a_local_error_is_reported_once_until_a_connection_opens() {
        let mut b = Backoff::new(1);
        assert!(b.local_error("h", 1, "EMFILE").is_some());
        assert!(b.local_error("h", 1, "EMFILE").is_none());
        assert_eq!(b.attempts(), 0);
        b.connected();
        assert!(b.local_error("h", 1, "EMFILE").is_some());
    }
}
