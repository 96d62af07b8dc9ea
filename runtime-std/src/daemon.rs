//! The daemon's life: the runtime-neutral steps both daemons share ([`prepare`]: config,
//! user check, detaching, pid file, logs, open-file limit; [`status_lines`]; the socket
//! binding of a peer), and the std supervisor ([`run`]) that starts one
//! [`PeerHandle`] per peer and answers signals: TERM/INT stop, HUP/USR2 reload, USR1 status.

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use lonc_core::io::Severity;
use lonc_core::roster::{self, PeerSpec};

use crate::cli::RunArgs;
use crate::driver::PeerHandle;
use crate::load::{DaemonConfig, load};
use crate::logfile::{LogFiles, PARENT, localtime};
use crate::paths::Paths;
use crate::pidfile::{PidFile, is_alive, read_pid};
use crate::process::{Detached, check_user, daemonize, raise_nofile_limit};
use crate::signals::{self, SignalAction};
use crate::socket::{bind_peer_socket, remove_peer_socket};
use crate::spool::Spool;
use crate::status::{PeerStatusLine, status_text, write_status};

/// How long requests in flight may take to finish on TERM/INT, a reload or a removal.
pub const GRACE: Duration = Duration::from_secs(5);

/// Exit code for a bad config or command line.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code for any other failure to start (wrong user, already running, no socket).
pub const EXIT_START: i32 = 1;

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

/// A random seed for a peer's backoff.
pub fn seed() -> u64 {
    rand::random()
}

/// What the supervisor waits for.
enum Event {
    Signal(SignalAction),
}

impl From<SignalAction> for Event {
    fn from(a: SignalAction) -> Self {
        Event::Signal(a)
    }
}

/// Runs the blocking daemon until TERM/INT; returns the exit code.
pub fn run(args: &RunArgs) -> i32 {
    let mut prepared = match prepare(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (tx, rx) = mpsc::channel::<Event>();
    let signal_handle = match signals::spawn_listener(tx) {
        Ok(h) => h,
        Err(e) => {
            let message = format!("cannot handle signals: {e}");
            prepared.logs.log(PARENT, Severity::Critical, &message);
            return fail(&mut prepared.detached, EXIT_START, message);
        }
    };
    prepared.logs.log(
        PARENT,
        Severity::Info,
        &format!(
            "lonc-std {} starting, pid {}, {} peers",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            prepared.config.peers.len()
        ),
    );
    let mut peers: BTreeMap<String, PeerHandle> = BTreeMap::new();
    for spec in prepared.config.peers.clone() {
        start_peer(
            &mut peers,
            spec,
            &prepared.config.settings.host_id,
            &prepared.paths,
            &prepared.logs,
            &prepared.spool,
        );
    }
    prepared.ready();
    let Prepared {
        config,
        paths,
        logs,
        pid_file,
        spool,
        config_paths,
        ..
    } = prepared;
    let own_id = config.settings.host_id;
    while let Ok(Event::Signal(action)) = rx.recv() {
        match action {
            SignalAction::Stop => break,
            SignalAction::Status => {
                let states: Vec<(String, String)> = peers
                    .iter()
                    .map(|(id, h)| (id.clone(), h.snapshot().state.as_str().to_string()))
                    .collect();
                let text = status_lines(&logs, &states);
                if let Err(e) = write_status(&paths.status_file, &text) {
                    logs.log(
                        PARENT,
                        Severity::Warning,
                        &format!("cannot write {}: {e}", paths.status_file.display()),
                    );
                }
                for h in peers.values() {
                    h.revive();
                }
            }
            SignalAction::Reload => {
                if let Err(e) = logs.reopen() {
                    eprintln!("lonc: cannot reopen the logs: {e}");
                }
                match load(&config_paths) {
                    Err(e) => logs.log(
                        PARENT,
                        Severity::Critical,
                        &format!("reload failed, keeping the running config: {e}"),
                    ),
                    Ok(new) => {
                        let running: Vec<PeerSpec> =
                            peers.values().map(|h| h.spec().clone()).collect();
                        let change = roster::reload(&running, &new.peers);
                        logs.log(
                            PARENT,
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
                            logs.log(PARENT, Severity::Warning, w);
                        }
                        if new.settings.host_id != own_id {
                            logs.log(
                                PARENT,
                                Severity::Warning,
                                "lonHostID changed: restart the daemon for it to take effect",
                            );
                        }
                        let stopping: Vec<String> = change
                            .stop
                            .iter()
                            .chain(change.restart.iter().map(|p| &p.id))
                            .cloned()
                            .collect();
                        stop_peers(&mut peers, &stopping, &paths);
                        for spec in change.start.into_iter().chain(change.restart) {
                            start_peer(&mut peers, spec, &own_id, &paths, &logs, &spool);
                        }
                    }
                }
            }
        }
    }
    logs.log(PARENT, Severity::Info, "shutting down");
    let ids: Vec<String> = peers.keys().cloned().collect();
    stop_peers(&mut peers, &ids, &paths);
    signal_handle.close();
    drop(pid_file);
    logs.log(PARENT, Severity::Info, "stopped");
    0
}

fn start_peer(
    peers: &mut BTreeMap<String, PeerHandle>,
    spec: PeerSpec,
    own_id: &str,
    paths: &Paths,
    logs: &LogFiles,
    spool: &Spool,
) {
    let Some(listener) = bind_socket(logs, paths, &spec.id) else {
        return;
    };
    let id = spec.id.clone();
    match PeerHandle::start(
        spec,
        own_id,
        listener,
        paths.socket(&id),
        logs.clone(),
        spool.clone(),
        seed(),
    ) {
        Ok(h) => {
            peers.insert(id, h);
        }
        Err(e) => {
            logs.log(&id, Severity::Critical, &format!("cannot start: {e}"));
            remove_peer_socket(&paths.socket(&id));
        }
    }
}

/// Stops these peers together (each gets the grace period at the same time), waits for
/// them, and removes their sockets.
fn stop_peers(peers: &mut BTreeMap<String, PeerHandle>, ids: &[String], paths: &Paths) {
    let mut stopping: Vec<PeerHandle> = ids.iter().filter_map(|id| peers.remove(id)).collect();
    for h in &mut stopping {
        h.begin_stop(GRACE);
    }
    for h in &mut stopping {
        h.join();
        remove_peer_socket(&paths.socket(&h.spec().id));
    }
}
