//! End-to-end hardening tests, configuration ranges and hosts.tab checks (issue 7 items 4 and 7).
//! Each test is a `pub fn` taking the [`Runtime`], listed in the
//! macro below so that both runtimes' test files run it.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::e2e::{CliOutput, Daemon, Runtime, Site, cli, eventually};

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_config_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_config;
            knob_out_of_range_is_rejected_at_load,
            zero_delayed_rescan_is_rejected,
            hosts_tab_line_that_cannot_work_is_a_numbered_warning,
            duplicate_perlsetvar_warns,
        }
    };
}

/// `check-config` with these config files.
fn check_config(rt: Runtime, configs: &[&Path]) -> CliOutput {
    let mut args: Vec<&OsStr> = vec![OsStr::new("check-config")];
    for c in configs {
        args.push(OsStr::new("--config"));
        args.push(c.as_os_str());
    }
    cli(rt, &args)
}

/// The 1-based number of the last line of `file` that is exactly `line`.
fn line_number(file: &Path, line: &str) -> usize {
    let text = fs::read_to_string(file).expect("config");
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .rposition(|l| *l == line)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line {line:?} in\n{text}"))
}

/// Both `check-config` and the daemon (in the foreground, and detaching) refuse the
/// site's config with `want` on stderr, and no daemon is left behind: no pid file, no
/// socket.
fn assert_refused(rt: Runtime, site: &Site, want: &str) {
    let out = check_config(rt, &[&site.config]);
    assert!(
        !out.status.success(),
        "check-config accepted it (wanted {want:?}):\n{}",
        out.stdout
    );
    assert!(
        out.stderr.lines().any(|l| l.ends_with(want)),
        "check-config did not say {want:?}: {:?}",
        out.stderr
    );
    let mut d = Daemon::spawn(rt, site);
    let status = d.wait(Duration::from_secs(10));
    assert!(
        matches!(status, Some(s) if !s.success()),
        "the daemon did not refuse to start ({status:?}, wanted {want:?}); log:\n{}",
        site.log("lonc.log")
    );
    assert!(
        d.stderr().contains(want),
        "the daemon did not say {want:?}: {:?}",
        d.stderr()
    );
    // Detaching: the starting command says why and exits non-zero, leaving nothing.
    let out = Daemon::command(rt, site)
        .stderr(Stdio::piped())
        .output()
        .expect("run the daemon");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(want),
        "{out:?}"
    );
    assert!(!site.pid_file().exists(), "a pid file was left");
    assert!(!site.socket("peer1").exists(), "a socket was left");
}

/// Item 4: a value outside a knob's documented range (zero timeouts, zero or huge counts,
/// tiny sizes) is refused by `check-config` and by the daemon at start, with file:line
/// and the valid range.
pub fn knob_out_of_range_is_rejected_at_load(rt: Runtime) {
    let cases = [
        ("loncTransactionTimeout", "0", "0.1 to 86400 seconds"),
        ("loncHandshakeTimeout", "0", "0.1 to 3600 seconds"),
        ("loncConnectTimeout", "0", "0.1 to 3600 seconds"),
        ("loncConnectTimeout", "0.05", "0.1 to 3600 seconds"),
        ("loncPongDelay", "61", "0 to 60 seconds"),
        ("loncRetryMin", "0", "0.1 to 86400 seconds"),
        ("loncIdleTimeout", "0", "0.1 to 315576000 seconds"),
        ("loncMaxAttempts", "0", "1 to 1000000"),
        ("loncMaxRequest", "10", "1024 to 1073741824 bytes"),
        (
            "loncMaxReply",
            "99999999999999999999",
            "1024 to 1073741824 bytes",
        ),
        ("loncMaxConnections", "1000", "1 to 64"),
        ("loncPipeline", "0", "1 to 1024"),
    ];
    for (knob, value, range) in cases {
        let site = Site::new(1, &[(knob, value)]);
        let line = line_number(&site.config, &format!("PerlSetVar {knob} {value}"));
        let want = format!(
            "{}:{line}: {knob}: {value} is out of range ({range})",
            site.config.display()
        );
        assert_refused(rt, &site, &want);
    }
    // The bounds themselves are valid.
    let site = Site::new(
        1,
        &[
            ("loncTransactionTimeout", "0.1"),
            ("loncPongDelay", "60"),
            ("loncMaxRequest", "1024"),
            ("loncMaxConnections", "64"),
            ("loncPipeline", "1024"),
        ],
    );
    let out = check_config(rt, &[&site.config]);
    assert!(out.status.success(), "{out:?}");
}

/// Item 4: `loncDelayedRescan 0` (which made the daemon spin) is refused at load, by
/// `check-config` and by the daemon, with file:line and the range.
pub fn zero_delayed_rescan_is_rejected(rt: Runtime) {
    for value in ["0", "0.5"] {
        let site = Site::new(1, &[("loncDelayedRescan", value)]);
        let line = line_number(
            &site.config,
            &format!("PerlSetVar loncDelayedRescan {value}"),
        );
        let want = format!(
            "{}:{line}: loncDelayedRescan: {value} is out of range (1 to 315576000 seconds)",
            site.config.display()
        );
        assert_refused(rt, &site, &want);
    }
}

