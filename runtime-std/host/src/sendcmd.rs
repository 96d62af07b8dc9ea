//! The operator commands that do not run the daemon: `send` (one request through a peer's
//! Unix socket, exactly as lonnet does it), `check-config` and `status` (USR1, then print
//! the status file). Each `run_*` returns the process exit code, and
//! [`Command::execute`] picks the one a command line asks for.

use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::cli::{
    Command, ConfigArgs, EXIT_CONFIG, EXIT_FAILED, EXIT_OK, RunArgs, SendArgs, program_name,
};
use crate::load::{DaemonConfig, describe, load};
use crate::paths::Paths;
use crate::pidfile::{is_alive, lock_holder, read_pid};
use crate::process::send_signal;

/// The longest reply `send` accepts (256 MiB, the default `loncMaxReply`), LF excluded.
pub const MAX_REPLY: usize = lonc_core::config::LinkSettings::DEFAULT.max_reply;

impl Command {
    /// Carries out the command: the operator commands here, the daemon itself through
    /// `run` (each runtime brings its own). Returns the exit code.
    pub fn execute(&self, run: impl FnOnce(&RunArgs) -> i32) -> i32 {
        match self {
            Command::Run(args) => run(args),
            Command::CheckConfig(args) => run_check_config(args),
            Command::Send(args) => run_send(args),
            Command::Status(args) => run_status(args),
        }
    }
}

/// How long `status` waits for the daemon to rewrite the status file.
pub const STATUS_WAIT: Duration = Duration::from_secs(3);

/// Sends one request line on the Unix socket at `socket` and returns the reply line
/// without its LF, as lonnet does: connect, write `request` and LF, shut down the write
/// side, read up to the first LF (or EOF; an empty result means the daemon closed the
/// connection without a reply).
///
/// The whole exchange must finish within `timeout` ([`io::ErrorKind::TimedOut`]). A
/// request containing LF is [`io::ErrorKind::InvalidInput`] (it would be several
/// requests); a reply longer than [`MAX_REPLY`] is [`io::ErrorKind::InvalidData`].
pub fn send_request(socket: &Path, request: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    send_request_bounded(socket, request, timeout, MAX_REPLY)
}

fn send_request_bounded(
    socket: &Path,
    request: &[u8],
    timeout: Duration,
    max_reply: usize,
) -> io::Result<Vec<u8>> {
    if request.contains(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the request contains a line feed",
        ));
    }
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no reply in time"))
    };
    let timed_out = |e: io::Error| {
        if e.kind() == io::ErrorKind::WouldBlock {
            io::Error::new(io::ErrorKind::TimedOut, "no reply in time")
        } else {
            e
        }
    };
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(remaining()?))?;
    let mut line = Vec::with_capacity(request.len() + 1);
    line.extend_from_slice(request);
    line.push(b'\n');
    stream.write_all(&line).map_err(timed_out)?;
    // lonc answers what it read before EOF; a daemon that closed first is handled below.
    let _ = stream.shutdown(std::net::Shutdown::Write);

    let mut reply = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        stream.set_read_timeout(Some(remaining()?))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(timed_out(e)),
        };
        if n == 0 {
            return Ok(reply);
        }
        let chunk = &buf[..n];
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], true),
            None => (chunk, false),
        };
        if reply.len() + take.len() > max_reply {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("reply longer than {max_reply} bytes"),
            ));
        }
        reply.extend_from_slice(take);
        if done {
            return Ok(reply);
        }
    }
}

/// Loads the config, printing errors (and returning the exit code) on failure.
fn load_config(args: &ConfigArgs, err: &mut dyn Write) -> Result<DaemonConfig, i32> {
    load(&args.config_paths()).map_err(|e| {
        let _ = writeln!(err, "{}: {e}", program_name());
        EXIT_CONFIG
    })
}

/// How long `send` waits: as long as the daemon may take to answer a request that
/// queued behind a connection attempt (connect, the handshake steps, the pong delay,
/// then the transaction), plus a margin.
fn send_timeout(cfg: &DaemonConfig) -> Duration {
    let l = &cfg.settings.link;
    l.connect_timeout
        .saturating_add(l.handshake_timeout.saturating_mul(4))
        .saturating_add(l.pong_delay)
        .saturating_add(l.transaction_timeout)
        .saturating_add(Duration::from_secs(10))
}

