//! The seed topology in private network namespaces, and what tests need to
//! drive and observe it.
//!
//! ```text
//!  <prefix>-srv                <prefix>-sw                 <prefix>-c1 .. -cN
//!  [alb0: 198.18.0.1/24]       br0 (bridge, no STP)
//!    veth17 ------------------ veth18
//!    veth19 ------------------ veth20
//!    ...                       c1 ----------------------- eth0 198.18.0.11/24
//!                              c2 ----------------------- eth0 198.18.0.12/24
//! ```
//!
//! The master (`alb0`) is created by the agent, not by the lab;
//! [`Lab::add_server_addrs`] gives it the server's addresses once it exists.
//! Everything lives in namespaces the lab creates; the root namespace is never
//! touched.
//!
//! A file per concern: [`config`] what to build, [`names`] how its
//! namespaces, MACs and log directories are named, [`up`] building it,
//! [`down`] taking it (and labs left behind) down, [`exec`] running
//! programs in it, [`links`] its devices and their counters, [`ping`]
//! traffic, [`tables`] neighbour and switch tables, [`wait`] polling, and
//! [`vms`] VMs behind the master.

mod bond;
mod config;
mod down;
mod exec;
mod links;
mod names;
mod outage;
mod ping;
mod tables;
mod up;
mod vms;
mod wait;

use std::{path::PathBuf, sync::atomic::AtomicUsize};

use anyhow::{Result, ensure};

pub use self::{
    bond::{BONDING_MODULE, SrvSysfs, require_bonding},
    config::LabConfig,
    links::{LinkInfo, LinkStats},
    names::{client_ns, srv_ns, sw_ns, vm_ns},
    outage::{PingLog, outage},
    ping::PingStats,
    up::{Client, Slave},
    vms::{MAX_VMS, VM_BRIDGE, Vm, VmKind},
    wait::wait_until,
};
use crate::proc::Registry;

/// The prefix of `cargo xtask lab up`.
pub const DEFAULT_PREFIX: &str = "alb-lab";
/// The agent's default master device.
pub const DEFAULT_MASTER: &str = "alb0";
/// The server's IPv4 address (on the master).
pub const SERVER_IP4: &str = "198.18.0.1";
/// The server's IPv6 address (on the master).
pub const SERVER_IP6: &str = "2001:2::1";
/// Prefix length of the lab's IPv4 subnet, 198.18.0.0/24.
pub const PREFIX_LEN4: u8 = 24;
/// Prefix length of the lab's IPv6 subnet, 2001:2::/64.
pub const PREFIX_LEN6: u8 = 64;
/// Clients get 198.18.0.11 ..= 198.18.0.250.
pub const MAX_CLIENTS: usize = 240;
/// Slaves are veth17, veth19, ... veth143.
pub const MAX_SLAVES: usize = 64;
/// The bridge in the switch namespace.
pub const BRIDGE: &str = "br0";
/// A client's interface, in its own namespace.
pub const CLIENT_DEV: &str = "eth0";

/// Fails unless this process runs as root (namespaces, devices and bpffs
/// need it).
pub fn require_root() -> Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "this needs root (network namespaces, devices, bpffs); run it as root"
    );
    Ok(())
}

/// A built lab. Dropping it stops the processes it started that are still
/// running and deletes every namespace it created (also on panic), unless
/// [`Lab::keep`] was called.
#[derive(Debug)]
pub struct Lab {
    config: LabConfig,
    srv: String,
    sw: String,
    slaves: Vec<Slave>,
    clients: Vec<Client>,
    created: Vec<String>,
    registry: Registry,
    log_dir: PathBuf,
    spawned: AtomicUsize,
    keep: bool,
}

impl Lab {
    /// What the lab was built from.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// The lab's prefix.
    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// The server namespace.
    pub fn srv(&self) -> &str {
        &self.srv
    }

    /// The switch namespace.
    pub fn sw(&self) -> &str {
        &self.sw
    }

    /// The master device's name (created by the agent).
    pub fn master(&self) -> &str {
        &self.config.master
    }

    /// The server's slaves, in order.
    pub fn slaves(&self) -> &[Slave] {
        &self.slaves
    }

    /// Slave `index` (0-based: 0 is veth17).
    pub fn slave(&self, index: usize) -> &Slave {
        &self.slaves[index]
    }

    /// The slave whose lab MAC is `mac`, if any.
    pub fn slave_by_mac(&self, mac: &str) -> Option<&Slave> {
        self.slaves.iter().find(|s| s.mac.eq_ignore_ascii_case(mac))
    }

    /// The clients, in order.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// Client `number` (1-based: 1 is `<prefix>-c1`).
    pub fn client(&self, number: usize) -> &Client {
        &self.clients[number - 1]
    }

    /// `--iface veth17 --iface veth19 ...`: the agent's arguments for every
    /// slave.
    pub fn agent_args(&self) -> Vec<String> {
        self.slaves.iter().flat_map(|s| ["--iface".to_owned(), s.name.clone()]).collect()
    }

    /// Where spawned processes' logs go: `$TMPDIR/alb-lab/<prefix>/`,
    /// removed with the lab unless it is dropped during a panic.
    pub fn log_dir(&self) -> &PathBuf {
        &self.log_dir
    }
}
