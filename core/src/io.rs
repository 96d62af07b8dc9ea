//! The values that cross the boundary between the core and a runtime: the ids a runtime
//! uses to name clients and connections, the [`Output`] actions the core asks for, and the
//! log events it emits.

use std::time::Duration;

use bytes::Bytes;

use crate::delayed::{DelayedEntry, PermLogEntry};

/// A local client connection on a peer's Unix socket. Chosen by the runtime, unique among
/// the clients of one peer for the life of that peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// One TCP connection to a peer's lond. Chosen by the core (see [`Output::Connect`]),
/// unique within one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// How serious a log event is; written as the word in `lonc.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something is broken: a peer is dead, a file cannot be handled.
    Critical,
    /// Something went wrong and was handled: a timeout, a refused handshake, a retry.
    Warning,
    /// Normal operation: a link came up, a delayed message was sent.
    Info,
}

impl Severity {
    /// The word written in `lonc.log`: `CRITICAL`, `WARNING` or `INFO`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        }
    }
}

/// A line for `lonc.log`. It never carries the text of an `encrypt:` request or of a
/// decrypted reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// How serious it is.
    pub severity: Severity,
    /// What happened, in words.
    pub message: String,
}

/// An action the core asks its runtime to carry out. Drained with
/// [`crate::peer::Peer::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to `host:port` (resolving `host` if it is a name), with
    /// keepalive on. Answer with `handle_connected` or `handle_connect_failed` for `conn`.
    /// The core enforces the connect timeout itself.
    Connect {
        /// The id the core gives this connection.
        conn: ConnId,
        /// The `ip` field of hosts.tab (an address or a name).
        host: String,
        /// `londPort`.
        port: u16,
    },
    /// Write these bytes to the connection, in order after earlier writes.
    Transmit {
        /// Where to write.
        conn: ConnId,
        /// What to write.
        data: Bytes,
    },
    /// Close the connection (or abandon the attempt to open it). The core forgets it; no
    /// further input for it is expected, and any that comes is ignored. What was written
    /// before may still be flushed for `linger` at most (zero: shut it down at once).
    CloseConn {
        /// Which connection.
        conn: ConnId,
        /// How long the socket may still flush before it is shut down
        /// ([`crate::limits::CLOSE_LINGER`], or zero).
        linger: Duration,
    },
    /// Write this reply line (LF included) to the client, after earlier replies.
    Reply {
        /// Which client.
        client: ClientId,
        /// The line, LF included.
        data: Bytes,
    },
    /// Close the client's connection once earlier replies to it are written. The core
    /// forgets it.
    CloseClient {
        /// Which client.
        client: ClientId,
    },
    /// Close the client's connection at once, discarding the replies not yet written to
    /// it (it does not read them). The core forgets it.
    AbortClient {
        /// Which client.
        client: ClientId,
    },
    /// List the entries of `lonSockDir/delayed/` (every kind, symlinks not followed, with
    /// their size and modification time) and answer with `handle_delayed_list`, or
    /// `handle_delayed_list_failed` / `handle_delayed_list_local_error` if it cannot be
    /// listed.
    ListDelayed,
    /// Read the file `lonSockDir/delayed/<name>` and answer with `handle_delayed_read`.
    ReadDelayed {
        /// The file name, without directory.
        name: String,
    },
    /// Delete the file `lonSockDir/delayed/<name>`; its reply has arrived. A delete that
    /// fails is answered with `handle_delayed_delete_failed`.
    DeleteDelayed {
        /// The file name, without directory.
        name: String,
    },
    /// Append a line to `lonDaemons/logs/lonnet.perm.log` (see [`PermLogEntry::line`]).
    PermLog(PermLogEntry),
    /// Write a line to `lonc.log`.
    Log(LogEvent),
}

/// One input to a peer as a value, for replaying, fuzzing and property tests
/// ([`crate::peer::Peer::handle`]); a runtime may as well call the `handle_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `handle_client_opened`.
    ClientOpened(ClientId),
    /// `handle_client_data`.
    ClientData(ClientId, Vec<u8>),
    /// `handle_client_eof`.
    ClientEof(ClientId),
    /// `handle_client_gone`.
    ClientGone(ClientId),
    /// `handle_client_backlog`: a reply was queued behind this many bytes not yet
    /// written to the client.
    ClientBacklog(ClientId, usize),
    /// `handle_connected`.
    Connected(ConnId),
    /// `handle_connect_failed`.
    ConnectFailed(ConnId, String),
    /// `handle_connect_local_error`.
    ConnectLocalError(ConnId, String),
    /// `handle_conn_data`.
    ConnData(ConnId, Vec<u8>),
    /// `handle_conn_closed`.
    ConnClosed(ConnId),
    /// `handle_conn_backlog`: bytes were queued behind this many not yet written to lond.
    ConnBacklog(ConnId, usize),
    /// `handle_delayed_list`.
    DelayedList(Vec<DelayedEntry>),
    /// `handle_delayed_list_failed`: why the spool could not be listed.
    DelayedListFailed(String),
    /// `handle_delayed_list_local_error`: the spool could not be listed for a shortage of
    /// this host's own.
    DelayedListLocalError(String),
    /// `handle_delayed_read` (boxed: rare, and it would double the size of every input;
    /// make it with [`Input::delayed_read`]).
    DelayedRead(Box<DelayedRead>),
    /// `handle_delayed_delete_failed` (boxed, as [`Input::DelayedRead`]; make it with
    /// [`Input::delayed_delete_failed`]).
    DelayedDeleteFailed(Box<DelayedDeleteFailed>),
    /// `handle_timeout`.
    Timeout,
    /// `revive` (USR1).
    Revive,
    /// `shutdown` with this grace period.
    Shutdown(Duration),
}

/// A delayed file's content as read, or why it could not be read: the answer to
/// [`Output::ReadDelayed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayedRead {
    /// The file name.
    pub name: String,
    /// Its start (see `Output::ReadDelayed`), or why it could not be read.
    pub content: Result<Vec<u8>, String>,
}

/// A delivered delayed file that could not be deleted: the answer to a failed
/// [`Output::DeleteDelayed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayedDeleteFailed {
    /// The file name.
    pub name: String,
    /// Why the delete failed.
    pub why: String,
}

impl Input {
    /// [`Input::DelayedRead`] for file `name`.
    pub fn delayed_read(name: String, content: Result<Vec<u8>, String>) -> Input {
        Input::DelayedRead(Box::new(DelayedRead { name, content }))
    }

    /// [`Input::DelayedDeleteFailed`] for file `name`.
    pub fn delayed_delete_failed(name: String, why: String) -> Input {
        Input::DelayedDeleteFailed(Box::new(DelayedDeleteFailed { name, why }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every runtime keeps a bounded channel of inputs per peer, its slots allocated
    /// up front: an input must stay small (the largest variant is a client's or a
    /// connection's bytes: an id and a `Vec`).
    #[test]
    fn an_input_is_no_bigger_than_an_id_and_a_vec() {
        assert!(
            std::mem::size_of::<Input>() <= 40,
            "{}",
            std::mem::size_of::<Input>()
        );
    }
}
