//! The data path as the agent sees it: [`Datapath`] owns every aya handle
//! (the loaded object, its maps, its links and the event ring) and offers
//! typed operations on them. No other module of the agent imports aya.

mod access;
mod attach;
mod batch;
mod counters;
mod events;
mod fault;
pub mod layout;
mod pins;
mod probe;
mod qdisc;
mod query;
mod read;

use std::path::{Path, PathBuf};

use alb_common::{
    assign::initial_bucket_slave,
    maps::{
        CLIENT_SLOTS, ClientEntry, ClientKey, ClientKey6, ClientSlot, Config, MAX_SLAVES,
        SLAVE_PRESENT, SLAVE_UP, Slave, SlaveStats, TAIL_RX6, TAIL_TX6, TX_BUCKETS, Traffic,
        TxBucket, VmEntry, VmKey, names, programs,
    },
    reason::Reason,
};
use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::SchedClassifier,
};

pub use self::{
    access::MapAccess,
    attach::{alb_users, recorded_hook},
    batch::Cursor as ClientCursor,
    events::{DRAIN_PERIOD, Event, Events},
    layout::{BPFFS, pin_dir},
    pins::{check_pins, has_pinned_state, remove_pins},
    probe::{Features, HOOK_VAR, Hook, check as check_kernel, probe as probe_kernel},
    read::Maps,
};
use crate::state::State;

/// The BPF object, built by build.rs from `alb-ebpf`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/alb"));

/// Entries per batched system call when reading the client table.
const CLIENT_CHUNK: usize = 8192;

/// The loaded programs and maps of one master, and the agent's handles on
/// their links.
pub struct Datapath {
    ebpf: Ebpf,
    links: attach::Links,
    /// Where links are pinned (`<pins>/links`), when the maps are pinned.
    link_dir: Option<PathBuf>,
    /// The test switch that makes map writes fail ([`fault`]).
    fault: fault::WriteFault,
}

impl Datapath {
    /// Loads the object. With `pins`, every map is pinned in that directory
    /// (maps already pinned there are reused, which is how an agent adopts
    /// the data path of one that died) and links will be pinned under it.
    pub fn load(pins: Option<&Path>, max_clients: u32) -> Result<Self> {
        if let Some(dir) = pins {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut loader = EbpfLoader::new();
        // Each family's table holds up to `max_clients`.
        loader.map_max_entries(names::CLIENTS, max_clients);
        loader.map_max_entries(names::CLIENTS6, max_clients);
        loader.map_max_entries(names::HOSTS6, max_clients);
        let paths: Vec<(&str, PathBuf)> = match pins {
            Some(dir) => names::ALL.iter().map(|&name| (name, dir.join(name))).collect(),
            None => Vec::new(),
        };
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT).context("cannot load the BPF object")?;
        for name in programs::ALL {
            program(&mut ebpf, name)?
                .load()
                .with_context(|| format!("cannot load program {name}"))?;
        }
        // The IPv6 programs, which alb_tx and alb_rx tail-call: set before
        // anything is attached (an adopted table is overwritten, entry by
        // entry, with this agent's programs).
        for (index, name) in [(TAIL_TX6, programs::TX6), (TAIL_RX6, programs::RX6)] {
            let fd = program(&mut ebpf, name)?.fd()?.try_clone()?;
            let map = ebpf
                .map_mut(names::PROGS)
                .ok_or_else(|| anyhow!("map {} missing from the BPF object", names::PROGS))?;
            ProgramArray::try_from(map)?
                .set(index, &fd, 0)
                .with_context(|| format!("cannot put {name} in {}", names::PROGS))?;
        }
        let link_dir = pins.map(layout::link_dir);
        Ok(Self {
            ebpf,
            links: attach::Links::default(),
            link_dir,
            fault: fault::WriteFault::from_env(),
        })
    }

    /// Attaches the transmit program to the master and the receive program
    /// to each slave (see [`attach`]).
    pub fn attach(&mut self, master: &str, slaves: &[String]) -> Result<()> {
        if let Some(dir) = &self.link_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        self.links = attach::attach(&mut self.ebpf, master, slaves, self.link_dir.as_deref())?;
        Ok(())
    }

