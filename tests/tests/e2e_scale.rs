//! Scale: the smol daemon `lonc` with 200 peers (lond-sim on 200 loopback addresses, eager
//! mode) completes every handshake and gets a reply from every peer.

use std::time::Duration;

use lonc_tests::e2e::{Daemon, SMOL, Site, eventually, send_text};

#[test]
fn two_hundred_peers() {
    let site = Site::new(200, &[]);
    let lond = site.lond();
    let d = Daemon::start(SMOL, &site);
    let ids: Vec<String> = site.peers.iter().map(|p| p.0.clone()).collect();
    // Every handshake completes: each lond-sim listener saw its connection, and each peer
    // logged its link as ready.
    let all_connected = eventually(Duration::from_secs(30), || {
        ids.iter().all(|id| lond.connections(id) >= 1)
    });
    assert!(all_connected, "not every peer connected");
    let all_ready = eventually(Duration::from_secs(30), || {
        site.log("lonc.log").matches("connection 0 ready").count() >= ids.len()
    });
    assert!(
        all_ready,
        "not every handshake completed:\n{}",
        site.log("lonc.log")
    );
    for id in &ids {
        assert_eq!(&send_text(&site.socket(id), "ping"), id);
    }
    // One link each: the pings reused the links made at start.
    for id in &ids {
        assert_eq!(lond.connections(id), 1, "{id} reconnected");
    }
    let status = d.stop().expect("the daemon exits");
    assert!(status.success());
    assert!(!site.pid_file().exists());
}
