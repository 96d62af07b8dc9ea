//! Signals on their way from the thread or task that catches them to the supervisor
//! ([`SignalFlags`]), the same in both runtimes: one pending flag per action, raised by
//! the catcher and taken by the supervisor, so two signals arriving together are both
//! seen and a burst of one signal costs one flag, not a queue.
//!
//! Its primitives come from the crate's `sync` facade, so `tests/loom.rs` checks every
//! interleaving under `--cfg loom`.

use crate::signals::SignalAction;
use crate::sync::{Arc, AtomicU8, Event, Listener, Ordering};

/// The actions a catcher raised and the supervisor has not taken yet; clones share them.
#[derive(Clone, Default)]
pub struct SignalFlags(Arc<Flags>);

#[derive(Default)]
struct Flags {
    pending: AtomicU8,
    raised: Event,
}

/// The order in which the supervisor carries out actions taken together: a reload and
/// the status before a stop, so none of them is skipped.
const ORDER: [SignalAction; 3] = [
    SignalAction::Reload,
    SignalAction::Status,
    SignalAction::Stop,
];

fn bit(action: SignalAction) -> u8 {
    match action {
        SignalAction::Reload => 1,
        SignalAction::Status => 2,
        SignalAction::Stop => 4,
    }
}

impl SignalFlags {
    /// Marks `action` pending and wakes the supervisor (an action already pending is
    /// carried out once).
    pub fn raise(&self, action: SignalAction) {
        self.0.pending.fetch_or(bit(action), Ordering::AcqRel);
        self.0.raised.notify(1);
    }

    /// Takes every pending action, in the order they are carried out; empty if none.
    pub fn take(&self) -> Vec<SignalAction> {
        let pending = self.0.pending.swap(0, Ordering::AcqRel);
        ORDER
            .into_iter()
            .filter(|a| pending & bit(*a) != 0)
            .collect()
    }

    /// Waits until an action is pending, then takes every pending one ([`Self::take`]).
    pub fn wait(&self) -> Vec<SignalAction> {
        loop {
            let taken = self.take();
            if !taken.is_empty() {
                return taken;
            }
            let raised = self.0.raised.listen();
            let taken = self.take();
            if !taken.is_empty() {
                return taken;
            }
            raised.wait();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn actions_raised_together_are_all_taken_once_in_order() {
        let flags = SignalFlags::default();
        assert!(flags.take().is_empty());
        flags.raise(SignalAction::Stop);
        flags.raise(SignalAction::Status);
        flags.raise(SignalAction::Status);
        flags.raise(SignalAction::Reload);
        assert_eq!(
            flags.wait(),
            [
                SignalAction::Reload,
                SignalAction::Status,
                SignalAction::Stop
            ]
        );
        assert!(flags.take().is_empty());
    }

    #[test]
    fn a_waiting_supervisor_is_woken() {
        let flags = SignalFlags::default();
        let catcher = flags.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            catcher.raise(SignalAction::Status);
        });
        assert_eq!(flags.wait(), [SignalAction::Status]);
        t.join().unwrap();
    }
}
