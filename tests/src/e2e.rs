//! End-to-end fixtures: a throwaway LON-CAPA site in a temp dir (config, hosts.tab,
//! spool, logs), lond-sim peers on loopback addresses 127.0.0.x, and a daemon binary of
//! either runtime started on it as a real process. Everything is bounded in time and
//! cleaned up on drop, even when a test fails.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use lond_sim::{LondSim, SimListener, SimOptions};
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
    /// A directory holding an already built binary of that name to run instead of
    /// building the package (a benchmark's "before" build); `None` to build it.
    pub prebuilt: Option<&'static str>,
}

impl Runtime {
    /// The same daemon, taken from `dir` (a `target/release` of another checkout).
    pub fn prebuilt_in(self, dir: &str) -> Runtime {
        Runtime {
            prebuilt: Some(Box::leak(dir.to_owned().into_boxed_str())),
            ..self
        }
    }
}

/// The blocking daemon.
pub const STD: Runtime = Runtime {
    package: "lonc-std",
    binary: "lonc-std",
    prebuilt: None,
};

/// The smol daemon.
pub const SMOL: Runtime = Runtime {
    package: "lonc-smol",
    binary: "lonc",
    prebuilt: None,
};

/// The path of a runtime's binary, built once per test process (a no-op when
/// `cargo test --workspace` has built it already).
pub fn binary(rt: Runtime) -> PathBuf {
    if let Some(dir) = rt.prebuilt {
        return Path::new(dir).join(rt.binary);
    }
    static BUILT: Mutex<BTreeMap<&'static str, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(rt.package) {
        return p.clone();
    }
    let path = build(rt).unwrap_or_else(|e| panic!("{e}"));
    built.insert(rt.package, path.clone());
    path
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

pub use lonc_host::site::current_user;

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
        let ids: Vec<String> = (1..=peers).map(|i| format!("peer{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        Site::with_ids(&ids, knobs)
    }

    /// A site whose peers have these host ids (for ids that share a prefix, say), with
    /// extra `PerlSetVar` knobs.
    pub fn with_ids(ids: &[&str], knobs: &[(&str, &str)]) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("lonc-e2e-")
            .tempdir()
            .expect("temp dir");
        let block = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let pid_part = (std::process::id() % 50) as u8;
        let base = 10 + (block as u8 % 40) * 5;
        let peers: Vec<(String, Ipv4Addr)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let n = i as u32;
                (
                    id.to_string(),
                    Ipv4Addr::new(
                        127,
                        100 + pid_part,
                        base + (n / 250) as u8,
                        1 + (n % 250) as u8,
                    ),
                )
            })
            .collect();
        let addrs: Vec<Ipv4Addr> = peers.iter().map(|p| p.1).collect();
        let port = lonc_host::site::free_port(&addrs).expect("a port free on the test addresses");
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
        // A test's knob replaces the base value of the same name (each variable set
        // once, so the daemon has no "set again" warning to give).
        for (k, v) in vars {
            if !knobs.iter().any(|(name, _)| *name == k) {
                text.push_str(&format!("PerlSetVar {k} {v}\n"));
            }
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
        let ids: Vec<&str> = self.peers.iter().map(|p| p.0.as_str()).collect();
        self.lond_on(&ids, opts)
    }

    /// lond-sim for these peers only (the others have nothing listening), with options
    /// per peer.
    pub fn lond_on(&self, ids: &[&str], opts: impl Fn(&str) -> SimOptions) -> LondSim {
        let listeners: Vec<SimListener> = ids
            .iter()
            .map(|id| SimListener::new(*id, self.addr(id), opts(id)))
            .collect();
        retry(|| LondSim::start_listeners(listeners.clone(), self.own_id.clone()))
    }

    /// Every peer's host id, in hosts.tab order.
    pub fn ids(&self) -> Vec<String> {
        self.peers.iter().map(|p| p.0.clone()).collect()
    }

    /// Puts a delayed message file `name` holding `content` into the spool, whole at
    /// once (written beside the spool, then renamed into it), as lonnet would leave it.
    pub fn write_delayed(&self, name: &str, content: &[u8]) {
        let tmp = self.dir.path().join(format!(".delayed-{name}"));
        fs::write(&tmp, content).expect("write a delayed file");
        fs::rename(&tmp, self.delayed().join(name)).expect("move it into the spool");
    }

    /// Whether the delayed message file `name` is still in the spool.
    pub fn has_delayed(&self, name: &str) -> bool {
        self.delayed().join(name).exists()
    }

    /// The `S` lines of `lonnet.perm.log`, parsed, in file order.
    pub fn sent_delayed(&self) -> Vec<PermLogLine> {
        self.log("lonnet.perm.log")
            .lines()
            .filter_map(PermLogLine::parse)
            .collect()
    }

    /// Panics if `lonc.log` contains any of `secrets` (texts of `encrypt:` requests or of
    /// decrypted replies, which must never be logged).
    pub fn assert_log_lacks(&self, secrets: &[&str]) {
        let log = self.log("lonc.log");
        for s in secrets {
            assert!(
                !log.contains(s),
                "lonc.log contains the secret {s:?}:\n{log}"
            );
        }
    }
}

/// One `S` line of `lonnet.perm.log`: `<epoch>:S:<peer>:<request>:<localtime>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermLogLine {
    /// Seconds since the epoch.
    pub epoch: u64,
    /// The peer's host id.
    pub peer: String,
    /// The request as read from the file (it may hold `:`).
    pub request: String,
    /// The local time, like `Wed Mar 20 03:44:11 2002`.
    pub localtime: String,
}

