//! Loading the daemon's configuration from disk: the config files (`PerlSetVar` lines,
//! later files win), then `<lonTabDir>/hosts.tab`, then the roster of peers; and the text
//! `check-config` prints. Used at startup and on every reload (HUP, USR2).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use lonc_core::config::{ConfigBuilder, ConfigErrors, Settings};
use lonc_core::hosts::{HostsTab, parse_hosts_for};
use lonc_core::roster::{PeerSpec, roster};

/// The largest config file or hosts.tab read (64 MiB): a bigger one is an error, not an
/// out-of-memory abort (think of `--config /dev/zero`).
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// A loaded, usable configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// The effective settings.
    pub settings: Settings,
    /// The parsed hosts.tab (its problems are also in [`DaemonConfig::warnings`]).
    pub hosts: HostsTab,
    /// Every peer to link to, in hosts.tab order.
    pub peers: Vec<PeerSpec>,
    /// Things the operator should hear about that do not stop the daemon: config
    /// warnings (unknown `lonc…` variables), then hosts.tab lines skipped, each
    /// `file:line: message`.
    pub warnings: Vec<String>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The config files were read but are not usable: one error a line.
    #[error("{0}")]
    Config(ConfigErrors),
    /// hosts.tab could not be read.
    #[error("cannot read hosts table {}: {source}", path.display())]
    ReadHosts {
        /// `<lonTabDir>/hosts.tab`.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Reads `path` whole (at most [`MAX_FILE_SIZE`] bytes), converting bytes that are not
/// UTF-8 lossily.
fn read_text(path: &Path) -> io::Result<String> {
    Ok(match String::from_utf8(read_bytes(path)?) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Reads `path` whole, at most [`MAX_FILE_SIZE`] bytes.
fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::other("is a directory"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(io::Error::other(format!(
            "larger than {MAX_FILE_SIZE} bytes"
        )));
    }
    Ok(bytes)
}

/// Reads every config file of `config_paths` in order (later ones win), then
/// `<lonTabDir>/hosts.tab`, and builds the roster. Problems in hosts.tab (including ids
/// that cannot name a socket in `lonSockDir`) are warnings that skip their line, never
/// errors; an unreadable file or a bad config value is an error.
pub fn load(config_paths: &[PathBuf]) -> Result<DaemonConfig, LoadError> {
    let mut builder = ConfigBuilder::new();
    for path in config_paths {
        let text = read_text(path).map_err(|source| LoadError::ReadConfig {
            path: path.clone(),
            source,
        })?;
        builder.add_source(&path.display().to_string(), &text);
    }
    let loaded = builder.build().map_err(LoadError::Config)?;
    let settings = loaded.settings;
    let mut warnings = loaded.warnings;

    let hosts_path = settings.tab_dir.join("hosts.tab");
    let bytes = read_bytes(&hosts_path).map_err(|source| LoadError::ReadHosts {
        path: hosts_path.clone(),
        source,
    })?;
    let hosts = parse_hosts_for(
        &hosts_path.display().to_string(),
        &bytes,
        &settings.sock_dir,
    );
    warnings.extend(hosts.problems.iter().map(ToString::to_string));
    let peers = roster(&settings, &hosts);
    Ok(DaemonConfig {
        settings,
        hosts,
        peers,
        warnings,
    })
}

/// What `check-config` prints: the effective settings ([`Settings::describe`], one
/// `name value` a line), a blank line, the peers (`id host:port` a line), and, if any,
/// a blank line and the warnings (`warning: …` a line).
pub fn describe(cfg: &DaemonConfig) -> String {
    let mut out = cfg.settings.describe();
    out.push('\n');
    for p in &cfg.peers {
        out.push_str(&format!("{} {}:{}\n", p.id, p.host, p.port));
    }
    if !cfg.warnings.is_empty() {
        out.push('\n');
        for w in &cfg.warnings {
            out.push_str("warning: ");
            out.push_str(&w.replace('\n', " "));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    /// A config file in `dir` with every required variable; `tab_dir` is `dir`.
    fn base_config(dir: &Path) -> String {
        format!(
            "# loncapa.conf\nPerlSetVar lonHostID msul2\nPerlSetVar lonTabDir {d}\n\
             PerlSetVar lonSockDir {d}/sockets\nPerlSetVar londPort 5663\n\
             PerlSetVar lonDaemons {d}/daemons\nPerlSetVar lonDocRoot {d}/html\n",
            d = dir.display()
        )
    }

    fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_config_hosts_and_roster() {
        let dir = TempDir::new().unwrap();
        let conf = write(dir.path(), "loncapa.conf", base_config(dir.path()));
        write(
            dir.path(),
            "hosts.tab",
            "msul1:msu:library:Main:10.0.0.1\nmsul2:msu:access:Me:10.0.0.2\n",
        );
        let cfg = load(&[conf]).unwrap();
        assert_eq!(cfg.settings.host_id, "msul2");
        assert_eq!(cfg.hosts.hosts.len(), 2);
        let ids: Vec<(&str, &str, u16)> = cfg
            .peers
            .iter()
            .map(|p| (p.id.as_str(), p.host.as_str(), p.port))
            .collect();
        assert_eq!(
            ids,
            [("msul1", "10.0.0.1", 5663), ("msul2", "10.0.0.2", 5663)]
        );
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn later_files_win() {
        let dir = TempDir::new().unwrap();
        let a = write(dir.path(), "a.conf", base_config(dir.path()));
        let b = write(
            dir.path(),
            "b.conf",
            "PerlSetVar londPort 6000\nPerlSetVar loncPongDelay 0.5\n",
        );
        write(dir.path(), "hosts.tab", "x:d:r:n:127.0.0.1\n");
        let cfg = load(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(cfg.settings.lond_port, 6000);
        assert_eq!(cfg.peers[0].port, 6000);
        assert_eq!(cfg.settings.link.pong_delay.as_millis(), 500);
        let cfg = load(&[b, a]).unwrap();
        assert_eq!(cfg.settings.lond_port, 5663);
    }

    #[test]
    fn hosts_problems_are_warnings_with_config_warnings_first() {
        let dir = TempDir::new().unwrap();
        let mut text = base_config(dir.path());
        text.push_str("PerlSetVar loncPongdelay 3\n");
        let conf = write(dir.path(), "c.conf", text);
        write(dir.path(), "hosts.tab", "a:d:r:n:1.2.3.4\njunk\n");
        let cfg = load(&[conf]).unwrap();
        assert_eq!(cfg.peers.len(), 1);
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("loncPongdelay"));
        assert!(
            cfg.warnings[1].contains("hosts.tab:2:"),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn unreadable_config_names_the_path() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("nope.conf");
        let err = load(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(&err, LoadError::ReadConfig { path, .. } if *path == missing));
        let msg = err.to_string();
        assert!(msg.contains("nope.conf"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");

        let err = load(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn config_errors_one_per_line() {
        let dir = TempDir::new().unwrap();
        let conf = write(dir.path(), "c.conf", "PerlSetVar londPort x\n");
        let err = load(&[conf]).unwrap_err();
        let LoadError::Config(errors) = &err else {
            panic!("{err:?}")
        };
        let msg = err.to_string();
        assert_eq!(msg.lines().count(), errors.errors.len());
        assert!(msg.contains("lonHostID"), "{msg}");
        assert!(msg.contains("c.conf:1: londPort"), "{msg}");
    }

    #[test]
    fn no_config_files_is_a_config_error() {
        assert!(matches!(load(&[]), Err(LoadError::Config(_))));
    }

    #[test]
    fn missing_hosts_tab_is_an_error() {
        let dir = TempDir::new().unwrap();
        let conf = write(dir.path(), "c.conf", base_config(dir.path()));
        let err = load(&[conf]).unwrap_err();
        assert!(matches!(&err, LoadError::ReadHosts { path, .. }
            if *path == dir.path().join("hosts.tab")));
        assert!(err.to_string().contains("hosts.tab"), "{err}");
    }

    #[test]
    fn non_utf8_bytes_are_converted_lossily() {
        let dir = TempDir::new().unwrap();
        let mut text = b"PerlSetVar lonTitle \xff\xfe\n".to_vec();
        text.extend_from_slice(base_config(dir.path()).as_bytes());
        let conf = write(dir.path(), "c.conf", text);
        write(dir.path(), "hosts.tab", b"a:d:r:\xff:1.2.3.4\n");
        let cfg = load(&[conf]).unwrap();
        assert_eq!(cfg.peers.len(), 1);
        assert_eq!(cfg.hosts.hosts[0].name, "\u{fffd}");
    }

    #[test]
    fn hosts_tab_line_that_cannot_work_is_a_numbered_warning() {
        let dir = TempDir::new().unwrap();
        let conf = write(dir.path(), "c.conf", base_config(dir.path()));
        // lonSockDir is <dir>/sockets: an id of 107 bytes cannot fit beside it.
        let long = "x".repeat(107);
        let mut hosts = format!("a:d:r:n:1.2.3.4\n{long}:d:r:n:1.2.3.4\n").into_bytes();
        hosts.extend_from_slice(b"delayed:d:r:n:1.2.3.4\nv6:d:r:n:[::1]\n\xffid:d:r:n:1.2.3.4\n");
        write(dir.path(), "hosts.tab", hosts);
        let cfg = load(&[conf]).unwrap();
        let ids: Vec<&str> = cfg.peers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        let tab = dir.path().join("hosts.tab");
        let lines: Vec<String> = (2..=5)
            .map(|n| format!("{}:{n}: ", tab.display()))
            .collect();
        assert_eq!(cfg.warnings.len(), lines.len(), "{:?}", cfg.warnings);
        for (w, line) in cfg.warnings.iter().zip(&lines) {
            assert!(w.starts_with(line.as_str()), "{w:?} is not on {line:?}");
        }
        assert!(cfg.warnings[0].contains("too long"), "{:?}", cfg.warnings);
        assert!(
            cfg.warnings[3].contains("not valid UTF-8"),
            "{:?}",
            cfg.warnings
        );
        let text = describe(&cfg);
        for line in &lines {
            assert!(text.contains(&format!("\nwarning: {line}")), "{text}");
        }
    }

    #[test]
    fn describe_lists_settings_peers_and_warnings() {
        let dir = TempDir::new().unwrap();
        let conf = write(dir.path(), "c.conf", base_config(dir.path()));
        write(
            dir.path(),
            "hosts.tab",
            "a:d:r:n:1.2.3.4\nb:d:r:n:host.example\nbad\n",
        );
        let cfg = load(&[conf]).unwrap();
        let text = describe(&cfg);
        assert!(text.starts_with(&cfg.settings.describe()));
        assert!(
            text.contains("\na 1.2.3.4:5663\nb host.example:5663\n"),
            "{text}"
        );
        assert!(
            text.ends_with("hosts.tab:3: expected id:domain:role:name:ip, found 1 field\n"),
            "{text}"
        );
        assert!(text.contains("\n\nwarning: "), "{text}");
    }
}
