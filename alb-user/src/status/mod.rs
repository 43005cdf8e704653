//! `alb status`: the state of a running master, read from its pinned maps
//! and the devices, with what only the agent knows (primary, policy,
//! delays, link failure counts) asked over its control socket, in the
//! spirit of /proc/net/bonding (and as JSON, whose layout has a version).
//!
//! This module is the JSON schema ([`Status`]); [`collect`] reads the
//! state from the pins, netlink, ethtool and the agent's control socket,
//! [`render`] lays it out as text.

mod collect;
mod render;

use std::{collections::BTreeMap, net::IpAddr};

use anyhow::{Context as _, Result};
use serde::Serialize;

pub use self::{collect::collect, render::to_text};

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
    /// How the programs are attached (`tcx` or `clsact`), as the records
    /// under the pins say; null when none is recorded.
    pub hook: Option<&'static str>,
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

pub fn to_json(status: &Status) -> Result<String> {
    serde_json::to_string_pretty(status).context("cannot encode status")
}
