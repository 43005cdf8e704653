//! What the agent does with the data path's events: new clients and new
//! MACs (of both families) feed the client models, a host broadcast ARP
//! leads to a collapse correction, a client ARP from a server address may
//! be a foreign claim.
//! Each costs O(1) or O(clients concerned), never a walk of the kernel table.

use std::time::{Duration, Instant};

use alb_common::wire::{Ipv4, Ipv6, Mac};
use log::{debug, info, warn};

use super::state::{Agent, Walk};
use crate::{
    clients::collapse::Server,
    datapath::{ClientCursor, Event},
    format_mac,
};

/// Resyncs of the model from the kernel table, at most one per this long
/// (a million clients take about a second of CPU to read).
const RESYNC_SPACING: Duration = Duration::from_secs(10);
/// A full LRU table may evict entries without an event: resync it this often.
const FULL_TABLE_RESYNC: Duration = Duration::from_secs(60);

impl Agent {
    pub(super) fn on_datapath_event(&mut self, event: &Event) {
        match *event {
            Event::NewClient { key, slot, slave, mac } => {
                if self.model.clients.learn(key, slot, mac) {
                    self.report.summary.learned += 1;
                }
                debug!(
                    "client {} of {} dealt slot {slot} (slave {slave})",
                    ip(&key.client_ip),
                    ip(&key.server_ip)
                );
            }
            Event::ClientMacChanged { key, slot, mac } => {
                let known = self.model.clients.get(&key).and_then(|(_, mac)| mac);
                self.model.clients.set_mac(key, slot, mac);
                if known.is_some_and(|old| old != mac) {
                    info!("client {} now at {}", ip(&key.client_ip), format_mac(&mac));
                    self.tell(slot, vec![(key, mac)], Vec::new());
                }
            }
            Event::NewClient6 { key, slot, slave, mac, told } => {
                if self.model.clients6.learn(key, slot, mac) {
                    self.report.summary.learned += 1;
                }
                debug!(
                    "client {} of {} dealt slot {slot} (slave {slave})",
                    ip6(&key.client_ip),
                    ip6(&key.server_ip)
                );
                // Dealt by an answer to its reachability probe, which names
                // no MAC: the client still has the MAC it had (from before
                // the table knew it), so tell it its slave's.
                if let (false, Some(mac)) = (told, mac) {
                    self.tell(slot, Vec::new(), vec![(key, mac)]);
                }
            }
            Event::ClientMacChanged6 { key, slot, mac } => {
                let known = self.model.clients6.get(&key).and_then(|(_, mac)| mac);
                self.model.clients6.set_mac(key, slot, mac);
                if known.is_some_and(|old| old != mac) {
                    info!("client {} now at {}", ip6(&key.client_ip), format_mac(&mac));
                    self.tell(slot, Vec::new(), vec![(key, mac)]);
                }
            }
            Event::HostArpBroadcast { server, target, slave, vlan } => {
                if self.model.collapses.note((server, vlan), Instant::now()) {
                    // An announcement of the server address itself reached
                    // every client (of its VLAN); a request for one client
                    // came from that client's slave, whose clients heard
                    // their own MAC.
                    let skip = (target != server).then_some((target, slave));
                    self.correct_collapse((server, vlan), skip);
                }
            }
            // Only an ARP from a server address (in the VLAN it came in) can
            // claim it. The data path reports no other (ALB_SERVERS), but
            // its set may hold an address whose clients are gone: the model
            // decides.
            Event::ArpSeen { sender, sender_mac, vlan, .. } => {
                debug!("ARP from {}{} reported", ip(&sender), in_vlan(vlan));
                if self.model.clients.is_server(&(sender, vlan)) {
                    self.purge_foreign_claim((sender, vlan), sender_mac);
                }
            }
            Event::NewVm { mac, slot, slave } => self.on_new_vm(&mac, slot, slave),
        }
    }

    /// Every client of `server` that heard a host broadcast ARP now points
    /// at its sender MAC. Tell the others their own slave again, at once
    /// (gratuitous form, so Linux clients apply it inside their ARP
    /// locktime); the kernel waits ~2 s. `skip`: the target of the request
    /// and the slave whose MAC it carried, which need no correction.
    pub(super) fn correct_collapse(&self, server: Server, skip: Option<(Ipv4, u32)>) {
        let slots = &self.model.slots;
        let groups = self.model.clients.of_server(&server, |key, slot| {
            skip.is_some_and(|(target, slave)| {
                key.client_ip == target || slots.slave_of(slot) == slave
            })
        });
        let mut told = 0;
        for (slot, clients) in groups {
            told += self.tell(u32::try_from(slot).unwrap_or(u32::MAX), clients, Vec::new());
        }
        if told > 0 {
            match skip {
                Some((target, _)) => {
                    info!("host ARP request for {}: re-told {told} clients", ip(&target));
                }
                None => {
                    info!("host ARP broadcasts for {}: re-told {told} clients", ip(&server.0));
                }
            }
        }
    }

