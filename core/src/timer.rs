//! The peer's own deadlines, as a small table indexed by [`Timer`] (quinn-proto's
//! `TimerTable`): the backoff retry, the delayed-spool rescan and the shutdown grace. The
//! next deadline is the minimum of the table, so `poll_timeout` and `handle_timeout` read
//! the same values. Per-connection deadlines live with each connection (`conn.rs`).
//!
//! Every armed timer counts for `poll_timeout`, and a timer that should not fire is
//! disarmed (a dead peer's rescan, the grace of a peer that has stopped): the two can never
//! disagree.

use std::time::Instant;

/// One of the peer's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The end of a backoff (or of the wait after a local resource error): while armed,
    /// no new connection is opened unless another one serves.
    Retry,
    /// The end of the backoff after an extra connection failed while another served:
    /// while armed, no extra connection is opened (the first one is not held back).
    ExtraRetry,
    /// The next look at the delayed spool (`delayed_rescan`).
    Rescan,
    /// The end of the shutdown grace: what is still in flight gets `con_lost`.
    Grace,
}

impl Timer {
    /// How many timers there are.
    const COUNT: usize = 4;

    fn index(self) -> usize {
        match self {
            Timer::Retry => 0,
            Timer::Rescan => 1,
            Timer::Grace => 2,
            Timer::ExtraRetry => 3,
        }
    }
}

/// The deadlines of one peer; see the module docs. Generic over the time type only so
/// that its tests need no clock.
#[derive(Debug, Clone)]
pub(crate) struct TimerTable<T = Instant> {
    entries: [Option<T>; Timer::COUNT],
}

impl<T: Copy> Default for TimerTable<T> {
    fn default() -> Self {
        TimerTable {
            entries: [None; Timer::COUNT],
        }
    }
}

impl<T: Copy + Ord> TimerTable<T> {
    /// Arms `timer` for `at` (replacing its deadline).
    pub(crate) fn set(&mut self, timer: Timer, at: T) {
        self.entries[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.entries[timer.index()] = None;
    }

    /// True while `timer` is armed (even if its deadline has passed and it has not fired
    /// yet).
    pub(crate) fn is_armed(&self, timer: Timer) -> bool {
        self.entries[timer.index()].is_some()
    }

    /// True if `timer` is armed and its deadline is not after `now`.
    pub(crate) fn is_due(&self, timer: Timer, now: T) -> bool {
        self.entries[timer.index()].is_some_and(|at| at <= now)
    }

    /// If `timer` is due at `now`, disarms it and says so.
    pub(crate) fn expire(&mut self, timer: Timer, now: T) -> bool {
        let due = self.is_due(timer, now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest deadline of the armed timers.
    pub(crate) fn next_timeout(&self) -> Option<T> {
        self.entries.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_minimum_of_the_armed_timers() {
        let mut table = TimerTable::<u32>::default();
        assert_eq!(table.next_timeout(), None);
        table.set(Timer::Rescan, 60);
        table.set(Timer::Retry, 5);
        assert!(table.is_armed(Timer::Retry) && !table.is_armed(Timer::Grace));
        assert_eq!(table.next_timeout(), Some(5));
        table.stop(Timer::Retry);
        assert!(!table.is_armed(Timer::Retry));
        assert_eq!(table.next_timeout(), Some(60));
    }

    #[test]
    fn expire_fires_once_and_only_when_due() {
        let mut table = TimerTable::<u32>::default();
        table.set(Timer::Grace, 1);
        assert!(!table.expire(Timer::Grace, 0));
        assert!(table.expire(Timer::Grace, 1));
        assert!(!table.expire(Timer::Grace, 2));
    }
}
