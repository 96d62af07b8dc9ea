//! Signals and what they mean to the daemon (PROTOCOL.md section 9), shared by both
//! runtimes, and the std listener thread that turns them into [`SignalAction`]s.

use std::io;
use std::sync::mpsc::Sender;
use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};

/// What the daemon does on a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalAction {
    /// TERM, INT: graceful shutdown.
    Stop,
    /// HUP, USR2: re-read the config and hosts.tab; reopen the log files.
    Reload,
    /// USR1: write the status file, revive dead peers, rescan delayed messages.
    Status,
}

/// Every signal the daemon handles.
pub const HANDLED: [i32; 5] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2];

/// The action for a signal number, if the daemon handles it.
pub fn action(signal: i32) -> Option<SignalAction> {
    match signal {
        SIGTERM | SIGINT => Some(SignalAction::Stop),
        SIGHUP | SIGUSR2 => Some(SignalAction::Reload),
        SIGUSR1 => Some(SignalAction::Status),
        _ => None,
    }
}

/// Starts a thread that sends the action of every handled signal to `tx`. The returned
/// handle stops it (`Handle::close`).
pub fn spawn_listener<T: From<SignalAction> + Send + 'static>(tx: Sender<T>) -> io::Result<Handle> {
    let mut signals = Signals::new(HANDLED)?;
    let handle = signals.handle();
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if let Some(a) = action(signal)
                    && tx.send(a.into()).is_err()
                {
                    break;
                }
            }
        })?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_signal_has_its_action() {
        assert_eq!(action(SIGTERM), Some(SignalAction::Stop));
        assert_eq!(action(SIGINT), Some(SignalAction::Stop));
        assert_eq!(action(SIGHUP), Some(SignalAction::Reload));
        assert_eq!(action(SIGUSR2), Some(SignalAction::Reload));
        assert_eq!(action(SIGUSR1), Some(SignalAction::Status));
        assert_eq!(action(signal_hook::consts::SIGCHLD), None);
        assert!(HANDLED.iter().all(|&s| action(s).is_some()));
    }
}