/// `send`: sends the request to the peer's socket and prints the reply. Exit code 0,
/// 1 for `con_lost`, no reply or an unreachable daemon (with a message on stderr), 2 for
/// a config error or a peer not in hosts.tab.
pub fn run_send(args: &SendArgs) -> i32 {
    run_send_to(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

fn run_send_to(args: &SendArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cfg = match load_config(&args.config, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !cfg.peers.iter().any(|p| p.id == args.peer) {
        let _ = writeln!(
            err,
            "{}: no peer {:?} in {}",
            program_name(),
            args.peer,
            cfg.settings.tab_dir.join("hosts.tab").display()
        );
        return EXIT_CONFIG;
    }
    let socket = Paths::new(&cfg.settings).socket(&args.peer);
    match send_request(&socket, args.request.as_bytes(), send_timeout(&cfg)) {
        Err(e) => {
            let _ = writeln!(
                err,
                "{}: cannot reach {} through {}: {e} (is lonc running?)",
                program_name(),
                args.peer,
                socket.display()
            );
            EXIT_FAILED
        }
        Ok(reply) if reply.is_empty() => {
            let _ = writeln!(
                err,
                "{}: no reply from {}: the connection closed",
                program_name(),
                args.peer
            );
            EXIT_FAILED
        }
        Ok(reply) => {
            let _ = out.write_all(&reply);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
            if reply == b"con_lost" {
                let _ = writeln!(err, "{}: the link to {} is down", program_name(), args.peer);
                EXIT_FAILED
            } else {
                EXIT_OK
            }
        }
    }
}

/// `check-config`: prints the effective settings and peers ([`describe`]) and exits 0,
/// or prints the errors and exits 2.
pub fn run_check_config(args: &ConfigArgs) -> i32 {
    run_check_config_to(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

fn run_check_config_to(args: &ConfigArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match load_config(args, err) {
        Ok(cfg) => {
            let _ = out.write_all(describe(&cfg).as_bytes());
            let _ = out.flush();
            EXIT_OK
        }
        Err(code) => code,
    }
}

/// `status`: signals the running daemon (USR1), waits up to [`STATUS_WAIT`] for the
/// status file to be rewritten and prints it. Exit 1 with a message if the daemon is not
/// running or does not answer, 2 for a config error.
pub fn run_status(args: &ConfigArgs) -> i32 {
    run_status_to(
        args,
        STATUS_WAIT,
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )
}

/// What identifies one version of the status file: it is replaced by a rename, so a new
/// version has a new inode (and usually a new mtime).
fn file_version(path: &Path) -> Option<(u64, u64, SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.modified().ok()?, m.len()))
}

fn run_status_to(
    args: &ConfigArgs,
    wait: Duration,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let cfg = match load_config(args, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let paths = Paths::new(&cfg.settings);
    // The lock decides who runs, not whether the pid in the file is alive: after a
    // reboot that pid may belong to anyone.
    let pid = match lock_holder(&paths.pid_file) {
        Some(pid) if pid > 0 => pid,
        Some(_) => {
            let _ = writeln!(
                err,
                "lonc is starting (no pid in {} yet); try again",
                paths.pid_file.display()
            );
            return EXIT_FAILED;
        }
        None => {
            let why = match read_pid(&paths.pid_file) {
                None => format!("no pid in {}", paths.pid_file.display()),
                Some(pid) if !is_alive(pid) => {
                    format!("pid {pid} in {} is gone", paths.pid_file.display())
                }
                Some(pid) => format!(
                    "pid {pid} in {} is stale: no process holds the file's lock",
                    paths.pid_file.display()
                ),
            };
            let _ = writeln!(err, "lonc is not running ({why})");
            return EXIT_FAILED;
        }
    };
    let before = file_version(&paths.status_file);
    if let Err(e) = send_signal(pid, Signal::SIGUSR1) {
        let _ = writeln!(err, "{}: cannot signal pid {pid}: {e}", program_name());
        return EXIT_FAILED;
    }
    let deadline = Instant::now() + wait;
    loop {
        let now = file_version(&paths.status_file);
        if now.is_some() && now != before {
            // Give a writer that is not atomic a moment to finish.
            std::thread::sleep(Duration::from_millis(20));
            break;
        }
        if Instant::now() >= deadline {
            let _ = writeln!(
                err,
                "lonc (pid {pid}) did not rewrite {} within {} s",
                paths.status_file.display(),
                wait.as_secs_f64()
            );
            return EXIT_FAILED;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match std::fs::read(&paths.status_file) {
        Ok(text) => {
            let _ = out.write_all(&text);
            let _ = out.flush();
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "{}: cannot read {}: {e}",
                program_name(),
                paths.status_file.display()
            );
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::thread;
    use tempfile::TempDir;

    /// A config in `dir` naming peers `msul1` and `msul2`; returns its path.
    fn setup(dir: &Path) -> ConfigArgs {
        let conf = dir.join("loncapa.conf");
        fs::write(
            &conf,
            format!(
                "PerlSetVar lonHostID msul2\nPerlSetVar lonTabDir {d}\n\
                 PerlSetVar lonSockDir {d}/s\nPerlSetVar londPort 5663\n\
                 PerlSetVar lonDaemons {d}/daemons\nPerlSetVar lonDocRoot {d}/html\n\
                 PerlSetVar loncTransactionTimeout 2\nPerlSetVar loncHandshakeTimeout 0.1\n\
                 PerlSetVar loncConnectTimeout 0.1\n",
                d = dir.display()
            ),
        )
        .unwrap();
        fs::write(
            dir.join("hosts.tab"),
            "msul1:msu:library:A:127.0.0.1\nmsul2:msu:access:B:127.0.0.1\n",
        )
        .unwrap();
        fs::create_dir_all(dir.join("s")).unwrap();
        ConfigArgs { config: vec![conf] }
    }

    /// A fake daemon on `path` answering each connection's first line with `reply`
    /// (raw, LF included or not); returns the requests it saw.
    fn serve(path: PathBuf, replies: Vec<Vec<u8>>) -> thread::JoinHandle<Vec<Vec<u8>>> {
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                reader.read_until(b'\n', &mut line).unwrap();
                seen.push(line);
                let mut stream = reader.into_inner();
                let _ = stream.write_all(&reply);
            }
            seen
        })
    }

    fn send_args(config: &ConfigArgs, peer: &str, request: &str) -> SendArgs {
        SendArgs {
            config: config.clone(),
            peer: peer.into(),
            request: request.into(),
        }
    }

    fn capture(f: impl FnOnce(&mut dyn Write, &mut dyn Write) -> i32) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = f(&mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn send_request_writes_one_line_and_reads_one() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        let server = serve(
            path.clone(),
            vec![
                b"ok\nextra\n".to_vec(),
                b"no lf".to_vec(),
                Vec::new(),
                b"\n".to_vec(),
            ],
        );
        let t = Duration::from_secs(5);
        assert_eq!(send_request(&path, b"ping", t).unwrap(), b"ok");
        assert_eq!(send_request(&path, b"x", t).unwrap(), b"no lf");
        assert_eq!(send_request(&path, b"", t).unwrap(), b"");
        assert_eq!(send_request(&path, b"\xff", t).unwrap(), b"");
        assert_eq!(
            server.join().unwrap(),
            [&b"ping\n"[..], b"x\n", b"\n", b"\xff\n"]
        );
    }

    #[test]
    fn send_request_rejects_lf_and_bounds_the_reply() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        let e = send_request(&path, b"a\nb", Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let server = serve(path.clone(), vec![vec![b'x'; 200_000]]);
        let e = send_request_bounded(&path, b"big", Duration::from_secs(5), 100_000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        server.join().unwrap();
    }

    #[test]
    fn send_request_times_out() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        let _listener = UnixListener::bind(&path).unwrap(); // never accepts or answers
        let start = Instant::now();
        let e = send_request(&path, b"ping", Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn send_request_to_nothing() {
        let dir = TempDir::new().unwrap();
        let e =
            send_request(&dir.path().join("none"), b"ping", Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn run_send_prints_the_reply() {
        let dir = TempDir::new().unwrap();
        let config = setup(dir.path());
        let server = serve(
            dir.path().join("s/msul1"),
            vec![b"pong\n".to_vec(), b"con_lost\n".to_vec(), Vec::new()],
        );
        let args = send_args(&config, "msul1", "ping");
        let (code, out, err) = capture(|o, e| run_send_to(&args, o, e));
        assert_eq!((code, out.as_str(), err.as_str()), (0, "pong\n", ""));
        let (code, out, err) = capture(|o, e| run_send_to(&args, o, e));
        assert_eq!((code, out.as_str()), (1, "con_lost\n"));
        assert!(err.contains("down"), "{err}");
        let (code, out, err) = capture(|o, e| run_send_to(&args, o, e));
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(err.contains("no reply"), "{err}");
        assert_eq!(server.join().unwrap().len(), 3);
    }

    #[test]
    fn run_send_failures() {
        let dir = TempDir::new().unwrap();
        let config = setup(dir.path());
        // No daemon.
        let (code, out, err) =
            capture(|o, e| run_send_to(&send_args(&config, "msul2", "ping"), o, e));
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(err.contains("cannot reach msul2"), "{err}");
        assert!(err.contains("s/msul2"), "{err}");
        // Unknown peer.
        let (code, _, err) = capture(|o, e| run_send_to(&send_args(&config, "../x", "ping"), o, e));
        assert_eq!(code, 2);
        assert!(err.contains("no peer"), "{err}");
        // Bad config.
        let bad = ConfigArgs {
            config: vec![dir.path().join("missing.conf")],
        };
        let (code, _, err) = capture(|o, e| run_send_to(&send_args(&bad, "msul1", "ping"), o, e));
        assert_eq!(code, 2);
        assert!(err.contains("missing.conf"), "{err}");
    }

    #[test]
    fn check_config_prints_or_fails() {
        let dir = TempDir::new().unwrap();
        let config = setup(dir.path());
        let (code, out, err) = capture(|o, e| run_check_config_to(&config, o, e));
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.contains("lonHostID msul2\n"), "{out}");
        assert!(out.contains("msul1 127.0.0.1:5663\n"), "{out}");

        fs::write(&config.config[0], "PerlSetVar londPort nope\n").unwrap();
        let (code, out, err) = capture(|o, e| run_check_config_to(&config, o, e));
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(err.contains("londPort"), "{err}");
        assert!(err.contains("lonHostID"), "{err}");
    }

    #[test]
    fn status_when_not_running() {
        let dir = TempDir::new().unwrap();
        let config = setup(dir.path());
        let (code, _, err) = capture(|o, e| run_status_to(&config, Duration::ZERO, o, e));
        assert_eq!(code, 1);
        assert!(err.contains("not running"), "{err}");

        let pid_file = dir.path().join("daemons/logs/lonc.pid");
        fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(&pid_file, format!("{dead}\n")).unwrap();
        let (code, _, err) = capture(|o, e| run_status_to(&config, Duration::ZERO, o, e));
        assert_eq!(code, 1);
        assert!(err.contains("is gone"), "{err}");

        let bad = ConfigArgs {
            config: vec![dir.path().join("missing.conf")],
        };
        let (code, _, _) = capture(|o, e| run_status_to(&bad, Duration::ZERO, o, e));
        assert_eq!(code, 2);
    }

    /// Item 9: the pid file's lock decides for `status` too: a live but unrelated pid in
    /// a file nobody holds locked (as after a reboot) is not signalled.
    #[test]
    fn status_does_not_signal_the_pid_of_an_unlocked_file() {
        let dir = TempDir::new().unwrap();
        let config = setup(dir.path());
        let pid_file = dir.path().join("daemons/logs/lonc.pid");
        fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
        let mut stranger = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        fs::write(&pid_file, format!("{}\n", stranger.id())).unwrap();
        let (code, _, err) = capture(|o, e| run_status_to(&config, Duration::ZERO, o, e));
        // USR1 would have killed it.
        thread::sleep(Duration::from_millis(100));
        let alive = stranger.try_wait().unwrap().is_none();
        let _ = stranger.kill();
        let _ = stranger.wait();
        assert!(
            alive,
            "status signalled a process that does not hold the lock"
        );
        assert_eq!(code, 1);
        assert!(err.contains("not running"), "{err}");
    }

    #[test]
    fn status_signals_and_prints_the_new_file() {
        use signal_hook::consts::SIGUSR1;
        use signal_hook::iterator::Signals;

        let dir = TempDir::new().unwrap();
        let config = setup(dir.path());
        let paths = Paths::new(&load(&config.config).unwrap().settings);
        // This process holds the pid file, as the daemon does.
        let _pid_file = crate::pidfile::PidFile::create(&paths.pid_file).unwrap();
        crate::status::write_status(&paths.status_file, "old\n").unwrap();

        // This test process plays the daemon: USR1 rewrites the status file.
        let mut signals = Signals::new([SIGUSR1]).unwrap();
        let handle = signals.handle();
        let status_file = paths.status_file.clone();
        let daemon = thread::spawn(move || {
            for _ in signals.forever() {
                crate::status::write_status(&status_file, "LONC status now\n\n").unwrap();
            }
        });
        let (code, out, err) =
            capture(|o, e| run_status_to(&config, Duration::from_secs(10), o, e));
        handle.close();
        daemon.join().unwrap();
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "LONC status now\n\n", "")
        );
    }
}
