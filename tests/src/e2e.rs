//! End-to-end fixtures: a throwaway LON-CAPA site in a temp dir (config, hosts.tab,
//! spool, logs), lond-sim peers on loopback addresses 127.0.0.x, and a daemon binary of
//! either runtime started on it as a real process. Everything is bounded in time and
//! cleaned up on drop, even when a test fails.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use lonc_std::lond_sim::{LondSim, SimListener, SimOptions};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// A daemon binary to test.
#[derive(Debug, Clone, Copy)]
pub struct Runtime {
    /// The cargo package that builds it.
    pub package: &'static str,
    /// The binary's name.
    pub binary: &'static str,
}

/// The blocking daemon.
pub const STD: Runtime = Runtime {
    package: "lonc-std",
    binary: "lonc-std",
};

/// The path of a runtime's binary, built once per test process (a no-op when
/// `cargo test --workspace` has built it already).
pub fn binary(rt: Runtime) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // One runtime per test binary in practice; key the cache by the package anyway.
    let built = BUILT.get_or_init(|| build(rt));
    match built {
        Ok(p) if p.ends_with(rt.binary) => p.clone(),
        Ok(_) => build(rt).expect("build the daemon"),
        Err(e) => panic!("{e}"),
    }
}

fn build(rt: Runtime) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target dir")?
        .to_path_buf();
    let release = profile_dir.ends_with("release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", rt.package, "--bins"]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p {} failed:\n{}",
            rt.package,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(profile_dir.join(rt.binary))
}

/// The user the tests run as (the daemon must run as `--user`).
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

/// A LON-CAPA installation in a temp dir: this host `msul0` and its peers, each on its
/// own loopback address, all on one lond port.
pub struct Site {
    /// The temp dir (removed on drop).
    pub dir: TempDir,
    /// The config file (`PerlSetVar` lines).
    pub config: PathBuf,
    /// This server's host id.
    pub own_id: String,
    /// The shared lond port.
    pub port: u16,
    /// Peers: host id and loopback address.
    pub peers: Vec<(String, Ipv4Addr)>,
}

/// Every site takes its own block of 127.0.x.y addresses, so tests can run in parallel.
static NEXT_BLOCK: AtomicU32 = AtomicU32::new(0);

impl Site {
    /// A site with `peers` peers named `peer1`.. and extra `PerlSetVar` knobs.
    pub fn new(peers: usize, knobs: &[(&str, &str)]) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("lonc-e2e-")
            .tempdir()
            .expect("temp dir");
        let block = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let pid_part = (std::process::id() % 50) as u8;
        let base = 10 + (block as u8 % 40) * 5;
        let peers: Vec<(String, Ipv4Addr)> = (0..peers)
            .map(|i| {
                let n = i as u32;
                (
                    format!("peer{}", i + 1),
                    Ipv4Addr::new(
                        127,
                        100 + pid_part,
                        base + (n / 250) as u8,
                        1 + (n % 250) as u8,
                    ),
                )
            })
            .collect();
        let port = free_port(&peers);
        let site = Site {
            config: dir.path().join("loncapa.conf"),
            dir,
            own_id: "msul0".into(),
            port,
            peers,
        };
        for sub in ["tab", "sock/delayed", "daemons/logs", "docroot"] {
            fs::create_dir_all(site.dir.path().join(sub)).expect("site dirs");
        }
        site.write_config(knobs);
        let ids: Vec<String> = site.peers.iter().map(|p| p.0.clone()).collect();
        site.write_hosts(&ids);
        site
    }

    /// Writes the config with these extra knobs (short timeouts by default).
    pub fn write_config(&self, knobs: &[(&str, &str)]) {
        let root = self.dir.path();
        let mut text = String::from("# generated by lonc-tests\n");
        let vars = [
            ("lonHostID", self.own_id.clone()),
            ("lonTabDir", root.join("tab").display().to_string()),
            ("lonSockDir", root.join("sock").display().to_string()),
            ("londPort", self.port.to_string()),
            ("lonDaemons", root.join("daemons").display().to_string()),
            ("lonDocRoot", root.join("docroot").display().to_string()),
            ("loncUser", current_user()),
            ("loncRetryMin", "0.2".into()),
            ("loncRetryMax", "0.4".into()),
            ("loncDelayedRescan", "1".into()),
            ("loncConnectTimeout", "1".into()),
            ("loncHandshakeTimeout", "3".into()),
        ];
        for (k, v) in vars {
            text.push_str(&format!("PerlSetVar {k} {v}\n"));
        }
        for (k, v) in knobs {
            text.push_str(&format!("PerlSetVar {k} {v}\n"));
        }
        fs::write(&self.config, text).expect("write config");
    }

    /// Writes hosts.tab listing these peers (of this site's peers).
    pub fn write_hosts(&self, ids: &[String]) {
        let mut text = String::new();
        for (id, ip) in &self.peers {
            if ids.contains(id) {
                text.push_str(&format!("{id}:msu:library:{id}.example:{ip}\n"));
            }
        }
        fs::write(self.dir.path().join("tab/hosts.tab"), text).expect("write hosts.tab");
    }

    /// A peer's socket.
    pub fn socket(&self, peer: &str) -> PathBuf {
        self.dir.path().join("sock").join(peer)
    }

    /// The delayed spool directory.
    pub fn delayed(&self) -> PathBuf {
        self.dir.path().join("sock/delayed")
    }

    /// A file under `lonDaemons/logs`.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join("daemons/logs").join(name)).unwrap_or_default()
    }

    /// The pid file's path.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("daemons/logs/lonc.pid")
    }

    /// The status file's path.
    pub fn status_file(&self) -> PathBuf {
        self.dir.path().join("docroot/lon-status/loncstatus.txt")
    }

    /// A peer's loopback address with the lond port.
    pub fn addr(&self, peer: &str) -> SocketAddr {
        let ip = self
            .peers
            .iter()
            .find(|p| p.0 == peer)
            .map(|p| p.1)
            .expect("known peer");
        SocketAddr::V4(SocketAddrV4::new(ip, self.port))
    }

    /// lond-sim for every peer, well behaved.
    pub fn lond(&self) -> LondSim {
        self.lond_with(|_| SimOptions::default())
    }

    /// lond-sim for every peer, with options per peer.
    pub fn lond_with(&self, opts: impl Fn(&str) -> SimOptions) -> LondSim {
        let listeners = self
            .peers
            .iter()
            .map(|(id, _)| SimListener::new(id.clone(), self.addr(id), opts(id)))
            .collect();
        let listeners: Vec<SimListener> = listeners;
        retry(|| LondSim::start_listeners(listeners.clone(), self.own_id.clone()))
    }
}

