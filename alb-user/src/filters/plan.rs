//! Which addresses each slave must accept beyond its own MAC: the agent's
//! part of what bonding does with dev_uc_sync and dev_mc_sync.
//!
//! Physical NICs drop unicast frames for MACs that are not theirs and
//! multicast frames for groups not on their list (veth accepts everything,
//! so the lab cannot show it). The active slave carries the master's MAC,
//! the master's multicast groups (IPv6 neighbour discovery, IGMP/MLD), and,
//! while a slave is down, that slave's MAC (its clients' frames arrive there
//! until they learn their new slave; `rx_failover` accepts them). Every
//! other slave needs nothing beyond its own MAC.

use std::collections::BTreeSet;

use alb_common::wire::Mac;
use serde::{Deserialize, Serialize};

/// One filter entry the agent adds to a slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub ifindex: u32,
    pub mac: Mac,
    pub kind: Kind,
}

/// Unicast entries are fdb entries on the device (`bridge fdb add MAC dev
/// IF self permanent`, which the kernel turns into a unicast filter, or
/// promiscuous mode where the driver has none); multicast ones are link
/// addresses (`ip maddr add`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Unicast,
    Multicast,
}

/// A slave as the plan sees it.
#[derive(Clone, Copy, Debug)]
pub struct SlaveView {
    pub ifindex: u32,
    pub mac: Mac,
    pub usable: bool,
}

/// Every entry the slaves must have now.
pub fn wanted(
    slaves: &[SlaveView],
    active: Option<usize>,
    master_mac: Mac,
    master_multicast: &[Mac],
) -> BTreeSet<Entry> {
    let mut entries = BTreeSet::new();
    let Some(active) = active.and_then(|a| slaves.get(a)) else { return entries };
    let mut unicast = |mac: Mac| {
        if mac != active.mac {
            entries.insert(Entry { ifindex: active.ifindex, mac, kind: Kind::Unicast });
        }
    };
    unicast(master_mac);
    for failed in slaves.iter().filter(|s| !s.usable) {
        unicast(failed.mac);
    }
    for &mac in master_multicast {
        entries.insert(Entry { ifindex: active.ifindex, mac, kind: Kind::Multicast });
    }
    entries
}

/// The link-layer multicast addresses of device `ifindex` in
/// `/proc/net/dev_mcast` (`index name users global address`).
pub fn multicast_of(dev_mcast: &str, ifindex: u32) -> Vec<Mac> {
    let mut macs: Vec<Mac> = dev_mcast
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [index, _name, _users, _global, address] = fields[..] else { return None };
            if index.parse::<u32>().ok()? != ifindex || address.len() != 12 {
                return None;
            }
            let mut mac = [0u8; 6];
            for (i, byte) in mac.iter_mut().enumerate() {
                *byte = u8::from_str_radix(address.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(mac)
        })
        .collect();
    macs.sort_unstable();
    macs.dedup();
    macs
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: Mac = [2, 0, 0, 0, 0, 0x17];
    const OTHER: Mac = [2, 0, 0, 0, 0, 0x19];
    const THIRD: Mac = [2, 0, 0, 0, 0, 0x21];
    const ALL_NODES: Mac = [0x33, 0x33, 0, 0, 0, 1];

    fn slaves(usable: [bool; 3]) -> Vec<SlaveView> {
        [MASTER, OTHER, THIRD]
            .iter()
            .zip(usable)
            .enumerate()
            .map(|(i, (&mac, usable))| SlaveView { ifindex: 10 + i as u32, mac, usable })
            .collect()
    }

    fn entry(ifindex: u32, mac: Mac, kind: Kind) -> Entry {
        Entry { ifindex, mac, kind }
    }

    #[test]
    fn the_owner_of_the_masters_mac_as_active_needs_only_the_multicast_list() {
        let plan = wanted(&slaves([true; 3]), Some(0), MASTER, &[ALL_NODES]);
        assert_eq!(plan, BTreeSet::from([entry(10, ALL_NODES, Kind::Multicast)]));
    }

    #[test]
    fn another_active_slave_takes_the_masters_mac_and_every_failed_slaves_mac() {
        let plan = wanted(&slaves([false, true, false]), Some(1), MASTER, &[ALL_NODES]);
        assert_eq!(
            plan,
            BTreeSet::from([
                entry(11, MASTER, Kind::Unicast),
                entry(11, THIRD, Kind::Unicast),
                entry(11, ALL_NODES, Kind::Multicast),
            ])
        );
    }

    #[test]
    fn no_active_slave_no_entries() {
        assert!(wanted(&slaves([false; 3]), None, MASTER, &[ALL_NODES]).is_empty());
    }

    #[test]
    fn dev_mcast_lines_of_one_device() {
        let text = "3    alb0            1     0     333300000001\n\
                    3    alb0            1     0     01005e000001\n\
                    4    veth17          1     0     333300000001\n\
                    3    alb0            2     0     3333ff000001\n\
                    3    alb0            1     0     zz\n";
        assert_eq!(
            multicast_of(text, 3),
            vec![[1, 0, 0x5e, 0, 0, 1], ALL_NODES, [0x33, 0x33, 0xff, 0, 0, 1]]
        );
        assert!(multicast_of(text, 9).is_empty());
    }
}
