//! The transmit path's client cache: a per-CPU, direct-mapped copy of the
//! slots of the clients `alb_tx` sent to last, in front of `ALB_CLIENTS`.
//!
//! A hash look-up in `ALB_CLIENTS` (hashing, the bucket, the compare, the
//! LRU mark) was most of what `alb_tx` spent on a known client's frame
//! (docs/profile-2026-11-30.md). The cache holds only the client's *slot*,
//! never its slave: `ALB_SLOTS` is still read on every frame, and the
//! slave's state checked, so the agent moving slots away from a failed or
//! removed slave takes effect at once, cache or not. What a slot cannot
//! follow is a client leaving the table (the agent forgets it, or the LRU
//! evicts it) and coming back with another slot; so an entry is valid only
//! under the two generations it was stored with: the agent's
//! (`Config::clients_generation`, bumped after every deletion from the
//! table) and the data path's own (bumped after every insertion, which may
//! evict). Any change of either invalidates every entry at once.

use crate::maps::ClientKey;

/// Entries per CPU (a power of two).
pub const CLIENT_CACHE_ENTRIES: u32 = 256;

/// One cache entry (`ALB_TX_CACHE[index]`, per CPU). Zeroed, it is empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedClient {
    pub key: ClientKey,
    pub slot: u32,
    /// [`Generations::stamp`] when stored; 0: empty.
    pub stamp: u64,
}

/// The generations an entry is valid under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generations {
    /// `Config::clients_generation`: the agent's.
    pub agent: u32,
    /// The data path's own, bumped after every insertion into the table.
    pub local: u32,
}

impl Generations {
    /// Both in one word (the agent's modulo 2^31), with the top bit set
    /// so that no stamp is 0.
    #[inline(always)]
    pub const fn stamp(self) -> u64 {
        (1 << 63) | (((self.agent & 0x7FFF_FFFF) as u64) << 32) | self.local as u64
    }
}

/// The entry `key` maps to: a multiplicative hash of both addresses and
/// the VLAN (Fibonacci hashing, the top bits of the product).
#[inline(always)]
pub const fn index(key: &ClientKey) -> u32 {
    let client = u32::from_be_bytes(key.client_ip);
    let server = u32::from_be_bytes(key.server_ip);
    let mixed = client ^ server.rotate_left(16) ^ (key.vlan as u32).wrapping_mul(0x0001_0001);
    mixed.wrapping_mul(0x9E37_79B1) >> (32 - CLIENT_CACHE_ENTRIES.trailing_zeros())
}

/// The slot `entry` holds for `key`, if it holds `key` under `now`.
#[inline(always)]
pub fn hit(entry: &CachedClient, key: &ClientKey, now: Generations) -> Option<u32> {
    let same = entry.stamp == now.stamp()
        && entry.key.client_ip == key.client_ip
        && entry.key.server_ip == key.server_ip
        && entry.key.vlan == key.vlan;
    same.then_some(entry.slot)
}

/// The entry that remembers `key`'s `slot` under `now`.
#[inline(always)]
pub const fn fill(key: &ClientKey, slot: u32, now: Generations) -> CachedClient {
    CachedClient { key: *key, slot, stamp: now.stamp() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Generations = Generations { agent: 3, local: 7 };

    fn key(client: u8) -> ClientKey {
        ClientKey::new([198, 18, 0, 1], [198, 18, 0, client], 0)
    }

    #[test]
    fn a_filled_entry_hits_for_its_key_only() {
        let entry = fill(&key(11), 5, NOW);
        assert_eq!(hit(&entry, &key(11), NOW), Some(5));
        assert_eq!(hit(&entry, &key(12), NOW), None, "another client");
        let other_vlan = ClientKey::new([198, 18, 0, 1], [198, 18, 0, 11], 7);
        assert_eq!(hit(&entry, &other_vlan, NOW), None, "the same addresses in another VLAN");
        let other_server = ClientKey::new([198, 18, 0, 2], [198, 18, 0, 11], 0);
        assert_eq!(hit(&entry, &other_server, NOW), None, "another server address");
    }

    #[test]
    fn a_new_generation_of_either_side_invalidates_every_entry() {
        let entry = fill(&key(11), 5, NOW);
        assert_eq!(hit(&entry, &key(11), Generations { agent: 4, ..NOW }), None, "agent forgot");
        assert_eq!(hit(&entry, &key(11), Generations { local: 8, ..NOW }), None, "insert");
    }

    #[test]
    fn an_empty_entry_never_hits_even_the_zero_key_at_generation_zero() {
        let zero = Generations { agent: 0, local: 0 };
        assert_eq!(hit(&CachedClient::default(), &ClientKey::default(), zero), None);
        assert_ne!(zero.stamp(), 0);
    }

    #[test]
    fn stamps_of_nearby_generations_differ() {
        let mut seen = std::collections::HashSet::new();
        for agent in 0..64 {
            for local in 0..64 {
                assert!(seen.insert(Generations { agent, local }.stamp()), "{agent}/{local}");
            }
        }
    }

    #[test]
    fn consecutive_clients_spread_over_the_entries() {
        let mut used = [0u32; CLIENT_CACHE_ENTRIES as usize];
        for client in 0..=255u8 {
            used[index(&key(client)) as usize] += 1;
        }
        let busiest = used.iter().max().copied().unwrap_or(0);
        assert!(busiest <= 3, "256 clients of one /24, at most 3 per entry: {busiest}");
        assert!(used.iter().all(|&n| n <= 3));
    }
}
