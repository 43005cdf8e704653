//! Client slots: the indirection between clients and slaves.
//!
//! Every client holds one of [`CLIENT_SLOTS`] slots for its life in the
//! table; `ALB_SLOTS[slot]` names the slave whose MAC the client was told
//! and which carries its traffic both ways (the way Katran's ring indirects
//! flows to reals). A failover, a failback or a new slave moves slots, so
//! the data path rewrites a few hundred array entries, whatever the number
//! of clients; the clients of the moved slots are then told their new MAC.
//!
//! [`Slots`] is the agent's copy of that array plus, per slot, the slave a
//! failure took it from (its home): a returning slave takes its own slots
//! back first. Loads are weighed by clients per slot (`weight`, kept by the
//! agent's client model), so clients, not slots, are spread evenly.

use alloc::vec::Vec;

use super::capacity::{Capacity, move_bound, normalized};
use crate::maps::{CLIENT_SLOTS, NO_SLAVE};

/// A slot move: `(slot, new slave)`.
pub(crate) type SlotMove = (usize, u32);

/// The slot array, each slot's home, and the slaves' capacities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slots {
    slave: Vec<u32>,
    home: Vec<Option<u32>>,
    capacity: Capacity,
}

impl Slots {
    /// Slots dealt over `usable` in turn: slot `i` to `usable[i % k]`, so
    /// that new clients, which take slots in turn, are dealt round-robin.
    pub fn new(usable: &[u8]) -> Self {
        Self::weighted(usable, Capacity::equal())
    }

    /// Slots dealt over `usable` in proportion to their capacity, in the
    /// interleaved order of a smooth weighted round-robin (nginx's): new
    /// clients, which take slots in turn, are dealt in that proportion from
    /// the first one on. Equal capacities give plain turns.
    pub fn weighted(usable: &[u8], capacity: Capacity) -> Self {
        let weight: Vec<i128> =
            usable.iter().map(|&u| i128::from(capacity.of(u32::from(u)))).collect();
        let total: i128 = weight.iter().sum();
        let mut current = alloc::vec![0i128; usable.len()];
        let slave = (0..CLIENT_SLOTS as usize)
            .map(|_| {
                for (c, w) in current.iter_mut().zip(&weight) {
                    *c += w;
                }
                let Some(best) = (0..usable.len()).max_by_key(|&i| (current[i], usize::MAX - i))
                else {
                    return NO_SLAVE;
                };
                current[best] -= total;
                u32::from(usable[best])
            })
            .collect();
        Self { slave, home: alloc::vec![None; CLIENT_SLOTS as usize], capacity }
    }

    /// The array as an earlier agent left it (homes are not pinned: they
    /// are forgotten across a restart).
    pub fn adopt(slave: Vec<u32>) -> Self {
        let mut slave = slave;
        slave.resize(CLIENT_SLOTS as usize, NO_SLAVE);
        Self { slave, home: alloc::vec![None; CLIENT_SLOTS as usize], capacity: Capacity::equal() }
    }

    /// New capacities (speeds read, or changed); the next
    /// [`Self::even_out`] deals by them.
    pub fn set_capacity(&mut self, capacity: Capacity) {
        self.capacity = capacity;
    }

    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    /// The slave of every slot, by slot.
    pub fn slaves(&self) -> &[u32] {
        &self.slave
    }

    pub fn slave_of(&self, slot: usize) -> u32 {
        self.slave.get(slot).copied().unwrap_or(NO_SLAVE)
    }

    /// The slave a failure took `slot` from, while it is away.
    pub fn home_of(&self, slot: usize) -> Option<u32> {
        self.home.get(slot).copied().flatten()
    }

    /// An adopted array points at the earlier agent's slave indices:
    /// `old_ifindex[i]` is the device of its slave `i`, `new_ifindex[j]`
    /// that of this agent's slave `j`. Keeps every slot on its device; a
    /// slot whose device is no longer a slave gets [`NO_SLAVE`] (then
    /// [`Self::move_off`]).
    pub fn remap(&mut self, old_ifindex: &[u32], new_ifindex: &[u32]) -> Vec<SlotMove> {
        let moves = super::remap(&self.slave, old_ifindex, new_ifindex);
        self.apply(&moves);
        moves
    }

