//! The data path's per-CPU counters, summed, for the metrics.

use alb_common::{
    maps::{MAX_SLAVES, SlaveStats, names},
    reason::Reason,
};
use anyhow::Result;
use aya::maps::{MapData, PerCpuArray};

use super::Datapath;

impl Datapath {
    /// Each slave slot's traffic since the maps were created, summed over
    /// CPUs, by slave index.
    pub fn slave_traffic(&self) -> Result<Vec<SlaveStats>> {
        let stats: PerCpuArray<&MapData, SlaveStats> =
            PerCpuArray::try_from(self.map(names::SLAVE_STATS)?)?;
        (0..u32::try_from(MAX_SLAVES)?)
            .map(|index| {
                let mut sum = SlaveStats::default();
                for cpu in stats.get(&index, 0)?.iter() {
                    sum.rx.packets += cpu.rx.packets;
                    sum.rx.bytes += cpu.rx.bytes;
                    sum.tx.packets += cpu.tx.packets;
                    sum.tx.bytes += cpu.tx.bytes;
                }
                Ok(sum)
            })
            .collect()
    }

    /// Every reason counter, summed over CPUs.
    pub fn reason_counts(&self) -> Result<Vec<(Reason, u64)>> {
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(names::COUNTERS)?)?;
        Reason::ALL
            .iter()
            .map(|&reason| Ok((reason, counters.get(&(reason as u32), 0)?.iter().sum())))
            .collect()
    }
}
