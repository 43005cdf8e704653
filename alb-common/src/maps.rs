//! Keys and values of alb's BPF maps, shared by the programs and the agent.
//!
//! All maps are BTF-defined, so `bpftool map dump` prints these field names.
//! Addresses are byte arrays in network order so bpftool prints them as
//! `[198,18,0,11]` rather than as a host-order integer.

use crate::wire::{Ipv4, Ipv6, Mac};

/// Most slaves one master can have; slave indices are `0..MAX_SLAVES`.
pub const MAX_SLAVES: usize = 16;
/// "No slave" in [`Config::active_slave`] and [`ClientEntry::slave`].
pub const NO_SLAVE: u32 = u32::MAX;
/// Per-destination transmit buckets (a power of two).
pub const TX_BUCKETS: u32 = 1024;
/// Client slots (a power of two): every client holds one, and
/// `ALB_SLOTS[slot]` names its slave, so a failover rewrites the slots of
/// the failed slave (a few hundred entries), not every client.
pub const CLIENT_SLOTS: u32 = 1024;
/// The layout version of the pinned maps, in [`Config::format`]: an agent
/// refuses pins of another format instead of misreading them.
/// 1: clients pointed at slaves directly (format field was padding, 0).
/// 2: clients hold a slot, `ALB_SLOTS` maps slots to slaves.
/// 3: IPv6 clients (`ALB_CLIENTS6`, `ALB_HOSTS6`, their events, Neighbor
///    Discovery counters, `ALB_PROGS` for the IPv6 programs).
/// 4: source MACs pinned to slots (`ALB_VMS`, a second cursor in
///    `ALB_RR_CURSOR`, their event and counters).
/// 5: VLANs: the client keys (`ClientKey`, `ClientKey6`, `HostKey6`) and
///    so the events carry the VLAN ID; no `ALB_SLAVE_IDX` (`alb_rx` finds
///    its slave in `ALB_SLAVES`).
/// 6: client counters sampled (`Config::client_sampling`, a generator per
///    slave and CPU in `SlaveStats::sampler`); `ALB_SERVERS`, the server
///    addresses the transmit path dealt clients of: `alb_rx` reports a
///    client ARP (`ArpSeen`) only from one of them; events are written with
///    `BPF_RB_NO_WAKEUP` unless the agent must act at once
///    (`ring::wakes_agent`).
pub const PIN_FORMAT: u32 = 6;
/// Default size of the client table; `alb --max-clients` changes it at load.
pub const DEFAULT_MAX_CLIENTS: u32 = 65_536;
/// Most source MACs other than the master's (bridged VMs, macvlans) the
/// VM table holds; LRU, so a flood of invented MACs evicts idle ones.
pub const MAX_VMS: u32 = 4096;
/// Most server addresses (per VLAN) `ALB_SERVERS` holds; LRU, so it
/// cannot fill. A host has a few addresses; an evicted one is put back by
/// its next new client.
pub const MAX_SERVERS: u32 = 4096;
/// Seconds a learned VM MAC is kept without a frame from it, as a
/// bridge's default ageing time; `alb run --vm-ageing` changes it.
pub const DEFAULT_VM_AGEING_S: u64 = 300;
/// Entries of `ALB_RR_CURSOR`: the next slot for a new client, and for a
/// new VM MAC (a cursor of their own, so VMs are dealt over the slaves in
/// turn whatever the clients do).
pub const CURSOR_CLIENTS: u32 = 0;
pub const CURSOR_VMS: u32 = 1;
pub const CURSORS: u32 = 2;
/// Size of the event ring buffer in bytes: 32,768 events, so a burst of
/// new clients (100,000 a second while a million are learned) is absorbed
/// between two turns of the agent's loop.
pub const EVENT_RING_BYTES: u32 = 1024 * 1024;

