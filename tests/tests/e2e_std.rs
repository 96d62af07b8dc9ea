//! End-to-end: the blocking daemon `lonc-std` against lond-sim on loopback.

use lonc_tests::e2e::{Daemon, STD, Site, send_text};

#[test]
fn plain_ping() {
    let site = Site::new(2, &[]);
    let _lond = site.lond();
    let d = Daemon::start(STD, &site);
    assert_eq!(send_text(&site.socket("peer1"), "ping"), "peer1");
    assert_eq!(send_text(&site.socket("peer2"), "echo:hello"), "hello");
    assert_eq!(send_text(&site.socket("peer2"), "encrypt:echo:pw"), "pw");
    assert_eq!(send_text(&site.socket("peer1"), "eget:secret"), "secret");
    let status = d.stop().expect("exits");
    assert!(status.success());
    assert!(!site.socket("peer1").exists());
    assert!(!site.pid_file().exists());
    println!("{}", site.log("lonc.log"));
}
