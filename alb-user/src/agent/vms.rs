//! VM MACs (bridged VMs, macvlans on the master): the transmit path pins
//! each to a slot the first time it sends; the agent makes the switch
//! follow when their slots move, and forgets those that stopped sending.
//! The table is small (at most `MAX_VMS`), so it is read whole when needed
//! instead of being modelled.

use alb_common::{
    maps::VmKey,
    vms::{is_aged, moved_to},
    wire::Mac,
};
use log::{debug, info, warn};

use super::Agent;
use crate::format_mac;

/// The monotonic clock in ns, `bpf_ktime_get_ns`'s.
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
        u64::try_from(now.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(now.tv_nsec()).unwrap_or(0)
    })
}

impl Agent {
    /// After slots moved to other slaves: the VM MACs of those slots now
    /// leave by their slot's new slave, which sends a learning frame from
    /// each (bonding's learning packets), so the switch moves them to the
    /// new port at once instead of at their next frame. Returns how many.
    pub(super) fn move_vms(&self, moves: &[(usize, u32)]) -> usize {
        if moves.is_empty() {
            return 0;
        }
        let vms = match self.datapath.vms() {
            Ok(vms) => vms,
            Err(error) => {
                warn!("{error:#}");
                return 0;
            }
        };
        let slaves = &self.set.state.slaves;
        let mut moved = 0;
        for (key, entry) in &vms {
            let Some(slave) = moved_to(entry, moves) else { continue };
            let Some(slave) = usize::try_from(slave).ok().and_then(|s| slaves.get(s)) else {
                continue;
            };
            if slave.up {
                self.learn(slave.ifindex, &key.mac);
                moved += 1;
            }
        }
        if moved > 0 {
            debug!("{moved} VM MACs taught to the switch on their new slaves");
        }
        moved
    }

    /// Forgets the VM MACs that sent nothing for the ageing time (as a
    /// bridge forgets addresses); one of them that sends again is pinned
    /// anew.
    pub(super) fn age_vms(&mut self) {
        let vms = match self.datapath.vms() {
            Ok(vms) => vms,
            Err(error) => {
                warn!("{error:#}");
                return;
            }
        };
        let now = monotonic_ns();
        let ageing = self.options.vm_ageing_s;
        let stale: Vec<VmKey> = vms
            .iter()
            .filter(|(_, entry)| is_aged(entry, now, ageing))
            .map(|(key, _)| *key)
            .collect();
        if stale.is_empty() {
            return;
        }
        let macs: Vec<_> = stale.iter().map(|key| key.mac).collect();
        if self.forget_vms(&format!("ageing out {} VM MACs", macs.len()), stale).is_some() {
            for mac in &macs {
                info!("VM MAC {} aged out ({ageing} s without a frame)", format_mac(mac));
            }
        }
    }

    /// A VM MAC the data path pinned for the first time.
    pub(super) fn on_new_vm(&self, mac: &Mac, slot: u32, slave: u32) {
        let name = usize::try_from(slave)
            .ok()
            .and_then(|s| self.set.names.get(s))
            .map_or("none", String::as_str);
        info!("VM MAC {} pinned to slot {slot} ({name})", format_mac(mac));
    }
}
