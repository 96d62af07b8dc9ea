//! End-to-end hardening tests, files the daemon creates and the operator's truth (issue 7 items 5, 6 and 9): status and pid files, sockets, an unusable socket directory, error messages.
//! Each test is a `pub fn` taking the [`Runtime`], listed in the
//! macro below so that both runtimes' test files run it.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::e2e::{Daemon, Runtime, Site, cli, eventually, send_text};
use crate::suite::{os, read_status, wait_for};

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_files_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_files;
            status_file_symlinks_are_not_followed,
            log_symlinks_are_not_followed,
            pid_file_symlink_is_refused,
            unusable_socket_dir_fails_a_foreground_start,
            unusable_socket_dir_fails_a_detached_start,
            reload_reports_a_peer_without_socket,
            delayed_dir_is_created_with_the_socket_dir,
            unrelated_live_pid_does_not_block_the_start,
            stray_files_at_socket_paths_are_removed_and_logged,
            error_messages_start_with_the_binary_name,
        }
    };
}

/// A file outside the daemon's directories that a planted link points at, with content
/// that must survive.
fn victim(site: &Site, name: &str) -> PathBuf {
    let path = site.dir.path().join(name);
    fs::write(&path, format!("precious {name}\n")).expect("write the victim");
    path
}

/// Panics unless the victim still holds what [`victim`] wrote.
fn assert_untouched(path: &Path) {
    let name = path.file_name().expect("a name").to_string_lossy();
    assert_eq!(
        fs::read_to_string(path).expect("the victim"),
        format!("precious {name}\n"),
        "{} was written through a planted link",
        path.display()
    );
}

/// Starts `rt` without `--foreground`, waits (10 s at most) for the starting command to
/// return and gives its exit status and stderr. A daemon that detached is killed (by the
/// pid in its pid file) before returning.
fn detached_start(rt: Runtime, site: &Site) -> (Option<ExitStatus>, String) {
    let stderr_path = site.dir.path().join("detached-stderr.txt");
    let stderr = fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Daemon::command(rt, site)
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("start the daemon");
    let mut status = None;
    eventually(Duration::from_secs(10), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // A detached daemon left running (the bug under test) is stopped here.
    if let Some(pid) = fs::read_to_string(site.pid_file())
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|&p| p > 1 && p as u32 != std::process::id())
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    (status, fs::read_to_string(&stderr_path).unwrap_or_default())
}

/// Item 5: a symlink planted at the status file's old predictable temporary name, and
/// one at the status file's own path, are not followed by USR1: the status file is
/// written as a regular file of its own and the links' targets keep their content.
pub fn status_file_symlinks_are_not_followed(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let dir = site
        .status_file()
        .parent()
        .expect("lon-status")
        .to_path_buf();
    fs::create_dir_all(&dir).expect("lon-status");
    let tmp_victim = victim(&site, "tmp-victim");
    let status_victim = victim(&site, "status-victim");
    let old_tmp = dir.join(format!(".loncstatus.txt.{}.tmp", d.pid()));
    symlink(&tmp_victim, &old_tmp).expect("plant a link at the temp name");
    symlink(&status_victim, site.status_file()).expect("plant a link at the status file");
    d.signal(Signal::SIGUSR1);
    wait_for(
        &site,
        Duration::from_secs(5),
        "the status file rewritten as a regular file",
        || fs::symlink_metadata(site.status_file()).is_ok_and(|m| m.file_type().is_file()),
    );
    assert_untouched(&tmp_victim);
    assert_untouched(&status_victim);
    assert_eq!(
        fs::read_link(&old_tmp).expect("the planted link is left alone"),
        tmp_victim
    );
    let (pid, peers) = read_status(&site).expect("a well-formed status file");
    assert_eq!(pid, d.pid());
    assert_eq!(peers.len(), 1, "{peers:?}");
    let mode = fs::metadata(site.status_file())
        .expect("status")
        .permissions();
    assert_eq!(
        mode.mode() & 0o044,
        0o044,
        "the status file is for the web pages"
    );
    // No temporary file left behind.
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("lon-status")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!(".loncstatus.txt.{}.tmp", d.pid()),
            "loncstatus.txt".to_owned()
        ]
    );
}

