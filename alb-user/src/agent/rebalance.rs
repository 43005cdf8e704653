//! Transmit rebalancing by measured load: every `--rebalance-interval`,
//! buckets move from the busiest slave to the idlest only where that narrows
//! the gap by more than 10% of the traffic (policy:
//! `alb_common::assign::rebalance_by_load`). Clients never move here: their
//! traffic follows their slot, both ways.

use alb_common::assign::rebalance_by_load;
use anyhow::Result;
use log::info;

use super::Agent;

/// Byte counters read at one rebalancing round, to subtract at the next.
pub(super) struct Loads {
    buckets: Vec<u64>,
    slaves: Vec<u64>,
}

impl Agent {
    pub(super) fn read_loads(&self) -> Result<Loads> {
        Ok(Loads {
            buckets: self.datapath.bucket_bytes()?,
            slaves: self.datapath.slave_tx_bytes()?,
        })
    }

    /// Moves buckets by the load they carried since `last`; returns the
    /// counters to compare against next.
    pub(super) fn rebalance(&mut self, last: &Loads) -> Result<Loads> {
        let now = self.read_loads()?;
        let load: Vec<u64> =
            now.buckets.iter().zip(&last.buckets).map(|(n, l)| n.saturating_sub(*l)).collect();
        // What each slave sent outside the buckets (to clients, and the
        // active slave's broadcasts): its total minus its buckets.
        let mut in_buckets = vec![0u64; now.slaves.len()];
        for (&slave, &bytes) in self.model.buckets.iter().zip(&load) {
            if let Some(sum) = usize::try_from(slave).ok().and_then(|s| in_buckets.get_mut(s)) {
                *sum += bytes;
            }
        }
        let baseline: Vec<u64> = now
            .slaves
            .iter()
            .zip(&last.slaves)
            .zip(&in_buckets)
            .map(|((n, l), b)| n.saturating_sub(*l).saturating_sub(*b))
            .collect();
        let usable = self.set.state.usable();
        let moves = rebalance_by_load(
            &self.model.buckets,
            &load,
            &baseline,
            &usable,
            self.model.slots.capacity(),
            0.1,
        );
        if !moves.is_empty() {
            let written = self.datapath.set_buckets(&moves);
            self.wrote(&format!("rebalancing: {} transmit buckets", moves.len()), written);
            for &(bucket, slave) in &moves {
                self.model.buckets[bucket] = slave;
            }
            info!("rebalanced transmit load: {} buckets moved", moves.len());
        }
        Ok(now)
    }
}
