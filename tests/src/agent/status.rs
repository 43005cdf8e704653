//! `alb status --json` as typed values: [`Status`], its slaves
//! ([`SlaveStatus`]) and clients ([`ClientStatus`]), refused when the
//! layout's [`STATUS_VERSION`] differs.

use std::{collections::BTreeMap, fmt};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::SERVER_IP4;

/// The `alb status --json` layout these types read (its `version` field).
pub const STATUS_VERSION: u32 = 3;

/// `alb status --json`: the fields the tests, the demo and the benchmark
/// read. Fields the agent adds later are accepted and kept in
/// [`Status::raw`]; a document of another [`STATUS_VERSION`] is refused.
#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    /// The layout's version, [`STATUS_VERSION`].
    pub version: u32,
    pub master: String,
    pub mode: String,
    pub master_mac: String,
    /// How the programs are attached (`tcx`, `clsact`), from the records
    /// under the pins.
    pub hook: Option<String>,
    pub active_slave: Option<String>,
    /// Whether the agent answered; the fields it gives are null when not.
    pub agent: bool,
    /// Bonding's primary.
    pub primary_slave: Option<String>,
    /// `always`, `better` or `failure`.
    pub primary_reselect: Option<String>,
    pub updelay_ms: Option<u64>,
    pub downdelay_ms: Option<u64>,
    pub lp_interval_s: Option<u64>,
    pub rebalance_interval_s: Option<u64>,
    /// The config file the agent re-reads on SIGHUP.
    pub config_file: Option<String>,
    pub slaves: Vec<SlaveStatus>,
    pub clients: Vec<ClientStatus>,
    /// Data-path counters by reason name.
    pub counters: BTreeMap<String, u64>,
    /// The whole document as printed.
    #[serde(skip)]
    pub raw: Value,
}

/// One slave in [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SlaveStatus {
    /// Its index in enslave order.
    pub index: u32,
    pub name: String,
    pub mac: String,
    /// Carrier as the kernel reports it (`up`, `down`).
    pub link: String,
    /// The agent's link state: `up`, `going down`, `down`, `going back`.
    pub mii_status: Option<String>,
    /// Downs committed since it was enslaved (from the agent).
    pub link_failure_count: Option<u64>,
    pub speed_mbps: Option<u32>,
    /// `full` or `half`.
    pub duplex: Option<String>,
    /// Bonding's Permanent HW addr.
    pub perm_mac: String,
    /// Whether the data path may use it.
    pub usable: bool,
    pub active: bool,
    /// Clients dealt to it.
    pub clients: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Receive filter entries the agent added (`unicast 02:..`).
    #[serde(default)]
    pub filters: Vec<String>,
}

/// One client in [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ClientStatus {
    pub server_ip: String,
    pub client_ip: String,
    /// The VLAN ID (0: untagged).
    #[serde(default)]
    pub vlan: u16,
    pub mac: Option<String>,
    pub slave: Option<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Status {
    /// Parses what `alb status --json` printed.
    pub fn parse(json: &[u8]) -> Result<Self> {
        let raw: Value = serde_json::from_slice(json).with_context(|| {
            format!("alb status --json printed no JSON: {}", String::from_utf8_lossy(json))
        })?;
        if raw["version"] != STATUS_VERSION {
            bail!(
                "alb status --json has version {}; these tests read version {STATUS_VERSION}: {raw:#}",
                raw["version"]
            );
        }
        let mut status = Self::deserialize(&raw)
            .with_context(|| format!("unexpected alb status --json: {raw:#}"))?;
        status.raw = raw;
        Ok(status)
    }

    /// Slave `name`, if the agent has it.
    pub fn slave(&self, name: &str) -> Option<&SlaveStatus> {
        self.slaves.iter().find(|s| s.name == name)
    }

    /// The entry of client `client_ip` of the server address
    /// ([`SERVER_IP4`]).
    pub fn client(&self, client_ip: &str) -> Option<ClientStatus> {
        self.clients.iter().find(|c| c.client_ip == client_ip && c.server_ip == SERVER_IP4).cloned()
    }

    /// (client IP, slave name or `none`) for every client entry.
    pub fn client_slaves(&self) -> Vec<(String, String)> {
        self.clients
            .iter()
            .map(|c| (c.client_ip.clone(), c.slave.clone().unwrap_or_else(|| "none".to_owned())))
            .collect()
    }

    /// Data-path counter `name` (absent counters are zero).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

impl fmt::Display for Status {
    /// The document as the agent printed it, indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string_pretty(&self.raw) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{:?}", self.raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_is_read_and_unknown_fields_are_kept() {
        let json = br#"{
            "master": "alb0", "mode": "balance-alb", "master_mac": "02:a1:b0:00:00:17",
            "master_ifindex": 7, "version": 3, "active_slave": "veth17", "agent": true,
            "primary_slave": null, "primary_reselect": "always", "updelay_ms": 0,
            "downdelay_ms": 0, "lp_interval_s": 1, "rebalance_interval_s": 10,
            "config_file": null,
            "slaves": [{"index": 0, "name": "veth17", "ifindex": 3, "mac": "02:a1:b0:00:00:17",
                "link": "up", "mii_status": "up", "link_failure_count": 0, "speed_mbps": 10000,
                "duplex": "full", "perm_mac": "02:a1:b0:00:00:17",
                "usable": true, "active": true, "clients": 1, "slot": 4,
                "rx_packets": 1, "rx_bytes": 2, "tx_packets": 3, "tx_bytes": 4}],
            "clients": [{"server_ip": "198.18.0.1", "client_ip": "198.18.0.11",
                "mac": "02:a1:c0:00:00:01", "slave": "veth17",
                "rx_packets": 5, "rx_bytes": 6, "tx_packets": 7, "tx_bytes": 8},
                {"server_ip": "198.18.0.1", "client_ip": "198.18.0.12", "mac": null,
                "slave": null, "rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0}],
            "counters": {"rx_arp": 9}
        }"#;
        let status = Status::parse(json).expect("parsed");
        assert_eq!(status.active_slave.as_deref(), Some("veth17"));
        assert_eq!(status.slave("veth17").map(|s| s.tx_bytes), Some(4));
        assert_eq!(status.client("198.18.0.11").and_then(|c| c.slave).as_deref(), Some("veth17"));
        assert_eq!(status.client("198.18.0.12").map(|c| c.mac), Some(None));
        assert_eq!(status.counter("rx_arp"), 9);
        assert_eq!(status.counter("tx_bucket"), 0);
        assert_eq!(status.raw["version"], 3);
        assert_eq!(
            status.client_slaves(),
            [
                ("198.18.0.11".to_owned(), "veth17".to_owned()),
                ("198.18.0.12".to_owned(), "none".to_owned())
            ]
        );
        assert!(status.to_string().contains("\"slot\": 4"));
        assert_eq!(status.slave("veth17").and_then(|s| s.link_failure_count), Some(0));
        assert!(Status::parse(b"not json").is_err());
        let other = raw_with_version(json, 2);
        let refused = Status::parse(&other).expect_err("another version");
        assert!(format!("{refused:#}").contains("version 2"), "{refused:#}");
        assert!(Status::parse(br#"{"master": "alb0"}"#).is_err());
    }

    fn raw_with_version(json: &[u8], version: u32) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(json).expect("json");
        value["version"] = version.into();
        serde_json::to_vec(&value).expect("json")
    }
}