/// The names of the bpffs layout: `<ROOT>/<master>/` holds a master's
/// map pins (named by [`names`]) and `links/`, its attachment records
/// (`tx`, `rx-<slave>`). alb-user's `datapath::layout` builds every path
/// from these; the lab, which watches the agent from outside, does too.
pub mod pins {
    /// Where bpffs is mounted.
    pub const BPFFS: &str = "/sys/fs/bpf";
    /// The directory of every master's pins, under [`BPFFS`].
    pub const ROOT: &str = "/sys/fs/bpf/alb";
    /// A master's directory of attachment records.
    pub const LINKS: &str = "links";
    /// The record of the transmit program on the master's egress.
    pub const TX: &str = "tx";
    /// The prefix of a slave's receive record, `rx-<slave>`.
    pub const RX_PREFIX: &str = "rx-";
}

/// Map names (at most 15 bytes: the kernel's `BPF_OBJ_NAME_LEN`), also the
/// file names of their pins in a master's pin directory ([`pins`]).
pub mod names {
    pub const CONFIG: &str = "ALB_CONFIG";
    pub const SLAVES: &str = "ALB_SLAVES";
    pub const CLIENTS: &str = "ALB_CLIENTS";
    pub const CLIENTS6: &str = "ALB_CLIENTS6";
    pub const HOSTS6: &str = "ALB_HOSTS6";
    pub const SLOTS: &str = "ALB_SLOTS";
    pub const TX_BUCKETS: &str = "ALB_TX_BUCKETS";
    pub const BUCKET_LOAD: &str = "ALB_BUCKET_LOAD";
    pub const SLAVE_STATS: &str = "ALB_SLAVE_STATS";
    pub const COUNTERS: &str = "ALB_COUNTERS";
    pub const RR_CURSOR: &str = "ALB_RR_CURSOR";
    pub const EVENTS: &str = "ALB_EVENTS";
    pub const PROGS: &str = "ALB_PROGS";
    pub const VMS: &str = "ALB_VMS";
    pub const SERVERS: &str = "ALB_SERVERS";
    pub const ALL: [&str; 15] = [
        CONFIG,
        SLAVES,
        CLIENTS,
        CLIENTS6,
        HOSTS6,
        SLOTS,
        TX_BUCKETS,
        BUCKET_LOAD,
        SLAVE_STATS,
        COUNTERS,
        RR_CURSOR,
        EVENTS,
        PROGS,
        VMS,
        SERVERS,
    ];
}

/// Program names, as the agent finds them in the object.
pub mod programs {
    /// TC egress on the master: transmit balancing and host ARP rewriting.
    pub const TX: &str = "alb_tx";
    /// TC ingress on every slave: delivery to the master and ARP learning.
    pub const RX: &str = "alb_rx";
    /// IPv6 frames leaving the master: `alb_tx` tail-calls it
    /// (`ALB_PROGS[TAIL_TX6]`).
    pub const TX6: &str = "alb_tx6";
    /// IPv6 frames delivered to the master: `alb_rx` tail-calls it
    /// (`ALB_PROGS[TAIL_RX6]`) with the receiving slave in `skb->cb[0]`.
    pub const RX6: &str = "alb_rx6";
    /// Every program, in load order.
    pub const ALL: [&str; 4] = [TX, RX, TX6, RX6];
}

/// Entries of `ALB_PROGS`, the programs `alb_tx` and `alb_rx` hand frames
/// over to with a tail call: the IPv6 path has its own 512-byte stack and
/// leaves the IPv4 programs as they were. Room for more.
pub const TAIL_TX6: u32 = 0;
pub const TAIL_RX6: u32 = 1;
pub const TAIL_CALLS: u32 = 8;

