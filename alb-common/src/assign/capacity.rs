//! Each slave's share of the traffic, by its link speed: bonding's
//! transmit load balancing weighs slaves by speed (a 10G and a 1G slave do
//! not get equal shares), and alb deals clients (receive) and buckets
//! (transmit) the same way. A slave whose speed is unknown counts as the
//! slowest known one; when no speed is known, all count as equal.

use alloc::vec::Vec;

/// Speeds by slave index (Mb/s; 0 when unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    mbps: Vec<u32>,
}

impl Capacity {
    /// Every slave alike (the weights of tests and of unknown speeds).
    pub fn equal() -> Self {
        Self::default()
    }

    /// From each slave's speed, by slave index.
    pub fn from_mbps(speeds: &[Option<u32>]) -> Self {
        Self { mbps: speeds.iter().map(|s| s.unwrap_or(0)).collect() }
    }

    /// The weight of slave `slave`.
    pub fn of(&self, slave: u32) -> u64 {
        let known = |s: &&u32| **s > 0;
        let slowest = self.mbps.iter().filter(known).min().copied().unwrap_or(1);
        let own = usize::try_from(slave).ok().and_then(|s| self.mbps.get(s)).copied().unwrap_or(0);
        u64::from(if own == 0 { slowest } else { own })
    }

    /// Whether every slave counts the same.
    pub fn is_equal(&self) -> bool {
        let mut known = self.mbps.iter().filter(|&&s| s > 0);
        let first = known.next();
        known.all(|s| Some(s) == first)
    }
}

/// How to compare two loads on slaves of different capacity: `load /
/// capacity`, in fixed point (no floats in no_std policy).
pub(crate) fn normalized(load: u64, capacity: u64) -> u128 {
    (u128::from(load) << 32) / u128::from(capacity.max(1))
}

/// Moving an item of weight `w` from the heavier slave (load `heavy`,
/// capacity `heavy_cap`) to the lighter one lowers the sum of load² /
/// capacity over the slaves exactly when `w < bound`, with `bound = 2 ×
/// (heavy × light_cap − light × heavy_cap) / (heavy_cap + light_cap)`; the
/// best move is the item closest to `bound / 2`. With equal capacities the
/// bound is the plain gap `heavy − light`. 0 when no move helps.
pub(crate) fn move_bound(heavy: u64, heavy_cap: u64, light: u64, light_cap: u64) -> u64 {
    let ahead =
        i128::from(heavy) * i128::from(light_cap) - i128::from(light) * i128::from(heavy_cap);
    if ahead <= 0 {
        return 0;
    }
    let bound = 2 * ahead / i128::from((heavy_cap + light_cap).max(1));
    u64::try_from(bound).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_speeds_count_as_the_slowest_known() {
        let capacity = Capacity::from_mbps(&[Some(10_000), None, Some(1_000)]);
        assert_eq!((capacity.of(0), capacity.of(1), capacity.of(2)), (10_000, 1_000, 1_000));
        assert_eq!(capacity.of(7), 1_000, "beyond the list: unknown");
        assert!(!capacity.is_equal());
        let unknown = Capacity::from_mbps(&[None, None]);
        assert_eq!((unknown.of(0), unknown.of(1)), (1, 1));
        assert!(unknown.is_equal() && Capacity::equal().is_equal());
        assert!(Capacity::from_mbps(&[Some(1000), None, Some(1000)]).is_equal());
    }

    #[test]
    fn the_bound_is_the_gap_for_equal_capacities() {
        assert_eq!(move_bound(10, 1, 4, 1), 6);
        assert_eq!(move_bound(10, 7, 4, 7), 6);
        assert_eq!(move_bound(4, 1, 10, 1), 0);
    }

    #[test]
    fn a_ten_times_faster_slave_may_carry_ten_times_the_load() {
        // 100 on a 10G slave and 10 on a 1G slave are balanced: no move.
        assert_eq!(move_bound(100, 10, 10, 1), 0);
        // 110 against 0: moving w helps while w < 2 × 110 / 11 = 20.
        assert_eq!(move_bound(110, 10, 0, 1), 20);
        assert!(normalized(100, 10) == normalized(10, 1));
    }
}
