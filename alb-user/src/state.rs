//! The slave state the agent decides and publishes to the data path: plain
//! values, shared by the slave set, the agent and the data path module.

use alb_common::maps::Config;

/// One slave as the agent publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlaveState {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub up: bool,
}

/// Everything the data path reads that the agent decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub master_ifindex: u32,
    pub master_mac: [u8; 6],
    /// In enslave order; the index is the slave index in the maps.
    pub slaves: Vec<SlaveState>,
    pub active: Option<usize>,
    /// Client counters count 1 frame in this many (`client_sampling`).
    pub client_sampling: u32,
}

impl State {
    /// The slaves new clients and buckets are dealt to: the usable ones.
    pub fn usable(&self) -> Vec<u8> {
        self.slaves
            .iter()
            .enumerate()
            .filter(|(_, slave)| slave.up)
            .filter_map(|(index, _)| u8::try_from(index).ok())
            .collect()
    }

    pub fn config(&self) -> Config {
        let usable = self.usable();
        let mut config = Config {
            master_ifindex: self.master_ifindex,
            active_slave: self.active.and_then(|a| u32::try_from(a).ok()).unwrap_or(u32::MAX),
            usable_count: u32::try_from(usable.len()).unwrap_or(0),
            master_mac: self.master_mac,
            client_sampling: self.client_sampling,
            ..Config::default()
        };
        config.usable[..usable.len()].copy_from_slice(&usable);
        config
    }

    /// The ifindex and MAC of slave `index`, if it can carry traffic.
    pub fn usable_slave(&self, index: u32) -> Option<&SlaveState> {
        let slave = self.slaves.get(usize::try_from(index).ok()?)?;
        slave.up.then_some(slave)
    }
}