/// The master-wide state the agent publishes (`ALB_CONFIG[0]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub master_ifindex: u32,
    /// Index of the slave that carries the master's MAC, broadcast,
    /// multicast and non-IP traffic; [`NO_SLAVE`] when none is usable.
    pub active_slave: u32,
    /// How many entries of `usable` are valid.
    pub usable_count: u32,
    /// [`PIN_FORMAT`] of the agent that wrote the maps.
    pub format: u32,
    pub master_mac: Mac,
    pub _pad1: [u8; 2],
    /// The usable slaves, in enslave order (for bpftool readers; the data
    /// path deals clients by slot and destinations by bucket).
    pub usable: [u8; MAX_SLAVES],
    /// Client counters count 1 frame in this many, weighted by it
    /// (`alb_common::sampling`); 0 and 1 count every frame.
    pub client_sampling: u32,
    /// Bumped by the agent after every deletion from the client tables,
    /// so that `alb_tx`'s client cache drops what it held
    /// (`alb_common::client_cache`). Was padding: an older agent writes 0.
    pub clients_generation: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            master_ifindex: 0,
            active_slave: NO_SLAVE,
            usable_count: 0,
            format: PIN_FORMAT,
            master_mac: [0; 6],
            _pad1: [0; 2],
            usable: [0; MAX_SLAVES],
            client_sampling: 0,
            clients_generation: 0,
        }
    }
}

/// Set in [`Slave::flags`] for a slot that holds a slave.
pub const SLAVE_PRESENT: u32 = 1;
/// Set in [`Slave::flags`] while the slave may carry traffic (link up).
pub const SLAVE_UP: u32 = 2;

/// One slave (`ALB_SLAVES[index]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slave {
    pub ifindex: u32,
    pub flags: u32,
    pub mac: Mac,
    pub _pad: [u8; 2],
}

impl Slave {
    #[inline(always)]
    pub const fn is_up(&self) -> bool {
        self.flags & (SLAVE_PRESENT | SLAVE_UP) == SLAVE_PRESENT | SLAVE_UP
    }
}

/// Key of the client table: one server address and one client address
/// in one VLAN. The kernel keys on the client only, so a client of two
/// server addresses fights with itself there (docs/bonding.md §2.1, §5 case 11); two
/// VLANs are two networks, whose clients may reuse the same addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    pub server_ip: Ipv4,
    pub client_ip: Ipv4,
    /// The VLAN ID (0: untagged).
    pub vlan: u16,
    pub _pad: [u8; 2],
}

impl ClientKey {
    #[inline(always)]
    pub const fn new(server_ip: Ipv4, client_ip: Ipv4, vlan: u16) -> Self {
        Self { server_ip, client_ip, vlan, _pad: [0; 2] }
    }
}

/// Key of the server table (`ALB_SERVERS`): a server address (the host's
/// address in a host ARP that dealt a client) in one VLAN. Its value is a
/// `u32`, unused (0): the table is a set. Only an ARP from one of these can
/// claim an address alb has clients for, so `alb_rx` reports no other.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    pub ip: Ipv4,
    /// The VLAN ID (0: untagged).
    pub vlan: u16,
    pub _pad: [u8; 2],
}

impl ServerKey {
    #[inline(always)]
    pub const fn new(ip: Ipv4, vlan: u16) -> Self {
        Self { ip, vlan, _pad: [0; 2] }
    }
}

/// Key of the IPv6 client table (`ALB_CLIENTS6`): one server address and
/// one client address, link-local or global. A table of its own, so the
/// IPv4 table keeps its 8-byte key (hashing and memory per client); both
/// tables' clients hold slots of the one `ALB_SLOTS`, so a failover moves
/// both families in one batch. Aligned to 8 (its size, 40, has no padding
/// either way) so the BPF programs build it with 8-byte stores.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey6 {
    pub server_ip: Ipv6,
    pub client_ip: Ipv6,
    /// The VLAN ID (0: untagged).
    pub vlan: u16,
    pub _pad: [u8; 6],
}

impl ClientKey6 {
    #[inline(always)]
    pub const fn new(server_ip: Ipv6, client_ip: Ipv6, vlan: u16) -> Self {
        Self { server_ip, client_ip, vlan, _pad: [0; 6] }
    }
}

/// Key of `ALB_HOSTS6`: one IPv6 client host, by its MAC.
///
/// An IPv6 host has several addresses (link-local, global) but one
/// neighbour entry per server address, which every client key of that
/// server address and any of the host's addresses updates (an
/// advertisement of the server address to any of them, a solicitation from
/// it to any of them: Linux probes reachability from its link-local
/// address, whatever address it probes). So all IPv6 clients of one host
/// share one slot: the first is dealt one in turn, the others take it from
/// `ALB_HOSTS6`; hosts, not addresses, are spread over the slaves, and a
/// host's neighbour entries never disagree. A host on two VLANs (one MAC,
/// two VLAN devices) has a neighbour table per VLAN: two hosts here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostKey6 {
    pub mac: Mac,
    /// The VLAN ID (0: untagged).
    pub vlan: u16,
}

