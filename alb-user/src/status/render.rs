//! The human form of `alb status`, laid out like /proc/net/bonding.

#![expect(
    clippy::let_underscore_must_use,
    reason = "fmt::Write into a String cannot fail: its writes are not checked"
)]

use std::fmt::Write as _;

use super::Status;

/// The human form, laid out like /proc/net/bonding/<bond>.
pub fn to_text(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "alb: Linux bonding mode 6 on eBPF\n");
    let _ = writeln!(out, "Bonding Mode: adaptive load balancing ({})", status.mode);
    let _ = writeln!(out, "Master: {} (MAC {})", status.master, status.master_mac);
    let _ = writeln!(out, "Hook: {}", status.hook.unwrap_or("none recorded"));
    if status.agent {
        let _ = write!(out, "Primary Slave: {}", status.primary_slave.as_deref().unwrap_or("None"));
        if status.primary_slave.is_some() {
            let policy = status.primary_reselect.as_deref().unwrap_or("always");
            let _ = write!(out, " (primary_reselect {policy})");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Currently Active Slave: {}",
        status.active_slave.as_deref().unwrap_or("None")
    );
    match (status.updelay_ms, status.downdelay_ms) {
        (Some(up), Some(down)) => {
            let _ = writeln!(out, "Up Delay (ms): {up}\nDown Delay (ms): {down}");
        }
        _ => {
            let _ = writeln!(out, "Agent: not answering (primary, delays, link failures unknown)");
        }
    }
    if let Some(file) = &status.config_file {
        let _ = writeln!(out, "Config File: {file}");
    }
    if let Some(failures) = status.map_write_failures {
        let _ = writeln!(out, "Map Write Failures: {failures}");
    }
    if let Some(pending) = &status.map_writes_pending {
        let _ = writeln!(out, "Map Writes Pending: {pending}");
    }
    for slave in &status.slaves {
        let _ = writeln!(out, "\nSlave Interface: {}", slave.name);
        let _ = writeln!(out, "MII Status: {}", slave.mii_status.as_deref().unwrap_or(slave.link));
        match slave.speed_mbps {
            Some(mbps) => {
                let _ = writeln!(out, "Speed: {mbps} Mbps");
            }
            None => {
                let _ = writeln!(out, "Speed: Unknown");
            }
        }
        let _ = writeln!(out, "Duplex: {}", slave.duplex.unwrap_or("Unknown"));
        if let Some(failures) = slave.link_failure_count {
            let _ = writeln!(out, "Link Failure Count: {failures}");
        }
        let _ = writeln!(out, "Permanent HW addr: {}", slave.perm_mac);
        let _ = writeln!(out, "Usable: {}", if slave.usable { "yes" } else { "no" });
        let _ = writeln!(out, "HW addr: {}", slave.mac);
        let _ = writeln!(out, "Clients: {}", slave.clients);
        if !slave.filters.is_empty() {
            let _ = writeln!(out, "Filters added: {}", slave.filters.join(", "));
        }
        let _ = writeln!(
            out,
            "RX: {} packets, {} bytes   TX: {} packets, {} bytes",
            slave.rx_packets, slave.rx_bytes, slave.tx_packets, slave.tx_bytes
        );
    }
    let sampled = match status.client_sampling {
        0 | 1 => String::new(),
        every => format!(" (counters estimated from 1 frame in {every})"),
    };
    let _ = writeln!(out, "\nClients: {}{sampled}", status.clients.len());
    if !status.clients.is_empty() {
        // IPv6 addresses (a link-local one is up to 39 characters) widen
        // the address columns.
        let width = status
            .clients
            .iter()
            .flat_map(|c| [c.server_ip.to_string().len(), c.client_ip.to_string().len()])
            .max()
            .unwrap_or(0)
            .max(15)
            + 1;
        // A VLAN column only where some client is in a VLAN.
        let vlans = status.clients.iter().any(|c| c.vlan != 0);
        let vlan = |text: String| if vlans { format!("{text:<5} ") } else { String::new() };
        let _ = writeln!(
            out,
            "{}{:<width$} {:<width$} {:<18} {:<10} {:>10} {:>10}",
            vlan("vlan".to_owned()),
            "server",
            "client",
            "client MAC",
            "slave",
            "rx pkts",
            "tx pkts"
        );
        for client in &status.clients {
            let _ = writeln!(
                out,
                "{}{:<width$} {:<width$} {:<18} {:<10} {:>10} {:>10}",
                vlan(client.vlan.to_string()),
                client.server_ip.to_string(),
                client.client_ip.to_string(),
                client.mac.as_deref().unwrap_or("(unknown)"),
                client.slave.as_deref().unwrap_or("(none)"),
                client.rx_packets,
                client.tx_packets
            );
        }
    }
    if !status.vms.is_empty() {
        let ageing = status.vm_ageing_s.map_or_else(String::new, |s| format!(" (ageing {s} s)"));
        let _ = writeln!(out, "\nVM MACs: {}{ageing}", status.vms.len());
        let _ = writeln!(
            out,
            "{:<18} {:<10} {:>10} {:>10} {:>10}",
            "VM MAC", "slave", "last seen", "rx pkts", "tx pkts"
        );
        for vm in &status.vms {
            let _ = writeln!(
                out,
                "{:<18} {:<10} {:>9.1}s {:>10} {:>10}",
                vm.mac,
                vm.slave.as_deref().unwrap_or("(none)"),
                vm.last_seen_s,
                vm.rx_packets,
                vm.tx_packets
            );
        }
    }
    if !status.counters.is_empty() {
        let _ = writeln!(out, "\nCounters:");
        for (name, value) in &status.counters {
            let _ = writeln!(out, "  {name:<24} {value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{
        super::{ClientStatus, STATUS_VERSION, VmStatus, to_json},
        *,
    };

    fn client(server: &str, client: &str, slave: &str) -> ClientStatus {
        ClientStatus {
            server_ip: server.parse().expect("address"),
            client_ip: client.parse().expect("address"),
            vlan: 0,
            mac: Some("02:a1:c0:00:00:01".to_owned()),
            slave: Some(slave.to_owned()),
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: 4,
        }
    }

    fn status() -> Status {
        Status {
            version: STATUS_VERSION,
            master: "alb0".to_owned(),
            mode: "balance-alb",
            master_mac: "02:a1:b0:00:00:17".to_owned(),
            master_ifindex: 7,
            hook: Some("clsact"),
            active_slave: Some("veth17".to_owned()),
            agent: false,
            primary_slave: None,
            primary_reselect: None,
            updelay_ms: None,
            downdelay_ms: None,
            lp_interval_s: None,
            rebalance_interval_s: None,
            vm_ageing_s: None,
            client_sampling: 1,
            config_file: None,
            map_write_failures: None,
            map_writes_pending: None,
            slaves: Vec::new(),
            clients: Vec::new(),
            vms: Vec::new(),
            counters: BTreeMap::new(),
        }
    }

    #[test]
    fn refused_map_writes_are_shown() {
        let pending = "veth17 down: 12 client slots: EEXIST (for 3 s)";
        let refused = Status {
            agent: true,
            map_write_failures: Some(4),
            map_writes_pending: Some(pending.to_owned()),
            ..status()
        };
        let text = to_text(&refused);
        assert!(text.contains("\nMap Write Failures: 4\n"), "{text}");
        assert!(text.contains(&format!("\nMap Writes Pending: {pending}\n")), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&refused).expect("JSON")).expect("parses");
        assert_eq!(json["map_write_failures"], 4);
        assert_eq!(json["map_writes_pending"], pending);
        let clean = to_text(&Status { map_write_failures: Some(0), ..status() });
        assert!(clean.contains("Map Write Failures: 0") && !clean.contains("Pending"), "{clean}");
    }

    #[test]
    fn vm_macs_are_listed_with_their_slave_and_last_frame() {
        let vm = VmStatus {
            mac: "02:a1:d0:00:00:01".to_owned(),
            slot: 1,
            slave: Some("veth19".to_owned()),
            last_seen_s: 1.25,
            rx_packets: 5,
            rx_bytes: 500,
            tx_packets: 6,
            tx_bytes: 600,
        };
        let status = Status { vms: vec![vm], vm_ageing_s: Some(300), ..status() };
        let text = to_text(&status);
        assert!(text.contains("VM MACs: 1 (ageing 300 s)"), "{text}");
        let row = text.lines().find(|l| l.starts_with("02:a1:d0:00:00:01")).expect("VM row");
        assert!(row.contains("veth19") && row.contains("1.2s"), "{row}");
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&status).expect("JSON")).expect("parses");
        assert_eq!(json["vms"][0]["slave"], "veth19");
        assert_eq!(json["vm_ageing_s"], 300);
    }

    #[test]
    fn sampled_client_counters_say_so() {
        let row = || vec![client("198.18.0.1", "198.18.0.11", "veth17")];
        let exact = to_text(&Status { clients: row(), ..status() });
        assert!(exact.contains("\nClients: 1\n"), "{exact}");
        let sampled = Status { clients: row(), client_sampling: 16, ..status() };
        let text = to_text(&sampled);
        assert!(text.contains("Clients: 1 (counters estimated from 1 frame in 16)"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&sampled).expect("JSON")).expect("parses");
        assert_eq!(json["client_sampling"], 16);
    }

    #[test]
    fn ipv6_clients_are_shown_in_both_forms() {
        let status = Status {
            clients: vec![
                client("198.18.0.1", "198.18.0.11", "veth17"),
                client("fe80::a1:b0ff:fe00:17", "fe80::a1:c0ff:fe00:1", "veth19"),
            ],
            ..status()
        };
        let text = to_text(&status);
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("02:a1:c0")).collect();
        assert_eq!(rows.len(), 2, "{text}");
        // The columns line up, however long the addresses.
        let at = |row: &str| row.find("02:a1:c0").expect("MAC column");
        assert_eq!(at(rows[0]), at(rows[1]), "{text}");
        assert!(rows[1].starts_with("fe80::a1:b0ff:fe00:17 "), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&status).expect("JSON")).expect("parses");
        assert_eq!(json["clients"][1]["client_ip"], "fe80::a1:c0ff:fe00:1");
        assert_eq!(json["clients"][0]["server_ip"], "198.18.0.1");
    }
}
