//! A daemon's start, the same for both runtimes: [`prepare`] loads the config, checks the
//! user, detaches, takes the pid file, opens the logs, prepares the socket directory and
//! raises the open-file limit; [`Prepared::abort`] fails a start that went wrong after
//! that. The supervisor ([`crate::supervisor`]) takes it from there.

use std::path::PathBuf;

use lonc_core::io::Severity;
use lonc_core::roster::PeerSpec;

use crate::cli::{EXIT_CONFIG, EXIT_START, RunArgs, program_name};
use crate::fd_reserve::reserve_for;
use crate::load::{DaemonConfig, load};
use crate::logfile::{LogFiles, PARENT};
use crate::paths::Paths;
use crate::pidfile::PidFile;
use crate::process::{Detached, check_user, daemonize, raise_nofile_limit};
use crate::socket::{prepare_delayed_dir, prepare_socket_dir};
use crate::spool::Spool;

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

    /// Startup failed after [`prepare`]: says why in `lonc.log` (CRITICAL), removes the
    /// pid file, then says why on stderr and to the waiting parent, which exits 1.
    /// Returns the exit code, [`EXIT_START`].
    pub fn abort(mut self, message: &str) -> i32 {
        self.logs.log(
            PARENT,
            Severity::Critical,
            &format!("cannot start: {message}"),
        );
        let mut detached = self.detached.take();
        drop(self);
        fail(&mut detached, EXIT_START, message)
    }
}

/// Says why startup failed: on stderr, and to the waiting parent when detached.
fn fail(detached: &mut Option<Detached>, code: i32, message: &str) -> i32 {
    eprintln!("{}: {message}", program_name());
    if let Some(d) = detached.take() {
        d.failed(message);
    }
    code
}

/// Loads the config, checks the user, detaches unless `--foreground`, takes the pid file,
/// opens the logs, prepares `lonSockDir` (and `delayed/` in it) and raises the open-file
/// limit. On failure, says why on stderr, in `lonc.log` once it is open, and to the
/// parent that waits for a detached daemon, and gives the exit code.
///
/// Whether another daemon runs is decided by the pid file's lock alone (taken after
/// detaching), never by whether the pid in the file is alive.
pub fn prepare(args: &RunArgs) -> Result<Prepared, i32> {
    let mut detached = None;
    let config_paths = args.config.config_paths();
    let config =
        load(&config_paths).map_err(|e| fail(&mut detached, EXIT_CONFIG, &e.to_string()))?;
    for w in &config.warnings {
        eprintln!("{}: warning: {w}", program_name());
    }
    let user = args
        .user
        .clone()
        .unwrap_or_else(|| config.settings.user.clone());
    check_user(&user).map_err(|e| fail(&mut detached, EXIT_START, &e))?;
    let paths = Paths::new(&config.settings);
    if !args.foreground {
        let d = daemonize()
            .map_err(|e| fail(&mut detached, EXIT_START, &format!("cannot detach: {e}")))?;
        detached = Some(d);
    }
    let pid_file = PidFile::create(&paths.pid_file)
        .map_err(|e| fail(&mut detached, EXIT_START, &e.to_string()))?;
    let logs = match LogFiles::open(&paths) {
        Ok(logs) => logs,
        Err(e) => {
            drop(pid_file);
            return Err(fail(
                &mut detached,
                EXIT_START,
                &format!("cannot open the logs: {e}"),
            ));
        }
    };
    for w in &config.warnings {
        logs.log(PARENT, Severity::Warning, w);
    }
    let spool = Spool::new(paths.delayed_dir.clone());
    let prepared = Prepared {
        config,
        paths,
        logs,
        pid_file,
        spool,
        config_paths,
        detached,
    };
    if let Err(e) = prepare_socket_dir(&prepared.paths.sock_dir) {
        return Err(prepared.abort(&format!("cannot use lonSockDir: {e}")));
    }
    prepare_spool_dir(&prepared.logs, &prepared.paths);
    raise_limit(&prepared.logs, &prepared.config.peers);
    Ok(prepared)
}

/// Creates `lonSockDir/delayed` if missing (with the socket directory's mode); a
/// problem is a CRITICAL line, not a failure: the links work without it.
fn prepare_spool_dir(logs: &LogFiles, paths: &Paths) {
    match prepare_delayed_dir(&paths.sock_dir, &paths.delayed_dir) {
        Ok(true) => logs.log(
            PARENT,
            Severity::Info,
            &format!("created {}", paths.delayed_dir.display()),
        ),
        Ok(false) => {}
        Err(e) => logs.log(
            PARENT,
            Severity::Critical,
            &format!("delayed messages cannot be spooled: {e}"),
        ),
    }
}

/// Raises the open-file limit, saying in the log when it stays too low for `peers`.
fn raise_limit(logs: &LogFiles, peers: &[PeerSpec]) {
    match raise_nofile_limit() {
        Ok(limit) => {
            let wanted = descriptors_wanted(peers, limit);
            if limit < wanted {
                logs.log(
                    PARENT,
                    Severity::Critical,
                    &format!(
                        "open-file limit {limit} is too low for {} peers (want {wanted}: a socket \
                         and loncMaxConnections links a peer, the {} kept for clients, and 64 \
                         for files); links that do not fit wait, peers that are up keep serving",
                        peers.len(),
                        reserve_for(limit)
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
}

/// The descriptors a daemon with these peers wants under `limit`: each peer's socket
/// and its links (`loncMaxConnections`), the reserve kept for clients, and 64 for the
/// log, pid, spool and status files.
fn descriptors_wanted(peers: &[PeerSpec], limit: u64) -> u64 {
    let per_peers: u64 = peers
        .iter()
        .map(|p| 1 + p.link.max_connections as u64)
        .sum();
    per_peers + reserve_for(limit) + 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use lonc_core::config::LinkSettings;

    fn peer(max_connections: usize) -> PeerSpec {
        PeerSpec {
            id: "p".into(),
            host: "127.0.0.1".into(),
            port: 1,
            link: LinkSettings {
                max_connections,
                ..LinkSettings::default()
            },
        }
    }

    #[test]
    fn descriptors_wanted_counts_a_socket_and_the_links_of_each_peer() {
        let peers: Vec<PeerSpec> = (0..1000).map(|_| peer(1)).collect();
        assert_eq!(descriptors_wanted(&peers, 20_000), 2000 + 256 + 64);
        let peers: Vec<PeerSpec> = (0..10).map(|_| peer(4)).collect();
        assert_eq!(descriptors_wanted(&peers, 1024), 50 + 128 + 64);
    }
}