/// The peers `check-config` lists: the lines of its second paragraph.
fn listed_peers(stdout: &str) -> Vec<String> {
    stdout
        .split("\n\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Item 7: hosts.tab lines that cannot work (an id too long for a socket path, the id
/// `delayed`, an IPv6 address, an ip that is no address or name, an id that is not
/// UTF-8) are each a warning with their line number, in `check-config` and in lonc.log
/// at load and at reload, and are skipped.
pub fn hosts_tab_line_that_cannot_work_is_a_numbered_warning(rt: Runtime) {
    let site = Site::new(1, &[]);
    let hosts = site.dir.path().join("tab/hosts.tab");
    let good = fs::read(&hosts).expect("hosts.tab");
    let long_id = "x".repeat(100);
    let mut text = good.clone();
    let long_line = format!("{long_id}:msu:library:long.example:127.0.0.1\n");
    let bad: [&[u8]; 7] = [
        long_line.as_bytes(),
        b"delayed:msu:library:spool.example:127.0.0.1\n",
        b"bracketed:msu:library:v6.example:[::1]\n",
        b"loopback6:msu:library:v6.example:::1\n",
        b"documentation:msu:library:v6.example:2001:db8::1\n",
        b"spaced:msu:library:sp.example:my host\n",
        b"bad\xffid:msu:library:latin1.example:127.0.0.1\n",
    ];
    for line in bad {
        text.extend_from_slice(line);
    }
    fs::write(&hosts, &text).expect("hosts.tab");
    let first_bad = good.iter().filter(|&&b| b == b'\n').count() + 1;
    let numbers: Vec<usize> = (first_bad..first_bad + bad.len()).collect();
    let prefix = |n: usize| format!("{}:{n}:", hosts.display());

    let out = check_config(rt, &[&site.config]);
    assert!(out.status.success(), "{out:?}");
    for &n in &numbers {
        let want = format!("warning: {}", prefix(n));
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&want)),
            "no {want:?} in\n{}",
            out.stdout
        );
    }
    assert_eq!(
        listed_peers(&out.stdout),
        [format!("peer1 {}", site.addr("peer1"))],
        "{}",
        out.stdout
    );

    let d = Daemon::start(rt, &site);
    let logged = |n: usize| {
        let log = site.log("lonc.log");
        log.lines().filter(|l| l.contains(&prefix(n))).count()
    };
    for &n in &numbers {
        assert!(
            eventually(Duration::from_secs(5), || logged(n) == 1),
            "{} not logged once at load:\n{}",
            prefix(n),
            site.log("lonc.log")
        );
    }
    let mut sockets: Vec<PathBuf> = fs::read_dir(site.dir.path().join("sock"))
        .expect("socket dir")
        .map(|e| PathBuf::from(e.expect("entry").file_name()))
        .collect();
    sockets.sort();
    assert_eq!(
        sockets,
        [PathBuf::from("delayed"), PathBuf::from("peer1")],
        "only peer1 gets a socket"
    );
    assert!(
        !sockets
            .iter()
            .any(|s| s.as_os_str().as_bytes().contains(&0xff)),
        "{sockets:?}"
    );
    // A reload reads hosts.tab again and says it again.
    d.signal(Signal::SIGHUP);
    for &n in &numbers {
        assert!(
            eventually(Duration::from_secs(5), || logged(n) == 2),
            "{} not logged again at reload:\n{}",
            prefix(n),
            site.log("lonc.log")
        );
    }
    assert!(d.stop().expect("exits").success());
}

/// A daemon started with several `--config` files, killed (by its pid) on drop.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

/// Item 7: a `PerlSetVar` name set twice, in one file or across files, is a warning
/// naming both places, in `check-config` and in lonc.log; the last value still wins.
pub fn duplicate_perlsetvar_warns(rt: Runtime) {
    let site = Site::new(1, &[("loncPipeline", "2"), ("loncPipeline", "3")]);
    let a = site.config.clone();
    let b = site.dir.path().join("override.conf");
    fs::write(&b, "# local overrides\nPerlSetVar loncPipeline 4\n").expect("override.conf");
    let first = line_number(&a, "PerlSetVar loncPipeline 2");
    let second = line_number(&a, "PerlSetVar loncPipeline 3");
    let at = |f: &Path, n: usize| format!("{}:{n}", f.display());
    // (the repeated line, the line it overrides)
    let pairs = [(at(&a, second), at(&a, first)), (at(&b, 2), at(&a, second))];
    let warned = |text: &str, (again, before): &(String, String)| {
        text.lines()
            .any(|l| l.contains(&format!("{again}: loncPipeline")) && l.contains(before.as_str()))
    };

    let out = check_config(rt, &[&a, &b]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l == "loncPipeline 4"),
        "the last one does not win:\n{}",
        out.stdout
    );
    for pair in &pairs {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("warning: ") && warned(l, pair)),
            "no warning naming {pair:?} in\n{}",
            out.stdout
        );
    }

    let stderr = site.dir.path().join("stderr-dup.txt");
    let child = Daemon::command(rt, &site)
        .arg("--config")
        .arg(&b)
        .arg("--foreground")
        .stderr(fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start the daemon");
    let mut d = Started(child);
    for pair in &pairs {
        assert!(
            eventually(Duration::from_secs(10), || warned(
                &site.log("lonc.log"),
                pair
            )),
            "no warning naming {pair:?} in lonc.log:\n{}\nstderr: {}",
            site.log("lonc.log"),
            fs::read_to_string(&stderr).unwrap_or_default()
        );
    }
    assert!(eventually(Duration::from_secs(10), || site
        .socket("peer1")
        .exists()));
    let _ = kill(Pid::from_raw(d.0.id() as i32), Signal::SIGTERM);
    assert!(
        eventually(
            Duration::from_secs(10),
            || matches!(d.0.try_wait(), Ok(Some(s)) if s.success())
        ),
        "the daemon did not stop cleanly on TERM"
    );
}
