//! Where the daemon's files live (PROTOCOL.md sections 8 and 9), all derived from the
//! settings: the per-peer sockets, the delayed spool, the pid file, the two logs and the
//! status file.

use std::path::PathBuf;

use lonc_core::config::Settings;

/// Every file and directory the daemon uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `lonSockDir`: one Unix socket per peer, named after the peer's id.
    pub sock_dir: PathBuf,
    /// `lonSockDir/delayed`: the delayed (critical) messages lonnet spools.
    pub delayed_dir: PathBuf,
    /// `lonDaemons/logs/lonc.pid`.
    pub pid_file: PathBuf,
    /// `lonDaemons/logs/lonc.log`.
    pub log_file: PathBuf,
    /// `lonDaemons/logs/lonnet.perm.log`.
    pub perm_log: PathBuf,
    /// `lonDocRoot/lon-status/loncstatus.txt`.
    pub status_file: PathBuf,
}

impl Paths {
    /// The paths of these settings.
    pub fn new(s: &Settings) -> Self {
        let logs = s.daemons_dir.join("logs");
        Paths {
            sock_dir: s.sock_dir.clone(),
            delayed_dir: s.sock_dir.join("delayed"),
            pid_file: logs.join("lonc.pid"),
            log_file: logs.join("lonc.log"),
            perm_log: logs.join("lonnet.perm.log"),
            status_file: s.doc_root.join("lon-status").join("loncstatus.txt"),
        }
    }

    /// The Unix socket of the peer `peer_id`: `lonSockDir/<peer_id>`. Host ids from
    /// hosts.tab never contain `/` and are never `.` or `..` (the parser rejects them).
    pub fn socket(&self, peer_id: &str) -> PathBuf {
        self.sock_dir.join(peer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lonc_core::config::LinkSettings;

    #[test]
    fn paths_follow_the_protocol() {
        let s = Settings {
            host_id: "msul2".into(),
            tab_dir: "/home/httpd/lonTabs".into(),
            sock_dir: "/home/httpd/sockets".into(),
            lond_port: 5663,
            daemons_dir: "/home/httpd/perl".into(),
            doc_root: "/home/httpd/html".into(),
            user: "www".into(),
            link: LinkSettings::default(),
        };
        let p = Paths::new(&s);
        assert_eq!(p.sock_dir, PathBuf::from("/home/httpd/sockets"));
        assert_eq!(p.delayed_dir, PathBuf::from("/home/httpd/sockets/delayed"));
        assert_eq!(p.pid_file, PathBuf::from("/home/httpd/perl/logs/lonc.pid"));
        assert_eq!(p.log_file, PathBuf::from("/home/httpd/perl/logs/lonc.log"));
        assert_eq!(
            p.perm_log,
            PathBuf::from("/home/httpd/perl/logs/lonnet.perm.log")
        );
        assert_eq!(
            p.status_file,
            PathBuf::from("/home/httpd/html/lon-status/loncstatus.txt")
        );
        assert_eq!(
            p.socket("msul1"),
            PathBuf::from("/home/httpd/sockets/msul1")
        );
    }
}
