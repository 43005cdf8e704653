//! Per-CPU counters and events.

use alb_common::{
    maps::{ClientKey, ClientKey6, Event, Event6, EventKind, SlaveStats, Traffic},
    reason::Reason,
    wire::Mac,
};

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

#[inline(always)]
pub(crate) fn event(kind: EventKind, slave: u32, key: ClientKey, mac: Mac, op: u16, slot: u32) {
    let event = Event { kind: kind as u32, slave, key, mac, op, slot };
    if ALB_EVENTS.output(event, 0).is_err() {
        count(Reason::EventLost);
    }
}

/// An event about an IPv6 client: an [`Event6`] in the same ring.
#[inline(always)]
pub(crate) fn event6(kind: EventKind, slave: u32, key: ClientKey6, mac: Mac, op: u16, slot: u32) {
    let event = Event6 { kind: kind as u32, slave, key, mac, op, slot, _pad: 0 };
    if ALB_EVENTS.output_untyped::<Event6>(event, 0).is_err() {
        count(Reason::EventLost);
    }
}