    /// Moves every slot off slaves not in `usable` (a failure, a removal),
    /// each to the usable slave with the fewest clients (then the fewest
    /// slots, then enslave order), and remembers where it came from.
    pub fn move_off(&mut self, usable: &[u8], weight: &[u32]) -> Vec<SlotMove> {
        let mut moves = Vec::new();
        if usable.is_empty() {
            return moves;
        }
        let mut load = Loads::new(&self.slave, weight, usable, &self.capacity);
        for slot in 0..self.slave.len() {
            let from = self.slave[slot];
            if load.index(from).is_some() {
                continue;
            }
            let to = load.lightest();
            load.add(to, weight_of(weight, slot), 1);
            let to = load.slave(to);
            if from != NO_SLAVE && self.home[slot].is_none() {
                self.home[slot] = Some(from);
            }
            self.slave[slot] = to;
            moves.push((slot, to));
        }
        moves
    }

    /// After a slave joins or returns: slots on unusable slaves move off,
    /// slots whose home is usable again go home, then slots move from the
    /// slaves with the most clients to those with the fewest while that
    /// narrows the gap (slots away from home first, so a flapping slave
    /// does not drag the clients of healthy slaves along), and last, empty
    /// slots even out the slot counts so new clients are dealt evenly.
    pub fn even_out(&mut self, usable: &[u8], weight: &[u32]) -> Vec<SlotMove> {
        let before = self.slave.clone();
        self.move_off(usable, weight);
        if usable.is_empty() {
            return Vec::new();
        }
        let is_usable = |slave: u32| usable.iter().any(|&u| u32::from(u) == slave);
        for slot in 0..self.slave.len() {
            match self.home[slot] {
                Some(home) if home == self.slave[slot] => self.home[slot] = None,
                Some(home) if is_usable(home) => {
                    self.slave[slot] = home;
                    self.home[slot] = None;
                }
                _ => {}
            }
        }
        self.spread_clients(usable, weight);
        self.spread_empty(usable, weight);
        before
            .iter()
            .zip(&self.slave)
            .enumerate()
            .filter(|(_, (old, new))| old != new)
            .map(|(slot, (_, &new))| (slot, new))
            .collect()
    }

    /// A slave left for good: it is nobody's home any more.
    pub fn forget_home(&mut self, slave: u32) {
        for home in &mut self.home {
            if *home == Some(slave) {
                *home = None;
            }
        }
    }

    fn apply(&mut self, moves: &[SlotMove]) {
        for &(slot, slave) in moves {
            self.slave[slot] = slave;
        }
    }

    /// Moves weighted slots from the heaviest to the lightest slave while a
    /// move narrows their gap: each move picks the slot whose weight is
    /// closest to half the gap. Every move lowers the sum of squared loads,
    /// so this ends; at most one pass over the slots per move.
    fn spread_clients(&mut self, usable: &[u8], weight: &[u32]) {
        let mut load = Loads::new(&self.slave, weight, usable, &self.capacity);
        for _ in 0..self.slave.len() {
            let (heavy, light) = (load.heaviest(), load.lightest());
            // With equal capacities, the gap in clients.
            let gap = move_bound(
                load.clients[heavy],
                load.cap[heavy],
                load.clients[light],
                load.cap[light],
            );
            if gap <= 1 {
                break;
            }
            let (from, to) = (load.slave(heavy), load.slave(light));
            let rank = |slot: usize| match self.home[slot] {
                Some(home) if home == to => 0,
                Some(home) if home != from => 1,
                _ => 2,
            };
            let best = (0..self.slave.len())
                .filter(|&slot| self.slave[slot] == from)
                .map(|slot| (slot, u64::from(weight_of(weight, slot))))
                .filter(|&(_, w)| w > 0 && w < gap)
                .min_by_key(|&(slot, w)| (rank(slot), (gap / 2).abs_diff(w)));
            let Some((slot, w)) = best else { break };
            self.slave[slot] = to;
            load.add(heavy, 0, -1);
            load.clients[heavy] -= w;
            load.add(light, 0, 1);
            load.clients[light] += w;
        }
    }