    /// Another host claims a server address (an ARP from it with a MAC that
    /// is none of ours): forget every client of that address, so no update
    /// ever claims it for us again (docs/bonding.md §2.4).
    fn purge_foreign_claim(&mut self, sender: Server, sender_mac: Mac) {
        let state = &self.set.state;
        let ours =
            state.slaves.iter().any(|s| s.mac == sender_mac) || sender_mac == state.master_mac;
        if ours || sender.0 == [0; 4] {
            return;
        }
        let keys = self.model.clients.forget_server(&sender);
        let claim = format!(
            "{}{} claimed by {}",
            ip(&sender.0),
            in_vlan(sender.1),
            format_mac(&sender_mac)
        );
        let count = keys.len();
        match self.forget_clients(&format!("{claim}: forgetting {count} clients"), keys) {
            Some(forgotten) => warn!("{claim}: forgot {forgotten} clients of that address"),
            None => warn!("{claim}: {count} clients forgotten by the agent, the kernel's pending"),
        }
    }

    /// Reads the kernel table again when the model may have drifted from
    /// it: events were lost (the ring was full), or the LRU table is full
    /// and may have evicted clients without a word.
    pub(super) fn check_model(&mut self) {
        let lost = match self.datapath.events_lost() {
            Ok(lost) => lost,
            Err(error) => {
                warn!("{error:#}");
                return;
            }
        };
        let since = self.resync.resynced.elapsed();
        let nearly = u64::from(self.options.max_clients) * 9 / 10;
        let full =
            self.model.clients.len() as u64 >= nearly || self.model.clients6.len() as u64 >= nearly;
        let due = (lost != self.resync.events_lost && since >= RESYNC_SPACING)
            || (full && since >= FULL_TABLE_RESYNC);
        if !due || self.resync.walk.is_some() {
            return;
        }
        self.start_walk(lost - self.resync.events_lost, Vec::new());
        self.resync.events_lost = lost;
    }

    /// Starts a walk of the kernel table; `lost`: events lost before it (0
    /// for an adoption); `then_tell`: slot moves whose clients are told
    /// once the walk has read them.
    pub(super) fn start_walk(&mut self, lost: u64, then_tell: Vec<(usize, u32)>) {
        self.model.clients.begin_walk();
        self.model.clients6.begin_walk();
        self.resync.walk = Some(Walk {
            cursor: ClientCursor::default(),
            cursor6: ClientCursor::default(),
            started: Instant::now(),
            lost,
            then_tell,
        });
    }

    /// One batch of the walk of the kernel tables (8192 entries, some
    /// milliseconds), so link events and signals never wait for a whole
    /// walk (two seconds at a million clients).
    pub(super) fn continue_walk(&mut self) {
        let Some(walk) = self.resync.walk.as_mut() else { return };
        let read = if walk.cursor.done() {
            let clients6 = &mut self.model.clients6;
            self.datapath.next_clients6(&mut walk.cursor6, |key, entry| {
                clients6.learn_entry(key, entry);
            })
        } else {
            let clients = &mut self.model.clients;
            self.datapath.next_clients(&mut walk.cursor, |key, entry| {
                clients.learn_entry(key, entry);
            })
        };
        if let Err(error) = read {
            warn!("{error:#}");
            self.resync.walk = None;
            return;
        }
        if walk.cursor.done() && walk.cursor6.done() {
            let Some(walk) = self.resync.walk.take() else { return };
            let gone = self.model.clients.sweep() + self.model.clients6.sweep();
            let ms = walk.started.elapsed().as_millis();
            if self.resync.resynced_once {
                info!(
                    "client model read again from the data path ({} events lost meanwhile): \
                     {} clients, {gone} evicted, in {ms} ms",
                    walk.lost,
                    self.model.clients.len() + self.model.clients6.len(),
                );
            } else if self.resync.adopted {
                info!(
                    "adopted the data path of an earlier agent: {} clients kept (read in {ms} ms)",
                    self.model.clients.len() + self.model.clients6.len()
                );
            }
            if !walk.then_tell.is_empty() {
                let told = self.tell_slots(&walk.then_tell);
                info!("{told} clients moved off slaves that went down meanwhile; telling them");
            }
            self.resync.resynced = Instant::now();
            self.resync.resynced_once = true;
        }
    }
}

fn ip(addr: &Ipv4) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(*addr)
}

/// " in VLAN N", or nothing for untagged.
fn in_vlan(vlan: u16) -> String {
    if vlan == 0 { String::new() } else { format!(" in VLAN {vlan}") }
}

fn ip6(addr: &Ipv6) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from(*addr)
}
