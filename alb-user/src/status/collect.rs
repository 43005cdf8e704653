//! Collecting a master's state: its pinned maps and devices, and what only
//! the agent knows, asked over its control socket.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use alb_common::maps::{CLIENT_MAC_KNOWN, ClientEntry, NO_SLAVE, names};
use anyhow::{Result, bail};

use super::{ClientStatus, STATUS_VERSION, SlaveStatus, Status, VmStatus};
use crate::{
    control::{self, AgentInfo, Request},
    datapath, ethtool, format_mac,
    links::Netlink,
};

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
        hook: datapath::recorded_hook(&dir).map(datapath::Hook::name),
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
