//! Signals and what they mean to the daemon (PROTOCOL.md section 9), the same for both
//! runtimes; how a runtime waits for them is its own business.

use nix::libc::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

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
        assert_eq!(action(nix::libc::SIGCHLD), None);
        assert!(HANDLED.iter().all(|&s| action(s).is_some()));
    }
}
