//! End-to-end hardening tests, delayed spool (issue 7 items 1 and 11): a file still being
//! written is never sent cut, odd entries are logged once and never followed, and a
//! delivered file that cannot be deleted is not sent again at every rescan.
//! Each test is a `pub fn` taking the [`Runtime`], listed in the
//! macro below so that both runtimes' test files run it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::e2e::{Daemon, Runtime, Site, send_text};
use crate::suite::{RESCAN, ms, wait_for};

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_spool_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_spool;
            spool_file_being_written_is_not_sent_cut,
            spool_odd_entries_are_logged_once_never_followed,
            undeletable_spool_file_is_not_resent_every_rescan,
        }
    };
}

/// Lines of `lonc.log` that mention `what`.
fn log_lines(site: &Site, what: &str) -> Vec<String> {
    site.log("lonc.log")
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_owned)
        .collect()
}

/// Item 1: a spool file still being written (no LF yet) is left in place until its line
/// is whole, then sent whole: never a prefix, never deleted before lond has the rest.
pub fn spool_file_being_written_is_not_sent_cut(rt: Runtime) {
    let site = Site::new(1, &[]);
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    let path = site.delayed().join("zz.peer1");
    let mut file = fs::File::create(&path).expect("create the spool file");
    file.write_all(b"echo:par").expect("write the start");
    file.flush().expect("flush");
    d.signal(Signal::SIGUSR1);
    // A USR1 round and two rescans pass with the file half written.
    thread::sleep(RESCAN * 2 + ms(500));
    assert!(path.exists(), "the half-written file was taken");
    assert!(
        site.sent_delayed().is_empty(),
        "a prefix was delivered: {:?}",
        site.sent_delayed()
    );
    file.write_all(b"tial\n").expect("write the rest");
    drop(file);
    d.signal(Signal::SIGUSR1);
    wait_for(&site, RESCAN * 3, "the whole message delivered", || {
        !path.exists()
    });
    let sent = site.sent_delayed();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].request, "echo:partial");
}

/// Item 1: a symlink, a directory and a fifo in the spool with the peer's suffix are each
/// logged once (not at every rescan), never followed, read or removed.
pub fn spool_odd_entries_are_logged_once_never_followed(rt: Runtime) {
    let site = Site::new(1, &[]);
    let target = site.delayed().parent().expect("sock dir").join("target");
    fs::write(&target, b"echo:secret behind a link\n").expect("the link's target");
    let link = site.delayed().join("1.link.peer1");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let dir = site.delayed().join("2.dir.peer1");
    fs::create_dir(&dir).expect("dir");
    let fifo = site.delayed().join("3.fifo.peer1");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    site.write_delayed("4.real.peer1", b"echo:real\n");
    let _lond = site.lond();
    let _d = Daemon::start(rt, &site);
    wait_for(&site, RESCAN * 3, "the real file delivered", || {
        !site.has_delayed("4.real.peer1")
    });
    // Three more rescans: still one line each.
    thread::sleep(RESCAN * 3 + ms(300));
    for name in ["1.link.peer1", "2.dir.peer1", "3.fifo.peer1"] {
        let lines = log_lines(&site, name);
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
    }
    assert!(log_lines(&site, "1.link.peer1")[0].contains("symbolic link"));
    let sent = site.sent_delayed();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].request, "echo:real");
    assert!(fs::symlink_metadata(&link).is_ok(), "the link was removed");
    assert!(dir.is_dir() && fifo.exists());
    assert_eq!(
        fs::read(&target).expect("target"),
        b"echo:secret behind a link\n"
    );
}

/// Makes a file undeletable for the daemon's user and undoes it on drop: immutable
/// (`chattr +i`) where that works (root on ext4), else a spool directory without write
/// permission (a user that is not root).
struct Undeletable {
    file: PathBuf,
    dir_mode: Option<(PathBuf, u32)>,
}

impl Undeletable {
    fn new(file: &Path) -> Undeletable {
        let immutable = Command::new("chattr")
            .arg("+i")
            .arg(file)
            .status()
            .is_ok_and(|s| s.success());
        if immutable {
            return Undeletable {
                file: file.to_owned(),
                dir_mode: None,
            };
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = file.parent().expect("spool dir").to_owned();
        let mode = fs::metadata(&dir).expect("spool dir").permissions().mode();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).expect("chmod");
        assert!(
            fs::remove_file(file).is_err(),
            "cannot make a file undeletable here (neither chattr +i nor a read-only directory)"
        );
        Undeletable {
            file: file.to_owned(),
            dir_mode: Some((dir, mode)),
        }
    }
}

impl Drop for Undeletable {
    fn drop(&mut self) {
        match &self.dir_mode {
            None => {
                let _ = Command::new("chattr").arg("-i").arg(&self.file).status();
            }
            Some((dir, mode)) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(*mode));
            }
        }
    }
}

/// Item 11: a delivered spool file whose delete fails is logged CRITICAL once and not sent
/// again at the next rescans; USR1 asks for one more try.
pub fn undeletable_spool_file_is_not_resent_every_rescan(rt: Runtime) {
    let site = Site::new(1, &[]);
    site.write_delayed("1.stuck.peer1", b"echo:only once\n");
    let file = site.delayed().join("1.stuck.peer1");
    let guard = Undeletable::new(&file);
    let _lond = site.lond();
    let d = Daemon::start(rt, &site);
    wait_for(&site, RESCAN * 3, "the file delivered", || {
        !site.sent_delayed().is_empty()
    });
    // Four more rescans.
    thread::sleep(RESCAN * 4 + ms(300));
    let sent = site.sent_delayed();
    assert_eq!(sent.len(), 1, "sent again at a rescan: {sent:?}");
    let critical: Vec<String> = log_lines(&site, "1.stuck.peer1")
        .into_iter()
        .filter(|l| l.contains("CRITICAL"))
        .collect();
    assert_eq!(critical.len(), 1, "{critical:?}");
    assert!(file.exists());
    // USR1: one more round tries it again, once.
    d.signal(Signal::SIGUSR1);
    wait_for(&site, Duration::from_secs(3), "the USR1 retry", || {
        site.sent_delayed().len() == 2
    });
    thread::sleep(RESCAN * 2 + ms(300));
    assert_eq!(site.sent_delayed().len(), 2);
    // Once it can be deleted, the next USR1 delivers and removes it.
    drop(guard);
    d.signal(Signal::SIGUSR1);
    wait_for(&site, Duration::from_secs(3), "the file deleted", || {
        !file.exists()
    });
}
