//! The daemon's configuration: `PerlSetVar <name> <value>` lines (PROTOCOL.md 2.1 and
//! 2.3) parsed into typed [`Settings`], every knob with its default.

use std::path::PathBuf;
use std::time::Duration;

/// How a peer's connections are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    /// Connect to every peer at start and keep one connection up (the seed).
    Eager,
    /// Connect when a request (or a delayed message) needs it; close after
    /// `idle_timeout` without traffic (loncnew).
    OnDemand,
}

/// Everything one peer link needs to know (PROTOCOL.md 2.3).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSettings {
    /// `loncTransactionTimeout`: a request's reply must arrive within this.
    pub transaction_timeout: Duration,
    /// `loncHandshakeTimeout`: each handshake step, and each delayed message.
    pub handshake_timeout: Duration,
    /// `loncConnectTimeout`: TCP connect.
    pub connect_timeout: Duration,
    /// `loncPongDelay`: pause between `ok` and `pong`.
    pub pong_delay: Duration,
    /// `loncRetryMin`: shortest backoff after a failed attempt.
    pub retry_min: Duration,
    /// `loncRetryMax`: backoff is drawn from `[retry_min, retry_max)`.
    pub retry_max: Duration,
    /// `loncMaxAttempts`: consecutive failed attempts before the peer is dead.
    pub max_attempts: u32,
    /// `loncDelayedRescan`: how often the delayed spool is looked at.
    pub delayed_rescan: Duration,
    /// `loncMaxRequest`: longest request line from a client (bytes, LF not counted).
    pub max_request: usize,
    /// `loncMaxReply`: longest reply line from lond (bytes, LF not counted).
    pub max_reply: usize,
    /// `loncConnectMode`.
    pub connect_mode: ConnectMode,
    /// `loncIdleTimeout`: on-demand mode closes a connection idle this long.
    pub idle_timeout: Duration,
    /// `loncMaxConnections`: TCP connections per peer (at least 1).
    pub max_connections: usize,
    /// `loncPipeline`: requests in flight per connection (at least 1).
    pub pipeline: usize,
}

impl Default for LinkSettings {
    /// The defaults of PROTOCOL.md 2.3.
    fn default() -> Self {
        LinkSettings {
            transaction_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            pong_delay: Duration::ZERO,
            retry_min: Duration::from_secs(120),
            retry_max: Duration::from_secs(360),
            max_attempts: 5,
            delayed_rescan: Duration::from_secs(60),
            max_request: 16 * 1024 * 1024,
            max_reply: 256 * 1024 * 1024,
            connect_mode: ConnectMode::Eager,
            idle_timeout: Duration::from_secs(300),
            max_connections: 1,
            pipeline: 1,
        }
    }
}

/// The whole configuration of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `lonHostID`: this server's host id.
    pub host_id: String,
    /// `lonTabDir`: the directory holding `hosts.tab`.
    pub tab_dir: PathBuf,
    /// `lonSockDir`: the per-peer sockets and `delayed/`.
    pub sock_dir: PathBuf,
    /// `londPort`: every peer's lond port.
    pub lond_port: u16,
    /// `lonDaemons`: `logs/lonc.pid`, `logs/lonc.log`, `logs/lonnet.perm.log` under it.
    pub daemons_dir: PathBuf,
    /// `lonDocRoot`: `lon-status/loncstatus.txt` under it.
    pub doc_root: PathBuf,
    /// `loncUser`: the user the daemon must run as.
    pub user: String,
    /// The knobs of one link.
    pub link: LinkSettings,
}