/// Key of the VM table (`ALB_VMS`): a source MAC other than the master's
/// that frames leaving the master carry (a VM behind a bridge on the
/// master, a macvlan on it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmKey {
    pub mac: Mac,
    pub _pad: [u8; 2],
}

impl VmKey {
    #[inline(always)]
    pub const fn new(mac: Mac) -> Self {
        Self { mac, _pad: [0; 2] }
    }
}

/// A VM MAC pinned to one slave (`ALB_VMS[key]`): as OVS balance-slb
/// pins a source MAC to one member, so the switch sees it on one port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmEntry {
    /// Its slot: `ALB_SLOTS[slot]` is the slave all its frames leave by,
    /// so a failover moves it with the clients of the slot.
    pub slot: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()` when it was first seen.
    pub created_ns: u64,
    /// `bpf_ktime_get_ns()` of its last frame out (the agent ages it).
    pub last_seen_ns: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Set in [`ClientEntry::flags`] once the client's MAC is known.
pub const CLIENT_MAC_KNOWN: u32 = 1;

/// A client's assignment and counters (`ALB_CLIENTS[key]`, and
/// `ALB_CLIENTS6[key]` for IPv6 clients).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientEntry {
    pub mac: Mac,
    pub _pad: [u8; 2],
    /// The client's slot: `ALB_SLOTS[slot]` is the slave whose MAC this
    /// client was told, and which carries its traffic in both directions.
    pub slot: u32,
    pub flags: u32,
    /// `bpf_ktime_get_ns()` when the entry was created.
    pub created_ns: u64,
    /// Frames and bytes from and to the client: estimates from 1 frame in
    /// `Config::client_sampling` (exact when it is 0 or 1).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// The slave of a client slot (`ALB_SLOTS[slot]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientSlot {
    pub slave: u32,
    pub _pad: u32,
}

/// The slot of a client new to the table, dealt round-robin: slot `i` is
/// dealt to the `i`-th new client (modulo), and slots are spread over the
/// slaves in turn, so clients are dealt over the slaves in turn.
#[inline(always)]
pub const fn deal_slot(cursor: u64) -> u32 {
    (cursor % CLIENT_SLOTS as u64) as u32
}

/// The slave a transmit bucket sends on (`ALB_TX_BUCKETS[bucket]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxBucket {
    pub slave: u32,
    pub _pad: u32,
}

/// Bytes and packets sent through one bucket (per CPU; u64, so no wrap at
/// the rates where the kernel's u32 accounting overflows, docs/bonding.md §3.3).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

/// Per-slave counters (`ALB_SLAVE_STATS[index]`, per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlaveStats {
    pub rx: Traffic,
    pub tx: Traffic,
    /// This CPU's generator for the client-counter draws of frames on this
    /// slave (`alb_common::sampling::draw`); not a counter, never summed.
    pub sampler: u64,
}

/// What an [`Event`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The transmit path dealt a slot (`slot`, on `slave`) to a new client
    /// (`mac`: its MAC, or zero while unknown).
    NewClient = 1,
    /// The host broadcast an ARP request: every client of `server_ip` that
    /// heard it now points at `slave`'s MAC and must be told its own again.
    HostArpBroadcast = 2,
    /// A client's ARP reached the master (`op`, `mac` = sender MAC,
    /// `client_ip` = sender IP, `server_ip` = target IP).
    ArpSeen = 3,
    /// A known client (`slot`) has a new MAC (`mac`): it answered from it,
    /// or the host addressed an ARP to it; the entry was updated.
    ClientMacChanged = 4,
    /// [`Self::NewClient`] for an IPv6 client (an [`Event6`]): the host
    /// answered or solicited it. `op` is 1 when the host's message carried
    /// no link-layer address option (an answer to a reachability probe),
    /// so the client was not told its slave's MAC by it.
    NewClient6 = 5,
    /// [`Self::ClientMacChanged`] for an IPv6 client (an [`Event6`]), from
    /// its solicitation or advertisement or from the host's message to it.
    ClientMacChanged6 = 6,
    /// A frame from a MAC other than the master's (a VM's, a macvlan's)
    /// pinned it to `slot` (on `slave`); `mac` is the VM MAC.
    NewVm = 7,
}

