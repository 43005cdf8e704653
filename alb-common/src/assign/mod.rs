//! Assignment policy: which transmit bucket a destination falls in, and how
//! buckets and clients are dealt over the usable slaves.

use crate::{
    maps::TX_BUCKETS,
    wire::{Ipv4, Ipv6},
};

const BUCKET_BITS: u32 = TX_BUCKETS.trailing_zeros();

/// Fibonacci hashing of a folded address: consecutive addresses (a /24 of
/// clients) land in different buckets, unlike the kernel's XOR fold.
#[inline(always)]
const fn bucket_of_word(word: u32) -> u32 {
    word.wrapping_mul(0x9e37_79b1) >> (32 - BUCKET_BITS)
}

/// The transmit bucket of an IPv4 destination.
#[inline(always)]
pub const fn bucket_of_v4(addr: &Ipv4) -> u32 {
    bucket_of_word(u32::from_be_bytes(*addr))
}

/// The transmit bucket of an IPv6 destination.
#[inline(always)]
pub fn bucket_of_v6(addr: &Ipv6) -> u32 {
    let mut folded = 0u32;
    let mut i = 0;
    while i < 4 {
        let word = [addr[4 * i], addr[4 * i + 1], addr[4 * i + 2], addr[4 * i + 3]];
        folded = folded.rotate_left(5) ^ u32::from_be_bytes(word);
        i += 1;
    }
    bucket_of_word(folded)
}

/// The slave of bucket `bucket` when buckets are dealt evenly over `usable`
/// (slave indices in enslave order).
pub fn initial_bucket_slave(bucket: u32, usable: &[u8]) -> Option<u8> {
    if usable.is_empty() {
        return None;
    }
    usable.get(bucket as usize % usable.len()).copied()
}

#[cfg(any(test, feature = "alloc"))]
pub use capacity::Capacity;
#[cfg(any(test, feature = "alloc"))]
pub use redeal::{even_out, move_off, rebalance_by_load, remap};
#[cfg(any(test, feature = "alloc"))]
pub use slots::Slots;

#[cfg(any(test, feature = "alloc"))]
mod capacity;
#[cfg(any(test, feature = "alloc"))]
mod slots;

#[cfg(any(test, feature = "alloc"))]
mod redeal {
    use alloc::{
        collections::{BTreeMap, BTreeSet},
        vec::Vec,
    };

    use super::capacity::{Capacity, move_bound, normalized};

    /// Moves every item (client or bucket) whose slave is not in `usable`
    /// onto the usable slaves, one at a time to the slave with the fewest
    /// items for its capacity (ties: enslave order). Returns `(item, new
    /// slave)` moves.
    pub fn move_off(assigned: &[u32], usable: &[u8], capacity: &Capacity) -> Vec<(usize, u32)> {
        let mut counts = counts(assigned, usable);
        let mut moves = Vec::new();
        if usable.is_empty() {
            return moves;
        }
        for (item, slave) in assigned.iter().enumerate() {
            if usable.iter().any(|&u| u32::from(u) == *slave) {
                continue;
            }
            let target = least(&counts, capacity);
            counts[target].1 += 1;
            moves.push((item, counts[target].0));
        }
        moves
    }

    /// Moves as few items (buckets) as possible so that the usable slaves'
    /// counts are as even as their capacities allow (with equal capacities:
    /// differ by at most one), after a slave joins or returns. Items on
    /// unusable slaves are moved off first; the highest-numbered items of
    /// the fullest slave move first. O(n + moves x slaves). (Clients move
    /// by slot: `Slots::even_out`, which also brings slots home.)
    pub fn even_out(assigned: &[u32], usable: &[u8], capacity: &Capacity) -> Vec<(usize, u32)> {
        let moves = move_off(assigned, usable, capacity);
        if usable.is_empty() {
            return moves;
        }
        let mut current: Vec<u32> = assigned.to_vec();
        for &(item, slave) in &moves {
            current[item] = slave;
        }
        // Per usable slave, its items, lowest index first (popped from the end).
        let mut items: Vec<Vec<usize>> = usable.iter().map(|_| Vec::new()).collect();
        for (item, &slave) in current.iter().enumerate() {
            if let Some(i) = usable.iter().position(|&u| u32::from(u) == slave) {
                items[i].push(item);
            }
        }
        let cap = |i: usize| capacity.of(u32::from(usable[i]));
        let len = |items: &[Vec<usize>], i: usize| items[i].len() as u64;
        loop {
            let most = (0..usable.len())
                .max_by_key(|&i| (normalized(len(&items, i), cap(i)), usize::MAX - i));
            let least = (0..usable.len()).min_by_key(|&i| (normalized(len(&items, i), cap(i)), i));
            let (Some(most), Some(least)) = (most, least) else { break };
            if move_bound(len(&items, most), cap(most), len(&items, least), cap(least)) <= 1 {
                break;
            }
            let Some(item) = items[most].pop() else { break };
            items[least].push(item);
            current[item] = u32::from(usable[least]);
        }
        current
            .iter()
            .enumerate()
            .filter(|&(item, &slave)| assigned[item] != slave)
            .map(|(item, &slave)| (item, slave))
            .collect()
    }

