//! Which events wake the agent. Every event goes into the one ring
//! (`ALB_EVENTS`); a wake-up costs the writing program ~4-7 µs (an
//! irq_work that wakes the agent's epoll; docs/profile-2026-11-25.md and
//! step 4 of docs/profile-2026-11-30.md), a write without one ~0.5 µs. So
//! only the events the agent must act on at once wake it; the others wait
//! in the ring until the agent drains it on its timer (alb-user's
//! `Events`) or on the next wake-up, in order.

use crate::maps::EventKind;

/// `BPF_RB_NO_WAKEUP`: commit the record without waking the consumer.
pub const RB_NO_WAKEUP: u64 = 1;
/// `BPF_RB_FORCE_WAKEUP`: wake the consumer even if records it has not read
/// are waiting. Without a flag the kernel wakes it only when it had read
/// everything before this record, so an urgent event written behind
/// unread no-wakeup events would wait for the timer.
pub const RB_FORCE_WAKEUP: u64 = 2;

/// `op` of a [`EventKind::NewClient6`] whose client was not told its
/// slave's MAC by the host's message (see [`EventKind::NewClient6`]).
pub const NEW_CLIENT6_UNTOLD: u16 = 1;

/// Whether an event of `kind` (with `op`, as written to the ring) needs the
/// agent at once: it tells a client, corrects a collapse or purges a
/// claimed address. Model-only events (a new client, a new VM MAC) wait.
#[inline(always)]
pub const fn wakes_agent(kind: EventKind, op: u16) -> bool {
    match kind {
        // The agent tells the client its slave's MAC again.
        EventKind::ClientMacChanged | EventKind::ClientMacChanged6 => true,
        // The agent corrects the collapse the broadcast caused.
        EventKind::HostArpBroadcast => true,
        // Reported only for server addresses: maybe a foreign claim.
        EventKind::ArpSeen => true,
        // An IPv6 client the host's message did not tell: the agent tells it.
        EventKind::NewClient6 => op == NEW_CLIENT6_UNTOLD,
        // The model (status, rebalancing, resyncs) learns it in time.
        EventKind::NewClient | EventKind::NewVm => false,
    }
}

/// The flags of `bpf_ringbuf_output` for an event of `kind` with `op`.
#[inline(always)]
pub const fn ring_flags(kind: EventKind, op: u16) -> u64 {
    if wakes_agent(kind, op) { RB_FORCE_WAKEUP } else { RB_NO_WAKEUP }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_the_agent_acts_on_wake_it() {
        for kind in [
            EventKind::ClientMacChanged,
            EventKind::ClientMacChanged6,
            EventKind::HostArpBroadcast,
            EventKind::ArpSeen,
        ] {
            for op in [0, 1, 2] {
                assert!(wakes_agent(kind, op), "{kind:?} op {op} must wake the agent");
                assert_eq!(ring_flags(kind, op), RB_FORCE_WAKEUP, "{kind:?} op {op}");
            }
        }
    }

    #[test]
    fn model_only_events_wait_for_the_timer() {
        for kind in [EventKind::NewClient, EventKind::NewVm] {
            assert!(!wakes_agent(kind, 0), "{kind:?} need not wake the agent");
            assert_eq!(ring_flags(kind, 0), RB_NO_WAKEUP, "{kind:?}");
        }
    }

    #[test]
    fn a_new_ipv6_client_wakes_the_agent_only_if_it_was_not_told() {
        assert!(!wakes_agent(EventKind::NewClient6, 0), "told by the host's message");
        assert_eq!(ring_flags(EventKind::NewClient6, 0), RB_NO_WAKEUP);
        assert!(wakes_agent(EventKind::NewClient6, NEW_CLIENT6_UNTOLD), "the agent tells it");
        assert_eq!(ring_flags(EventKind::NewClient6, NEW_CLIENT6_UNTOLD), RB_FORCE_WAKEUP);
    }
}