impl EventKind {
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::NewClient),
            2 => Some(Self::HostArpBroadcast),
            3 => Some(Self::ArpSeen),
            4 => Some(Self::ClientMacChanged),
            5 => Some(Self::NewClient6),
            6 => Some(Self::ClientMacChanged6),
            7 => Some(Self::NewVm),
            _ => None,
        }
    }
}

/// An entry of the event ring buffer (`ALB_EVENTS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub kind: u32,
    pub slave: u32,
    pub key: ClientKey,
    pub mac: Mac,
    pub op: u16,
    /// The client's slot ([`EventKind::NewClient`], [`EventKind::ClientMacChanged`]).
    pub slot: u32,
}

/// An entry of the event ring buffer about an IPv6 client: the layout of
/// [`Event`] with 16-byte addresses. The ring carries both; `kind` (first,
/// in both) tells which.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event6 {
    pub kind: u32,
    pub slave: u32,
    pub key: ClientKey6,
    pub mac: Mac,
    pub op: u16,
    pub slot: u32,
    pub _pad: u32,
}

impl EventKind {
    /// Whether a ring entry of this kind is an [`Event6`].
    pub const fn is_ipv6(self) -> bool {
        matches!(self, Self::NewClient6 | Self::ClientMacChanged6)
    }
}

const _: () = {
    assert!(size_of::<Config>() == 48);
    assert!(size_of::<ClientKey6>() == 40);
    assert!(size_of::<HostKey6>() == 8);
    assert!(size_of::<Event6>() == 64);
    assert!(size_of::<Slave>() == 16);
    assert!(size_of::<ClientKey>() == 12);
    assert!(size_of::<ClientEntry>() == 56);
    assert!(size_of::<TxBucket>() == 8);
    assert!(size_of::<SlaveStats>() == 40);
    assert!(size_of::<Event>() == 32);
    assert!(size_of::<ClientSlot>() == 8);
    assert!(size_of::<VmKey>() == 8);
    assert!(size_of::<ServerKey>() == 8);
    assert!(size_of::<VmEntry>() == 56);
    assert!(CLIENT_SLOTS.is_power_of_two());
    assert!(TX_BUCKETS.is_power_of_two());
    assert!(MAX_SLAVES.is_power_of_two());
};

#[cfg(feature = "user")]
mod pod {
    use super::{
        ClientEntry, ClientKey, ClientKey6, ClientSlot, Config, Event, Event6, HostKey6, ServerKey,
        Slave, SlaveStats, Traffic, TxBucket, VmEntry, VmKey,
    };

    // SAFETY: each type is `repr(C)`, `Copy`, has explicit padding fields
    // and no padding bytes (sizes asserted above), and every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Slave {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ClientKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ClientKey6 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Event6 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for HostKey6 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ClientEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for TxBucket {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ClientSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Traffic {}
    // SAFETY: as above.
    unsafe impl aya::Pod for SlaveStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for VmKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for VmEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ServerKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_dealt_in_turn_and_wrap() {
        assert_eq!(deal_slot(0), 0);
        assert_eq!(deal_slot(5), 5);
        assert_eq!(deal_slot(u64::from(CLIENT_SLOTS) + 3), 3);
        assert_eq!(deal_slot(u64::MAX), CLIENT_SLOTS - 1);
    }

    #[test]
    fn map_names_fit_the_kernel() {
        for name in names::ALL {
            assert!(name.len() <= 15, "{name} is longer than 15 bytes");
        }
    }
}
