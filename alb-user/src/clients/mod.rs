//! The agent's own model of the client table: which clients exist, their
//! slot and MAC, grouped by slot, and the server addresses they talk to.
//!
//! Fed by the data path's events (a new client, a new MAC) and resynced
//! from batched reads of the kernel table when events were lost or the LRU
//! table may have evicted entries. Every decision that needs the clients
//! (who to tell after a failover, how many clients a slot carries, which
//! clients a foreign claim purges) reads this model, never the kernel
//! table. Plain Rust, no I/O.
//!
//! One model per family ([`Clients`] of [`ClientKey`] for IPv4, of
//! [`ClientKey6`] for IPv6), as the data path has one table per family;
//! both families' clients hold slots of the one slot array. A client is a
//! client of one VLAN (the VLAN ID is in its key), and a server address is
//! an address in one VLAN: the same address in two VLANs is two servers.

pub mod collapse;

use std::{
    collections::{BTreeSet, HashMap},
    hash::Hash,
};

use alb_common::{
    maps::{CLIENT_MAC_KNOWN, CLIENT_SLOTS, ClientEntry, ClientKey, ClientKey6},
    wire::{Ipv4, Ipv6, Mac},
};

/// A client table key: a server address and a client address in a VLAN.
pub trait ClientAddress: Copy + Eq + Hash + std::fmt::Debug {
    /// An address of the family.
    type Addr: Copy + Eq + Hash + std::fmt::Debug;
    /// The server address and its VLAN.
    fn server(&self) -> (Self::Addr, u16);
}

impl ClientAddress for ClientKey {
    type Addr = Ipv4;
    fn server(&self) -> (Ipv4, u16) {
        (self.server_ip, self.vlan)
    }
}

impl ClientAddress for ClientKey6 {
    type Addr = Ipv6;
    fn server(&self) -> (Ipv6, u16) {
        (self.server_ip, self.vlan)
    }
}

/// A client in its slot's list: its key and MAC (all zero while unknown: a
/// client the host asked for by broadcast, which has not answered yet).
/// The MAC lives here, not in the key index, so listing a slot's clients
/// (500,000 of them after a failover) is a copy, not a lookup per client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member<K> {
    key: K,
    mac: Mac,
}

const UNKNOWN: Mac = [0; 6];

/// A client with a known MAC, as telling needs it.
pub type Known<K = ClientKey> = (K, Mac);

/// Where a client is in the model, and the mark of the last walk of the
/// kernel table (or event) that saw it.
#[derive(Clone, Copy, Debug)]
struct Place {
    slot: u16,
    mark: u8,
}

#[derive(Debug)]
pub struct Clients<K: ClientAddress = ClientKey> {
    /// Each client's slot.
    slot_of: HashMap<K, Place>,
    /// The mark of the current walk: clients not seen by it (nor by an
    /// event meanwhile) were evicted from the kernel table.
    mark: u8,
    by_slot: Vec<Vec<Member<K>>>,
    /// Clients per server address in its VLAN (a foreign claim can concern
    /// only these).
    servers: HashMap<(K::Addr, u16), u32>,
}

impl<K: ClientAddress> Default for Clients<K> {
    fn default() -> Self {
        Self {
            slot_of: HashMap::new(),
            mark: 0,
            by_slot: vec![Vec::new(); CLIENT_SLOTS as usize],
            servers: HashMap::new(),
        }
    }
}

