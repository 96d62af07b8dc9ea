//! The supervisor both daemons share: it starts one peer per host of hosts.tab on its
//! socket and answers signals (TERM/INT stop, HUP/USR2 reload keeping unchanged links up,
//! USR1 status file and revive). A socket that cannot be created fails the start; at a
//! reload it is a CRITICAL line and the peer shows as `no-socket` in the status file. A
//! runtime provides the running peers through [`PeerSet`]; how it waits for signals is
//! its own business. It also owns binding a peer's socket ([`bind_socket`]) and the status
//! file's text ([`status_lines`]); the grace given to requests in flight when peers stop
//! is the core's (`lonc_core::limits::SHUTDOWN_GRACE`).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::SystemTime;

use lonc_core::io::Severity;
use lonc_core::roster::{self, PeerSpec};

use crate::cli::program_name;
use crate::load::load;
use crate::logfile::{LogFiles, PARENT, localtime};
use crate::paths::Paths;
use crate::pidfile::PidFile;
use crate::signals::SignalAction;
use crate::socket::{Removed, bind_peer_socket, remove_peer_socket};
use crate::spool::Spool;
use crate::startup::Prepared;
use crate::status::{PeerStatusLine, status_text, write_status};

/// What every peer of a daemon shares.
#[derive(Clone)]
pub struct PeerContext {
    /// `lonHostID`.
    pub own_id: String,
    /// Where the files are.
    pub paths: Paths,
    /// The log files.
    pub logs: LogFiles,
    /// The delayed spool.
    pub spool: Spool,
}

/// The running peers of one runtime.
pub trait PeerSet {
    /// Starts a peer on its bound socket.
    fn start(
        &mut self,
        spec: PeerSpec,
        ctx: &PeerContext,
        listener: UnixListener,
    ) -> io::Result<()>;
    /// The running peers.
    fn specs(&self) -> Vec<PeerSpec>;
    /// `(peer id, state word)` of each running peer.
    fn states(&self) -> Vec<(String, String)>;
    /// USR1: revive dead peers and rescan the delayed spool.
    fn revive_all(&mut self);
    /// Stops these peers together (requests in flight get up to the core's
    /// `SHUTDOWN_GRACE`), and waits.
    fn stop(&mut self, ids: &[String]);
}

/// The status-file state of a peer of hosts.tab whose socket could not be created at a
/// reload (it has no running peer; the next reload tries again).
pub const NO_SOCKET: &str = "no-socket";

/// The status-file state of a peer whose socket was bound but whose runtime could not
/// start it (the next reload tries again).
pub const NOT_STARTED: &str = "not-started";

/// A daemon's supervisor over the peers of a runtime.
pub struct Supervisor<P: PeerSet> {
    peers: P,
    ctx: PeerContext,
    config_paths: Vec<PathBuf>,
    pid_file: Option<PidFile>,
    /// Peers of hosts.tab that are not running, with their state word for the status
    /// file ([`NO_SOCKET`], [`NOT_STARTED`]).
    unserved: BTreeMap<String, &'static str>,
}

impl<P: PeerSet> Supervisor<P> {
    /// Binds every peer's socket, starts the peers and tells a waiting parent that
    /// startup is complete. `name` is the daemon's name for the log.
    ///
    /// A socket that cannot be created fails the start: every socket bound is removed
    /// again and the reason goes to `lonc.log`, stderr and the waiting parent
    /// ([`Prepared::abort`]); the error is the exit code.
    pub fn start(mut prepared: Prepared, peers: P, name: &str) -> Result<Self, i32> {
        prepared.logs.log(
            PARENT,
            Severity::Info,
            &format!(
                "{name} {} starting, pid {}, {} peers",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                prepared.config.peers.len()
            ),
        );
        let mut bound = Vec::new();
        let mut failed = Vec::new();
        for spec in prepared.config.peers.clone() {
            match bind_socket(&prepared.logs, &prepared.paths, &spec.id) {
                Ok(listener) => bound.push((spec, listener)),
                Err(message) => failed.push(message),
            }
        }
        if let Some(first) = failed.first() {
            for (spec, listener) in bound {
                drop(listener);
                remove_peer_socket(&prepared.paths.socket(&spec.id));
            }
            let message = match failed.len() {
                1 => first.clone(),
                n => format!("{first} (and {} more peers, see lonc.log)", n - 1),
            };
            return Err(prepared.abort(&message));
        }
        let mut sup = Supervisor {
            peers,
            ctx: PeerContext {
                own_id: prepared.config.settings.host_id.clone(),
                paths: prepared.paths.clone(),
                logs: prepared.logs.clone(),
                spool: prepared.spool.clone(),
            },
            config_paths: prepared.config_paths.clone(),
            pid_file: None,
            unserved: BTreeMap::new(),
        };
        for (spec, listener) in bound {
            sup.start_on(spec, listener);
        }
        prepared.ready();
        sup.pid_file = Some(prepared.pid_file);
        Ok(sup)
    }

    /// The running peers.
    pub fn peers(&self) -> &P {
        &self.peers
    }

    /// What every peer shares.
    pub fn context(&self) -> &PeerContext {
        &self.ctx
    }

    /// Carries out a signal's action; false when the daemon must stop.
    pub fn handle(&mut self, action: SignalAction) -> bool {
        match action {
            SignalAction::Stop => return false,
            SignalAction::Status => self.status(),
            SignalAction::Reload => self.reload(),
        }
        true
    }

