//! The peer's own deadlines, as a small table indexed by [`Timer`] (quinn-proto's
//! `TimerTable`): the backoff retry, the delayed-spool rescan and the shutdown grace. The
//! next deadline is the minimum of the table, so `poll_timeout` and `handle_timeout` read
//! the same values. Per-connection deadlines live with each connection (`conn.rs`).
//!
//! A timer may be *lazy*: it keeps its deadline and still fires when the peer is woken
//! anyway, but it does not wake the peer itself (a dead peer's rescan, the grace of a peer
//! that has stopped).

use std::time::Instant;

/// One of the peer's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The end of a backoff (or of the wait after a local resource error): while armed,
    /// no new connection is opened unless another one serves.
    Retry,
    /// The next look at the delayed spool (`delayed_rescan`).
    Rescan,
    /// The end of the shutdown grace: what is still in flight gets `con_lost`.
    Grace,
}

impl Timer {
    /// How many timers there are.
    const COUNT: usize = 3;

    fn index(self) -> usize {
        match self {
            Timer::Retry => 0,
            Timer::Rescan => 1,
            Timer::Grace => 2,
        }
    }
}

/// One entry of the table.
#[derive(Debug, Clone, Copy)]
struct Entry<T> {
    at: Option<T>,
    lazy: bool,
}

/// The deadlines of one peer; see the module docs. Generic over the time type only so
/// that its tests need no clock.
#[derive(Debug, Clone)]
pub(crate) struct TimerTable<T = Instant> {
    entries: [Entry<T>; Timer::COUNT],
}

impl<T: Copy> Default for TimerTable<T> {
    fn default() -> Self {
        TimerTable {
            entries: [Entry {
                at: None,
                lazy: false,
            }; Timer::COUNT],
        }
    }
}

impl<T: Copy + Ord> TimerTable<T> {
    /// Arms `timer` for `at` (replacing its deadline); a lazy timer stays lazy.
    pub(crate) fn set(&mut self, timer: Timer, at: T) {
        self.entries[timer.index()].at = Some(at);
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.entries[timer.index()].at = None;
    }

    /// True while `timer` is armed (even if its deadline has passed and it has not fired
    /// yet).
    pub(crate) fn is_armed(&self, timer: Timer) -> bool {
        self.entries[timer.index()].at.is_some()
    }

    /// Makes `timer` lazy (it fires only when the peer is woken anyway) or not.
    pub(crate) fn set_lazy(&mut self, timer: Timer, lazy: bool) {
        self.entries[timer.index()].lazy = lazy;
    }

    /// True if `timer` is armed and its deadline is not after `now` (lazy or not).
    pub(crate) fn is_due(&self, timer: Timer, now: T) -> bool {
        self.entries[timer.index()].at.is_some_and(|at| at <= now)
    }

    /// If `timer` is due at `now`, disarms it and says so.
    pub(crate) fn expire(&mut self, timer: Timer, now: T) -> bool {
        let due = self.is_due(timer, now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest deadline of the armed timers that are not lazy.
    pub(crate) fn next_timeout(&self) -> Option<T> {
        self.entries
            .iter()
            .filter(|e| !e.lazy)
            .filter_map(|e| e.at)
            .min()
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

    #[test]
    fn a_lazy_timer_fires_but_does_not_wake() {
        let mut table = TimerTable::<u32>::default();
        table.set(Timer::Rescan, 0);
        table.set_lazy(Timer::Rescan, true);
        assert_eq!(table.next_timeout(), None);
        assert!(table.is_due(Timer::Rescan, 0));
        table.set(Timer::Rescan, 1);
        assert_eq!(table.next_timeout(), None, "set keeps it lazy");
        table.set_lazy(Timer::Rescan, false);
        assert_eq!(table.next_timeout(), Some(1));
    }
}
