//! Loading, pinning and attaching the BPF programs, and writing the maps:
//! the only module that talks to aya's program and map types.

use std::{
    fs,
    path::{Path, PathBuf},
};

use alb_common::{
    assign::initial_bucket_slave,
    maps::{
        ClientEntry, ClientKey, Config, EVENT_RING_BYTES, MAX_SLAVES, SLAVE_PRESENT, SLAVE_UP,
        Slave, SlaveStats, TX_BUCKETS, Traffic, TxBucket, names, programs,
    },
    reason::Reason,
};
use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        SchedClassifier, TcAttachType,
        links::{FdLink, LinkError, PinnedLink},
        tc::SchedClassifierLink,
    },
    sys::SyscallError,
};

/// The BPF object, built by build.rs from `alb-ebpf`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/alb"));

/// `BPF_EXIST` from linux/bpf.h: update only an element that exists.
const BPF_EXIST: u64 = 2;

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";

/// `/sys/fs/bpf/alb/<master>`: the pins of one master's maps.
pub fn pin_dir(master: &str) -> PathBuf {
    Path::new(BPFFS).join("alb").join(master)
}

/// Loads the object. With `pins`, every map is pinned in that directory
/// (which must not hold pins of an older run: the caller clears it).
pub fn load(pins: Option<&Path>, max_clients: u32) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    loader.map_max_entries(names::CLIENTS, max_clients);
    let paths: Vec<(&str, PathBuf)> = match pins {
        Some(dir) => names::ALL.iter().map(|&name| (name, dir.join(name))).collect(),
        None => Vec::new(),
    };
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader.load(OBJECT).context("cannot load the BPF object")?;
    for name in [programs::TX, programs::RX] {
        program(&mut ebpf, name)?.load().with_context(|| format!("cannot load program {name}"))?;
    }
    Ok(ebpf)
}

/// A loaded classifier by name.
pub fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the BPF object"))?
        .try_into()
        .with_context(|| format!("{name} is not a TC classifier"))
}

/// The agent's own handles on its links. While it holds them, removing
/// the pins (by mistake) does not detach the programs; dropping them after
/// the pins are gone does.
#[derive(Default)]
pub struct Links {
    held: std::collections::HashMap<String, FdLink>,
}

