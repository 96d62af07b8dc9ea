//! A self-contained LON-CAPA site in one directory, for the demo and the tests: the
//! directory layout, a `PerlSetVar` config and a hosts.tab naming peers on loopback
//! addresses that share one lond port.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};

/// A site under `root`: this host `own_id`, its peers on their addresses, one lond port.
#[derive(Debug, Clone)]
pub struct SiteLayout {
    /// The directory everything lives under.
    pub root: PathBuf,
    /// `lonHostID`.
    pub own_id: String,
    /// `londPort`, shared by every peer.
    pub port: u16,
    /// Peers: host id and loopback address.
    pub peers: Vec<(String, Ipv4Addr)>,
}

impl SiteLayout {
    /// A layout under `root` with peers on `addrs`, named `peer1`, `peer2`, ..., and a
    /// lond port free on all of those addresses.
    pub fn new(root: &Path, own_id: &str, addrs: &[Ipv4Addr]) -> io::Result<SiteLayout> {
        let peers = addrs
            .iter()
            .enumerate()
            .map(|(i, ip)| (format!("peer{}", i + 1), *ip))
            .collect();
        Ok(SiteLayout {
            root: root.to_path_buf(),
            own_id: own_id.to_owned(),
            port: free_port(addrs)?,
            peers,
        })
    }

    /// Creates the directories: `tab`, `sock/delayed`, `daemons/logs`, `docroot`.
    pub fn create_dirs(&self) -> io::Result<()> {
        for sub in ["tab", "sock/delayed", "daemons/logs", "docroot"] {
            fs::create_dir_all(self.root.join(sub))?;
        }
        Ok(())
    }

    /// The config file's path.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("loncapa.conf")
    }

    /// The config: the required variables for this layout, `loncUser` = `user`, then the
    /// extra knobs in order (later lines win).
    pub fn config_text(&self, user: &str, knobs: &[(&str, &str)]) -> String {
        let dir = |sub: &str| self.root.join(sub).display().to_string();
        let mut text = String::from("# a lonc site generated for a demo or a test\n");
        let vars = [
            ("lonHostID", self.own_id.clone()),
            ("lonTabDir", dir("tab")),
            ("lonSockDir", dir("sock")),
            ("londPort", self.port.to_string()),
            ("lonDaemons", dir("daemons")),
            ("lonDocRoot", dir("docroot")),
            ("loncUser", user.to_owned()),
        ];
        for (k, v) in vars {
            text.push_str(&format!("PerlSetVar {k} {v}\n"));
        }
        for (k, v) in knobs {
            text.push_str(&format!("PerlSetVar {k} {v}\n"));
        }
        text
    }

    /// hosts.tab listing the peers among `ids`.
    pub fn hosts_text(&self, ids: &[String]) -> String {
        self.peers
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(id, ip)| format!("{id}:msu:library:{id}.example:{ip}\n"))
            .collect()
    }

    /// Writes the config and a hosts.tab of every peer.
    pub fn write(&self, user: &str, knobs: &[(&str, &str)]) -> io::Result<()> {
        self.create_dirs()?;
        fs::write(self.config_path(), self.config_text(user, knobs))?;
        let ids: Vec<String> = self.peers.iter().map(|p| p.0.clone()).collect();
        self.write_hosts(&ids)
    }

    /// Rewrites hosts.tab with the peers among `ids`.
    pub fn write_hosts(&self, ids: &[String]) -> io::Result<()> {
        fs::write(self.root.join("tab/hosts.tab"), self.hosts_text(ids))
    }

    /// A peer's lond address.
    pub fn addr(&self, peer: &str) -> Option<SocketAddr> {
        self.peers
            .iter()
            .find(|p| p.0 == peer)
            .map(|p| SocketAddr::V4(SocketAddrV4::new(p.1, self.port)))
    }

    /// A peer's socket.
    pub fn socket(&self, peer: &str) -> PathBuf {
        self.root.join("sock").join(peer)
    }
}

/// A port free on every one of these addresses (checked by binding them all).
pub fn free_port(addrs: &[Ipv4Addr]) -> io::Result<u16> {
    let first = addrs.first().copied().unwrap_or(Ipv4Addr::LOCALHOST);
    for _ in 0..50 {
        let port = TcpListener::bind((first, 0))?.local_addr()?.port();
        if addrs
            .iter()
            .skip(1)
            .all(|ip| TcpListener::bind((*ip, port)).is_ok())
        {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no port is free on every address",
    ))
}

/// The name of the user this process runs as (the daemon must run as `loncUser`).
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lonc_core::config::ConfigBuilder;
    use lonc_core::hosts::parse_hosts;

    #[test]
    fn the_generated_site_loads() {
        let dir = tempfile::tempdir().unwrap();
        let addrs = [Ipv4Addr::new(127, 0, 0, 1)];
        let site = SiteLayout::new(dir.path(), "demo0", &addrs).unwrap();
        site.write("www", &[("loncPipeline", "2")]).unwrap();
        let text = fs::read_to_string(site.config_path()).unwrap();
        let loaded = ConfigBuilder::new().add_source("c", &text).build().unwrap();
        assert_eq!(loaded.settings.host_id, "demo0");
        assert_eq!(loaded.settings.lond_port, site.port);
        assert_eq!(loaded.settings.link.pipeline, 2);
        let tab = parse_hosts(
            "h",
            &fs::read_to_string(dir.path().join("tab/hosts.tab")).unwrap(),
        );
        assert_eq!(tab.hosts.len(), 1);
        assert_eq!(tab.hosts[0].ip, "127.0.0.1");
        assert!(tab.problems.is_empty());
    }
}
