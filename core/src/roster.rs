//! The roster: which peers the daemon links to (every host of `hosts.tab`, its own
//! included, as the seed did) and what a reload (HUP, USR2) changes: which peers start,
//! which stop, which keep their links, and which must restart because their address moved.

use std::collections::BTreeMap;

use crate::config::{LinkSettings, Settings};
use crate::hosts::HostsTab;

/// One peer the daemon links to.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSpec {
    /// The peer's host id (also its socket's file name).
    pub id: String,
    /// Where its lond is: the `ip` field of hosts.tab.
    pub host: String,
    /// `londPort`.
    pub port: u16,
    /// The link knobs.
    pub link: LinkSettings,
}

/// Every peer of `hosts`, in hosts.tab order, with the address and knobs of `settings`.
pub fn roster(settings: &Settings, hosts: &HostsTab) -> Vec<PeerSpec> {
    hosts
        .hosts
        .iter()
        .map(|h| PeerSpec {
            id: h.id.clone(),
            host: h.ip.clone(),
            port: settings.lond_port,
            link: settings.link.clone(),
        })
        .collect()
}

/// What a reload does to the running peers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RosterChange {
    /// New peers: start them.
    pub start: Vec<PeerSpec>,
    /// Peers no longer listed: stop them (graceful, as on TERM) and remove their sockets.
    pub stop: Vec<String>,
    /// Peers whose address or knobs changed: stop the old link and start this one. The
    /// socket file stays.
    pub restart: Vec<PeerSpec>,
    /// Peers that are unchanged: their links stay up.
    pub keep: Vec<String>,
}

impl RosterChange {
    /// True if nothing changes.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.stop.is_empty() && self.restart.is_empty()
    }
}

/// Compares the running roster with the newly loaded one.
pub fn reload(old: &[PeerSpec], new: &[PeerSpec]) -> RosterChange {
    let before: BTreeMap<&str, &PeerSpec> = old.iter().map(|p| (p.id.as_str(), p)).collect();
    let after: BTreeMap<&str, &PeerSpec> = new.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut change = RosterChange::default();
    for p in new {
        match before.get(p.id.as_str()) {
            None => change.start.push(p.clone()),
            Some(&q) if q == p => change.keep.push(p.id.clone()),
            Some(_) => change.restart.push(p.clone()),
        }
    }
    for p in old {
        if !after.contains_key(p.id.as_str()) {
            change.stop.push(p.id.clone());
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::parse_hosts;
    use proptest::prelude::*;

    fn spec(id: &str, host: &str) -> PeerSpec {
        PeerSpec {
            id: id.into(),
            host: host.into(),
            port: 5663,
            link: LinkSettings::default(),
        }
    }

    #[test]
    fn roster_takes_every_host_in_order() {
        let tab = parse_hosts(
            "hosts.tab",
            "b:msu:library:B:10.0.0.2\na:msu:access:A:10.0.0.1\n",
        );
        let settings = Settings {
            host_id: "a".into(),
            tab_dir: "/t".into(),
            sock_dir: "/s".into(),
            lond_port: 5663,
            daemons_dir: "/d".into(),
            doc_root: "/r".into(),
            user: "www".into(),
            link: LinkSettings::default(),
        };
        let r = roster(&settings, &tab);
        assert_eq!(r, vec![spec("b", "10.0.0.2"), spec("a", "10.0.0.1")]);
    }

    #[test]
    fn reload_sorts_peers_into_start_stop_restart_keep() {
        let old = vec![spec("a", "1"), spec("b", "2"), spec("c", "3")];
        let mut moved = spec("c", "3");
        moved.port = 1;
        let new = vec![spec("b", "2"), moved.clone(), spec("d", "4")];
        let change = reload(&old, &new);
        assert_eq!(change.start, vec![spec("d", "4")]);
        assert_eq!(change.stop, vec!["a".to_string()]);
        assert_eq!(change.restart, vec![moved]);
        assert_eq!(change.keep, vec!["b".to_string()]);
        assert!(!change.is_empty());
        assert!(
            reload(&new, &new).is_empty(),
            "only kept peers: nothing changes"
        );
        let only = |change: RosterChange| !change.is_empty();
        assert!(only(reload(&[], &[spec("a", "1")])), "a start");
        assert!(only(reload(&[spec("a", "1")], &[])), "a stop");
        assert!(
            only(reload(&[spec("a", "1")], &[spec("a", "2")])),
            "a restart"
        );
    }

    proptest! {
        #[test]
        fn every_peer_lands_in_exactly_one_place(
            old in proptest::collection::btree_map("[a-e]", "[0-2]", 0..5),
            new in proptest::collection::btree_map("[a-e]", "[0-2]", 0..5),
        ) {
            let old: Vec<PeerSpec> = old.iter().map(|(i, h)| spec(i, h)).collect();
            let new: Vec<PeerSpec> = new.iter().map(|(i, h)| spec(i, h)).collect();
            let c = reload(&old, &new);
            prop_assert_eq!(c.start.len() + c.restart.len() + c.keep.len(), new.len());
            for p in &new {
                let placed = c.start.contains(p) as u8
                    + c.restart.contains(p) as u8
                    + c.keep.contains(&p.id) as u8;
                prop_assert_eq!(placed, 1);
            }
            for p in &old {
                let gone = !new.iter().any(|q| q.id == p.id);
                prop_assert_eq!(c.stop.contains(&p.id), gone);
            }
        }
    }
}
