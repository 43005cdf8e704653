//! Every map of the data path, in one place. Layouts live in
//! `alb_common::maps`; the agent pins these (alb-user's `datapath::layout`).

use alb_common::{
    client_cache::{CLIENT_CACHE_ENTRIES, CachedClient},
    maps::{
        CLIENT_SLOTS, CURSORS, ClientEntry, ClientKey, ClientKey6, ClientSlot, Config,
        DEFAULT_MAX_CLIENTS, EVENT_RING_BYTES, Event, HostKey6, MAX_SERVERS, MAX_SLAVES, MAX_VMS,
        ServerKey, Slave, SlaveStats, TAIL_CALLS, TX_BUCKETS, Traffic, TxBucket, VmEntry, VmKey,
    },
    reason::Reason,
};
use aya_ebpf::{
    btf_maps::{Array, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    macros::btf_map,
};

const MAX_SLAVES_U: usize = MAX_SLAVES;
const BUCKETS: usize = TX_BUCKETS as usize;
const SLOTS: usize = CLIENT_SLOTS as usize;
const CLIENTS: usize = DEFAULT_MAX_CLIENTS as usize;
const REASONS: usize = Reason::COUNT as usize;
const RING: usize = EVENT_RING_BYTES as usize;
const TAILS: usize = TAIL_CALLS as usize;
const VMS: usize = MAX_VMS as usize;
const CURSOR_COUNT: usize = CURSORS as usize;
const SERVERS: usize = MAX_SERVERS as usize;
const CACHED: usize = CLIENT_CACHE_ENTRIES as usize;

#[btf_map]
pub(crate) static ALB_CONFIG: Array<Config, 1> = Array::new();

#[btf_map]
pub(crate) static ALB_SLAVES: Array<Slave, MAX_SLAVES_U> = Array::new();

/// The client table. LRU, so a flood of invented clients evicts idle
/// entries instead of filling the table; its size is set at load time.
#[btf_map]
pub(crate) static ALB_CLIENTS: LruHashMap<ClientKey, ClientEntry, CLIENTS> = LruHashMap::new();

/// The IPv6 client table: as `ALB_CLIENTS`, keyed by 16-byte addresses;
/// its clients hold slots of the same `ALB_SLOTS`.
#[btf_map]
pub(crate) static ALB_CLIENTS6: LruHashMap<ClientKey6, ClientEntry, CLIENTS> = LruHashMap::new();

/// The slot of each IPv6 client host (by MAC): its other clients join the
/// slot of its first (see `HostKey6`).
#[btf_map]
pub(crate) static ALB_HOSTS6: LruHashMap<HostKey6, u32, CLIENTS> = LruHashMap::new();

/// The slave of each client slot: clients hold a slot, the agent moves slots.
#[btf_map]
pub(crate) static ALB_SLOTS: Array<ClientSlot, SLOTS> = Array::new();

#[btf_map]
pub(crate) static ALB_TX_BUCKETS: Array<TxBucket, BUCKETS> = Array::new();

#[btf_map]
pub(crate) static ALB_BUCKET_LOAD: PerCpuArray<Traffic, BUCKETS> = PerCpuArray::new();

#[btf_map]
pub(crate) static ALB_SLAVE_STATS: PerCpuArray<SlaveStats, MAX_SLAVES_U> = PerCpuArray::new();

#[btf_map]
pub(crate) static ALB_COUNTERS: PerCpuArray<u64, REASONS> = PerCpuArray::new();

/// Round-robin positions for dealing new clients and new VM MACs
/// (`CURSOR_CLIENTS`, `CURSOR_VMS`).
#[btf_map]
pub(crate) static ALB_RR_CURSOR: Array<u64, CURSOR_COUNT> = Array::new();

/// Source MACs other than the master's (bridged VMs, macvlans), each
/// pinned to a slot. LRU, so a flood of invented MACs evicts idle ones.
#[btf_map]
pub(crate) static ALB_VMS: LruHashMap<VmKey, VmEntry, VMS> = LruHashMap::new();

/// The server addresses (per VLAN) the transmit path dealt clients of: a
/// set (values unused). `alb_rx` reports a client ARP only from one of
/// them, the only ARPs that can claim an address alb has clients for.
/// LRU, so it cannot fill; the agent never writes it.
#[btf_map]
pub(crate) static ALB_SERVERS: LruHashMap<ServerKey, u32, SERVERS> = LruHashMap::new();

#[btf_map]
pub(crate) static ALB_EVENTS: RingBuf<Event, RING> = RingBuf::new();

/// The programs `alb_tx` and `alb_rx` hand frames over to (the IPv6 path).
#[btf_map]
pub(crate) static ALB_PROGS: ProgramArray<TAILS> = ProgramArray::new();

/// `alb_tx`'s client cache (`alb_common::client_cache`): per CPU, direct
/// mapped. Not pinned: a new object starts with an empty cache.
#[btf_map]
pub(crate) static ALB_TX_CACHE: PerCpuArray<CachedClient, CACHED> = PerCpuArray::new();

/// The data path's generation of `ALB_CLIENTS` (the cache's `local`),
/// bumped after every insertion (which may evict a client). Not pinned,
/// as the cache it guards.
#[btf_map]
pub(crate) static ALB_CACHE_GEN: Array<u64, 1> = Array::new();