    /// Attaches the receive program to one more slave.
    pub fn attach_slave(&mut self, slave: &str) -> Result<()> {
        attach::attach_slave(&mut self.ebpf, slave, self.link_dir.as_deref(), &mut self.links)
    }

    /// Detaches the receive program from a slave that leaves.
    pub fn detach_slave(&mut self, slave: &str) -> Result<()> {
        match &self.link_dir {
            Some(dir) => attach::detach_slave(slave, dir, &mut self.links),
            None => Ok(()),
        }
    }

    /// A second handle on the config map, for the privilege probe.
    pub fn map_access(&self) -> Result<MapAccess> {
        MapAccess::new(self.map(names::CONFIG)?)
    }

    /// A loaded classifier by name (tests run it with BPF_PROG_TEST_RUN).
    pub fn program(&mut self, name: &str) -> Result<&mut SchedClassifier> {
        program(&mut self.ebpf, name)
    }

    /// Publishes a fresh data path: slaves, client slots, buckets (dealt
    /// evenly) and last the config, which makes the slaves reachable.
    pub fn publish(&mut self, state: &State, slots: &[u32]) -> Result<()> {
        self.write_slaves(state)?;
        let all: Vec<(usize, u32)> = slots.iter().copied().enumerate().collect();
        self.set_slots(&all)?;
        let usable = state.usable();
        let initial: Vec<(usize, u32)> = (0..TX_BUCKETS)
            .map(|bucket| {
                let slave = initial_bucket_slave(bucket, &usable).map_or(u32::MAX, u32::from);
                (bucket as usize, slave)
            })
            .collect();
        self.set_buckets(&initial)?;
        self.write_config(state)
    }

    /// Writes the agent's whole model again, every entry (the retry after a
    /// failed map write): slaves, slots, buckets, and last the config.
    pub fn republish(&mut self, state: &State, slots: &[u32], buckets: &[u32]) -> Result<()> {
        let all = |table: &[u32]| table.iter().copied().enumerate().collect::<Vec<_>>();
        self.write_slaves(state)?;
        self.set_slots(&all(slots))?;
        self.set_buckets(&all(buckets))?;
        self.write_config(state)
    }

    /// Publishes a change of the slave set: slaves, then the config.
    pub fn publish_slaves(&mut self, state: &State) -> Result<()> {
        self.write_slaves(state)?;
        self.write_config(state)
    }

    /// Writes the slave table (`alb_rx` finds its slave by ifindex in it).
    fn write_slaves(&mut self, state: &State) -> Result<()> {
        if state.slaves.len() > MAX_SLAVES {
            bail!("at most {MAX_SLAVES} slaves");
        }
        let write_flags = self.fault.flags();
        {
            let mut slaves: Array<&mut MapData, Slave> =
                Array::try_from(self.map_mut(names::SLAVES)?)?;
            for (index, slave) in state.slaves.iter().enumerate() {
                // An empty slot (a removed slave) has ifindex 0.
                let present = if slave.ifindex == 0 { 0 } else { SLAVE_PRESENT };
                let flags = present | if slave.up { SLAVE_UP } else { 0 };
                let entry = Slave { ifindex: slave.ifindex, flags, mac: slave.mac, _pad: [0; 2] };
                slaves
                    .set(u32::try_from(index)?, entry, write_flags)
                    .context("cannot write the slave table")?;
            }
        }
        Ok(())
    }

    /// Writes the master-wide config (active slave, master MAC, usable slaves).
    /// The clients' generation (`Config::clients_generation`) is kept as
    /// the map holds it: only [`Self::forget_clients`] changes it.
    pub fn write_config(&mut self, state: &State) -> Result<()> {
        let flags = self.fault.flags();
        let mut config: Array<&mut MapData, Config> =
            Array::try_from(self.map_mut(names::CONFIG)?)?;
        let generation = config.get(&0, 0).map_or(0, |c| c.clients_generation);
        let next = Config { clients_generation: generation, ..state.config() };
        config.set(0, next, flags).context("cannot write the config")?;
        Ok(())
    }

