//! Prometheus metrics (`--metrics-listen ADDR:PORT`): the agent's state as
//! counters and gauges at `GET /metrics`.
//!
//! A scrape asks the event loop for a [`Snapshot`] (plain values taken
//! from the agent's own model, and from the data path's per-CPU counters
//! for what only the maps hold), then encodes it with `prometheus-client`
//! in the scrape's own task ([`encode`]), so the loop only copies numbers.
//! The HTTP side ([`server`]) runs on the agent's tokio runtime beside the
//! event loop.

pub mod encode;
pub mod server;
mod transitions;

use std::net::SocketAddr;

use anyhow::{Result, bail};

pub use self::{
    server::{Scrape, Server, bind},
    transitions::Transitions,
};

/// Refuses a listening address other hosts could reach unless the user
/// asked for that too: metrics name devices, addresses and traffic.
pub fn check_listen(listen: Option<SocketAddr>, allow_remote: bool) -> Result<()> {
    match listen {
        Some(addr) if !addr.ip().to_canonical().is_loopback() && !allow_remote => bail!(
            "metrics_listen {addr} is not a loopback address: other hosts could read the \
             metrics; add metrics_allow_remote (--metrics-allow-remote) to serve them there"
        ),
        None if allow_remote => {
            bail!(
                "metrics_allow_remote (--metrics-allow-remote) needs metrics_listen (--metrics-listen)"
            )
        }
        _ => Ok(()),
    }
}

/// One slave as a scrape sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlaveSample {
    pub name: String,
    /// Carrier as the agent last heard it (whatever the delays).
    pub link: bool,
    /// Bonding's MII Status is `up` (not `going down`, `down` or `going
    /// back`): what node_exporter's `node_bonding_active` counts.
    pub mii_up: bool,
    /// Whether the data path may use it.
    pub usable: bool,
    pub active: bool,
    /// Clients whose slot points at it, in the agent's model.
    pub clients: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Everything one scrape reports.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub master: String,
    pub slaves: Vec<SlaveSample>,
    /// Data-path reason counters by name, summed over CPUs.
    pub reasons: Vec<(&'static str, u64)>,
    pub transitions: Transitions,
    /// Client updates the teller sent (each repeat counts again).
    pub updates_sent: u64,
    /// Update frames the socket refused.
    pub updates_failed: u64,
    /// Map writes the kernel refused (retries included).
    pub map_write_failures: u64,
    /// Whether a refused map write has not taken yet.
    pub map_writes_pending: bool,
    /// Clients in the agent's model of the table.
    pub clients: u64,
    /// The table's size (`--max-clients`).
    pub capacity: u64,
    /// The agent's resident memory, if /proc could tell.
    pub resident_bytes: Option<u64>,
}

/// This process's resident memory, from /proc/self/statm (in pages).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_listens_without_allow_remote() {
        let addr = |text: &str| Some(text.parse::<SocketAddr>().unwrap());
        for local in ["127.0.0.1:9000", "127.1.2.3:9000", "[::1]:9000", "[::ffff:127.0.0.1]:9000"] {
            assert!(check_listen(addr(local), false).is_ok(), "{local}");
        }
        for remote in ["0.0.0.0:9000", "[::]:9000", "198.18.0.1:9000", "[2001:2::1]:9000"] {
            let error = check_listen(addr(remote), false).expect_err(remote).to_string();
            assert!(error.contains("--metrics-allow-remote"), "{remote}: {error}");
            assert!(check_listen(addr(remote), true).is_ok(), "{remote} when allowed");
        }
        assert!(check_listen(None, false).is_ok());
        assert!(check_listen(None, true).is_err(), "allow-remote alone is a mistake");
    }

    #[test]
    fn resident_memory_is_read() {
        let bytes = resident_bytes().expect("/proc/self/statm");
        assert!(bytes > 100_000, "{bytes} bytes resident");
    }

    #[test]
    fn a_snapshot_encodes_its_own_transitions() {
        let mut transitions = Transitions::default();
        transitions.record(true, 0.002);
        transitions.record(true, 0.004);
        transitions.record(false, 0.001);
        let mut snapshot = Snapshot {
            master: "alb0".to_owned(),
            slaves: Vec::new(),
            reasons: Vec::new(),
            transitions: transitions.clone(),
            updates_sent: 0,
            updates_failed: 0,
            map_write_failures: 0,
            map_writes_pending: false,
            clients: 0,
            capacity: 1,
            resident_bytes: None,
        };
        // What the agent records after the snapshot is not in it.
        transitions.record(true, 0.5);
        let text = encode::encode(&snapshot, encode::Format::Prometheus);
        for line in [
            r#"alb_failovers_total{master="alb0"} 2"#,
            r#"alb_failover_duration_seconds_count{master="alb0"} 2"#,
            r#"alb_failover_duration_seconds_sum{master="alb0"} 0.006"#,
            r#"alb_failover_duration_seconds_bucket{master="alb0",le="0.002"} 1"#,
            r#"alb_failover_duration_seconds_bucket{master="alb0",le="0.004"} 2"#,
            r#"alb_failover_duration_seconds_bucket{master="alb0",le="+Inf"} 2"#,
            r#"alb_failback_duration_seconds_count{master="alb0"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("resident"), "no memory series when /proc cannot tell");
        snapshot.transitions = transitions;
        let text = encode::encode(&snapshot, encode::Format::Prometheus);
        assert!(text.contains(r#"alb_failovers_total{master="alb0"} 3"#), "{text}");
    }
}