impl<K: ClientAddress> Clients<K> {
    /// Room for `capacity` clients up front: the index never rehashes
    /// (which would briefly hold two copies) while it fills.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { slot_of: HashMap::with_capacity(capacity), ..Self::default() }
    }

    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    /// A client dealt `slot` (new, or re-created after the table evicted
    /// it); `mac` if known. Returns whether it was new to the model.
    pub fn learn(&mut self, key: K, slot: u32, mac: Option<Mac>) -> bool {
        let Some(slot) = slot_index(slot) else { return false };
        let mark = self.mark;
        match self.slot_of.get_mut(&key) {
            Some(place) if place.slot == slot => {
                place.mark = mark;
                if let Some(mac) = mac {
                    if let Some(member) = member_mut(&mut self.by_slot[usize::from(slot)], &key) {
                        member.mac = mac;
                    }
                }
                false
            }
            Some(place) => {
                let kept = remove_from(&mut self.by_slot[usize::from(place.slot)], &key);
                let mac = mac.or_else(|| kept.map(|m| m.mac)).unwrap_or(UNKNOWN);
                self.by_slot[usize::from(slot)].push(Member { key, mac });
                *place = Place { slot, mark };
                false
            }
            None => {
                self.slot_of.insert(key, Place { slot, mark });
                self.by_slot[usize::from(slot)].push(Member { key, mac: mac.unwrap_or(UNKNOWN) });
                *self.servers.entry(key.server()).or_insert(0) += 1;
                true
            }
        }
    }

    /// A client's MAC changed (or became known).
    pub fn set_mac(&mut self, key: K, slot: u32, mac: Mac) {
        self.learn(key, slot, Some(mac));
    }

    /// The client's slot and MAC, if known.
    pub fn get(&self, key: &K) -> Option<(u32, Option<Mac>)> {
        let slot = self.slot_of.get(key)?.slot;
        let mac = self.by_slot[usize::from(slot)]
            .iter()
            .find(|m| m.key == *key)
            .and_then(|m| (m.mac != UNKNOWN).then_some(m.mac));
        Some((u32::from(slot), mac))
    }

    /// Whether some client talks to `ip` (in a VLAN) as its server address.
    pub fn is_server(&self, ip: &(K::Addr, u16)) -> bool {
        self.servers.contains_key(ip)
    }

    /// The VLANs some client is in (0: untagged), from the server
    /// addresses (a handful), not from the clients (a million).
    pub fn vlans(&self) -> BTreeSet<u16> {
        self.servers.keys().map(|&(_, vlan)| vlan).collect()
    }

    /// Clients per slot: the weights slot moves are balanced by.
    pub fn weights(&self) -> Vec<u32> {
        self.by_slot.iter().map(|keys| u32::try_from(keys.len()).unwrap_or(u32::MAX)).collect()
    }

    /// The clients of `slot` whose MAC is known.
    pub fn of_slot(&self, slot: usize) -> Vec<Known<K>> {
        self.by_slot.get(slot).map_or_else(Vec::new, |members| {
            members.iter().filter(|m| m.mac != UNKNOWN).map(|m| (m.key, m.mac)).collect()
        })
    }

    /// The clients of server address `server` whose MAC is known, by slot,
    /// except those `skip` says no.
    pub fn of_server(
        &self,
        server: &(K::Addr, u16),
        skip: impl Fn(&K, usize) -> bool,
    ) -> Vec<(usize, Vec<Known<K>>)> {
        if !self.is_server(server) {
            return Vec::new();
        }
        self.by_slot
            .iter()
            .enumerate()
            .filter_map(|(slot, members)| {
                let known: Vec<Known<K>> = members
                    .iter()
                    .filter(|m| m.key.server() == *server && m.mac != UNKNOWN)
                    .filter(|m| !skip(&m.key, slot))
                    .map(|m| (m.key, m.mac))
                    .collect();
                (!known.is_empty()).then_some((slot, known))
            })
            .collect()
    }

    /// Forgets every client of server address `server` (in its VLAN);
    /// returns them.
    pub fn forget_server(&mut self, server: &(K::Addr, u16)) -> Vec<K> {
        if self.servers.remove(server).is_none() {
            return Vec::new();
        }
        let mut gone = Vec::new();
        for members in &mut self.by_slot {
            members.retain(|m| {
                let keep = m.key.server() != *server;
                if !keep {
                    gone.push(m.key);
                }
                keep
            });
        }
        for key in &gone {
            self.slot_of.remove(key);
        }
        gone
    }

    /// Starts a walk of the kernel table ([`Self::learn_entry`] for each
    /// entry read, then [`Self::sweep`]); events keep being applied
    /// meanwhile.
    pub fn begin_walk(&mut self) {
        self.mark = self.mark.wrapping_add(1);
    }

    /// Ends a walk: forgets the clients neither it nor an event saw since
    /// [`Self::begin_walk`] (the kernel's LRU table evicted them); returns
    /// how many.
    pub fn sweep(&mut self) -> usize {
        let mark = self.mark;
        let gone: std::collections::HashSet<K> =
            self.slot_of.iter().filter(|(_, p)| p.mark != mark).map(|(key, _)| *key).collect();
        if gone.is_empty() {
            return 0;
        }
        for key in &gone {
            self.slot_of.remove(key);
            if let Some(count) = self.servers.get_mut(&key.server()) {
                *count -= 1;
                if *count == 0 {
                    self.servers.remove(&key.server());
                }
            }
        }
        for members in &mut self.by_slot {
            members.retain(|m| !gone.contains(&m.key));
        }
        gone.len()
    }

    /// One entry of the kernel's table, as a walk reads it.
    pub fn learn_entry(&mut self, key: &K, entry: &ClientEntry) {
        let mac = (entry.flags & CLIENT_MAC_KNOWN != 0).then_some(entry.mac);
        self.learn(*key, entry.slot, mac);
    }
}