/// Attaches the transmit program to the master's egress and the receive
/// program to each slave's ingress (TCX). With `dir`, each link is pinned
/// there, so the programs stay attached when the agent dies, and a link an
/// earlier agent pinned is taken over by atomically replacing its program:
/// traffic never meets a moment without a program.
pub fn attach(
    ebpf: &mut Ebpf,
    master: &str,
    slaves: &[String],
    dir: Option<&Path>,
) -> Result<Links> {
    let mut links = Links::default();
    for slave in slaves {
        attach_slave(ebpf, slave, dir, &mut links)?;
    }
    let tx = attach_one(ebpf, programs::TX, master, TcAttachType::Egress, dir, "tx")?;
    links.held.extend(tx.map(|link| ("tx".to_owned(), link)));
    if let Some(dir) = dir {
        // Receive links of devices that are no longer slaves: unpinning
        // detaches them.
        for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !links.held.contains_key(&name) {
                fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(links)
}

/// Attaches the receive program to one slave (also for `alb slave add`).
pub fn attach_slave(
    ebpf: &mut Ebpf,
    slave: &str,
    dir: Option<&Path>,
    links: &mut Links,
) -> Result<()> {
    let pin = format!("rx-{slave}");
    if let Some(link) = attach_one(ebpf, programs::RX, slave, TcAttachType::Ingress, dir, &pin)? {
        links.held.insert(pin, link);
    }
    Ok(())
}

/// Detaches the receive program from a removed slave: its pin goes, then
/// the agent's handle.
pub fn detach_slave(slave: &str, dir: &Path, links: &mut Links) -> Result<()> {
    let pin = format!("rx-{slave}");
    let path = dir.join(&pin);
    let removed = match fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    };
    drop(links.held.remove(&pin));
    removed
}

/// Whether an alb receive program is already attached to `device` (by
/// another master): one device cannot be the slave of two masters.
pub fn used_by_alb(device: &str) -> bool {
    SchedClassifier::query_tcx(device, TcAttachType::Ingress)
        .is_ok_and(|(_, programs)| programs.iter().any(|p| p.name_as_str() == Some(programs::RX)))
}

/// Forgets a removed slave's ifindex, so its frames are no longer taken.
pub fn forget_slave(ebpf: &mut Ebpf, ifindex: u32) -> Result<()> {
    let mut index: HashMap<&mut MapData, u32, u32> =
        HashMap::try_from(map(ebpf, names::SLAVE_INDEX)?)?;
    let _ = index.remove(&ifindex);
    Ok(())
}

/// Attaches one program, pinned in `dir` (taking over an existing pin);
/// returns the agent's handle on the link when pinned.
fn attach_one(
    ebpf: &mut Ebpf,
    name: &str,
    device: &str,
    direction: TcAttachType,
    dir: Option<&Path>,
    pin: &str,
) -> Result<Option<FdLink>> {
    let program = program(ebpf, name)?;
    let context = || format!("cannot attach {name} to {device} {direction:?}");
    let Some(dir) = dir else {
        program.attach(device, direction).with_context(context)?;
        return Ok(None);
    };
    let path = dir.join(pin);
    let link = match PinnedLink::from_pin(&path) {
        Ok(old) => {
            let link: SchedClassifierLink = FdLink::from(old)
                .try_into()
                .with_context(|| format!("{} is not a TC link", path.display()))?;
            let id = program.attach_to_link(link).with_context(context)?;
            program.take_link(id)?.try_into()?
        }
        Err(LinkError::SyscallError(SyscallError { io_error, .. }))
            if io_error.kind() == std::io::ErrorKind::NotFound =>
        {
            let id = program.attach(device, direction).with_context(context)?;
            let link: FdLink = program.take_link(id)?.try_into().context(
                "TCX links are needed to keep the data path across agent restarts (Linux >= 6.6)",
            )?;
            FdLink::from(link.pin(&path).with_context(|| format!("cannot pin {}", path.display()))?)
        }
        Err(error) => return Err(error).with_context(|| format!("cannot open {}", path.display())),
    };
    Ok(Some(link))
}

/// The shape each pinned map must have to be adopted by this agent:
/// (name, key size, value size, entries).
fn expected_layout(max_clients: u32) -> [(&'static str, u32, u32, u32); 10] {
    fn size<T>() -> u32 {
        u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
    }
    let slaves = u32::try_from(MAX_SLAVES).unwrap_or(u32::MAX);
    [
        (names::CONFIG, 4, size::<Config>(), 1),
        (names::SLAVES, 4, size::<Slave>(), slaves),
        (names::SLAVE_INDEX, 4, 4, slaves),
        (names::CLIENTS, size::<ClientKey>(), size::<ClientEntry>(), max_clients),
        (names::TX_BUCKETS, 4, size::<TxBucket>(), TX_BUCKETS),
        (names::BUCKET_LOAD, 4, size::<Traffic>(), TX_BUCKETS),
        (names::SLAVE_STATS, 4, size::<SlaveStats>(), slaves),
        (names::COUNTERS, 4, 8, Reason::COUNT),
        (names::RR_CURSOR, 4, 8, 1),
        (names::EVENTS, 0, 0, EVENT_RING_BYTES),
    ]
}

/// Whether `dir` holds the pinned state of an earlier agent.
pub fn has_pinned_state(dir: &Path) -> bool {
    dir.join(names::CONFIG).exists()
}

/// Checks that the pinned maps in `dir` have the layout this agent uses,
/// so adopting them cannot misread their contents.
pub fn check_pins(dir: &Path, max_clients: u32) -> Result<()> {
    for (name, key, value, entries) in expected_layout(max_clients) {
        let path = dir.join(name);
        let info = MapData::from_pin(&path)
            .and_then(|map| map.info())
            .with_context(|| format!("cannot open {}", path.display()))?;
        let found = (info.key_size(), info.value_size(), info.max_entries());
        if found != (key, value, entries) {
            bail!(
                "pinned map {} has key/value/entries {found:?}, this agent expects {:?} \
                 (another alb version or --max-clients); remove the old state with `alb down`",
                path.display(),
                (key, value, entries)
            );
        }
    }
    Ok(())
}

/// Removes the pin directory of a master (maps of an earlier run), and
/// `/sys/fs/bpf/alb` with it when no other master is left.
pub fn remove_pins(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot remove {}", dir.display()));
        }
    }
    if let Some(parent) = dir.parent() {
        // Fails while other masters' pins are there, as it should.
        let _ = fs::remove_dir(parent);
    }
    Ok(())
}

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
            ..Config::default()
        };
        config.usable[..usable.len()].copy_from_slice(&usable);
        config
    }
}

/// Writes slaves, slave index, buckets (dealt evenly) and config, in that
/// order: the config, which makes new slaves reachable, comes last.
pub fn publish(ebpf: &mut Ebpf, state: &State) -> Result<()> {
    write_slaves(ebpf, state)?;
    let usable = state.usable();
    let initial: Vec<(usize, u32)> = (0..TX_BUCKETS)
        .map(|bucket| {
            let slave = initial_bucket_slave(bucket, &usable).map_or(u32::MAX, u32::from);
            (bucket as usize, slave)
        })
        .collect();
    set_buckets(ebpf, &initial)?;
    write_config(ebpf, state)
}

