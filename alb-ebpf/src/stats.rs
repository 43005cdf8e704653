//! Per-CPU counters and events.

use alb_common::{
    maps::{ClientKey, ClientKey6, Event, Event6, EventKind, SlaveStats, Traffic},
    reason::Reason,
    ring::{RB_FORCE_WAKEUP, RB_NO_WAKEUP, ring_flags},
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

#[derive(Clone, Copy)]
pub(crate) enum Direction {
    Rx,
    Tx,
}

#[inline(always)]
pub(crate) fn slave_traffic(slave: u32, direction: Direction, bytes: u32) {
    if let Some(stats) = ALB_SLAVE_STATS.get_ptr_mut(slave) {
        // SAFETY: a per-CPU slot, written only by this CPU.
        let stats: &mut SlaveStats = unsafe { &mut *stats };
        match direction {
            Direction::Rx => add(&mut stats.rx, bytes),
            Direction::Tx => add(&mut stats.tx, bytes),
        }
    }
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
