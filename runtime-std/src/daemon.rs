//! The daemon's life: the runtime-neutral steps both daemons share ([`prepare`]: config,
//! user check, detaching, pid file, logs, open-file limit; [`status_lines`]; the socket
//! binding of a peer), and the std supervisor ([`run`]) that starts one
//! [`PeerHandle`] per peer and answers signals: TERM/INT stop, HUP/USR2 reload, USR1 status.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use lonc_core::io::Severity;
use lonc_core::roster::PeerSpec;

use crate::cli::RunArgs;
use crate::driver::PeerHandle;
use crate::load::{DaemonConfig, load};
use crate::logfile::{LogFiles, PARENT, localtime};
use crate::paths::Paths;
use crate::pidfile::{PidFile, is_alive, read_pid};
use crate::process::{Detached, check_user, daemonize, raise_nofile_limit};
use crate::signals::{self, SignalAction};
use crate::socket::bind_peer_socket;
use crate::spool::Spool;
use crate::status::{PeerStatusLine, status_text};
use crate::supervisor::{PeerContext, PeerSet, Supervisor};

/// How long requests in flight may take to finish on TERM/INT, a reload or a removal.
pub const GRACE: Duration = Duration::from_secs(5);

/// Exit code for a bad config (as `check-config` and `send` use it).
pub use crate::sendcmd::EXIT_CONFIG;
/// Exit code for any other failure to start (wrong user, already running, no socket).
pub use crate::sendcmd::EXIT_FAILED as EXIT_START;

/// Everything a daemon needs once it has started: its config, paths, logs, pid file and
/// delayed spool.
pub struct Prepared {
    /// The config and peers as loaded.
    pub config: DaemonConfig,
    /// Where the files are.
    pub paths: Paths,
    /// `lonc.log` and `lonnet.perm.log`.
    pub logs: LogFiles,
    /// The pid file, removed when dropped.
    pub pid_file: PidFile,
    /// `lonSockDir/delayed`.
    pub spool: Spool,
    /// The config files, for reloads.
    pub config_paths: Vec<PathBuf>,
    /// The waiting parent, when detached: tell it with [`Prepared::ready`].
    pub detached: Option<Detached>,
}

impl Prepared {
    /// Startup is complete (sockets bound): a waiting parent exits 0.
    pub fn ready(&mut self) {
        if let Some(d) = self.detached.take() {
            d.ready();
        }
    }
}

/// Says why startup failed: on stderr, and to the waiting parent when detached.
fn fail(detached: &mut Option<Detached>, code: i32, message: String) -> i32 {
    eprintln!("lonc: {message}");
    if let Some(d) = detached.take() {
        d.failed(&message);
    }
    code
}

/// Loads the config, checks the user, detaches unless `--foreground`, takes the pid file,
/// opens the logs and raises the open-file limit. On failure, says why on stderr (and to
/// the parent that waits for a detached daemon) and gives the exit code.
pub fn prepare(args: &RunArgs) -> Result<Prepared, i32> {
    let mut detached = None;
    let config_paths = args.config.config_paths();
    let config =
        load(&config_paths).map_err(|e| fail(&mut detached, EXIT_CONFIG, e.to_string()))?;
    for w in &config.warnings {
        eprintln!("lonc: warning: {w}");
    }
    let user = args
        .user
        .clone()
        .unwrap_or_else(|| config.settings.user.clone());
    check_user(&user).map_err(|e| fail(&mut detached, EXIT_START, e))?;
    let paths = Paths::new(&config.settings);
    if let Some(pid) = read_pid(&paths.pid_file)
        && is_alive(pid)
    {
        let message = format!(
            "already running as pid {pid} (pid file {})",
            paths.pid_file.display()
        );
        return Err(fail(&mut detached, EXIT_START, message));
    }
    if !args.foreground {
        let d = daemonize()
            .map_err(|e| fail(&mut detached, EXIT_START, format!("cannot detach: {e}")))?;
        detached = Some(d);
    }
    let pid_file = PidFile::create(&paths.pid_file)
        .map_err(|e| fail(&mut detached, EXIT_START, e.to_string()))?;
    let logs = LogFiles::open(&paths).map_err(|e| {
        let message = format!(
            "cannot open the logs under {}: {e}",
            paths.log_file.display()
        );
        fail(&mut detached, EXIT_START, message)
    })?;
    for w in &config.warnings {
        logs.log(PARENT, Severity::Warning, w);
    }
    match raise_nofile_limit() {
        Ok(limit) => {
            // Each peer needs its socket, its connection(s) and its clients.
            let wanted = (config.peers.len() as u64) * 4 + 64;
            if limit < wanted {
                logs.log(
                    PARENT,
                    Severity::Critical,
                    &format!(
                        "open-file limit {limit} is too low for {} peers (want {wanted}); some peers may not be served",
                        config.peers.len()
                    ),
                );
            }
        }
        Err(e) => logs.log(
            PARENT,
            Severity::Warning,
            &format!("cannot raise the open-file limit: {e}"),
        ),
    }
    let spool = Spool::new(paths.delayed_dir.clone());
    Ok(Prepared {
        config,
        paths,
        logs,
        pid_file,
        spool,
        config_paths,
        detached,
    })
}

/// Binds a peer's Unix socket, logging (not failing) when it cannot.
pub fn bind_socket(logs: &LogFiles, paths: &Paths, peer: &str) -> Option<UnixListener> {
    let path = paths.socket(peer);
    match bind_peer_socket(&path) {
        Ok(l) => Some(l),
        Err(e) => {
            logs.log(
                peer,
                Severity::Critical,
                &format!("cannot create socket {}: {e}", path.display()),
            );
            None
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

/// The std peers: one [`PeerHandle`] (a thread) per peer.
#[derive(Default)]
pub struct StdPeers(BTreeMap<String, PeerHandle>);

impl PeerSet for StdPeers {
    fn start(
        &mut self,
        spec: PeerSpec,
        ctx: &PeerContext,
        listener: UnixListener,
    ) -> io::Result<()> {
        let id = spec.id.clone();
        let handle = PeerHandle::start(spec, ctx, listener)?;
        self.0.insert(id, handle);
        Ok(())
    }

    fn specs(&self) -> Vec<PeerSpec> {
        self.0.values().map(|h| h.spec().clone()).collect()
    }

    fn states(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(id, h)| (id.clone(), h.snapshot().state.as_str().to_string()))
            .collect()
    }

    fn revive_all(&mut self) {
        for h in self.0.values() {
            h.revive();
        }
    }

    fn stop(&mut self, ids: &[String], grace: Duration) {
        let mut stopping: Vec<PeerHandle> = ids.iter().filter_map(|id| self.0.remove(id)).collect();
        for h in &mut stopping {
            h.begin_stop(grace);
        }
        for h in &mut stopping {
            h.join();
        }
    }
}

/// Runs the blocking daemon until TERM/INT; returns the exit code.
pub fn run(args: &RunArgs) -> i32 {
    let mut prepared = match prepare(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (tx, rx) = mpsc::channel::<SignalAction>();
    let signal_handle = match signals::spawn_listener(tx) {
        Ok(h) => h,
        Err(e) => {
            let message = format!("cannot handle signals: {e}");
            prepared.logs.log(PARENT, Severity::Critical, &message);
            return fail(&mut prepared.detached, EXIT_START, message);
        }
    };
    let mut supervisor = Supervisor::start(prepared, StdPeers::default(), "lonc-std");
    while let Ok(action) = rx.recv() {
        if !supervisor.handle(action) {
            break;
        }
    }
    supervisor.shutdown();
    signal_handle.close();
    0
}