/// Item 5: a symlink planted at `lonc.log` or `lonnet.perm.log` is refused at startup
/// (exit 1 naming the file) and, planted by a rotation before HUP, is not followed: the
/// daemon keeps writing to the file it had open and says so there.
pub fn log_symlinks_are_not_followed(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let logs = site.dir.path().join("daemons/logs");
    for name in ["lonc.log", "lonnet.perm.log"] {
        let target = victim(&site, &format!("{name}-victim"));
        let link = logs.join(name);
        symlink(&target, &link).expect("plant a log link");
        let mut d = Daemon::spawn(rt, &site);
        let status = d
            .wait(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("a daemon with a link at {name} kept running"));
        assert_eq!(status.code(), Some(1), "{status:?}");
        let err = d.stderr();
        assert!(
            err.contains(name) && err.contains("symbolic link"),
            "stderr: {err:?}"
        );
        assert_untouched(&target);
        assert!(!site.socket("peer1").exists());
        fs::remove_file(&link).expect("remove the link");
        let _ = fs::remove_file(logs.join("lonc.log"));
        let _ = fs::remove_file(logs.join("lonnet.perm.log"));
    }

    // A link planted after a rotation is not followed by the reopen of HUP.
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let rotated = logs.join("lonc.log.1");
    fs::rename(logs.join("lonc.log"), &rotated).expect("rotate");
    let target = victim(&site, "rotated-victim");
    symlink(&target, logs.join("lonc.log")).expect("plant a log link");
    d.signal(Signal::SIGHUP);
    let said = eventually(Duration::from_secs(5), || {
        fs::read_to_string(&rotated).is_ok_and(|t| t.contains("cannot reopen"))
    });
    d.signal(Signal::SIGUSR1);
    wait_for(&site, Duration::from_secs(5), "the status file", || {
        site.status_file().exists()
    });
    assert_untouched(&target);
    let old = fs::read_to_string(&rotated).unwrap_or_default();
    assert!(said, "no CRITICAL about the reopen in the open log:\n{old}");
    assert!(
        old.lines()
            .any(|l| l.contains("[CRITICAL]") && l.contains("symbolic link")),
        "{old}"
    );
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
}

/// Item 5: a symlink at `lonc.pid` is refused with a clear error, not followed.
pub fn pid_file_symlink_is_refused(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let target = victim(&site, "pid-victim");
    symlink(&target, site.pid_file()).expect("plant a pid file link");
    let mut d = Daemon::spawn(rt, &site);
    let status = d.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1), "{status:?}");
    let err = d.stderr();
    assert!(
        err.contains("lonc.pid") && err.contains("is a symbolic link"),
        "stderr: {err:?}"
    );
    assert_untouched(&target);
    assert!(
        fs::symlink_metadata(site.pid_file()).is_ok_and(|m| m.file_type().is_symlink()),
        "the link is left for the administrator"
    );
}

/// Runs `rt` in the foreground on `site` and checks that it fails to start: exit 1 within
/// 10 s, `reason` on stderr and in a CRITICAL line of `lonc.log`, no pid file left.
fn assert_foreground_start_fails(rt: Runtime, site: &Site, reason: &str) {
    let mut d = Daemon::spawn(rt, site);
    let status = d
        .wait(Duration::from_secs(10))
        .expect("a daemon without its sockets exits");
    assert_eq!(status.code(), Some(1), "{status:?}");
    let err = d.stderr();
    assert!(err.contains(reason), "no {reason:?} in stderr: {err:?}");
    let log = site.log("lonc.log");
    assert!(
        log.lines()
            .any(|l| l.contains("[CRITICAL]") && l.contains(reason)),
        "no CRITICAL {reason:?} in lonc.log:\n{log}"
    );
    assert!(!site.pid_file().exists(), "pid file left behind");
}