    /// Moves transmit buckets from the busiest usable slave to the least
    /// busy one while a move narrows the gap between them, and only while
    /// the gap is more than `tolerance` (a fraction of the total, e.g. 0.1):
    /// a bucket moves only when balance really improves, so flows stay put
    /// otherwise (the kernel re-picks every bucket every 10 s). `load` is
    /// each bucket's bytes over the last interval.
    ///
    /// `baseline[slave]` is what each slave carried outside the buckets
    /// (traffic to clients, which follows the client's slave, and the
    /// active slave's broadcasts): buckets are balanced around it, as the
    /// kernel counts its unbalanced load.
    pub fn rebalance_by_load(
        assigned: &[u32],
        load: &[u64],
        baseline: &[u64],
        usable: &[u8],
        capacity: &Capacity,
        tolerance: f64,
    ) -> Vec<(usize, u32)> {
        let mut moves: BTreeMap<usize, u32> = BTreeMap::new();
        if usable.len() < 2 {
            return Vec::new();
        }
        let load_of = |bucket: usize| load.get(bucket).copied().unwrap_or(0);
        // Per usable slave: its load (buckets + baseline) and its loaded
        // buckets ordered by (load, bucket), so the bucket that best
        // closes a gap is a range query: O(n log n) in all.
        let mut totals: Vec<u64> =
            usable.iter().map(|&u| baseline.get(usize::from(u)).copied().unwrap_or(0)).collect();
        let mut sets: Vec<BTreeSet<(u64, usize)>> =
            usable.iter().map(|_| BTreeSet::new()).collect();
        for (bucket, &slave) in assigned.iter().enumerate() {
            if let Some(i) = usable.iter().position(|&u| u32::from(u) == slave) {
                totals[i] += load_of(bucket);
                if load_of(bucket) > 0 {
                    sets[i].insert((load_of(bucket), bucket));
                }
            }
        }
        let total: u64 = load.iter().sum::<u64>() + baseline.iter().sum::<u64>();
        #[expect(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a tolerance on byte counts, precision is irrelevant"
        )]
        let threshold = (total as f64 * tolerance) as u64;
        // Each move strictly narrows the busiest-to-idlest gap, so this ends;
        // the bound only caps the work per interval.
        let cap = |i: usize| capacity.of(u32::from(usable[i]));
        for _ in 0..assigned.len() {
            let busy = (0..usable.len())
                .max_by_key(|&i| (normalized(totals[i], cap(i)), usize::MAX - i))
                .unwrap_or(0);
            let idle =
                (0..usable.len()).min_by_key(|&i| (normalized(totals[i], cap(i)), i)).unwrap_or(0);
            // With equal capacities, the gap between the two.
            let gap = move_bound(totals[busy], cap(busy), totals[idle], cap(idle));
            if gap <= threshold.max(1) {
                break;
            }
            // The bucket whose move leaves the smallest gap: load closest
            // to gap/2, strictly below gap (ties: the lower bucket).
            let half = gap / 2;
            let set = &sets[busy];
            let below = set.range(..=(half, usize::MAX)).next_back().map(|&(l, _)| l);
            let below = below.and_then(|l| set.range((l, 0)..).next().copied());
            let above = set.range((half, 0)..).next().copied().filter(|&(l, _)| l < gap);
            let best = match (below, above) {
                (Some(b), Some(a)) => {
                    let (db, da) = (half - b.0, a.0 - half);
                    if db < da || (db == da && b.1 < a.1) { Some(b) } else { Some(a) }
                }
                (b, a) => b.or(a),
            };
            let Some((bucket_load, bucket)) = best else { break };
            sets[busy].remove(&(bucket_load, bucket));
            sets[idle].insert((bucket_load, bucket));
            totals[busy] -= bucket_load;
            totals[idle] += bucket_load;
            moves.insert(bucket, u32::from(usable[idle]));
        }
        moves.into_iter().filter(|&(bucket, slave)| assigned[bucket] != slave).collect()
    }

    /// Items (clients, buckets) of a table an earlier agent left point at
    /// that agent's slave indices; `old_ifindex[i]` is the device of its
    /// slave `i`, `new_ifindex[j]` the device of this agent's slave `j`.
    /// Returns the moves that keep every item on the same device (an item
    /// whose device is no longer a slave gets `u32::MAX`, for `move_off`).
    pub fn remap(assigned: &[u32], old_ifindex: &[u32], new_ifindex: &[u32]) -> Vec<(usize, u32)> {
        let new_index = |old: u32| -> u32 {
            let device = usize::try_from(old).ok().and_then(|i| old_ifindex.get(i)).copied();
            device
                .filter(|&ifindex| ifindex != 0)
                .and_then(|ifindex| new_ifindex.iter().position(|&n| n == ifindex))
                .and_then(|j| u32::try_from(j).ok())
                .unwrap_or(u32::MAX)
        };
        assigned
            .iter()
            .enumerate()
            .filter_map(|(item, &slave)| {
                let moved = new_index(slave);
                (moved != slave).then_some((item, moved))
            })
            .collect()
    }

    fn counts(assigned: &[u32], usable: &[u8]) -> Vec<(u32, usize)> {
        usable
            .iter()
            .map(|&u| (u32::from(u), assigned.iter().filter(|&&s| s == u32::from(u)).count()))
            .collect()
    }

    /// The slave with the fewest items for its capacity (ties: enslave order).
    fn least(counts: &[(u32, usize)], capacity: &Capacity) -> usize {
        let load = |&(slave, count): &(u32, usize)| normalized(count as u64, capacity.of(slave));
        let mut best = 0;
        for (i, entry) in counts.iter().enumerate() {
            if load(entry) < load(&counts[best]) {
                best = i;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_stay_in_range() {
        for last in 0..=255u8 {
            assert!(bucket_of_v4(&[198, 18, 0, last]) < TX_BUCKETS);
            let mut v6 = [0u8; 16];
            v6[15] = last;
            assert!(bucket_of_v6(&v6) < TX_BUCKETS);
        }
    }

    #[test]
    fn a_subnet_spreads_over_buckets() {
        let mut seen = std::collections::BTreeSet::new();
        for last in 0..=255u8 {
            seen.insert(bucket_of_v4(&[198, 18, 0, last]));
        }
        assert!(seen.len() > 200, "only {} distinct buckets for a /24", seen.len());
    }

    #[test]
    fn clients_of_a_failed_slave_are_dealt_over_the_survivors() {
        // Slaves 0, 1, 2; slave 1 failed with three clients.
        let assigned = [0, 1, 2, 1, 0, 1];
        let moves = move_off(&assigned, &[0, 2], &Capacity::equal());
        assert_eq!(moves.iter().map(|m| m.0).collect::<std::vec::Vec<_>>(), [1, 3, 5]);
        let mut after = assigned;
        for (item, slave) in moves {
            after[item] = slave;
        }
        let on = |s| after.iter().filter(|&&x| x == s).count();
        assert!(on(0).abs_diff(on(2)) <= 1, "{after:?}");
        assert_eq!(on(1), 0);
    }

    #[test]
    fn a_returning_slave_gets_its_share_with_fewest_moves() {
        let assigned = [0u32; 7];
        let moves = even_out(&assigned, &[0, 1], &Capacity::equal());
        assert_eq!(moves.len(), 3, "{moves:?}");
        assert!(moves.iter().all(|&(_, slave)| slave == 1));
        assert!(even_out(&[0, 1, 0, 1], &[0, 1], &Capacity::equal()).is_empty());
        assert!(even_out(&[], &[0, 1], &Capacity::equal()).is_empty());
        assert!(even_out(&[0, 1], &[], &Capacity::equal()).is_empty());
        // Off an unusable slave first, then evened out.
        let moves = even_out(&[2, 2, 0, 0, 0, 0], &[0, 1], &Capacity::equal());
        assert_eq!(moves.len(), 3, "{moves:?}");
    }

    #[test]
    fn load_rebalance_moves_the_bucket_that_best_closes_the_gap() {
        // Slave 0 carries 100 + 60 + 40, slave 1 carries 0.
        let assigned = [0, 0, 0, 1];
        let load = [100, 60, 40, 0];
        let moves = rebalance_by_load(&assigned, &load, &[], &[0, 1], &Capacity::equal(), 0.1);
        assert_eq!(moves, [(0, 1)], "100 moves: 100 against 100");
    }

    #[test]
    fn load_rebalance_counts_client_traffic_as_a_baseline() {
        // Buckets look balanced (50/50), but slave 1 also carries 400 to
        // its clients: a bucket moves off it.
        let moves = rebalance_by_load(
            &[0, 0, 1, 1],
            &[25, 25, 25, 25],
            &[0, 400],
            &[0, 1],
            &Capacity::equal(),
            0.1,
        );
        assert!(moves.iter().all(|&(_, slave)| slave == 0), "{moves:?}");
        assert!(!moves.is_empty());
    }

    #[test]
    fn load_rebalance_leaves_a_balanced_or_idle_table_alone() {
        assert!(
            rebalance_by_load(&[0, 1], &[50, 48], &[], &[0, 1], &Capacity::equal(), 0.1).is_empty()
        );
        assert!(
            rebalance_by_load(&[0, 0], &[0, 0], &[], &[0, 1], &Capacity::equal(), 0.1).is_empty()
        );
        assert!(
            rebalance_by_load(&[0, 0], &[10, 10], &[], &[0], &Capacity::equal(), 0.1).is_empty()
        );
        // One elephant bucket cannot be split: moving it would not help.
        assert!(
            rebalance_by_load(&[0, 1], &[1000, 0], &[], &[0, 1], &Capacity::equal(), 0.1)
                .is_empty()
        );
    }

    #[test]
    fn an_adopted_table_follows_devices_not_indices() {
        // The earlier agent had slaves [ifindex 5, ifindex 7]; this one was
        // started with [7, 5, 9]. Device 3 is gone.
        let moves = remap(&[0, 1, 1, 0], &[5, 7], &[7, 5, 9]);
        assert_eq!(moves, [(0, 1), (1, 0), (2, 0), (3, 1)]);
        assert_eq!(remap(&[0, 1], &[5, 7], &[5, 7]), []);
        assert_eq!(remap(&[2], &[5, 7, 3], &[5, 7]), [(0, u32::MAX)]);
    }

    #[test]
    fn buckets_are_dealt_evenly() {
        let usable = [0u8, 1];
        let on_first =
            (0..TX_BUCKETS).filter(|&b| initial_bucket_slave(b, &usable) == Some(0)).count();
        assert_eq!(on_first, TX_BUCKETS as usize / 2);
        assert_eq!(initial_bucket_slave(3, &[]), None);
    }

    #[test]
    fn buckets_follow_capacity() {
        use std::{vec, vec::Vec};
        let capacity = Capacity::from_mbps(&[Some(3_000), Some(1_000)]);
        let assigned = vec![0u32; 256];
        let moves = even_out(&assigned, &[0, 1], &capacity);
        assert_eq!(moves.len(), 64, "a quarter of the buckets to the 1G slave");
        let mut after = assigned;
        for (bucket, slave) in moves {
            after[bucket] = slave;
        }
        assert!(move_off(&after, &[0, 1], &capacity).is_empty());
        // Equal loads per bucket: 3:1 by load is balanced, 1:1 is not.
        let load = vec![10u64; 256];
        assert!(rebalance_by_load(&after, &load, &[], &[0, 1], &capacity, 0.01).is_empty());
        let halves: Vec<u32> = (0..256).map(|b| u32::from(b >= 128)).collect();
        let moves = rebalance_by_load(&halves, &load, &[], &[0, 1], &capacity, 0.01);
        let to_fast = moves.iter().filter(|&&(_, s)| s == 0).count();
        // Until the gap is within the tolerance: 64 would be exact.
        assert!((63..=64).contains(&to_fast), "64 buckets move to the 3G slave: {moves:?}");
    }
}
