//! The file work a peer asks for, for both runtimes: listing, reading and deleting
//! delayed spool files, and writing its log lines ([`Chore`]). [`carry_out`] does one with
//! blocking calls (on the std peer thread, or through `smol::unblock`) and says what the
//! core must be told: the outcome, never a decision (a failed listing or delete is the
//! core's to judge).

use lonc_core::delayed::PermLogEntry;
use lonc_core::io::{Input, LogEvent};

use crate::local_error::{alarm, is_local_resource_error};
use crate::logfile::LogFiles;
use crate::spool::Spool;

/// A piece of file work for one peer.
#[derive(Debug)]
pub enum Chore {
    /// List the delayed spool.
    ListDelayed,
    /// Read the start of a delayed file (at most `max + 1` bytes).
    ReadDelayed {
        /// The file name.
        name: String,
        /// `loncMaxRequest`.
        max: usize,
    },
    /// Delete a delivered delayed file.
    DeleteDelayed(String),
    /// Append to `lonnet.perm.log`.
    PermLog(PermLogEntry),
    /// Write to `lonc.log`.
    Log(LogEvent),
}

/// Does `chore` for `peer`; the input that answers it, if any. A listing that fails for a
/// shortage of the host's own is reported to the daemon-wide [`alarm`] too.
pub fn carry_out(chore: Chore, spool: &Spool, logs: &LogFiles, peer: &str) -> Option<Input> {
    match chore {
        Chore::ListDelayed => Some(match spool.list() {
            Ok(entries) => Input::DelayedList(entries),
            Err(e) if is_local_resource_error(&e) => {
                alarm().report(logs, "listing the delayed spool", &e);
                Input::DelayedListLocalError(e.to_string())
            }
            Err(e) => Input::DelayedListFailed(e.to_string()),
        }),
        Chore::ReadDelayed { name, max } => {
            let content = spool.read_request(&name, max).map_err(|e| e.to_string());
            Some(Input::delayed_read(name, content))
        }
        Chore::DeleteDelayed(name) => spool
            .delete(&name)
            .err()
            .map(|e| Input::delayed_delete_failed(name, e.to_string())),
        Chore::PermLog(entry) => {
            logs.perm_log(&entry);
            None
        }
        Chore::Log(event) => {
            logs.log(peer, event.severity, &event.message);
            None
        }
    }
}
