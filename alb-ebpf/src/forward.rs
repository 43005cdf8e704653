//! Forwarding shared by the programs: sending by a slave (or the active
//! slave when it is down), dealing a client's slot, and a known client's
//! counters. `tx`, `rx` and `ipv6` use it; it uses none of them.

use alb_common::{
    maps::{CLIENT_MAC_KNOWN, ClientEntry, Config, NO_SLAVE, Slave, deal_slot},
    reason::Reason,
    verdict::source_rewrite,
    wire::{EthHdr, Mac, is_valid_unicast},
};
use aya_ebpf::{bindings::TC_ACT_SHOT, helpers::bpf_ktime_get_ns};

use crate::{
    maps::{ALB_BUCKET_LOAD, ALB_RR_CURSOR, ALB_SLAVES, ALB_SLOTS, ALB_TX_BUCKETS},
    packet::{Packet, redirect},
    stats::{self, add_atomic, count},
};

/// The next slot in turn from cursor `cursor` (`CURSOR_CLIENTS` for a
/// client of either family, `CURSOR_VMS` for a VM MAC) and the slave it
/// points at; `None` while it points at none.
#[inline(always)]
pub(crate) fn deal(cursor: u32) -> Option<(u32, u32)> {
    // Read, then add atomically: the BPF "generic" CPU cannot use the result
    // of an atomic add, so two CPUs dealing at the same instant may both get
    // the same slot. Counts then differ by two.
    let cursor = match ALB_RR_CURSOR.get_ptr_mut(cursor) {
        Some(cursor) => {
            // SAFETY: a live array slot.
            let position = unsafe { core::ptr::read_volatile(cursor) };
            // SAFETY: as above.
            add_atomic(unsafe { &mut *cursor }, 1);
            position
        }
        None => 0,
    };
    let slot = deal_slot(cursor);
    let slave = slave_of_slot(slot);
    (slave != NO_SLAVE).then_some((slot, slave))
}

/// The table entry of a client dealt `slot`, with `mac` if it is one.
#[inline(always)]
pub(crate) fn fresh_entry(slot: u32, mac: &Mac) -> ClientEntry {
    let known = is_valid_unicast(mac);
    ClientEntry {
        mac: if known { *mac } else { [0; 6] },
        slot,
        flags: if known { CLIENT_MAC_KNOWN } else { 0 },
        // SAFETY: a helper without arguments.
        created_ns: unsafe { bpf_ktime_get_ns() },
        ..ClientEntry::default()
    }
}

/// The slave a client slot points at ([`NO_SLAVE`] for a bad slot).
#[inline(always)]
pub(crate) fn slave_of_slot(slot: u32) -> u32 {
    ALB_SLOTS.get(slot).map_or(NO_SLAVE, |s| s.slave)
}

/// The slave `wanted` if it can carry traffic, else the active slave.
#[inline(always)]
pub(crate) fn usable_slave(config: &Config, wanted: u32) -> Option<(u32, &'static Slave)> {
    if let Some(slave) = ALB_SLAVES.get(wanted) {
        if slave.is_up() {
            return Some((wanted, slave));
        }
    }
    count(Reason::TxFallbackActive);
    let active = config.active_slave;
    ALB_SLAVES.get(active).filter(|slave| slave.is_up()).map(|slave| (active, slave))
}

/// Sends on slave `wanted` (or the active slave if it is down), with the
/// slave's MAC as source when the master originated the frame.
#[inline(always)]
pub(crate) fn send(packet: &Packet<'_>, config: &Config, wanted: u32, from_master: bool) -> i32 {
    let Some((slave, target)) = usable_slave(config, wanted) else {
        count(Reason::TxNoSlave);
        return TC_ACT_SHOT;
    };
    if let Some(mac) =
        source_rewrite(from_master, slave == config.active_slave, &config.master_mac, &target.mac)
    {
        if !packet.store_mac(EthHdr::SRC_OFFSET, &mac) {
            count(Reason::TxMalformed);
            return TC_ACT_SHOT;
        }
    }
    stats::slave_tx(slave, packet.len());
    redirect(target.ifindex, 0)
}

/// Sends to a known client (`entry`, of either table) by its slave.
#[inline(always)]
pub(crate) fn to_client(
    packet: &Packet<'_>,
    config: &Config,
    entry: *mut ClientEntry,
    from_master: bool,
) -> i32 {
    // SAFETY: a live map value.
    let slot = unsafe { (*entry).slot };
    to_slot(packet, config, slot, entry, core::ptr::null_mut, from_master)
}

/// Sends to a known client of slot `slot` by its slave; its counters are
/// in `entry`, or, when that is null (the slot came from the cache), in
/// what `look_up` finds: only a frame drawn for the counters pays it.
#[inline(always)]
pub(crate) fn to_slot(
    packet: &Packet<'_>,
    config: &Config,
    slot: u32,
    entry: *mut ClientEntry,
    look_up: impl FnOnce() -> *mut ClientEntry,
    from_master: bool,
) -> i32 {
    let slave = slave_of_slot(slot);
    let weight = stats::client_weight(slave, config.client_sampling);
    if weight != 0 {
        let entry = if entry.is_null() { look_up() } else { entry };
        if !entry.is_null() {
            // SAFETY: a live map value; counters are only updated atomically.
            let entry = unsafe { &mut *entry };
            stats::add_shared(&mut entry.tx_packets, &mut entry.tx_bytes, packet.len(), weight);
        }
    }
    count(Reason::TxClient);
    send(packet, config, slave, from_master)
}

/// Sends by the slave of transmit bucket `bucket`, counting its load.
#[inline(always)]
pub(crate) fn by_bucket(
    packet: &Packet<'_>,
    config: &Config,
    bucket: u32,
    from_master: bool,
) -> i32 {
    let slave = ALB_TX_BUCKETS.get(bucket).map_or(NO_SLAVE, |b| b.slave);
    if let Some(load) = ALB_BUCKET_LOAD.get_ptr_mut(bucket) {
        // SAFETY: a per-CPU slot, written only by this CPU.
        stats::add(unsafe { &mut *load }, packet.len());
    }
    count(Reason::TxBucket);
    send(packet, config, slave, from_master)
}

/// Counts a drawn frame (weighted `weight`) from a known client (`entry`,
/// of either table) received on slave `this`; a client heard on another
/// slave than its own is counted too (from the drawn frames).
#[inline(always)]
pub(crate) fn from_client(packet: &Packet<'_>, entry: *mut ClientEntry, this: u32, weight: u64) {
    // SAFETY: a live map value; counters are only updated atomically.
    let entry = unsafe { &mut *entry };
    stats::add_shared(&mut entry.rx_packets, &mut entry.rx_bytes, packet.len(), weight);
    if slave_of_slot(entry.slot) != this {
        count(Reason::RxClientOffSlave);
    }
}
