//! The knob table: every variable of the configuration declared once (name, settings
//! field, type, default, form and valid range, meaning), and what is made from it: the
//! [`Settings`] and [`LinkSettings`] structs, their defaults, the range constants, the
//! variable lists, the [`KNOBS`] descriptors, [`Settings::describe`] and the read that
//! parses and checks every knob. Adding a knob is one entry here.

use std::path::PathBuf;
use std::time::Duration;

use super::table::knob_table;
use super::value::{
    Bytes, ConnectMode, Count, DAY, Dir, Form, GIB, HOUR, MAX_DURATION, Mode, Port, Range, Seconds,
    TENTH, Text,
};

/// One knob of the table, as `check-config` and the README show it.
#[derive(Debug, Clone, Copy)]
pub struct Knob {
    /// The `PerlSetVar` name.
    pub name: &'static str,
    /// Whether the daemon refuses to start without it (PROTOCOL.md 2.1).
    pub required: bool,
    /// What it does, as the README's table says it.
    pub meaning: &'static str,
    /// Its valid values, as errors and the README's table write them.
    pub valid: fn() -> String,
    /// Its default as a config writes it; `None` for a required variable.
    pub default: fn() -> Option<String>,
    /// Its value in some settings, as a config writes it.
    pub value: fn(&Settings) -> String,
}

/// Where the knobs' values come from when settings are built: [`Draft::read`] asks for
/// every knob once, in the table's order.
pub(super) trait Source {
    /// The value of the required variable `name`, read with `form`; `None` (after recording
    /// why) when it is missing or bad.
    fn required<T>(&mut self, name: &'static str, form: &impl Form<T>) -> Option<T>;
    /// The value of the optional knob `name`, read with `form`; `default` when it is unset
    /// (or bad, after recording why).
    fn optional<T>(&mut self, name: &'static str, form: &impl Form<T>, default: T) -> T;
}

knob_table! {
    required in Settings {
        /// this server's host id
        "lonHostID" host_id: String, Text("a host id");
        /// the directory holding `hosts.tab`
        "lonTabDir" tab_dir: PathBuf, Dir;
        /// the per-peer sockets and `delayed/`
        "lonSockDir" sock_dir: PathBuf, Dir;
        /// every peer's lond port
        "londPort" lond_port: u16, Port LOND_PORT(1, 65_535);
        /// `logs/lonc.pid`, `logs/lonc.log`, `logs/lonnet.perm.log` under it
        "lonDaemons" daemons_dir: PathBuf, Dir;
        /// `lon-status/loncstatus.txt` under it
        "lonDocRoot" doc_root: PathBuf, Dir;
    }
    optional in LinkSettings {
        /// a request's reply must arrive within this, or the client gets `con_lost` and the
        /// connection is replaced
        "loncTransactionTimeout" transaction_timeout: Duration = Duration::from_secs(300),
            Seconds TRANSACTION_TIMEOUT(TENTH, DAY);
        /// each handshake step, and each delayed message
        "loncHandshakeTimeout" handshake_timeout: Duration = Duration::from_secs(60),
            Seconds HANDSHAKE_TIMEOUT(TENTH, HOUR);
        /// TCP connect
        "loncConnectTimeout" connect_timeout: Duration = Duration::from_secs(5),
            Seconds CONNECT_TIMEOUT(TENTH, HOUR);
        /// pause between `ok` and `pong` (the original slept 5 s)
        // The timeouts and backoffs are at least a tenth of a second: zero would fail every
        // request or reconnect in a hot loop.
        "loncPongDelay" pong_delay: Duration = Duration::ZERO,
            Seconds PONG_DELAY(Duration::ZERO, Duration::from_secs(60));
        /// shortest backoff after a failed connect or handshake (at most `loncRetryMax`);
        /// requests meanwhile get `con_lost` at once
        "loncRetryMin" retry_min: Duration = Duration::from_secs(120),
            Seconds RETRY_MIN(TENTH, DAY);
        /// each backoff is drawn uniformly from `[loncRetryMin, loncRetryMax)`
        "loncRetryMax" retry_max: Duration = Duration::from_secs(360),
            Seconds RETRY_MAX(TENTH, DAY);
        /// failed attempts in a row before a peer is dead (USR1 revives)
        "loncMaxAttempts" max_attempts: u32 = 5,
            Count MAX_ATTEMPTS(1, 1_000_000);
        /// seconds between looks at the delayed spool
        // At least a second: zero made the daemon spin.
        "loncDelayedRescan" delayed_rescan: Duration = Duration::from_secs(60),
            Seconds DELAYED_RESCAN(Duration::from_secs(1), MAX_DURATION);
        /// longest request line from a client, LF not counted (longer:
        /// `error:request_too_long`, disconnect)
        "loncMaxRequest" max_request: usize = 16 * 1024 * 1024,
            Bytes MAX_REQUEST(1024, GIB);
        /// longest reply line from lond, LF not counted (longer: `con_lost`, new connection)
        "loncMaxReply" max_reply: usize = 256 * 1024 * 1024,
            Bytes MAX_REPLY(1024, GIB);
        /// `eager` (connect to every peer at start) or `on-demand` (connect when a request
        /// needs it)
        "loncConnectMode" connect_mode: ConnectMode = ConnectMode::Eager,
            Mode;
        /// close a connection idle this long (on-demand mode; extra connections in eager
        /// mode)
        "loncIdleTimeout" idle_timeout: Duration = Duration::from_secs(300),
            Seconds IDLE_TIMEOUT(TENTH, MAX_DURATION);
        /// TCP connections per peer (each is a lond process on the peer)
        "loncMaxConnections" max_connections: usize = 1,
            Count MAX_CONNECTIONS(1, 64);
        /// requests in flight per connection
        "loncPipeline" pipeline: usize = 1,
            Count PIPELINE(1, 1024);
    }
    optional in Settings {
        /// the user the daemon must run as
        "loncUser" user: String = "www".to_owned(), Text("a user name");
    }
}

impl Settings {
    /// Every effective setting, one `name value` line each, in the order of
    /// [`REQUIRED_VARIABLES`] then [`OPTIONAL_VARIABLES`], durations in seconds, sizes in
    /// bytes (for `check-config`). Prefixing each line with `PerlSetVar ` gives a config
    /// that builds the same settings (as long as no value contains whitespace).
    pub fn describe(&self) -> String {
        KNOBS
            .iter()
            .map(|knob| format!("{} {}\n", knob.name, (knob.value)(self)))
            .collect()
    }
}
