//! Per-CPU counters and events.

use alb_common::{
    maps::{ClientKey, ClientKey6, Event, Event6, EventKind, MAX_SLAVES, SlaveStats, Traffic},
    reason::Reason,
    ring::{RB_FORCE_WAKEUP, RB_NO_WAKEUP, ring_flags},
    sampling,
    wire::Mac,
};
use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};

use crate::maps::{ALB_COUNTERS, ALB_EVENTS, ALB_SLAVE_STATS};

#[inline(always)]
pub(crate) fn count(reason: Reason) {
    if let Some(counter) = ALB_COUNTERS.get_ptr_mut(reason as u32) {
        // SAFETY: a per-CPU slot, written only by this CPU with preemption off.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
pub(crate) fn add(traffic: &mut Traffic, bytes: u32) {
    traffic.packets += 1;
    traffic.bytes += u64::from(bytes);
}

/// Counts a frame sent by slave `slave`.
#[inline(always)]
pub(crate) fn slave_tx(slave: u32, bytes: u32) {
    if let Some(stats) = ALB_SLAVE_STATS.get_ptr_mut(slave) {
        // SAFETY: a per-CPU slot, written only by this CPU.
        add(unsafe { &mut (*stats).tx }, bytes);
    }
}

/// Counts a frame received on slave `slave` and draws its weight in its
/// client's counters (`sampling::draw`, 1 frame in `every`): one per-CPU
/// slot for both.
#[inline(always)]
pub(crate) fn slave_rx(slave: u32, bytes: u32, every: u32) -> u64 {
    let Some(stats) = ALB_SLAVE_STATS.get_ptr_mut(slave) else { return 0 };
    // SAFETY: a per-CPU slot, written only by this CPU.
    let stats: &mut SlaveStats = unsafe { &mut *stats };
    add(&mut stats.rx, bytes);
    sampling::draw(&mut stats.sampler, every)
}

/// The weight of a frame sent by slave `slave` in its client's counters:
/// drawn from that slave's generator on this CPU (any valid slot serves).
#[inline(always)]
pub(crate) fn client_weight(slave: u32, every: u32) -> u64 {
    match ALB_SLAVE_STATS.get_ptr_mut(slave & (MAX_SLAVES as u32 - 1)) {
        // SAFETY: a per-CPU slot, written only by this CPU.
        Some(stats) => sampling::draw(unsafe { &mut (*stats).sampler }, every),
        None => 0,
    }
}

/// Adds a frame of `bytes` bytes, weighted `weight`, to the `packets` and
/// `bytes` of a client or a VM MAC (atomically: other CPUs count the same
/// one).
#[inline(always)]
pub(crate) fn add_shared(packets: &mut u64, bytes_total: &mut u64, bytes: u32, weight: u64) {
    add_atomic(packets, weight);
    add_atomic(bytes_total, u64::from(bytes) * weight);
}

/// Adds to a counter other CPUs update too (BPF_ATOMIC add, result
/// unused). The BPF target has no compare-and-swap, so core offers no
/// `AtomicU64::fetch_add` there; the intrinsic it is built on works.
#[inline(always)]
pub(crate) fn add_atomic(counter: &mut u64, value: u64) {
    use core::intrinsics::{AtomicOrdering, atomic_xadd};
    // SAFETY: `counter` is a live, aligned map field.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, value) };
}

const _: () = assert!(
    RB_NO_WAKEUP == BPF_RB_NO_WAKEUP as u64 && RB_FORCE_WAKEUP == BPF_RB_FORCE_WAKEUP as u64,
    "alb_common::ring's flags are the kernel's"
);

/// An event in the ring; it wakes the agent only if `ring::wakes_agent`
/// says it must act at once (the kind is a constant at every call site, so
/// the flags are too).
#[inline(always)]
pub(crate) fn event(kind: EventKind, slave: u32, key: ClientKey, mac: Mac, op: u16, slot: u32) {
    let event = Event { kind: kind as u32, slave, key, mac, op, slot };
    if ALB_EVENTS.output(event, ring_flags(kind, op)).is_err() {
        count(Reason::EventLost);
    }
}

/// An event about an IPv6 client: an [`Event6`] in the same ring.
#[inline(always)]
pub(crate) fn event6(kind: EventKind, slave: u32, key: ClientKey6, mac: Mac, op: u16, slot: u32) {
    let event = Event6 { kind: kind as u32, slave, key, mac, op, slot, _pad: 0 };
    if ALB_EVENTS.output_untyped::<Event6>(event, ring_flags(kind, op)).is_err() {
        count(Reason::EventLost);
    }
}