    /// Moves empty slots from the slave with the most slots for its
    /// capacity to the one with the fewest until no move evens them further
    /// (with equal capacities: the counts differ by at most one).
    fn spread_empty(&mut self, usable: &[u8], weight: &[u32]) {
        let mut load = Loads::new(&self.slave, weight, usable, &self.capacity);
        for _ in 0..self.slave.len() {
            let most = (0..usable.len()).max_by_key(|&i| (load.slots_norm(i), usize::MAX - i));
            let fewest = (0..usable.len()).min_by_key(|&i| (load.slots_norm(i), i));
            let (Some(most), Some(fewest)) = (most, fewest) else { break };
            let count = |i: usize| u64::try_from(load.slots[i]).unwrap_or(0);
            if move_bound(count(most), load.cap[most], count(fewest), load.cap[fewest]) <= 1 {
                break;
            }
            let from = load.slave(most);
            // The last empty slot of `from`, so slots dealt early keep
            // their slave and the turn order of the first slots holds.
            let Some(slot) = (0..self.slave.len())
                .rev()
                .find(|&slot| self.slave[slot] == from && weight_of(weight, slot) == 0)
            else {
                break;
            };
            self.slave[slot] = load.slave(fewest);
            load.add(most, 0, -1);
            load.add(fewest, 0, 1);
        }
    }
}

fn weight_of(weight: &[u32], slot: usize) -> u32 {
    weight.get(slot).copied().unwrap_or(0)
}

/// Clients, slots and capacity per usable slave.
struct Loads<'a> {
    usable: &'a [u8],
    clients: Vec<u64>,
    slots: Vec<i64>,
    cap: Vec<u64>,
}

impl<'a> Loads<'a> {
    fn new(slave: &[u32], weight: &[u32], usable: &'a [u8], capacity: &Capacity) -> Self {
        let mut load = Self {
            usable,
            clients: alloc::vec![0; usable.len()],
            slots: alloc::vec![0; usable.len()],
            cap: usable.iter().map(|&u| capacity.of(u32::from(u))).collect(),
        };
        for (slot, &s) in slave.iter().enumerate() {
            if let Some(i) = load.index(s) {
                load.add(i, weight_of(weight, slot), 1);
            }
        }
        load
    }

    fn index(&self, slave: u32) -> Option<usize> {
        self.usable.iter().position(|&u| u32::from(u) == slave)
    }

    fn slave(&self, index: usize) -> u32 {
        u32::from(self.usable[index])
    }

    fn add(&mut self, index: usize, clients: u32, slots: i64) {
        self.clients[index] += u64::from(clients);
        self.slots[index] += slots;
    }

    fn clients_norm(&self, i: usize) -> u128 {
        normalized(self.clients[i], self.cap[i])
    }

    fn slots_norm(&self, i: usize) -> u128 {
        normalized(u64::try_from(self.slots[i]).unwrap_or(0), self.cap[i])
    }

    /// Fewest clients for its capacity, then fewest slots, then enslave order.
    fn lightest(&self) -> usize {
        (0..self.usable.len())
            .min_by_key(|&i| (self.clients_norm(i), self.slots_norm(i), i))
            .expect("at least one usable slave")
    }

    /// Most clients for its capacity, then most slots, then enslave order.
    fn heaviest(&self) -> usize {
        (0..self.usable.len())
            .max_by_key(|&i| (self.clients_norm(i), self.slots_norm(i), usize::MAX - i))
            .expect("at least one usable slave")
    }
}

#[cfg(test)]
mod tests {
    use std::vec;

    use super::*;

    const N: usize = CLIENT_SLOTS as usize;

    /// Clients per slave for slots with `weight`.
    fn clients_per(slots: &Slots, weight: &[u32], slaves: u32) -> Vec<u64> {
        (0..slaves)
            .map(|s| {
                (0..N)
                    .filter(|&i| slots.slave_of(i) == s)
                    .map(|i| u64::from(weight_of(weight, i)))
                    .sum()
            })
            .collect()
    }

    fn slots_per(slots: &Slots, slaves: u32) -> Vec<usize> {
        (0..slaves).map(|s| slots.slaves().iter().filter(|&&x| x == s).count()).collect()
    }

