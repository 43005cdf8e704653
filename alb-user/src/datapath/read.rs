//! Read access to the maps from outside the agent: `alb status` opens the
//! pins of a running master; tests and benchmarks take them from an object.

use std::path::Path;

use alb_common::{
    maps::{
        ClientEntry, ClientKey, ClientKey6, ClientSlot, Config, MAX_SLAVES, NO_SLAVE,
        SLAVE_PRESENT, ServerKey, Slave, SlaveStats, VmEntry, VmKey, names,
    },
    reason::Reason,
};
use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, PerCpuArray},
};

use super::{CLIENT_CHUNK, batch};

/// The maps `alb status` and the tests read.
pub struct Maps {
    pub config: Array<MapData, Config>,
    pub slaves: Array<MapData, Slave>,
    pub clients: HashMap<MapData, ClientKey, ClientEntry>,
    pub clients6: HashMap<MapData, ClientKey6, ClientEntry>,
    pub slots: Array<MapData, ClientSlot>,
    pub slave_stats: PerCpuArray<MapData, SlaveStats>,
    pub counters: PerCpuArray<MapData, u64>,
    pub vms: Map,
    /// The server addresses the transmit path dealt clients of (a set).
    pub servers: HashMap<MapData, ServerKey, u32>,
    /// The client tables' own handles, for batched reads.
    clients_data: MapData,
    clients6_data: MapData,
}

impl Maps {
    /// Opens the pinned maps of a running master.
    pub fn from_pins(dir: &Path) -> Result<Self> {
        let open = |name: &str| -> Result<Map> {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok(Map::from_map_data(data)?)
        };
        let data = |name: &str| {
            let path = dir.join(name);
            MapData::from_pin(&path).with_context(|| format!("cannot open {}", path.display()))
        };
        Ok(Self {
            config: Array::try_from(open(names::CONFIG)?)?,
            slaves: Array::try_from(open(names::SLAVES)?)?,
            clients: HashMap::try_from(open(names::CLIENTS)?)?,
            clients6: HashMap::try_from(open(names::CLIENTS6)?)?,
            slots: Array::try_from(open(names::SLOTS)?)?,
            slave_stats: PerCpuArray::try_from(open(names::SLAVE_STATS)?)?,
            counters: PerCpuArray::try_from(open(names::COUNTERS)?)?,
            vms: open(names::VMS)?,
            servers: HashMap::try_from(open(names::SERVERS)?)?,
            clients_data: data(names::CLIENTS)?,
            clients6_data: data(names::CLIENTS6)?,
        })
    }

    /// Takes the maps out of a loaded object.
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let mut take = |name: &str| {
            ebpf.take_map(name).ok_or_else(|| anyhow!("map {name} missing from the BPF object"))
        };
        let clients = take(names::CLIENTS)?;
        let clients_data = MapData::from_id(super::data(&clients)?.info()?.id())?;
        let clients = HashMap::try_from(clients)?;
        let clients6 = take(names::CLIENTS6)?;
        let clients6_data = MapData::from_id(super::data(&clients6)?.info()?.id())?;
        let clients6 = HashMap::try_from(clients6)?;
        Ok(Self {
            config: Array::try_from(take(names::CONFIG)?)?,
            slaves: Array::try_from(take(names::SLAVES)?)?,
            clients,
            clients6,
            slots: Array::try_from(take(names::SLOTS)?)?,
            slave_stats: PerCpuArray::try_from(take(names::SLAVE_STATS)?)?,
            counters: PerCpuArray::try_from(take(names::COUNTERS)?)?,
            vms: take(names::VMS)?,
            servers: HashMap::try_from(take(names::SERVERS)?)?,
            clients_data,
            clients6_data,
        })
    }

    pub fn config(&self) -> Result<Config> {
        Ok(self.config.get(&0, 0)?)
    }

    /// Present slaves with their index.
    pub fn slaves(&self) -> Result<Vec<(u32, Slave)>> {
        let mut slaves = Vec::new();
        for index in 0..u32::try_from(MAX_SLAVES)? {
            let slave = self.slaves.get(&index, 0)?;
            if slave.flags & SLAVE_PRESENT != 0 {
                slaves.push((index, slave));
            }
        }
        Ok(slaves)
    }

    /// The client table in key order (read in batches).
    pub fn clients(&self) -> Result<Vec<(ClientKey, ClientEntry)>> {
        let mut clients = Vec::new();
        batch::for_each(&self.clients_data, CLIENT_CHUNK, |key, entry| {
            clients.push((*key, *entry))
        })
        .context("cannot read the client table")?;
        clients.sort_by_key(|(key, _)| *key);
        Ok(clients)
    }

    /// The IPv6 client table in key order (read in batches).
    pub fn clients6(&self) -> Result<Vec<(ClientKey6, ClientEntry)>> {
        let mut clients = Vec::new();
        batch::for_each(&self.clients6_data, CLIENT_CHUNK, |key, entry| {
            clients.push((*key, *entry))
        })
        .context("cannot read the IPv6 client table")?;
        clients.sort_by_key(|(key, _)| *key);
        Ok(clients)
    }

    /// The slave a client's slot points at ([`NO_SLAVE`] if none).
    pub fn slave_of(&self, entry: &ClientEntry) -> u32 {
        self.slots.get(&entry.slot, 0).map_or(NO_SLAVE, |slot| slot.slave)
    }

    /// The VM table in MAC order.
    pub fn vms(&self) -> Result<Vec<(VmKey, VmEntry)>> {
        vms(&self.vms)
    }

    /// Per-slave counters summed over CPUs.
    pub fn slave_stats(&self, index: u32) -> Result<SlaveStats> {
        let mut sum = SlaveStats::default();
        for stats in self.slave_stats.get(&index, 0)?.iter() {
            sum.rx.packets += stats.rx.packets;
            sum.rx.bytes += stats.rx.bytes;
            sum.tx.packets += stats.tx.packets;
            sum.tx.bytes += stats.tx.bytes;
        }
        Ok(sum)
    }

    /// Reason counters summed over CPUs.
    pub fn counters(&self) -> Result<Vec<(Reason, u64)>> {
        Reason::ALL
            .iter()
            .map(|&reason| {
                let values = self.counters.get(&(reason as u32), 0)?;
                Ok((reason, values.iter().sum()))
            })
            .collect()
    }
}

/// Every entry of the VM table, in MAC order. Entries deleted while it is
/// read (aged out, evicted) are skipped.
pub(super) fn vms(map: &Map) -> Result<Vec<(VmKey, VmEntry)>> {
    let table: HashMap<&MapData, VmKey, VmEntry> = HashMap::try_from(map)?;
    let mut vms: Vec<(VmKey, VmEntry)> = table.iter().filter_map(Result::ok).collect();
    vms.sort_by_key(|(key, _)| *key);
    Ok(vms)
}
