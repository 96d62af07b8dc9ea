//! The supervisor both daemons share: it starts one peer per host of hosts.tab on its
//! socket and answers signals (TERM/INT stop, HUP/USR2 reload keeping unchanged links up,
//! USR1 status file and revive). A runtime provides the running peers through
//! [`PeerSet`]; how it waits for signals is its own business.

use std::io;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use lonc_core::io::Severity;
use lonc_core::roster::{self, PeerSpec};

use crate::daemon::{GRACE, Prepared, bind_socket, status_lines};
use crate::load::load;
use crate::logfile::{LogFiles, PARENT};
use crate::paths::Paths;
use crate::pidfile::PidFile;
use crate::signals::SignalAction;
use crate::socket::remove_peer_socket;
use crate::spool::Spool;
use crate::status::write_status;

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
    /// Stops these peers together (requests in flight get up to `grace`), and waits.
    fn stop(&mut self, ids: &[String], grace: Duration);
}

/// A daemon's supervisor over the peers of a runtime.
pub struct Supervisor<P: PeerSet> {
    peers: P,
    ctx: PeerContext,
    config_paths: Vec<PathBuf>,
    pid_file: Option<PidFile>,
}

impl<P: PeerSet> Supervisor<P> {
    /// Starts every peer of the prepared config and tells a waiting parent that startup
    /// is complete. `name` is the daemon's name for the log.
    pub fn start(mut prepared: Prepared, peers: P, name: &str) -> Self {
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
        };
        for spec in prepared.config.peers.clone() {
            sup.start_peer(spec);
        }
        prepared.ready();
        sup.pid_file = Some(prepared.pid_file);
        sup
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

    fn status(&mut self) {
        let text = status_lines(&self.ctx.logs, &self.peers.states());
        if let Err(e) = write_status(&self.ctx.paths.status_file, &text) {
            let message = format!("cannot write {}: {e}", self.ctx.paths.status_file.display());
            self.log(Severity::Warning, &message);
        }
        self.peers.revive_all();
    }

    fn reload(&mut self) {
        if let Err(e) = self.ctx.logs.reopen() {
            eprintln!("lonc: cannot reopen the logs: {e}");
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

    fn start_peer(&mut self, spec: PeerSpec) {
        let id = spec.id.clone();
        let Some(listener) = bind_socket(&self.ctx.logs, &self.ctx.paths, &id) else {
            return;
        };
        if let Err(e) = self.peers.start(spec, &self.ctx, listener) {
            self.ctx
                .logs
                .log(&id, Severity::Critical, &format!("cannot start: {e}"));
            remove_peer_socket(&self.ctx.paths.socket(&id));
        }
    }

    fn stop_peers(&mut self, ids: &[String]) {
        self.peers.stop(ids, GRACE);
        for id in ids {
            remove_peer_socket(&self.ctx.paths.socket(id));
        }
    }
}