    /// `n` clients dealt in turn from slot 0, one per slot (the data path's
    /// dealing), as weights.
    fn dealt(n: usize) -> Vec<u32> {
        let mut weight = vec![0u32; N];
        for client in 0..n {
            weight[client % N] += 1;
        }
        weight
    }

    #[test]
    fn new_slots_deal_clients_in_turn() {
        let slots = Slots::new(&[0, 1, 2]);
        let first: Vec<u32> = (0..6).map(|i| slots.slave_of(i)).collect();
        assert_eq!(first, [0, 1, 2, 0, 1, 2]);
        assert_eq!(Slots::new(&[]).slave_of(0), NO_SLAVE);
        assert_eq!(slots.slave_of(N), NO_SLAVE, "out of range");
    }

    #[test]
    fn a_failure_moves_only_the_failed_slaves_slots_and_spreads_its_clients() {
        let weight = dealt(12);
        let mut slots = Slots::new(&[0, 1, 2]);
        let before = slots.clone();
        let moves = slots.move_off(&[0, 2], &weight);
        assert_eq!(moves.len(), slots_per(&before, 3)[1], "exactly slave 1's slots move");
        assert!(moves.iter().all(|&(slot, to)| before.slave_of(slot) == 1 && to != 1));
        assert_eq!(clients_per(&slots, &weight, 3), [6, 0, 6]);
        let per = slots_per(&slots, 3);
        assert!(per[0].abs_diff(per[2]) <= 1, "{per:?}");
        assert!(moves.iter().all(|&(slot, _)| slots.home_of(slot) == Some(1)));
    }

    #[test]
    fn a_returning_slave_takes_back_exactly_its_own_slots() {
        let weight = dealt(1000);
        let original = Slots::new(&[0, 1, 2]);
        let mut slots = original.clone();
        let away = slots.move_off(&[0, 2], &weight);
        let back = slots.even_out(&[0, 1, 2], &weight);
        assert_eq!(back.len(), away.len());
        assert_eq!(slots, original, "every slot is home again, no home left");
    }

