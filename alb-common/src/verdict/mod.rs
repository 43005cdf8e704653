//! The data path's decisions, as pure functions of the parsed frame and the
//! state the agent published. The BPF programs only look up what a verdict
//! names and apply the rewrite it returns.

pub mod ipv6;
pub mod rx;
pub mod tx;

use crate::wire::{Mac, mac_eq};

/// The source MAC a frame must carry when it leaves on a slave with
/// `slave_mac`: frames the master originated (`from_master`: source = master
/// MAC) keep it on the active slave, which carries the master's MAC (as a
/// bond's active slave does), and take the slave's own MAC on every other
/// slave, so no switch sees one MAC on two ports. Frames with any other
/// source (bridged or forwarded) are never rewritten (docs/bonding.md §2.11).
#[inline(always)]
pub fn source_rewrite(
    from_master: bool,
    on_active: bool,
    master_mac: &Mac,
    slave_mac: &Mac,
) -> Option<Mac> {
    (from_master && !on_active && !mac_eq(slave_mac, master_mac)).then_some(*slave_mac)
}

#[cfg(test)]
mod tests {
    use super::source_rewrite;

    const MASTER: [u8; 6] = [2, 0, 0, 0, 0, 17];
    const OTHER_SLAVE: [u8; 6] = [2, 0, 0, 0, 0, 19];

    #[test]
    fn only_master_originated_frames_take_the_slave_mac() {
        assert_eq!(source_rewrite(true, false, &MASTER, &OTHER_SLAVE), Some(OTHER_SLAVE));
        assert_eq!(source_rewrite(true, false, &MASTER, &MASTER), None);
        assert_eq!(source_rewrite(false, false, &MASTER, &OTHER_SLAVE), None);
        // After a failover the active slave carries the master's MAC.
        assert_eq!(source_rewrite(true, true, &MASTER, &OTHER_SLAVE), None);
    }
}
