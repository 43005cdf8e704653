//! `alb status`: the state of a running master, read from its pinned maps
//! and the devices, with what only the agent knows (primary, policy,
//! delays, link failure counts) asked over its control socket, in the
//! spirit of /proc/net/bonding (and as JSON, whose layout has a version).

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
use serde::{Deserialize, Serialize};

use crate::{
    control::{self, Request},
    datapath, ethtool, format_mac,
    links::Netlink,
};

/// The version of the `alb status --json` layout: 2 added the agent's
/// options and the per-slave link failure count, speed, duplex and
/// permanent address; 3 lists IPv6 clients in `clients` (their addresses
/// IPv6). Raised when a field changes meaning or goes (new fields, such as
/// `map_write_failures` and `map_writes_pending`, keep it).
pub const STATUS_VERSION: u32 = 3;

#[derive(Debug, Serialize)]
pub struct Status {
    /// [`STATUS_VERSION`].
    pub version: u32,
    pub master: String,
    pub mode: &'static str,
    pub master_mac: String,
    pub master_ifindex: u32,
    pub active_slave: Option<String>,
    /// Whether the agent answered; the fields below are null when not.
    pub agent: bool,
    /// Bonding's primary.
    pub primary_slave: Option<String>,
    pub primary_reselect: Option<String>,
    pub updelay_ms: Option<u64>,
    pub downdelay_ms: Option<u64>,
    pub lp_interval_s: Option<u64>,
    pub rebalance_interval_s: Option<u64>,
    /// Seconds a VM MAC is kept without a frame from it.
    pub vm_ageing_s: Option<u64>,
    /// Clients' counters count 1 frame in this many, weighted by it: for
    /// more than 1 they are estimates (`client_sampling`).
    pub client_sampling: u32,
    /// The config file the agent re-reads on SIGHUP.
    pub config_file: Option<String>,
    /// Map writes the kernel refused since the agent started.
    pub map_write_failures: Option<u64>,
    /// A refused map write not yet taken (retried until it takes).
    pub map_writes_pending: Option<String>,
    pub slaves: Vec<SlaveStatus>,
    pub clients: Vec<ClientStatus>,
    /// Learned VM MACs (bridged VMs, macvlans), in MAC order.
    pub vms: Vec<VmStatus>,
    pub counters: BTreeMap<&'static str, u64>,
}

/// What only the agent knows, sent over the control socket (`info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub primary: Option<String>,
    pub primary_reselect: String,
    pub updelay_ms: u64,
    pub downdelay_ms: u64,
    pub lp_interval_s: u64,
    pub rebalance_interval_s: u64,
    /// Absent from an older agent's answer.
    #[serde(default)]
    pub vm_ageing_s: Option<u64>,
    pub config_file: Option<String>,
    pub slaves: Vec<AgentSlave>,
    /// Map writes refused since the agent started (retries included);
    /// absent from an older agent's answer.
    #[serde(default)]
    pub map_write_failures: Option<u64>,
    /// The first refused write not yet taken, and for how long (the agent
    /// writes its model again until it takes); none when the maps match.
    #[serde(default)]
    pub map_writes_pending: Option<String>,
}

/// One slave as the agent sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSlave {
    pub name: String,
    /// Bonding's MII Status: `up`, `going down`, `down`, `going back`.
    pub state: String,
    pub link_failure_count: u64,
}