    /// Bumps `Config::clients_generation`, which drops every entry of
    /// `alb_tx`'s client cache (`alb_common::client_cache`).
    fn bump_clients_generation(&mut self) -> Result<()> {
        let flags = self.fault.flags();
        let mut config: Array<&mut MapData, Config> =
            Array::try_from(self.map_mut(names::CONFIG)?)?;
        let mut current = config.get(&0, 0).context("cannot read the config")?;
        current.clients_generation = current.clients_generation.wrapping_add(1);
        config.set(0, current, flags).context("cannot write the config")
    }

    /// The device of each slave slot as the maps hold it (0: empty), read
    /// before this agent publishes its own (an adopted table's indices).
    pub fn slave_ifindexes(&self) -> Result<Vec<u32>> {
        let slaves: Array<&MapData, Slave> = Array::try_from(self.map(names::SLAVES)?)?;
        (0..u32::try_from(MAX_SLAVES)?)
            .map(|i| {
                let slave = slaves.get(&i, 0)?;
                Ok(if slave.flags & SLAVE_PRESENT == 0 { 0 } else { slave.ifindex })
            })
            .collect()
    }

    /// The slave of every transmit bucket, by bucket.
    pub fn buckets(&self) -> Result<Vec<u32>> {
        self.read_indirection::<TxBucket>(names::TX_BUCKETS, TX_BUCKETS, |b| b.slave)
    }

    /// Points buckets at slaves: the `(bucket, slave)` moves the policy in
    /// `alb_common::assign` returns, in one system call.
    pub fn set_buckets(&mut self, moves: &[(usize, u32)]) -> Result<()> {
        self.write_indirection(names::TX_BUCKETS, moves, |slave| TxBucket { slave, _pad: 0 })
            .context("cannot write the transmit buckets")
    }

    /// The slave of every client slot, by slot.
    pub fn slots(&self) -> Result<Vec<u32>> {
        self.read_indirection::<ClientSlot>(names::SLOTS, CLIENT_SLOTS, |s| s.slave)
    }

    /// Points client slots at slaves, `(slot, slave)`, in one system call:
    /// every client of a moved slot follows at once.
    pub fn set_slots(&mut self, moves: &[(usize, u32)]) -> Result<()> {
        self.write_indirection(names::SLOTS, moves, |slave| ClientSlot { slave, _pad: 0 })
            .context("cannot write the client slots")
    }

    /// An indirection array (buckets or slots to slaves), by index.
    fn read_indirection<V: aya::Pod>(
        &self,
        name: &str,
        len: u32,
        slave: impl Fn(&V) -> u32,
    ) -> Result<Vec<u32>> {
        let table: Array<&MapData, V> = Array::try_from(self.map(name)?)?;
        (0..len).map(|i| Ok(slave(&table.get(&i, 0)?))).collect()
    }

    /// Writes `(index, slave)` moves into an indirection array at once.
    fn write_indirection<V: aya::Pod>(
        &self,
        name: &str,
        moves: &[(usize, u32)],
        entry: impl Fn(u32) -> V,
    ) -> Result<()> {
        let keys = moves.iter().map(|&(i, _)| u32::try_from(i)).collect::<Result<Vec<_>, _>>()?;
        let values: Vec<V> = moves.iter().map(|&(_, slave)| entry(slave)).collect();
        Ok(batch::update(data(self.map(name)?)?, &keys, &values, self.fault.flags())?)
    }

    /// Bytes each transmit bucket has carried since load, summed over CPUs.
    pub fn bucket_bytes(&self) -> Result<Vec<u64>> {
        let loads: PerCpuArray<&MapData, Traffic> =
            PerCpuArray::try_from(self.map(names::BUCKET_LOAD)?)?;
        (0..TX_BUCKETS).map(|b| Ok(loads.get(&b, 0)?.iter().map(|t| t.bytes).sum())).collect()
    }

