//! What `alb run` runs with: the options once the command line and the
//! config file are put together, checked and given their defaults.

use std::net::SocketAddr;

use alb_common::{active::Reselect, link::Delays};

/// How the agent was asked to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub master: String,
    pub slaves: Vec<String>,
    pub max_clients: u32,
    /// Bonding's updelay and downdelay.
    pub delays: Delays,
    /// The slave preferred as active (bonding's `primary`).
    pub primary: Option<String>,
    /// When the primary takes the active role back (bonding's `primary_reselect`).
    pub primary_reselect: Reselect,
    /// Seconds between learning frames (bonding's `lp_interval`).
    pub lp_interval_s: u64,
    /// Seconds between transmit rebalancing by measured load; 0 turns it off.
    pub rebalance_interval_s: u64,
    /// Seconds a VM MAC is kept without a frame from it.
    pub vm_ageing_s: u64,
    /// Client counters count 1 frame in this many, weighted by it.
    pub client_sampling: u32,
    /// The config file the options came from, re-read on SIGHUP.
    pub config: Option<crate::config::Source>,
    /// On SIGINT/SIGTERM after ready, leave the data path forwarding (programs,
    /// maps, master, the undo record) for the next agent to adopt, as a kernel
    /// bond outlives a daemon; `alb down` removes it.
    pub keep_datapath: bool,
    /// Test switch: leave the slaves' receive filters alone (a test shows
    /// what breaks on NICs that filter).
    pub no_filter_sync: bool,
    /// Where to serve Prometheus metrics (`--metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Whether a non-loopback `metrics_listen` is meant (`--metrics-allow-remote`).
    pub metrics_allow_remote: bool,
}