fn slot_index(slot: u32) -> Option<u16> {
    (slot < CLIENT_SLOTS).then(|| u16::try_from(slot).ok()).flatten()
}

fn member_mut<'a, K: PartialEq>(
    members: &'a mut [Member<K>],
    key: &K,
) -> Option<&'a mut Member<K>> {
    members.iter_mut().find(|m| m.key == *key)
}

fn remove_from<K: PartialEq>(members: &mut Vec<Member<K>>, key: &K) -> Option<Member<K>> {
    let at = members.iter().position(|m| m.key == *key)?;
    Some(members.swap_remove(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: Ipv4 = [198, 18, 0, 1];
    const OTHER: Ipv4 = [198, 18, 0, 2];

    fn key(server: Ipv4, last: u8) -> ClientKey {
        ClientKey::new(server, [198, 18, 0, last], 0)
    }

    fn mac(last: u8) -> Mac {
        [2, 0, 0, 0, 0, last]
    }

    #[test]
    fn clients_are_learned_once_and_grouped_by_slot() {
        let mut clients = Clients::default();
        assert!(clients.learn(key(SERVER, 11), 3, Some(mac(11))));
        assert!(!clients.learn(key(SERVER, 11), 3, None), "known already");
        assert!(clients.learn(key(SERVER, 12), 3, None));
        assert_eq!(clients.len(), 2);
        assert_eq!(clients.weights()[3], 2);
        // Only clients with a known MAC can be told.
        assert_eq!(clients.of_slot(3), [(key(SERVER, 11), mac(11))]);
        clients.set_mac(key(SERVER, 12), 3, mac(12));
        assert_eq!(clients.of_slot(3).len(), 2);
        assert_eq!(clients.get(&key(SERVER, 11)), Some((3, Some(mac(11)))));
        assert!(!clients.learn(key(SERVER, 13), CLIENT_SLOTS, None), "a bad slot is ignored");
    }

    #[test]
    fn a_recreated_client_moves_to_its_new_slot() {
        let mut clients = Clients::default();
        clients.learn(key(SERVER, 11), 3, Some(mac(11)));
        clients.learn(key(SERVER, 11), 9, None);
        assert_eq!(clients.weights()[3], 0);
        assert_eq!(clients.weights()[9], 1);
        assert_eq!(clients.get(&key(SERVER, 11)), Some((9, Some(mac(11)))), "MAC kept");
    }

    #[test]
    fn a_foreign_claim_forgets_every_client_of_that_address_only() {
        let mut clients = Clients::default();
        clients.learn(key(SERVER, 11), 0, Some(mac(11)));
        clients.learn(key(OTHER, 11), 1, Some(mac(11)));
        clients.learn(key(OTHER, 12), 1, Some(mac(12)));
        assert!(clients.is_server(&(OTHER, 0)));
        let mut gone = clients.forget_server(&(OTHER, 0));
        gone.sort();
        assert_eq!(gone, [key(OTHER, 11), key(OTHER, 12)]);
        assert!(!clients.is_server(&(OTHER, 0)));
        assert_eq!(clients.len(), 1);
        assert_eq!(clients.weights()[1], 0);
        assert!(clients.forget_server(&(OTHER, 0)).is_empty());
    }

    #[test]
    fn clients_of_a_server_come_by_slot_without_the_skipped() {
        let mut clients = Clients::default();
        clients.learn(key(SERVER, 11), 0, Some(mac(11)));
        clients.learn(key(SERVER, 12), 1, Some(mac(12)));
        clients.learn(key(SERVER, 13), 1, Some(mac(13)));
        clients.learn(key(OTHER, 14), 1, Some(mac(14)));
        let groups = clients.of_server(&(SERVER, 0), |key, _| key.client_ip[3] == 12);
        assert_eq!(
            groups,
            [(0, vec![(key(SERVER, 11), mac(11))]), (1, vec![(key(SERVER, 13), mac(13))])]
        );
        assert!(clients.of_server(&([9, 9, 9, 9], 0), |_, _| false).is_empty());
    }

    #[test]
    fn the_same_addresses_in_two_vlans_are_two_clients_of_two_servers() {
        let mut clients = Clients::default();
        let in_vlan = |vlan| ClientKey::new(SERVER, [198, 18, 0, 11], vlan);
        assert!(clients.learn(in_vlan(100), 0, Some(mac(11))));
        assert!(clients.learn(in_vlan(200), 1, Some(mac(12))), "another VLAN: another client");
        assert_eq!(clients.len(), 2);
        assert_eq!(clients.vlans(), BTreeSet::from([100, 200]));
        assert_eq!(
            clients.of_server(&(SERVER, 100), |_, _| false),
            [(0, vec![(in_vlan(100), mac(11))])]
        );
        // A foreign claim in VLAN 200 leaves VLAN 100's clients alone.
        assert_eq!(clients.forget_server(&(SERVER, 200)), [in_vlan(200)]);
        assert_eq!(clients.get(&in_vlan(100)), Some((0, Some(mac(11)))));
        assert_eq!(clients.vlans(), BTreeSet::from([100]));
    }

    #[test]
    fn ipv6_clients_are_modelled_alike() {
        let server = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let key6 = |last: u8| {
            let mut client = server;
            client[15] = last;
            ClientKey6::new(server, client, 0)
        };
        let mut clients: Clients<ClientKey6> = Clients::default();
        assert!(clients.learn(key6(11), 5, Some(mac(11))));
        assert!(clients.learn(key6(12), 5, None));
        assert_eq!(clients.of_slot(5), [(key6(11), mac(11))]);
        assert!(clients.is_server(&(server, 0)));
        assert_eq!(clients.forget_server(&(server, 0)).len(), 2);
        assert!(clients.is_empty());
    }

    #[test]
    fn a_walk_forgets_what_neither_it_nor_an_event_saw() {
        let mut clients = Clients::default();
        clients.learn(key(SERVER, 11), 1, Some(mac(11)));
        clients.learn(key(SERVER, 12), 2, Some(mac(12)));
        clients.learn(key(OTHER, 13), 3, Some(mac(13)));
        clients.begin_walk();
        // The walk sees 11; an event meanwhile brings 14; 12 and 13 were evicted.
        let entry = ClientEntry {
            mac: mac(11),
            slot: 1,
            flags: CLIENT_MAC_KNOWN,
            ..ClientEntry::default()
        };
        clients.learn_entry(&key(SERVER, 11), &entry);
        clients.learn(key(SERVER, 14), 4, None);
        assert_eq!(clients.sweep(), 2);
        assert_eq!(clients.len(), 2);
        assert_eq!(clients.get(&key(SERVER, 12)), None);
        assert_eq!(clients.weights()[2], 0);
        assert!(!clients.is_server(&(OTHER, 0)), "its last client is gone");
        assert!(clients.is_server(&(SERVER, 0)));
        clients.begin_walk();
        clients.learn_entry(&key(SERVER, 11), &entry);
        clients.learn(key(SERVER, 14), 4, None);
        assert_eq!(clients.sweep(), 0);
    }
}
