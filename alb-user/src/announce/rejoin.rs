//! Re-sending the master's multicast memberships through a new active slave
//! (bonding's resend_igmp), so snooping switches move the streams to its
//! port. The groups and the IGMP version in use come from the kernel's own
//! tables (`/proc/net/igmp`, `/proc/net/igmp6`), the source addresses from
//! the master's addresses; the frames from [`alb_common::reports`]. The
//! groups of each VLAN device on the master (`/proc/net/vlan/config`) are
//! reported the same way, tagged with its VLAN.

use std::net::Ipv4Addr;

use alb_common::{
    reports::{IGMPV3_MAX_GROUPS, MLDV2_MAX_GROUPS, igmpv2_report, igmpv3_report, mldv2_report},
    wire::{Ipv4, Ipv6, Mac},
};
use anyhow::{Context as _, Result};

use super::Announcer;

/// The IPv4 groups of device `ifindex` in `/proc/net/igmp`, and whether its
/// link has seen an IGMPv1/v2 querier (reports must then be v2). All-hosts
/// (224.0.0.1) is never reported.
pub fn igmp_groups(text: &str, ifindex: u32) -> (Vec<Ipv4>, bool) {
    let mut groups = Vec::new();
    let mut old_querier = false;
    let mut inside = false;
    for line in text.lines().skip(1) {
        if !line.starts_with('\t') {
            // `3\talb0      :     2      V3`
            let mut fields = line.split_whitespace();
            inside = fields.next().and_then(|i| i.parse::<u32>().ok()) == Some(ifindex);
            if inside {
                old_querier = matches!(line.split_whitespace().last(), Some("V1" | "V2"));
            }
            continue;
        }
        if !inside {
            continue;
        }
        // `\t\t\t\t010000E0     1 0:00000000\t\t0`: the group as the kernel's
        // network-order word printed in the host's order.
        let Some(word) =
            line.split_whitespace().next().and_then(|h| u32::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let group = word.to_ne_bytes();
        if group != [224, 0, 0, 1] {
            groups.push(group);
        }
    }
    (groups, old_querier)
}

/// The IPv6 groups of device `ifindex` in `/proc/net/igmp6`, without those
/// MLD never reports (all-nodes ff02::1, interface-local ff01::/16).
pub fn mld_groups(text: &str, ifindex: u32) -> Vec<Ipv6> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            if fields.next()?.parse::<u32>().ok()? != ifindex {
                return None;
            }
            let group = parse_ipv6_hex(fields.nth(1)?)?;
            let all_nodes = group[..2] == [0xff, 0x02]
                && group[2..15].iter().all(|&b| b == 0)
                && group[15] == 1;
            let interface_local = group[0] == 0xff && group[1] & 0x0f == 1;
            (!all_nodes && !interface_local).then_some(group)
        })
        .collect()
}

/// The link-local address of device `ifindex` in `/proc/net/if_inet6`
/// (`address ifindex prefixlen scope flags name`, numbers in hex).
pub fn link_local(text: &str, ifindex: u32) -> Option<Ipv6> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [address, index, _prefix, scope, _flags, _name] = fields[..] else { return None };
        let matches = u32::from_str_radix(index, 16).ok()? == ifindex && scope == "20";
        matches.then(|| parse_ipv6_hex(address)).flatten()
    })
}

/// The VLAN devices whose lower device is `master`, as
/// `/proc/net/vlan/config` lists them (`alb0.100       | 100  | alb0`, after
/// two header lines): their names and VLAN IDs. The file exists once the
/// 8021q module is loaded.
pub fn vlan_devices(text: &str, master: &str) -> Vec<(String, u16)> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            let (name, vid, lower) = (fields.next()?, fields.next()?, fields.next()?);
            (lower == master).then(|| Some((name.to_owned(), vid.parse().ok()?))).flatten()
        })
        .collect()
}

/// 32 hex digits, no colons.
fn parse_ipv6_hex(text: &str) -> Option<Ipv6> {
    if text.len() != 32 {
        return None;
    }
    let mut address = [0u8; 16];
    for (i, byte) in address.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(address)
}

/// What a rejoin sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rejoined {
    pub ipv4_groups: usize,
    pub ipv6_groups: usize,
}