    /// Bytes each slave slot has sent since load, summed over CPUs.
    pub fn slave_tx_bytes(&self) -> Result<Vec<u64>> {
        let stats: PerCpuArray<&MapData, SlaveStats> =
            PerCpuArray::try_from(self.map(names::SLAVE_STATS)?)?;
        (0..u32::try_from(MAX_SLAVES)?)
            .map(|i| Ok(stats.get(&i, 0)?.iter().map(|s| s.tx.bytes).sum()))
            .collect()
    }

    /// Reads the next batch of the client table from where `cursor` stands
    /// (a walk spread over the event loop's turns); returns how many.
    pub fn next_clients(
        &self,
        cursor: &mut ClientCursor,
        each: impl FnMut(&ClientKey, &ClientEntry),
    ) -> Result<usize> {
        batch::next_batch(data(self.map(names::CLIENTS)?)?, cursor, CLIENT_CHUNK, each)
            .context("cannot read the client table")
    }

    /// [`Self::next_clients`] for the IPv6 table.
    pub fn next_clients6(
        &self,
        cursor: &mut ClientCursor,
        each: impl FnMut(&ClientKey6, &ClientEntry),
    ) -> Result<usize> {
        batch::next_batch(data(self.map(names::CLIENTS6)?)?, cursor, CLIENT_CHUNK, each)
            .context("cannot read the IPv6 client table")
    }

    /// Deletes clients from the table, in one system call; returns how
    /// many were there.
    /// The transmit path's client cache is invalidated after the deletion
    /// (also after a partial one).
    pub fn forget_clients(&mut self, keys: &[ClientKey]) -> Result<usize> {
        let deleted = batch::delete(data(self.map(names::CLIENTS)?)?, keys, self.fault.flags())
            .context("cannot delete from the client table");
        let bumped = self.bump_clients_generation();
        // The deletion's error first: it is the one the caller reports.
        let count = deleted?;
        bumped?;
        Ok(count)
    }

    /// The VM table: every learned VM MAC with its entry (at most
    /// `MAX_VMS`, read key by key).
    pub fn vms(&self) -> Result<Vec<(VmKey, VmEntry)>> {
        read::vms(self.map(names::VMS)?)
    }

    /// Forgets VM MACs (aged out), in one system call; returns how many
    /// were there.
    pub fn forget_vms(&mut self, keys: &[VmKey]) -> Result<usize> {
        batch::delete(data(self.map(names::VMS)?)?, keys, self.fault.flags())
            .context("cannot delete from the VM table")
    }

    /// How many events the data path could not put in the ring.
    pub fn events_lost(&self) -> Result<u64> {
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(names::COUNTERS)?)?;
        Ok(counters.get(&(Reason::EventLost as u32), 0)?.iter().sum())
    }

    /// The event ring, taken out of the object for the event loop (once).
    pub fn events(&mut self) -> Result<Events> {
        Events::new(self.take_ring()?)
    }

    /// The raw event ring (tests read it without tokio).
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let ring = self
            .ebpf
            .take_map(names::EVENTS)
            .ok_or_else(|| anyhow!("map {} missing from the BPF object", names::EVENTS))?;
        Ok(RingBuf::try_from(ring)?)
    }

    /// Typed handles on the maps, taken out of the object (tests and
    /// benchmarks, which then drive the programs themselves).
    pub fn take_maps(&mut self) -> Result<Maps> {
        Maps::take(&mut self.ebpf)
    }

    fn map(&self, name: &str) -> Result<&Map> {
        self.ebpf.map(name).ok_or_else(|| anyhow!("map {name} missing from the BPF object"))
    }

    fn map_mut(&mut self, name: &str) -> Result<&mut Map> {
        self.ebpf.map_mut(name).ok_or_else(|| anyhow!("map {name} missing from the BPF object"))
    }
}

/// A loaded classifier by name.
fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the BPF object"))?
        .try_into()
        .with_context(|| format!("{name} is not a TC classifier"))
}

/// The map behind one of alb's maps (hashes and arrays).
fn data(map: &Map) -> Result<&MapData> {
    match map {
        Map::Array(data) | Map::HashMap(data) | Map::LruHashMap(data) | Map::PerCpuArray(data) => {
            Ok(data)
        }
        _ => bail!("unexpected map type"),
    }
}