/// Item 6: a foreground start fails (exit 1, the reason on stderr and in lonc.log) when
/// `lonSockDir` is not a usable directory, or when a peer's socket cannot be created.
pub fn unusable_socket_dir_fails_a_foreground_start(rt: Runtime) {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    let sock = site.dir.path().join("sock");
    fs::remove_dir_all(&sock).expect("remove lonSockDir");
    fs::write(&sock, "not a directory\n").expect("a file as lonSockDir");
    assert_foreground_start_fails(rt, &site, &sock.display().to_string());

    // One peer's socket path is taken by a directory: the start fails too, and the
    // other peer's socket does not stay behind.
    fs::remove_file(&sock).expect("remove the file");
    fs::create_dir_all(site.delayed()).expect("lonSockDir");
    fs::create_dir(site.socket("peer2")).expect("a directory at a socket path");
    assert_foreground_start_fails(rt, &site, &site.socket("peer2").display().to_string());
    assert!(!site.socket("peer1").exists(), "peer1's socket left behind");
}

/// Item 6: a detached start with an unusable `lonSockDir` exits 1 with the reason on
/// stderr (and in lonc.log), and leaves no daemon running.
pub fn unusable_socket_dir_fails_a_detached_start(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let sock = site.dir.path().join("sock");
    fs::remove_dir_all(&sock).expect("remove lonSockDir");
    fs::write(&sock, "not a directory\n").expect("a file as lonSockDir");
    let (status, err) = detached_start(rt, &site);
    let status = status.expect("the starting command returns");
    assert_eq!(status.code(), Some(1), "{status:?}; stderr: {err:?}");
    let reason = sock.display().to_string();
    assert!(err.contains(&reason), "no {reason:?} in stderr: {err:?}");
    assert!(
        err.starts_with(&format!("{}: ", rt.binary)),
        "stderr: {err:?}"
    );
    let log = site.log("lonc.log");
    assert!(
        log.lines()
            .any(|l| l.contains("[CRITICAL]") && l.contains(&reason)),
        "{log}"
    );
    wait_for(
        &site,
        Duration::from_secs(5),
        "the pid file removed",
        || !site.pid_file().exists(),
    );
}

/// Item 6: a peer added by a reload whose socket cannot be created is a CRITICAL line
/// and is reported as `no-socket` in the status file; the daemon keeps serving the
/// others, and a later reload creates the socket once the way is clear.
pub fn reload_reports_a_peer_without_socket(rt: Runtime) {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    site.write_hosts(&["peer1".into()]);
    let d = Daemon::spawn(rt, &site);
    d.wait_for_sockets(&site, &["peer1".into()]);
    fs::create_dir(site.socket("peer2")).expect("a directory at peer2's socket path");
    site.write_hosts(&site.ids());
    d.signal(Signal::SIGHUP);
    wait_for(
        &site,
        Duration::from_secs(5),
        "a CRITICAL line for peer2",
        || {
            site.log("lonc.log")
                .lines()
                .any(|l| l.contains("[peer2] [CRITICAL]"))
        },
    );
    d.signal(Signal::SIGUSR1);
    let mut peers = Vec::new();
    wait_for(
        &site,
        Duration::from_secs(5),
        "peer2 in the status file",
        || {
            peers = read_status(&site).map(|s| s.1).unwrap_or_default();
            peers
                .iter()
                .any(|p| p.get(1).is_some_and(|id| id == "peer2"))
        },
    );
    let line = peers.iter().find(|p| p[1] == "peer2").expect("peer2");
    assert_eq!(line.len(), 4, "{line:?}");
    assert_eq!(line[2], "no-socket", "{peers:?}");
    assert!(line[3].contains("socket"), "{line:?}");
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");

    // The way cleared, the next reload serves it.
    fs::remove_dir(site.socket("peer2")).expect("clear the way");
    d.signal(Signal::SIGHUP);
    wait_for(&site, Duration::from_secs(5), "peer2's socket", || {
        fs::symlink_metadata(site.socket("peer2")).is_ok_and(|m| m.file_type().is_socket())
    });
    assert_eq!(send_text(&site.socket("peer2"), "ping"), "peer2");
}