    /// Stops every peer, removes the sockets and the pid file.
    pub fn shutdown(mut self) {
        self.log(Severity::Info, "shutting down");
        let ids: Vec<String> = self.peers.specs().into_iter().map(|p| p.id).collect();
        self.stop_peers(&ids);
        self.pid_file.take();
        self.log(Severity::Info, "stopped");
    }

    fn log(&self, severity: Severity, message: &str) {
        self.ctx.logs.log(PARENT, severity, message);
    }

    /// The state word of every peer of hosts.tab, running or not, by peer id.
    fn states(&self) -> Vec<(String, String)> {
        let mut states = self.peers.states();
        states.extend(
            self.unserved
                .iter()
                .map(|(id, state)| (id.clone(), (*state).to_owned())),
        );
        states.sort();
        states
    }

    fn status(&mut self) {
        let text = status_lines(&self.ctx.logs, &self.states());
        if let Err(e) = write_status(&self.ctx.paths.status_file, &text) {
            let message = format!("cannot write {}: {e}", self.ctx.paths.status_file.display());
            self.log(Severity::Warning, &message);
        }
        self.peers.revive_all();
    }

    fn reload(&mut self) {
        if let Err(e) = self.ctx.logs.reopen() {
            let message =
                format!("cannot reopen the logs, still writing to the files open before: {e}");
            eprintln!("{}: {message}", program_name());
            self.log(Severity::Critical, &message);
        }
        let new = match load(&self.config_paths) {
            Ok(new) => new,
            Err(e) => {
                let message = format!("reload failed, keeping the running config: {e}");
                return self.log(Severity::Critical, &message);
            }
        };
        let change = roster::reload(&self.peers.specs(), &new.peers);
        self.log(
            Severity::Info,
            &format!(
                "reload: {} new, {} removed, {} changed, {} kept",
                change.start.len(),
                change.stop.len(),
                change.restart.len(),
                change.keep.len()
            ),
        );
        for w in &new.warnings {
            self.log(Severity::Warning, w);
        }
        if new.settings.host_id != self.ctx.own_id || Paths::new(&new.settings) != self.ctx.paths {
            self.log(
                Severity::Warning,
                "lonHostID or a directory changed: restart the daemon for it to take effect",
            );
        }
        self.unserved
            .retain(|id, _| new.peers.iter().any(|p| p.id == *id));
        let stopping: Vec<String> = change
            .stop
            .iter()
            .chain(change.restart.iter().map(|p| &p.id))
            .cloned()
            .collect();
        self.stop_peers(&stopping);
        for spec in change.start.into_iter().chain(change.restart) {
            self.start_peer(spec);
        }
    }

    /// Binds the socket of a peer (added or changed by a reload) and starts it; a socket
    /// that cannot be made is a CRITICAL line (from [`bind_socket`]) and the peer is
    /// reported as [`NO_SOCKET`] in the status file.
    fn start_peer(&mut self, spec: PeerSpec) {
        match bind_socket(&self.ctx.logs, &self.ctx.paths, &spec.id) {
            Ok(listener) => self.start_on(spec, listener),
            Err(_) => {
                self.unserved.insert(spec.id, NO_SOCKET);
            }
        }
    }

    /// Starts a peer on its bound socket; a failure is a CRITICAL line and the peer is
    /// reported as [`NOT_STARTED`].
    fn start_on(&mut self, spec: PeerSpec, listener: UnixListener) {
        let id = spec.id.clone();
        match self.peers.start(spec, &self.ctx, listener) {
            Ok(()) => {
                self.unserved.remove(&id);
            }
            Err(e) => {
                self.ctx
                    .logs
                    .log(&id, Severity::Critical, &format!("cannot start: {e}"));
                remove_peer_socket(&self.ctx.paths.socket(&id));
                self.unserved.insert(id, NOT_STARTED);
            }
        }
    }

    fn stop_peers(&mut self, ids: &[String]) {
        self.peers.stop(ids);
        for id in ids {
            remove_peer_socket(&self.ctx.paths.socket(id));
        }
    }
}

/// Binds a peer's Unix socket. A stray file or symlink removed from its path is a
/// WARNING line for the peer; a failure is a CRITICAL line for the peer, and its
/// message is returned.
pub fn bind_socket(logs: &LogFiles, paths: &Paths, peer: &str) -> Result<UnixListener, String> {
    let path = paths.socket(peer);
    match bind_peer_socket(&path) {
        Ok(bound) => {
            if let Some(removed) = bound.removed.filter(|r| *r != Removed::StaleSocket) {
                logs.log(
                    peer,
                    Severity::Warning,
                    &format!(
                        "removed {} found at {} to create the socket",
                        removed.describe(),
                        path.display()
                    ),
                );
            }
            Ok(bound.listener)
        }
        Err(e) => {
            let message = format!("cannot create socket {}: {e}", path.display());
            logs.log(peer, Severity::Critical, &message);
            Err(message)
        }
    }
}

/// The status file's text for these peers (`(peer, state word)`), with the last log line
/// of each.
pub fn status_lines(logs: &LogFiles, peers: &[(String, String)]) -> String {
    let pid = std::process::id();
    let lines: Vec<PeerStatusLine> = peers
        .iter()
        .map(|(peer, status)| PeerStatusLine {
            pid,
            peer: peer.clone(),
            status: status.clone(),
            last_log: logs.last_line(peer).unwrap_or_default(),
        })
        .collect();
    status_text(&localtime(SystemTime::now()), pid, &lines)
}
