//! Applying a slave's committed link change: the data path first (it stops
//! using a failed slave at once), the switch told where the failed MAC now
//! lives, then the client slots and transmit buckets move (a few hundred
//! array entries, whatever the number of clients), then the clients of the
//! moved slots are queued for the teller.

use alb_common::{
    assign::{even_out, move_off},
    frames::learning_frame,
    link::Commit,
    maps::{ClientKey, ClientKey6},
    wire::Mac,
};
use anyhow::Result;
use log::{debug, info, warn};

use super::Agent;
use crate::{
    announce::{rejoin::vlan_devices, worker::Job},
    slaves::Transition,
};

impl Agent {
    pub(super) async fn transition(&mut self, transition: &Transition) -> Result<()> {
        let started = std::time::Instant::now();
        let name = self.set.names[transition.slave].clone();
        let what = match transition.commit {
            Commit::Down => format!("{name} down"),
            Commit::Up => format!("{name} up"),
        };
        let written = self.datapath.publish_slaves(&self.set.state);
        self.wrote(&format!("{what}: the slave table and config"), written);
        if transition.commit == Commit::Down {
            // Teach the switch that the failed MAC is reachable through the
            // active slave, which accepts it (rx_failover) until clients
            // have learned their new slave: before anything else, since
            // this is what ends the receive outage.
            if let Some(active) = transition.active_after {
                let failed = self.set.state.slaves[transition.slave].mac;
                self.learn(self.set.state.slaves[active].ifindex, &failed);
            }
        }
        let usable = self.set.state.usable();
        let weights = self.weights();
        // Speeds are read again on every carrier change (a link may come
        // back at another speed).
        self.model.slots.set_capacity(self.set.capacity());
        let capacity = self.model.slots.capacity().clone();
        let (slot_moves, bucket_moves) = match transition.commit {
            Commit::Down => (
                self.model.slots.move_off(&usable, &weights),
                move_off(&self.model.buckets, &usable, &capacity),
            ),
            Commit::Up => (
                self.model.slots.even_out(&usable, &weights),
                even_out(&self.model.buckets, &usable, &capacity),
            ),
        };
        let written = self.datapath.set_slots(&slot_moves);
        self.wrote(&format!("{what}: {} client slots", slot_moves.len()), written);
        // VM MACs of the moved slots now leave by the new slaves: the
        // switch is taught so before any client is told anything.
        let vms = self.move_vms(&slot_moves);
        let written = self.datapath.set_buckets(&bucket_moves);
        self.wrote(&format!("{what}: {} transmit buckets", bucket_moves.len()), written);
        for &(bucket, slave) in &bucket_moves {
            self.model.buckets[bucket] = slave;
        }
        let told = self.tell_slots(&slot_moves);
        let active = transition.active_after.map_or("none", |a| self.set.names[a].as_str());
        let what = match transition.commit {
            Commit::Down => "down",
            Commit::Up => "up",
        };
        let took = started.elapsed();
        self.report.transitions.record(transition.commit == Commit::Down, took.as_secs_f64());
        if let Some(early) = transition.early_ms {
            info!(
                "making {name} the new active one {early} ms earlier: no slave was usable \
                 (updelay {} ms skipped, as bonding does)",
                self.set.delays().up_ms
            );
        }
        info!(
            "{name} {what}: {} slots ({told} clients, {vms} VM MACs) and {} buckets moved in {} \
             ms; active {active}",
            slot_moves.len(),
            bucket_moves.len(),
            took.as_millis()
        );
        match transition.commit {
            Commit::Down => {
                if !self.set.any_up() {
                    warn!("no slave left: {} carrier down", self.options.master);
                    self.netlink.set_up(self.master.peer.index, false).await?;
                }
            }
            Commit::Up => {
                if transition.active_before.is_none() {
                    self.netlink.set_up(self.master.peer.index, true).await?;
                }
                let slave = &self.set.state.slaves[transition.slave];
                self.learn(slave.ifindex, &slave.mac);
            }
        }
        if transition.active_changed() {
            if let Some(port) = self.master_mac_port() {
                let master_mac = self.set.state.master_mac;
                self.learn(port, &master_mac);
            }
        }
        Ok(())
    }

    /// Clients of both families per slot: the weights slot moves are
    /// balanced by.
    pub(super) fn weights(&self) -> Vec<u32> {
        let six = self.model.clients6.weights();
        self.model
            .clients
            .weights()
            .iter()
            .zip(six)
            .map(|(four, six)| four.saturating_add(six))
            .collect()
    }