/// Item 6: with `lonSockDir` missing, the daemon creates it and `delayed/` in it, with
/// the same permission bits.
pub fn delayed_dir_is_created_with_the_socket_dir(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let sock = site.dir.path().join("sock");
    fs::remove_dir_all(&sock).expect("remove lonSockDir");
    let _d = Daemon::start(rt, &site);
    let delayed = fs::symlink_metadata(site.delayed()).expect("delayed/ created");
    assert!(delayed.is_dir());
    let sock_mode = fs::metadata(&sock)
        .expect("lonSockDir")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(delayed.permissions().mode() & 0o7777, sock_mode);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
}

/// Item 9: a live but unrelated pid in an unlocked `lonc.pid` (1, as after a reboot) does
/// not block the start: the lock decides, and the file is taken over.
pub fn unrelated_live_pid_does_not_block_the_start(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    fs::write(site.pid_file(), "1\n").expect("a pid file naming init");
    let d = Daemon::start(rt, &site);
    assert_eq!(
        fs::read_to_string(site.pid_file()).expect("pid file"),
        format!("{}\n", d.pid())
    );
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
}

/// Item 9: a regular file or a symlink found at a peer's socket path is removed with a
/// log line naming it, and a link is never followed.
pub fn stray_files_at_socket_paths_are_removed_and_logged(rt: Runtime) {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    fs::write(site.socket("peer1"), "junk\n").expect("a file at a socket path");
    let target = victim(&site, "socket-victim");
    symlink(&target, site.socket("peer2")).expect("a link at a socket path");
    // The stray files already exist: wait for sockets in their place.
    let _d = Daemon::spawn(rt, &site);
    for peer in ["peer1", "peer2"] {
        wait_for(&site, Duration::from_secs(10), "a socket", || {
            fs::symlink_metadata(site.socket(peer)).is_ok_and(|m| m.file_type().is_socket())
        });
        assert_eq!(send_text(&site.socket(peer), "ping"), peer);
    }
    assert_untouched(&target);
    let log = site.log("lonc.log");
    for (peer, what) in [("peer1", "regular file"), ("peer2", "symbolic link")] {
        let path = site.socket(peer).display().to_string();
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("[{peer}] [WARNING]"))
                    && l.contains(what)
                    && l.contains(&path)),
            "no line about the {what} at {path}:\n{log}"
        );
    }
}

/// Item 9: the error messages start with the binary's own name (`lonc-std:` for the
/// blocking daemon, `lonc:` for the smol one), for `check-config` and for `run`.
pub fn error_messages_start_with_the_binary_name(rt: Runtime) {
    let site = Site::new(1, &[("loncRetryMin", "soon")]);
    let prefix = format!("{}: ", rt.binary);
    let check = |what: &str, err: &str| {
        assert!(
            err.starts_with(&prefix),
            "{what}: stderr does not start with {prefix:?}: {err:?}"
        );
        if rt.binary != "lonc" {
            assert!(
                !err.lines().any(|l| l.starts_with("lonc:")),
                "{what}: another binary's name in {err:?}"
            );
        }
    };
    let out = cli(
        rt,
        &[os("check-config"), os("--config"), site.config.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    check("check-config", &out.stderr);
    let mut d = Daemon::spawn(rt, &site);
    let status = d.wait(Duration::from_secs(10)).expect("exits");
    assert!(!status.success());
    check("run --foreground", &d.stderr());
    let (status, err) = detached_start(rt, &site);
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    check("run", &err);
}