/// Writes the slave table and the ifindex index.
pub fn write_slaves(ebpf: &mut Ebpf, state: &State) -> Result<()> {
    if state.slaves.len() > MAX_SLAVES {
        bail!("at most {MAX_SLAVES} slaves");
    }
    {
        let mut slaves: Array<&mut MapData, Slave> = Array::try_from(map(ebpf, names::SLAVES)?)?;
        for (index, slave) in state.slaves.iter().enumerate() {
            // An empty slot (a removed slave) has ifindex 0.
            let present = if slave.ifindex == 0 { 0 } else { SLAVE_PRESENT };
            let flags = present | if slave.up { SLAVE_UP } else { 0 };
            let entry = Slave { ifindex: slave.ifindex, flags, mac: slave.mac, _pad: [0; 2] };
            slaves.set(u32::try_from(index)?, entry, 0)?;
        }
    }
    let mut index: HashMap<&mut MapData, u32, u32> =
        HashMap::try_from(map(ebpf, names::SLAVE_INDEX)?)?;
    for (slot, slave) in state.slaves.iter().enumerate().filter(|(_, s)| s.ifindex != 0) {
        index.insert(slave.ifindex, u32::try_from(slot)?, 0)?;
    }
    Ok(())
}

/// Writes the master-wide config (active slave, usable slaves).
pub fn write_config(ebpf: &mut Ebpf, state: &State) -> Result<()> {
    let mut config: Array<&mut MapData, Config> = Array::try_from(map(ebpf, names::CONFIG)?)?;
    config.set(0, state.config(), 0)?;
    Ok(())
}

/// The device of each slave slot as the maps hold it (0: empty), read
/// before this agent publishes its own (an adopted table's indices).
pub fn slave_ifindexes(ebpf: &Ebpf) -> Result<Vec<u32>> {
    let map = ebpf.map(names::SLAVES).ok_or_else(|| anyhow!("slave map missing"))?;
    let slaves: Array<&MapData, Slave> = Array::try_from(map)?;
    (0..u32::try_from(MAX_SLAVES)?)
        .map(|i| {
            let slave = slaves.get(&i, 0)?;
            Ok(if slave.flags & SLAVE_PRESENT == 0 { 0 } else { slave.ifindex })
        })
        .collect()
}

/// The slave of every transmit bucket, by bucket.
pub fn buckets(ebpf: &Ebpf) -> Result<Vec<u32>> {
    let map = ebpf.map(names::TX_BUCKETS).ok_or_else(|| anyhow!("bucket map missing"))?;
    let buckets: Array<&MapData, TxBucket> = Array::try_from(map)?;
    (0..TX_BUCKETS).map(|b| Ok(buckets.get(&b, 0)?.slave)).collect()
}

/// Bytes each transmit bucket has carried since load, summed over CPUs.
pub fn bucket_bytes(ebpf: &Ebpf) -> Result<Vec<u64>> {
    let map = ebpf.map(names::BUCKET_LOAD).ok_or_else(|| anyhow!("bucket load map missing"))?;
    let loads: PerCpuArray<&MapData, Traffic> = PerCpuArray::try_from(map)?;
    (0..TX_BUCKETS).map(|b| Ok(loads.get(&b, 0)?.iter().map(|t| t.bytes).sum())).collect()
}

/// Bytes each slave slot has sent since load, summed over CPUs.
pub fn slave_tx_bytes(ebpf: &Ebpf) -> Result<Vec<u64>> {
    let map = ebpf.map(names::SLAVE_STATS).ok_or_else(|| anyhow!("slave stats map missing"))?;
    let stats: PerCpuArray<&MapData, SlaveStats> = PerCpuArray::try_from(map)?;
    (0..u32::try_from(MAX_SLAVES)?)
        .map(|i| Ok(stats.get(&i, 0)?.iter().map(|s| s.tx.bytes).sum()))
        .collect()
}

/// Points buckets at slaves: `(bucket, slave)`.
/// Takes the `(bucket, slave)` moves the policy in `alb_common::assign`
/// returns.
pub fn set_buckets(ebpf: &mut Ebpf, moves: &[(usize, u32)]) -> Result<()> {
    let mut buckets: Array<&mut MapData, TxBucket> =
        Array::try_from(map(ebpf, names::TX_BUCKETS)?)?;
    for &(bucket, slave) in moves {
        buckets.set(u32::try_from(bucket)?, TxBucket { slave, _pad: 0 }, 0)?;
    }
    Ok(())
}

