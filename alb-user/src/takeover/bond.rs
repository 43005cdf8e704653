//! The kernel bond's side of `alb takeover` and `alb handback`, as pure
//! functions: which of the options a running bond shows in sysfs are
//! written back, in which order, and the receive-balancing table bonding
//! shows in debugfs.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The options `alb handback` writes back into a new bond's sysfs files,
/// in this order: `mode` only while the bond has no slave, `miimon` before
/// the delays (bonding refuses `updelay` and `downdelay` without it),
/// `fail_over_mac` before the first slave. `primary` is written after the
/// slaves are in. The others a balance-alb bond shows are not written:
/// bonding refuses them in this mode or they are LACP's.
const WRITTEN: &[&str] = &[
    "mode",
    "fail_over_mac",
    "miimon",
    "updelay",
    "downdelay",
    "peer_notif_delay",
    "use_carrier",
    "lp_interval",
    "tlb_dynamic_lb",
    "primary_reselect",
    "resend_igmp",
    "num_grat_arp",
    "min_links",
    "all_slaves_active",
    "xmit_hash_policy",
];

/// The modes `alb takeover` replaces.
pub const MODES: &[&str] = &["balance-alb", "balance-tlb"];

/// What `alb handback` writes: options (sysfs file, value) before the
/// slaves, in bonding's order; and the options it does not write.
#[derive(Debug, PartialEq, Eq)]
pub struct Writes {
    pub before_slaves: Vec<(String, String)>,
    pub primary: Option<String>,
    pub not_written: Vec<String>,
}

/// Orders the options a bond showed (sysfs name, value as shown) into
/// what a new bond is given.
pub fn writes(options: &[(String, String)]) -> Writes {
    let value = |name: &str| options.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v);
    let before_slaves = WRITTEN
        .iter()
        .filter_map(|name| value(name).map(|v| ((*name).to_owned(), v.clone())))
        .collect();
    let primary = value("primary").filter(|v| !v.is_empty()).cloned();
    let mut not_written: Vec<String> = options
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| !WRITTEN.contains(&name.as_str()) && name != "primary")
        // num_unsol_na is num_grat_arp under another name.
        .filter(|name| name != "num_unsol_na")
        .collect();
    not_written.dedup();
    Writes { before_slaves, primary, not_written }
}

/// One client of bonding's receive-load-balancing table: the server
/// address it asked for, its address and MAC, and the slave whose MAC it
/// was told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlbClient {
    pub server_ip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
    pub client_mac: String,
    pub slave: String,
}

/// Reads `/sys/kernel/debug/bonding/BOND/rlb_hash_table`, as
/// bond_debugfs.c prints it: a header line, then `%-15pI4 %-15pI4 %-17pM
/// %s` (source IP, destination IP, destination MAC, slave name; newer
/// kernels print `(none)` for an entry without a slave, which is left
/// out). A line that does not read so is an error naming it.
pub fn parse_rlb_table(text: &str) -> Result<Vec<RlbClient>, String> {
    let mut clients = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || (number == 0 && words.first() == Some(&"SourceIP")) {
            continue;
        }
        let [server, client, mac, slave] = words.as_slice() else {
            return Err(format!(
                "line {}: {line:?} is not SourceIP DestinationIP MAC DEV",
                number + 1
            ));
        };
        if *slave == "(none)" {
            continue;
        }
        let address = |text: &str| {
            text.parse::<Ipv4Addr>()
                .map_err(|error| format!("line {}: {text:?}: {error}", number + 1))
        };
        if crate::parse_mac(mac).is_none() {
            return Err(format!("line {}: {mac:?} is not a MAC address", number + 1));
        }
        clients.push(RlbClient {
            server_ip: address(server)?,
            client_ip: address(client)?,
            client_mac: (*mac).to_owned(),
            slave: (*slave).to_owned(),
        });
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn mode_comes_first_and_miimon_before_the_delays_whatever_the_order_read() {
        // sysfs lists its files alphabetically.
        let read = [
            option("downdelay", "200"),
            option("lp_interval", "2"),
            option("miimon", "100"),
            option("mode", "balance-alb"),
            option("primary", "eth1"),
            option("updelay", "100"),
        ];
        let writes = writes(&read);
        assert_eq!(
            writes.before_slaves,
            [
                option("mode", "balance-alb"),
                option("miimon", "100"),
                option("updelay", "100"),
                option("downdelay", "200"),
                option("lp_interval", "2"),
            ]
        );
        assert_eq!(writes.primary.as_deref(), Some("eth1"));
        assert!(writes.not_written.is_empty(), "{:?}", writes.not_written);
    }

    #[test]
    fn options_bonding_refuses_in_this_mode_are_named_not_written() {
        let read = [
            option("mode", "balance-tlb"),
            option("arp_validate", "active"),
            option("ad_select", "bandwidth"),
            option("num_unsol_na", "2"),
            option("num_grat_arp", "2"),
        ];
        let writes = writes(&read);
        assert_eq!(
            writes.before_slaves,
            [option("mode", "balance-tlb"), option("num_grat_arp", "2")]
        );
        assert_eq!(writes.not_written, ["arp_validate", "ad_select"]);
        assert_eq!(writes.primary, None);
    }

    #[test]
    fn the_debugfs_table_reads_as_bonding_prints_it() {
        let text = "SourceIP        DestinationIP   Destination MAC   DEV\n\
                    198.18.0.1      198.18.0.11     02:a1:b0:00:01:0b eth0\n\
                    198.18.0.1      198.18.0.12     02:a1:b0:00:01:0c eth1\n\
                    198.18.0.1      198.18.0.13     00:00:00:00:00:00 (none)\n";
        let clients = parse_rlb_table(text).expect("the table reads");
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[1].client_ip, Ipv4Addr::new(198, 18, 0, 12));
        assert_eq!(clients[1].server_ip, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(clients[1].slave, "eth1");
        assert_eq!(clients[0].client_mac, "02:a1:b0:00:01:0b");
    }

    #[test]
    fn a_line_that_is_no_table_entry_is_an_error_naming_it() {
        let error = parse_rlb_table("SourceIP DestinationIP Destination MAC DEV\n198.18.0.1 x\n")
            .expect_err("a short line is refused");
        assert!(error.starts_with("line 2:"), "{error}");
        let error = parse_rlb_table("198.18.0.1 198.18.0.300 02:a1:b0:00:01:0b eth0\n")
            .expect_err("a bad address is refused");
        assert!(error.contains("198.18.0.300"), "{error}");
    }
}