impl PermLogLine {
    /// Parses an `S` line; `None` for any other line. The peer id holds no `:`, and the
    /// local time is the last 24 characters (`%a %b %e %H:%M:%S %Y`).
    pub fn parse(line: &str) -> Option<PermLogLine> {
        let (epoch, rest) = line.split_once(':')?;
        let rest = rest.strip_prefix("S:")?;
        let (peer, rest) = rest.split_once(':')?;
        let cut = rest.len().checked_sub(25)?;
        let (request, localtime) = (rest.get(..cut)?, rest.get(cut..)?);
        let localtime = localtime.strip_prefix(':')?;
        Some(PermLogLine {
            epoch: epoch.parse().ok()?,
            peer: peer.to_owned(),
            request: request.to_owned(),
            localtime: localtime.to_owned(),
        })
    }
}

/// Whether `t` looks like Perl's `scalar localtime`: `Wed Mar 20 03:44:11 2002` (the day
/// of the month padded with a space).
pub fn is_perl_localtime(t: &str) -> bool {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if t.len() != 24 || !t.is_ascii() {
        return false;
    }
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    DAYS.contains(&&t[0..3])
        && b[3] == b' '
        && MONTHS.contains(&&t[4..7])
        && b[7] == b' '
        && (b[8] == b' ' || b[8].is_ascii_digit())
        && b[9].is_ascii_digit()
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b' '
        && digits(20..24)
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
        Daemon::spawn_with(rt, site, |_| {})
    }

    /// Starts `rt` without waiting for anything, its command first changed by `setup`
    /// (a resource limit set before `exec`, say).
    pub fn spawn_with(rt: Runtime, site: &Site, setup: impl FnOnce(&mut Command)) -> Daemon {
        static NEXT_DAEMON: AtomicU32 = AtomicU32::new(0);
        let n = NEXT_DAEMON.fetch_add(1, Ordering::SeqCst);
        let stderr_path = site.dir.path().join(format!("stderr-{n}.txt"));
        let stderr = fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = Daemon::command(rt, site);
        cmd.arg("--foreground").stderr(stderr);
        setup(&mut cmd);
        let child = cmd.spawn().expect("start the daemon");
        Daemon { child, stderr_path }
    }

    /// The command that runs `rt` on `site` as this user, without stdin and stdout (add
    /// `--foreground` and stderr as needed).
    pub fn command(rt: Runtime, site: &Site) -> Command {
        let mut cmd = Command::new(binary(rt));
        cmd.arg("--config")
            .arg(&site.config)
            .arg("--user")
            .arg(current_user())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
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

    /// What the daemon wrote on stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// How many entries `/proc/<pid>/<what>` has (`"fd"`: open files, `"task"`:
    /// threads); 0 if it cannot be read.
    pub fn proc_count(&self, what: &str) -> usize {
        fs::read_dir(format!("/proc/{}/{what}", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
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
    lonc_host::sendcmd::send_request(socket, request, Duration::from_secs(20))
}

/// `send`, as text.
pub fn send_text(socket: &Path, request: &str) -> String {
    match send(socket, request.as_bytes()) {
        Ok(r) => String::from_utf8_lossy(&r).into_owned(),
        Err(e) => format!("<error: {e}>"),
    }
}

/// A client that keeps its connection to a peer socket open, to write several requests
/// (or arbitrary bytes) and read the replies line by line. Every read and write is
/// bounded by [`Client::TIMEOUT`].
pub struct Client {
    stream: UnixStream,
    /// Bytes read past the last line returned.
    buf: Vec<u8>,
}

impl Client {
    /// How long one read or write may block.
    pub const TIMEOUT: Duration = Duration::from_secs(20);

    /// Connects to a peer socket.
    pub fn connect(socket: &Path) -> io::Result<Client> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Self::TIMEOUT))?;
        stream.set_write_timeout(Some(Self::TIMEOUT))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// Writes these bytes as they are (several lines at once, half a line, ...).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// A second handle on the same connection, to write from another thread while
    /// this one reads.
    pub fn writer(&self) -> io::Result<UnixStream> {
        self.stream.try_clone()
    }

    /// Closes the writing side (the daemon sees EOF after the requests sent).
    pub fn finish(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// The next reply line without its LF; `None` at EOF (the daemon closed; a partial
    /// line before EOF is dropped).
    pub fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..=i);
                return Ok(Some(line));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Client::read_line`] as text; `<eof>` at EOF, `<error: ...>` on an error.
    pub fn line_text(&mut self) -> String {
        match self.read_line() {
            Ok(Some(l)) => String::from_utf8_lossy(&l).into_owned(),
            Ok(None) => "<eof>".into(),
            Err(e) => format!("<error: {e}>"),
        }
    }
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct CliOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs the daemon binary of `rt` with these arguments (an operator command such as
/// `check-config`) and returns what it printed; killed and a panic if it runs longer
/// than 20 s.
pub fn cli(rt: Runtime, args: &[&OsStr]) -> CliOutput {
    let mut child = Command::new(binary(rt))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the command");
    // Drain both pipes while waiting, so a long output cannot block the child.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} ran longer than 20 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let text = |h: thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    CliOutput {
        status,
        stdout: text(out),
        stderr: text(err),
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