/// The client table, in key order.
pub fn clients(ebpf: &Ebpf) -> Result<Vec<(ClientKey, ClientEntry)>> {
    let map = ebpf.map(names::CLIENTS).ok_or_else(|| anyhow!("client map missing"))?;
    let table: HashMap<&MapData, ClientKey, ClientEntry> = HashMap::try_from(map)?;
    let mut clients = table.iter().collect::<Result<Vec<_>, _>>()?;
    clients.sort_by_key(|(key, _)| *key);
    Ok(clients)
}

/// One client's entry, if the table has it.
pub fn client(ebpf: &Ebpf, key: &ClientKey) -> Result<Option<ClientEntry>> {
    let map = ebpf.map(names::CLIENTS).ok_or_else(|| anyhow!("client map missing"))?;
    let table: HashMap<&MapData, ClientKey, ClientEntry> = HashMap::try_from(map)?;
    Ok(table.get(key, 0).ok())
}

/// Forgets every client of server address `server`; returns how many.
pub fn forget_clients_of(ebpf: &mut Ebpf, server: &[u8; 4]) -> Result<usize> {
    let mut table: HashMap<&mut MapData, ClientKey, ClientEntry> =
        HashMap::try_from(map(ebpf, names::CLIENTS)?)?;
    let stale: Vec<ClientKey> =
        table.keys().filter_map(Result::ok).filter(|key| key.server_ip == *server).collect();
    for key in &stale {
        let _ = table.remove(key);
    }
    Ok(stale.len())
}

/// How many events the data path could not put in the ring.
pub fn events_lost(ebpf: &Ebpf) -> Result<u64> {
    let map = ebpf.map(names::COUNTERS).ok_or_else(|| anyhow!("counter map missing"))?;
    let counters: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
    Ok(counters.get(&(Reason::EventLost as u32), 0)?.iter().sum())
}

/// Moves a client to another slave, keeping its counters as they are now.
pub fn move_client(ebpf: &mut Ebpf, key: &ClientKey, slave: u32) -> Result<Option<ClientEntry>> {
    let mut table: HashMap<&mut MapData, ClientKey, ClientEntry> =
        HashMap::try_from(map(ebpf, names::CLIENTS)?)?;
    let Ok(mut entry) = table.get(key, 0) else { return Ok(None) };
    entry.slave = slave;
    // BPF_EXIST: a client that aged out meanwhile stays gone.
    table.insert(key, entry, BPF_EXIST)?;
    Ok(Some(entry))
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name).ok_or_else(|| anyhow!("map {name} missing from the BPF object"))
}

/// The event ring buffer, taken out of the object for the event loop.
pub fn take_events(ebpf: &mut Ebpf) -> Result<RingBuf<MapData>> {
    let events = ebpf
        .take_map(names::EVENTS)
        .ok_or_else(|| anyhow!("map {} missing from the BPF object", names::EVENTS))?;
    Ok(RingBuf::try_from(events)?)
}

/// Read access to the maps, from a loaded object or from pins (status).
pub struct Maps {
    pub config: Array<MapData, Config>,
    pub slaves: Array<MapData, Slave>,
    pub clients: HashMap<MapData, ClientKey, ClientEntry>,
    pub slave_stats: PerCpuArray<MapData, SlaveStats>,
    pub counters: PerCpuArray<MapData, u64>,
}

impl Maps {
    /// Opens the pinned maps of a running master.
    pub fn from_pins(dir: &Path) -> Result<Self> {
        let open = |name: &str| -> Result<aya::maps::Map> {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok(aya::maps::Map::from_map_data(data)?)
        };
        Ok(Self {
            config: Array::try_from(open(names::CONFIG)?)?,
            slaves: Array::try_from(open(names::SLAVES)?)?,
            clients: HashMap::try_from(open(names::CLIENTS)?)?,
            slave_stats: PerCpuArray::try_from(open(names::SLAVE_STATS)?)?,
            counters: PerCpuArray::try_from(open(names::COUNTERS)?)?,
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

    pub fn clients(&self) -> Result<Vec<(ClientKey, ClientEntry)>> {
        let mut clients = Vec::new();
        for item in self.clients.iter() {
            clients.push(item?);
        }
        clients.sort_by_key(|(key, _)| *key);
        Ok(clients)
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

/// Opens the same maps from a loaded object (tests and benchmarks).
pub fn maps_of(ebpf: &mut Ebpf) -> Result<Maps> {
    let mut take = |name: &str| {
        ebpf.take_map(name).ok_or_else(|| anyhow!("map {name} missing from the BPF object"))
    };
    Ok(Maps {
        config: Array::try_from(take(names::CONFIG)?)?,
        slaves: Array::try_from(take(names::SLAVES)?)?,
        clients: HashMap::try_from(take(names::CLIENTS)?)?,
        slave_stats: PerCpuArray::try_from(take(names::SLAVE_STATS)?)?,
        counters: PerCpuArray::try_from(take(names::COUNTERS)?)?,
    })
}