    #[test]
    fn a_new_slave_gets_its_share_of_clients_with_few_moves() {
        for clients in [12, 1000, 100_000] {
            let weight = dealt(clients);
            let mut slots = Slots::new(&[0, 1]);
            let moves = slots.even_out(&[0, 1, 2], &weight);
            let per = clients_per(&slots, &weight, 3);
            let (max, min) = (per.iter().max().unwrap(), per.iter().min().unwrap());
            let per_slot = (clients as u64).div_ceil(N as u64);
            assert!(max - min <= per_slot, "{clients} clients: {per:?}");
            let moved: u64 = moves.iter().map(|&(s, _)| u64::from(weight[s])).sum();
            assert!(moved <= (clients as u64).div_ceil(3) + per_slot, "moved {moved} of {clients}");
            let counts = slots_per(&slots, 3);
            assert!(
                counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1 || clients >= N,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn twelve_clients_over_three_slaves_after_a_join_are_four_each() {
        let weight = dealt(12);
        let mut slots = Slots::new(&[0, 1]);
        slots.even_out(&[0, 1, 2], &weight);
        assert_eq!(clients_per(&slots, &weight, 3), [4, 4, 4]);
    }

    #[test]
    fn displaced_slots_move_before_slots_at_home() {
        // Slave 1 failed (its slots went to 0 and 2), then slave 3 joins
        // while 1 is still down: slave 3's share comes from the displaced
        // slots first.
        let weight = dealt(N);
        let mut slots = Slots::new(&[0, 1, 2]);
        slots.move_off(&[0, 2], &weight);
        let before = slots.clone();
        let moves = slots.even_out(&[0, 2, 3], &weight);
        assert!(!moves.is_empty());
        let displaced = moves.iter().filter(|&&(slot, _)| before.home_of(slot) == Some(1)).count();
        // Each giving slave holds about half the displaced slots; exact
        // balance may take one slot at home from each.
        assert!(displaced + 2 >= moves.len(), "{displaced} of {} moves displaced", moves.len());
        assert!(displaced > 300, "{displaced}");
    }

    #[test]
    fn nothing_moves_when_balanced_or_without_usable_slaves() {
        let weight = dealt(100);
        let mut slots = Slots::new(&[0, 1]);
        assert!(slots.even_out(&[0, 1], &weight).is_empty());
        assert!(slots.move_off(&[0, 1], &weight).is_empty());
        assert!(slots.move_off(&[], &weight).is_empty());
        assert!(slots.even_out(&[], &weight).is_empty());
    }

    #[test]
    fn all_down_then_one_back_takes_everything() {
        let weight = dealt(10);
        let mut slots = Slots::new(&[0, 1]);
        assert!(slots.move_off(&[], &weight).is_empty(), "nowhere to go");
        let moves = slots.even_out(&[1], &weight);
        assert_eq!(moves.len(), N / 2);
        assert!(slots.slaves().iter().all(|&s| s == 1));
    }

    #[test]
    fn an_adopted_array_follows_devices() {
        let mut slots = Slots::adopt(vec![0, 1, 0, 1]);
        // The old agent's slave 0 was ifindex 7, slave 1 ifindex 9; ours
        // are 9 then 7, and 7 is gone after.
        let moves = slots.remap(&[7, 9], &[9, 7]);
        assert_eq!(slots.slaves()[..4], [1, 0, 1, 0]);
        assert_eq!(moves.len(), 4);
        let moves = Slots::adopt(vec![0, 1]).remap(&[7, 9], &[9]);
        assert!(moves.contains(&(0, NO_SLAVE)));
        assert!(moves.contains(&(1, 0)));
    }

    #[test]
    fn a_forgotten_slave_is_nobodys_home() {
        let weight = dealt(10);
        let mut slots = Slots::new(&[0, 1]);
        slots.move_off(&[0], &weight);
        slots.forget_home(1);
        assert!((0..N).all(|s| slots.home_of(s).is_none()));
    }

    #[test]
    fn weighted_slots_deal_a_faster_slave_its_share_from_the_first_clients_on() {
        let capacity = Capacity::from_mbps(&[Some(10_000), Some(1_000)]);
        let slots = Slots::weighted(&[0, 1], capacity);
        let per = slots_per(&slots, 2);
        assert_eq!(per[0] + per[1], N);
        assert!(per[0].abs_diff(N * 10 / 11) <= 1, "10:1 slots: {per:?}");
        let first: Vec<u32> = (0..11).map(|i| slots.slave_of(i)).collect();
        assert_eq!(first.iter().filter(|&&s| s == 1).count(), 1, "one in 11: {first:?}");
        assert_eq!(Slots::weighted(&[0, 1], Capacity::equal()), Slots::new(&[0, 1]));
    }

    #[test]
    fn a_failover_and_a_return_keep_shares_by_speed() {
        // 3:1 speeds; 1200 clients dealt by the weighted slots.
        let capacity = Capacity::from_mbps(&[Some(3_000), Some(1_000), None]);
        let weight = dealt(1200);
        let original = Slots::weighted(&[0, 1], capacity.clone());
        assert_eq!(clients_per(&original, &weight, 2), [900, 300]);
        let mut slots = original.clone();
        slots.move_off(&[1], &weight);
        assert_eq!(clients_per(&slots, &weight, 2), [0, 1200]);
        slots.even_out(&[0, 1], &weight);
        assert_eq!(slots, original, "the return takes exactly its slots back");
        // A third slave of unknown speed counts as the slowest (1000).
        slots.even_out(&[0, 1, 2], &weight);
        let per = clients_per(&slots, &weight, 3);
        assert!(per[0].abs_diff(720) <= 2 && per[1].abs_diff(240) <= 2, "3:1:1: {per:?}");
        // With few clients, most slots are empty: they are dealt 3:1:1 too,
        // so new clients are.
        let few = dealt(50);
        let mut slots = Slots::weighted(&[0, 1], capacity);
        slots.even_out(&[0, 1, 2], &few);
        let per = slots_per(&slots, 3);
        assert!(per[0].abs_diff(N * 3 / 5) <= 2 && per[2].abs_diff(N / 5) <= 2, "3:1:1: {per:?}");
    }
}
