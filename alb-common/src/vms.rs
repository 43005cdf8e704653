//! VM MACs (source MACs other than the master's: VMs behind a bridge on the
//! master, macvlans on it): the agent's decisions about the VM table, which
//! the transmit path fills. Each VM MAC holds a client slot, so it moves
//! with the slot; these say which VMs a slot move concerns and which have
//! aged out.

use crate::maps::VmEntry;

/// Whether a VM MAC last seen at `last_seen_ns` (`bpf_ktime_get_ns`, the
/// monotonic clock) is stale at `now_ns` after `ageing_s` seconds without
/// a frame from it, as a bridge forgets an address. A frame stamped after
/// `now_ns` (read a moment later) is fresh.
#[inline]
pub const fn is_aged(entry: &VmEntry, now_ns: u64, ageing_s: u64) -> bool {
    now_ns.saturating_sub(entry.last_seen_ns) > ageing_s.saturating_mul(1_000_000_000)
}

/// The new slave of a VM whose slot `moves` (`(slot, slave)` pairs, as the
/// slot policy returns them) moved, if it did: the slave that sends a
/// learning frame from the VM's MAC so the switch follows at once.
#[inline]
pub fn moved_to(entry: &VmEntry, moves: &[(usize, u32)]) -> Option<u32> {
    moves.iter().find(|&&(slot, _)| slot == entry.slot as usize).map(|&(_, slave)| slave)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen_at(last_seen_ns: u64, slot: u32) -> VmEntry {
        VmEntry { slot, last_seen_ns, ..VmEntry::default() }
    }

    #[test]
    fn a_vm_ages_out_after_the_ageing_time_without_a_frame() {
        let s = 1_000_000_000;
        let vm = seen_at(10 * s, 0);
        assert!(!is_aged(&vm, 10 * s, 300));
        assert!(!is_aged(&vm, 310 * s, 300));
        assert!(is_aged(&vm, 310 * s + 1, 300));
        // Stamped after the clock was read: fresh, not an underflow.
        assert!(!is_aged(&vm, 9 * s, 300));
        assert!(!is_aged(&seen_at(0, 0), u64::MAX, u64::MAX));
    }

    #[test]
    fn only_vms_of_moved_slots_follow_and_to_the_slots_new_slave() {
        let moves = [(3, 1), (7, 0)];
        assert_eq!(moved_to(&seen_at(0, 3), &moves), Some(1));
        assert_eq!(moved_to(&seen_at(0, 7), &moves), Some(0));
        assert_eq!(moved_to(&seen_at(0, 4), &moves), None);
        assert_eq!(moved_to(&seen_at(0, 3), &[]), None);
    }
}
