//! `alb status`: the state of a running master, read from its pinned maps,
//! in the spirit of /proc/net/bonding (and as JSON).

#![expect(
    clippy::let_underscore_must_use,
    reason = "fmt::Write into a String cannot fail: its writes are not checked"
)]

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use alb_common::maps::{CLIENT_MAC_KNOWN, ClientEntry, NO_SLAVE, names};
use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::{datapath, format_mac, links::Netlink};

#[derive(Debug, Serialize)]
pub struct Status {
    pub master: String,
    pub mode: &'static str,
    pub master_mac: String,
    pub master_ifindex: u32,
    pub active_slave: Option<String>,
    pub slaves: Vec<SlaveStatus>,
    pub clients: Vec<ClientStatus>,
    pub counters: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct SlaveStatus {
    pub index: u32,
    pub name: String,
    pub ifindex: u32,
    pub mac: String,
    /// Carrier as the kernel reports it now.
    pub link: &'static str,
    /// Whether the data path may use the slave.
    pub usable: bool,
    pub active: bool,
    pub clients: usize,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// A client of either family: IPv4 clients first, then IPv6 ones (link-local
/// and global), each in address order.
#[derive(Debug, Serialize)]
pub struct ClientStatus {
    pub server_ip: IpAddr,
    pub client_ip: IpAddr,
    pub mac: Option<String>,
    pub slave: Option<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Reads the state of master `master` from its pins.
pub async fn collect(master: &str) -> Result<Status> {
    let dir = datapath::pin_dir(master);
    if !dir.join(names::CONFIG).exists() {
        bail!("no alb master {master} is running (no pins in {})", dir.display());
    }
    let maps = datapath::Maps::from_pins(&dir)?;
    let netlink = Netlink::connect()?;
    let config = maps.config()?;
    let slaves_in_map = maps.slaves()?;
    let clients_in_map = maps.clients()?;
    let clients6_in_map = maps.clients6()?;
    let entries: Vec<(IpAddr, IpAddr, &ClientEntry)> = clients_in_map
        .iter()
        .map(|(key, entry)| {
            (Ipv4Addr::from(key.server_ip).into(), Ipv4Addr::from(key.client_ip).into(), entry)
        })
        .chain(clients6_in_map.iter().map(|(key, entry)| {
            (Ipv6Addr::from(key.server_ip).into(), Ipv6Addr::from(key.client_ip).into(), entry)
        }))
        .collect();

    let mut names_by_index = BTreeMap::new();
    let mut slaves = Vec::new();
    for (index, slave) in &slaves_in_map {
        let link = netlink.link_by_index(slave.ifindex).await?;
        let name =
            link.as_ref().map_or_else(|| format!("ifindex {}", slave.ifindex), |l| l.name.clone());
        names_by_index.insert(*index, name.clone());
        let stats = maps.slave_stats(*index)?;
        slaves.push(SlaveStatus {
            index: *index,
            name,
            ifindex: slave.ifindex,
            mac: format_mac(&slave.mac),
            link: match link {
                Some(l) if l.lower_up => "up",
                Some(_) => "down",
                None => "gone",
            },
            usable: slave.is_up(),
            active: *index == config.active_slave,
            clients: entries.iter().filter(|(_, _, e)| maps.slave_of(e) == *index).count(),
            rx_packets: stats.rx.packets,
            rx_bytes: stats.rx.bytes,
            tx_packets: stats.tx.packets,
            tx_bytes: stats.tx.bytes,
        });
    }
    let clients = entries
        .iter()
        .map(|&(server_ip, client_ip, entry)| ClientStatus {
            server_ip,
            client_ip,
            mac: (entry.flags & CLIENT_MAC_KNOWN != 0).then(|| format_mac(&entry.mac)),
            slave: names_by_index.get(&maps.slave_of(entry)).cloned(),
            rx_packets: entry.rx_packets,
            rx_bytes: entry.rx_bytes,
            tx_packets: entry.tx_packets,
            tx_bytes: entry.tx_bytes,
        })
        .collect();
    let counters = maps
        .counters()?
        .into_iter()
        .filter(|(_, value)| *value != 0)
        .map(|(reason, value)| (reason.name(), value))
        .collect();
    let master_name = netlink
        .link_by_index(config.master_ifindex)
        .await?
        .map_or_else(|| master.to_owned(), |l| l.name);
    Ok(Status {
        master: master_name,
        mode: "balance-alb",
        master_mac: format_mac(&config.master_mac),
        master_ifindex: config.master_ifindex,
        active_slave: (config.active_slave != NO_SLAVE)
            .then(|| names_by_index.get(&config.active_slave).cloned())
            .flatten(),
        slaves,
        clients,
        counters,
    })
}

pub fn to_json(status: &Status) -> Result<String> {
    serde_json::to_string_pretty(status).context("cannot encode status")
}

/// The human form, laid out like /proc/net/bonding/<bond>.
pub fn to_text(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "alb: Linux bonding mode 6 on eBPF\n");
    let _ = writeln!(out, "Bonding Mode: adaptive load balancing ({})", status.mode);
    let _ = writeln!(out, "Master: {} (MAC {})", status.master, status.master_mac);
    let _ = writeln!(
        out,
        "Currently Active Slave: {}",
        status.active_slave.as_deref().unwrap_or("None")
    );
    for slave in &status.slaves {
        let _ = writeln!(out, "\nSlave Interface: {}", slave.name);
        let _ = writeln!(out, "MII Status: {}", slave.link);
        let _ = writeln!(out, "Usable: {}", if slave.usable { "yes" } else { "no" });
        let _ = writeln!(out, "HW addr: {}", slave.mac);
        let _ = writeln!(out, "Clients: {}", slave.clients);
        let _ = writeln!(
            out,
            "RX: {} packets, {} bytes   TX: {} packets, {} bytes",
            slave.rx_packets, slave.rx_bytes, slave.tx_packets, slave.tx_bytes
        );
    }
    let _ = writeln!(out, "\nClients: {}", status.clients.len());
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
        let _ = writeln!(
            out,
            "{:<width$} {:<width$} {:<18} {:<10} {:>10} {:>10}",
            "server", "client", "client MAC", "slave", "rx pkts", "tx pkts"
        );
        for client in &status.clients {
            let _ = writeln!(
                out,
                "{:<width$} {:<width$} {:<18} {:<10} {:>10} {:>10}",
                client.server_ip.to_string(),
                client.client_ip.to_string(),
                client.mac.as_deref().unwrap_or("(unknown)"),
                client.slave.as_deref().unwrap_or("(none)"),
                client.rx_packets,
                client.tx_packets
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
    use super::*;

    fn client(server: &str, client: &str, slave: &str) -> ClientStatus {
        ClientStatus {
            server_ip: server.parse().expect("address"),
            client_ip: client.parse().expect("address"),
            mac: Some("02:a1:c0:00:00:01".to_owned()),
            slave: Some(slave.to_owned()),
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: 4,
        }
    }

    #[test]
    fn ipv6_clients_are_shown_in_both_forms() {
        let status = Status {
            master: "alb0".to_owned(),
            mode: "balance-alb",
            master_mac: "02:a1:b0:00:00:17".to_owned(),
            master_ifindex: 7,
            active_slave: Some("veth17".to_owned()),
            slaves: Vec::new(),
            clients: vec![
                client("198.18.0.1", "198.18.0.11", "veth17"),
                client("fe80::a1:b0ff:fe00:17", "fe80::a1:c0ff:fe00:1", "veth19"),
            ],
            counters: BTreeMap::new(),
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