    /// The port that announces the master's MAC besides its owner's: the
    /// active slave's while the owner cannot carry it (down, removed, or
    /// the user gave the master another MAC); none while the owner is
    /// usable, even when another slave is active (a primary or a policy
    /// that keeps it backup), so the switch is not taught two ports.
    pub(super) fn master_mac_port(&self) -> Option<u32> {
        let state = &self.set.state;
        if state.slaves.iter().any(|s| s.up && s.mac == state.master_mac) {
            return None;
        }
        state.active.map(|active| state.slaves[active].ifindex)
    }

    /// The master's multicast memberships, reported again through a new
    /// active slave (bonding's resend_igmp; whatever made it active: a
    /// failover, `alb set active`, a reload): snooping switches then send
    /// the streams to its port.
    /// The groups of each VLAN device on the master go tagged with its VLAN.
    pub(super) async fn rejoin_groups(&self, active: usize) {
        let mut devices = vec![(self.master.link.index, 0)];
        // Absent until the 8021q module is loaded: no VLAN devices then.
        if let Ok(text) = std::fs::read_to_string("/proc/net/vlan/config") {
            for (name, vlan) in vlan_devices(&text, &self.options.master) {
                match nix::net::if_::if_nametoindex(name.as_str()) {
                    Ok(index) => devices.push((index, vlan)),
                    Err(error) => debug!("VLAN device {name}: {error}"),
                }
            }
        }
        let slave = self.set.state.slaves[active].ifindex;
        for (device, vlan) in devices {
            let source = match self.netlink.first_ipv4(device).await {
                Ok(source) => source,
                Err(error) => {
                    warn!("{error:#}");
                    None
                }
            };
            let mac = &self.set.state.master_mac;
            match self.announce.announcer.rejoin(slave, (device, vlan), mac, source) {
                Ok(sent) if sent.ipv4_groups + sent.ipv6_groups > 0 => debug!(
                    "reported {} IPv4 and {} IPv6 groups (VLAN {vlan}) through {}",
                    sent.ipv4_groups, sent.ipv6_groups, self.set.names[active]
                ),
                Ok(_) => {}
                Err(error) => warn!("cannot report the master's groups again: {error:#}"),
            }
        }
    }

    /// Queues the clients of moved slots, of both families, for telling
    /// (their generation moves on, so older jobs for them are dropped);
    /// returns how many.
    pub(super) fn tell_slots(&self, moves: &[(usize, u32)]) -> usize {
        let mut told = 0;
        for &(slot, _) in moves {
            let index = slot;
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            self.announce.teller.moved(slot);
            told += self.tell(
                slot,
                self.model.clients.of_slot(index),
                self.model.clients6.of_slot(index),
            );
        }
        told
    }

    /// Queues `clients` and `clients6` of `slot` to be told the MAC of the
    /// slot's slave (nothing while that slave cannot carry traffic);
    /// returns how many.
    pub(super) fn tell(
        &self,
        slot: u32,
        clients: Vec<(ClientKey, Mac)>,
        clients6: Vec<(ClientKey6, Mac)>,
    ) -> usize {
        let slave = self.model.slots.slave_of(slot as usize);
        let Some(target) = self.set.state.usable_slave(slave) else { return 0 };
        let count = clients.len() + clients6.len();
        self.announce.teller.tell(Job {
            slot,
            generation: self.announce.teller.generation(slot),
            slave_ifindex: target.ifindex,
            slave_mac: target.mac,
            clients,
            clients6,
            repeat: true,
        });
        count
    }

    /// Bonding's periodic learning frames (docs/bonding.md §3.5): every usable slave
    /// with its own MAC, and the active slave with the master's MAC when
    /// that MAC's owner is down.
    pub(super) fn learning_frames(&self) {
        let state = &self.set.state;
        for slave in state.slaves.iter().filter(|s| s.up) {
            self.learn(slave.ifindex, &slave.mac);
        }
        if let Some(port) = self.master_mac_port() {
            self.learn(port, &state.master_mac);
        }
    }

    /// Learning frames: the switch learns `mac` on the port of `ifindex`,
    /// untagged and in every VLAN a client is in (a switch learns per
    /// VLAN), as bonding sends one per VLAN on the bond.
    pub(super) fn learn(&self, ifindex: u32, mac: &Mac) {
        let frame = learning_frame(mac);
        let mut vlans = self.model.clients.vlans();
        vlans.extend(self.model.clients6.vlans());
        vlans.insert(0);
        for vlan in vlans {
            if let Err(error) = self.announce.announcer.send_tagged(ifindex, &frame, vlan) {
                warn!("{error:#}");
            }
        }
    }
}
