//! What a metrics scrape reads: the agent's own model (slaves, clients,
//! the teller's counts, transitions), and from the data path only the
//! counters that live in its maps.

use std::sync::atomic::Ordering::Relaxed;

use alb_common::maps::SlaveStats;
use anyhow::Result;

use super::Agent;
use crate::metrics::{self, SlaveSample, Snapshot};

impl Agent {
    /// A scrape's values, taken now.
    pub(super) fn snapshot(&self) -> Result<Snapshot> {
        let traffic = self.datapath.slave_traffic()?;
        let mut clients = vec![0u64; self.set.state.slaves.len()];
        for (slot, count) in self.weights().into_iter().enumerate() {
            let slave = self.model.slots.slave_of(slot) as usize;
            if let Some(clients) = clients.get_mut(slave) {
                *clients += u64::from(count);
            }
        }
        let state = &self.set.state;
        let slaves = state
            .slaves
            .iter()
            .enumerate()
            .filter(|(_, slave)| slave.ifindex != 0)
            .map(|(index, slave)| {
                let stats = traffic.get(index).copied().unwrap_or_else(SlaveStats::default);
                SlaveSample {
                    name: self.set.names[index].clone(),
                    link: self.set.has_carrier(index),
                    mii_up: self.set.link_state(index) == "up",
                    usable: slave.up,
                    active: state.active == Some(index),
                    clients: clients[index],
                    rx_packets: stats.rx.packets,
                    rx_bytes: stats.rx.bytes,
                    tx_packets: stats.tx.packets,
                    tx_bytes: stats.tx.bytes,
                }
            })
            .collect();
        let reasons = self.datapath.reason_counts()?;
        let counts = &self.announce.teller.counts;
        Ok(Snapshot {
            master: self.options.master.clone(),
            slaves,
            reasons: reasons.into_iter().map(|(reason, count)| (reason.name(), count)).collect(),
            transitions: self.report.transitions.clone(),
            updates_sent: counts.told.load(Relaxed),
            updates_failed: counts.failed.load(Relaxed),
            map_write_failures: self.map_writes.failed,
            map_writes_pending: self.map_writes.pending.is_some(),
            clients: (self.model.clients.len() + self.model.clients6.len()) as u64,
            capacity: u64::from(self.options.max_clients),
            resident_bytes: metrics::resident_bytes(),
        })
    }
}