#[derive(Debug, Serialize)]
pub struct SlaveStatus {
    pub index: u32,
    pub name: String,
    pub ifindex: u32,
    pub mac: String,
    /// Carrier as the kernel reports it now.
    pub link: &'static str,
    /// The agent's link state, with its delays (bonding's MII Status).
    pub mii_status: Option<String>,
    /// Link failures since it was enslaved (bonding's Link Failure Count).
    pub link_failure_count: Option<u64>,
    /// As ethtool reports it.
    pub speed_mbps: Option<u32>,
    /// `full` or `half`, as ethtool reports it.
    pub duplex: Option<&'static str>,
    /// The hardware's own address where the device has one, else the MAC
    /// it had when it was enslaved (which alb never changes): bonding's
    /// Permanent HW addr.
    pub perm_mac: String,
    /// Whether the data path may use the slave.
    pub usable: bool,
    pub active: bool,
    pub clients: usize,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Receive filter entries the agent added (`unicast 02:..`,
    /// `multicast 33:33:..`), from its undo record.
    pub filters: Vec<String>,
}

/// A client of either family: IPv4 clients first, then IPv6 ones (link-local
/// and global), each in address order.
#[derive(Debug, Serialize)]
pub struct ClientStatus {
    pub server_ip: IpAddr,
    pub client_ip: IpAddr,
    /// The VLAN ID (0: untagged): the same addresses in two VLANs are two
    /// clients.
    pub vlan: u16,
    pub mac: Option<String>,
    pub slave: Option<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// A VM MAC (a source other than the master's) pinned to one slave.
#[derive(Debug, Serialize)]
pub struct VmStatus {
    pub mac: String,
    pub slot: u32,
    /// The slave all its frames leave by (and which the switch knows it on).
    pub slave: Option<String>,
    /// Seconds since its last frame out; it ages out after `vm_ageing_s`.
    pub last_seen_s: f64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// The monotonic clock in ns (`bpf_ktime_get_ns`'s).
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
        u64::try_from(now.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(now.tv_nsec()).unwrap_or(0)
    })
}

/// Reads the state of master `master` from its pins.
pub async fn collect(master: &str) -> Result<Status> {
    let dir = datapath::pin_dir(master);
    if !dir.join(names::CONFIG).exists() {
        bail!("no alb master {master} is running (no pins in {})", dir.display());
    }
    let maps = datapath::Maps::from_pins(&dir)?;
    let netlink = Netlink::connect()?;
    let agent = agent_info(master).await;
    let config = maps.config()?;
    let slaves_in_map = maps.slaves()?;
    let clients_in_map = maps.clients()?;
    let clients6_in_map = maps.clients6()?;
    let entries: Vec<(IpAddr, IpAddr, u16, &ClientEntry)> = clients_in_map
        .iter()
        .map(|(key, entry)| {
            let (server, client) = (Ipv4Addr::from(key.server_ip), Ipv4Addr::from(key.client_ip));
            (server.into(), client.into(), key.vlan, entry)
        })
        .chain(clients6_in_map.iter().map(|(key, entry)| {
            let (server, client) = (Ipv6Addr::from(key.server_ip), Ipv6Addr::from(key.client_ip));
            (server.into(), client.into(), key.vlan, entry)
        }))
        .collect();

    let filters = crate::undo::Undo::load(master)?.map(|undo| undo.filters).unwrap_or_default();
    let mut names_by_index = BTreeMap::new();
    let mut slaves = Vec::new();
    for (index, slave) in &slaves_in_map {
        let link = netlink.link_by_index(slave.ifindex).await?;
        let name =
            link.as_ref().map_or_else(|| format!("ifindex {}", slave.ifindex), |l| l.name.clone());
        names_by_index.insert(*index, name.clone());
        let stats = maps.slave_stats(*index)?;
        let seen = agent.as_ref().and_then(|a| a.slaves.iter().find(|s| s.name == name));
        let speed = ethtool::speed(&name);
        let perm_mac = link.as_ref().and_then(|l| l.perm_mac).unwrap_or(slave.mac);
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
            mii_status: seen.map(|s| s.state.clone()),
            link_failure_count: seen.map(|s| s.link_failure_count),
            speed_mbps: speed.mbps,
            duplex: speed.full_duplex.map(|full| if full { "full" } else { "half" }),
            perm_mac: format_mac(&perm_mac),
            usable: slave.is_up(),
            active: *index == config.active_slave,
            clients: entries.iter().filter(|(_, _, _, e)| maps.slave_of(e) == *index).count(),
            rx_packets: stats.rx.packets,
            rx_bytes: stats.rx.bytes,
            tx_packets: stats.tx.packets,
            tx_bytes: stats.tx.bytes,
            filters: filters
                .iter()
                .filter(|f| f.ifindex == slave.ifindex)
                .map(|f| {
                    let kind = match f.kind {
                        crate::filters::Kind::Unicast => "unicast",
                        crate::filters::Kind::Multicast => "multicast",
                    };
                    format!("{kind} {}", format_mac(&f.mac))
                })
                .collect(),
        });
    }
    let clients = entries
        .iter()
        .map(|&(server_ip, client_ip, vlan, entry)| ClientStatus {
            server_ip,
            client_ip,
            vlan,
            mac: (entry.flags & CLIENT_MAC_KNOWN != 0).then(|| format_mac(&entry.mac)),
            slave: names_by_index.get(&maps.slave_of(entry)).cloned(),
            rx_packets: entry.rx_packets,
            rx_bytes: entry.rx_bytes,
            tx_packets: entry.tx_packets,
            tx_bytes: entry.tx_bytes,
        })
        .collect();
    let now = monotonic_ns();
    let vms = maps
        .vms()?
        .iter()
        .map(|(key, entry)| VmStatus {
            mac: format_mac(&key.mac),
            slot: entry.slot,
            slave: maps
                .slots
                .get(&entry.slot, 0)
                .ok()
                .and_then(|slot| names_by_index.get(&slot.slave).cloned()),
            #[expect(clippy::cast_precision_loss, reason = "seconds to a display precision")]
            last_seen_s: now.saturating_sub(entry.last_seen_ns) as f64 / 1e9,
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
    let info = agent.as_ref();
    Ok(Status {
        version: STATUS_VERSION,
        master: master_name,
        mode: "balance-alb",
        master_mac: format_mac(&config.master_mac),
        master_ifindex: config.master_ifindex,
        active_slave: (config.active_slave != NO_SLAVE)
            .then(|| names_by_index.get(&config.active_slave).cloned())
            .flatten(),
        agent: agent.is_some(),
        primary_slave: info.and_then(|a| a.primary.clone()),
        primary_reselect: info.map(|a| a.primary_reselect.clone()),
        updelay_ms: info.map(|a| a.updelay_ms),
        downdelay_ms: info.map(|a| a.downdelay_ms),
        lp_interval_s: info.map(|a| a.lp_interval_s),
        rebalance_interval_s: info.map(|a| a.rebalance_interval_s),
        vm_ageing_s: info.and_then(|a| a.vm_ageing_s),
        client_sampling: config.client_sampling.max(1),
        config_file: info.and_then(|a| a.config_file.clone()),
        map_write_failures: info.and_then(|a| a.map_write_failures),
        map_writes_pending: info.and_then(|a| a.map_writes_pending.clone()),
        slaves,
        clients,
        vms,
        counters,
    })
}

/// Asks the agent of `master` what only it knows; none if no agent answers
/// (it died, or the caller may not use its socket).
async fn agent_info(master: &str) -> Option<AgentInfo> {
    let answer = control::send(master, &Request::Info).await.ok()?;
    serde_json::from_str(&answer).ok()
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
    use super::*;

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