/// Binding can fail for a moment after a previous listener on the same address closed.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Ok(v) => return v,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{e}"),
        }
    }
}

/// A port free on every one of these addresses (checked by binding them all).
fn free_port(peers: &[(String, Ipv4Addr)]) -> u16 {
    for _ in 0..50 {
        let first = peers.first().map(|p| p.1).unwrap_or(Ipv4Addr::LOCALHOST);
        let Ok(l) = TcpListener::bind((first, 0)) else {
            continue;
        };
        let Ok(port) = l.local_addr().map(|a| a.port()) else {
            continue;
        };
        if peers
            .iter()
            .skip(1)
            .all(|(_, ip)| TcpListener::bind((*ip, port)).is_ok())
        {
            return port;
        }
    }
    panic!("no free port on the test addresses");
}

/// A daemon process on a site. Killed on drop if still running.
pub struct Daemon {
    child: Child,
    /// Its stderr, collected when it exits.
    pub stderr_path: PathBuf,
}

impl Daemon {
    /// Starts `rt` in the foreground on `site` and waits (up to 10 s) for every socket of
    /// the site's hosts.tab to exist.
    pub fn start(rt: Runtime, site: &Site) -> Daemon {
        let d = Daemon::spawn(rt, site);
        let ids: Vec<String> = site.peers.iter().map(|p| p.0.clone()).collect();
        d.wait_for_sockets(site, &ids);
        d
    }

    /// Starts `rt` without waiting for anything.
    pub fn spawn(rt: Runtime, site: &Site) -> Daemon {
        static NEXT_DAEMON: AtomicU32 = AtomicU32::new(0);
        let n = NEXT_DAEMON.fetch_add(1, Ordering::SeqCst);
        let stderr_path = site.dir.path().join(format!("stderr-{n}.txt"));
        let stderr = fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(binary(rt))
            .arg("--foreground")
            .arg("--config")
            .arg(&site.config)
            .arg("--user")
            .arg(current_user())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the daemon");
        Daemon { child, stderr_path }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until these peers' sockets exist (10 s at most).
    pub fn wait_for_sockets(&self, site: &Site, ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ids.iter().all(|id| site.socket(id).exists()) {
            assert!(
                Instant::now() < deadline,
                "sockets did not appear; stderr: {}\nlog: {}",
                fs::read_to_string(&self.stderr_path).unwrap_or_default(),
                site.log("lonc.log")
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), sig);
    }

    /// Waits (up to `limit`) for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// TERM, then the exit status (10 s at most).
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What lonnet does: one request on a new connection, one reply line (without LF).
pub fn send(socket: &Path, request: &[u8]) -> io::Result<Vec<u8>> {
    lonc_std::sendcmd::send_request(socket, request, Duration::from_secs(20))
}

/// `send`, as text.
pub fn send_text(socket: &Path, request: &str) -> String {
    match send(socket, request.as_bytes()) {
        Ok(r) => String::from_utf8_lossy(&r).into_owned(),
        Err(e) => format!("<error: {e}>"),
    }
}

/// Polls `f` every 20 ms until it is true or `limit` passes; returns whether it became
/// true.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