impl Announcer {
    /// Sends reports for every group device `master_ifindex` (the master,
    /// or a VLAN device on it: `vlan` is its VLAN, 0 for the master) has
    /// joined out of `slave_ifindex`, from `master_mac` and the device's
    /// addresses, tagged for `vlan`.
    pub fn rejoin(
        &self,
        slave_ifindex: u32,
        (master_ifindex, vlan): (u32, u16),
        master_mac: &Mac,
        master_ipv4: Option<Ipv4Addr>,
    ) -> Result<Rejoined> {
        let read = |path: &str| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
        };
        let mut frame = [0u8; 1514];
        let (groups4, old_querier) = igmp_groups(&read("/proc/net/igmp")?, master_ifindex);
        let source4 = master_ipv4.map_or([0; 4], |ip| ip.octets());
        if old_querier {
            for group in &groups4 {
                if let Some(len) = igmpv2_report(master_mac, &source4, group, &mut frame) {
                    self.send_tagged(slave_ifindex, &frame[..len], vlan)?;
                }
            }
        } else {
            for chunk in groups4.chunks(IGMPV3_MAX_GROUPS) {
                if let Some(len) = igmpv3_report(master_mac, &source4, chunk, &mut frame) {
                    self.send_tagged(slave_ifindex, &frame[..len], vlan)?;
                }
            }
        }
        // /proc/net/igmp6 is absent when IPv6 is disabled.
        let groups6 =
            read("/proc/net/igmp6").map(|t| mld_groups(&t, master_ifindex)).unwrap_or_default();
        let source6 = read("/proc/net/if_inet6")
            .ok()
            .and_then(|t| link_local(&t, master_ifindex))
            .unwrap_or([0; 16]);
        for chunk in groups6.chunks(MLDV2_MAX_GROUPS) {
            if let Some(len) = mldv2_report(master_mac, &source6, chunk, &mut frame) {
                self.send_tagged(slave_ifindex, &frame[..len], vlan)?;
            }
        }
        Ok(Rejoined { ipv4_groups: groups4.len(), ipv6_groups: groups6.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn igmp_table_of_one_device() {
        let text = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
                    1\tlo        :     1      V3\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    5\talb0      :     2      V3\n\
                    \t\t\t\t010101EF     1 0:00000000\t\t0\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    6\tveth17    :     1      V2\n\
                    \t\t\t\t020202EF     1 0:00000000\t\t0\n";
        // On a little-endian host the kernel prints 239.1.1.1 as 010101EF.
        if cfg!(target_endian = "little") {
            assert_eq!(igmp_groups(text, 5), (vec![[239, 1, 1, 1]], false));
            assert_eq!(igmp_groups(text, 6), (vec![[239, 2, 2, 2]], true));
        }
        assert_eq!(igmp_groups(text, 9), (vec![], false));
    }

    #[test]
    fn mld_table_without_all_nodes_and_interface_local() {
        let text = "5    alb0            ff0200000000000000000001ff000001     1 00000004 0\n\
                    5    alb0            ff020000000000000000000000000001     1 0000000C 0\n\
                    5    alb0            ff010000000000000000000000000001     1 00000008 0\n\
                    5    alb0            ff0e0000000000000000000000010002     1 00000004 0\n\
                    6    veth17          ff0200000000000000000001ff000017     1 00000004 0\n";
        let groups = mld_groups(text, 5);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0][11..], [1, 0xff, 0, 0, 1]);
        assert_eq!(groups[1][..2], [0xff, 0x0e]);
    }

    #[test]
    fn vlan_devices_of_the_master() {
        let text = "VLAN Dev name\t | VLAN ID\n\
                    Name-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n\
                    alb0.100       | 100  | alb0\n\
                    eth0.7         | 7  | eth0\n\
                    alb0.200       | 200  | alb0\n";
        assert_eq!(
            vlan_devices(text, "alb0"),
            [("alb0.100".to_owned(), 100), ("alb0.200".to_owned(), 200)]
        );
        assert!(vlan_devices(text, "alb1").is_empty());
    }

    #[test]
    fn the_link_local_address_of_a_device() {
        let text = "20010002000000000000000000000001 05 40 00 80     alb0\n\
                    fe8000000000000000a1b0fffe000017 05 40 20 80     alb0\n\
                    fe8000000000000000a1b0fffe000019 0a 40 20 80     veth19\n";
        let address = link_local(text, 5).expect("one");
        assert_eq!(address[..2], [0xfe, 0x80]);
        assert_eq!(address[15], 0x17);
        assert_eq!(link_local(text, 10).map(|a| a[15]), Some(0x19), "ifindex is hex");
        assert_eq!(link_local(text, 7), None);
    }
}
