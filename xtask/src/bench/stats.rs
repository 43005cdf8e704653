//! The statistics of the paired throughput protocol, pure and seeded so
//! that a report is reproducible from its recorded values: the median of
//! the per-pair ratios and its percentile-bootstrap interval, and the
//! order in which the arms of a round are run.

/// A small, seeded pseudo-random generator (splitmix64): the same seed
/// gives the same resamples, so an interval can be recomputed from
/// benchmarks.json.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is below 2^-40 for the
    /// sizes used here).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A seed named by a label (FNV-1a): each interval of a report has its
/// own, recorded beside it.
pub(crate) fn seed_of(label: &str) -> u64 {
    label
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Median of a list; NaN if it is empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    median_sorted(&sorted)
}

fn median_sorted(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `q` quantile (0..=1) of sorted values, linearly interpolated
/// between order statistics (numpy's default).
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// `a[i] / b[i]`, pair by pair.
pub(crate) fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a / b).collect()
}

/// The median of `values` and its percentile-bootstrap interval at
/// `level` (0.95): `resamples` resamples of the same size drawn with
/// replacement, the median of each, and the (1-level)/2 and (1+level)/2
/// quantiles of those medians.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Interval {
    pub(crate) median: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

pub(crate) fn bootstrap_median(
    values: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Interval {
    let median = median(values);
    if values.is_empty() || resamples == 0 {
        return Interval { median, lo: f64::NAN, hi: f64::NAN };
    }
    let mut rng = Rng::new(seed);
    let mut sample = vec![0.0; values.len()];
    let mut medians: Vec<f64> = (0..resamples)
        .map(|_| {
            for x in &mut sample {
                *x = values[rng.below(values.len())];
            }
            sample.sort_by(f64::total_cmp);
            median_sorted(&sample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Interval {
        median,
        lo: quantile_sorted(&medians, tail),
        hi: quantile_sorted(&medians, 1.0 - tail),
    }
}

/// The order of `arms` arms in round `round`: the rounds cycle through
/// every permutation of the arms (for 2 arms: AB, BA, so consecutive
/// rounds read ABBA), so each arm runs equally often in each position and
/// a drift over a round favours none.
pub(crate) fn round_order(arms: usize, round: usize) -> Vec<usize> {
    let perms = permutations(arms);
    perms[round % perms.len()].clone()
}

/// Every permutation of `0..n`, in lexicographic order.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for first in 0..n {
        for rest in permutations(n - 1) {
            let mut p = vec![first];
            p.extend(rest.into_iter().map(|x| if x >= first { x + 1 } else { x }));
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 5.0);
        assert_eq!(quantile_sorted(&v, 0.5), 3.0);
        assert!((quantile_sorted(&v, 0.025) - 1.1).abs() < 1e-12);
        assert!((quantile_sorted(&v, 0.975) - 4.9).abs() < 1e-12);
    }

    #[test]
    fn seeds_are_stable_and_differ_by_label() {
        assert_eq!(seed_of(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(seed_of("a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a of \"a\"");
        assert_ne!(seed_of("tcp1_up/alb_slave0/plain"), seed_of("tcp1_up/alb_slave1/plain"));
    }

    #[test]
    fn ratios_are_pair_by_pair() {
        assert_eq!(ratios(&[2.0, 3.0], &[1.0, 4.0]), vec![2.0, 0.75]);
    }

    #[test]
    fn constant_ratios_give_a_point_interval() {
        let i = bootstrap_median(&[0.99; 20], 2000, 0.95, 1);
        assert_eq!(i, Interval { median: 0.99, lo: 0.99, hi: 0.99 });
    }

    #[test]
    fn the_interval_is_reproducible_from_its_seed() {
        let v: Vec<f64> = (0..20).map(|i| 0.95 + 0.005 * f64::from(i % 7)).collect();
        let a = bootstrap_median(&v, 2000, 0.95, 42);
        assert_eq!(a, bootstrap_median(&v, 2000, 0.95, 42), "same seed, same interval");
        assert!(a.lo <= a.median && a.median <= a.hi, "{a:?} holds its median");
        let (min, max) =
            (v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(0.0, f64::max));
        assert!(min <= a.lo && a.hi <= max, "{a:?} within the data [{min}, {max}]");
    }

    #[test]
    fn the_interval_narrows_with_more_pairs() {
        // Ratios spread evenly over 0.9..1.1: the median's interval for
        // 80 pairs is narrower than for 20.
        let spread = |n: usize| -> Vec<f64> {
            let mut rng = Rng::new(7);
            (0..n).map(|_| 0.9 + 0.2 * rng.below(1001) as f64 / 1000.0).collect()
        };
        let (a, b) = (
            bootstrap_median(&spread(20), 4000, 0.95, 3),
            bootstrap_median(&spread(80), 4000, 0.95, 3),
        );
        assert!(b.hi - b.lo < a.hi - a.lo, "80 pairs {b:?} narrower than 20 {a:?}");
    }

    #[test]
    fn the_interval_covers_the_true_median_about_95_percent_of_the_time() {
        // 200 experiments of 25 pairs drawn uniformly from 0.9..1.1 (true
        // median 1.0): a 95% interval should miss it in roughly 5% of them
        // (the percentile bootstrap of a median is somewhat conservative
        // at this size; accept 85%..=100%).
        let mut rng = Rng::new(11);
        let mut covered = 0;
        for seed in 0..200 {
            let v: Vec<f64> = (0..25)
                .map(|_| 0.9 + 0.2 * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
                .collect();
            let i = bootstrap_median(&v, 1000, 0.95, seed);
            if i.lo <= 1.0 && 1.0 <= i.hi {
                covered += 1;
            }
        }
        assert!((170..=200).contains(&covered), "covered {covered} of 200");
    }

    #[test]
    fn rounds_cycle_through_every_order() {
        assert_eq!(round_order(2, 0), vec![0, 1]);
        assert_eq!(round_order(2, 1), vec![1, 0]);
        assert_eq!(round_order(2, 2), vec![0, 1]);
        // Three arms: six orders, each arm in each position twice.
        let orders: Vec<Vec<usize>> = (0..6).map(|r| round_order(3, r)).collect();
        for arm in 0..3 {
            for pos in 0..3 {
                assert_eq!(orders.iter().filter(|o| o[pos] == arm).count(), 2);
            }
        }
    }

    #[test]
    fn the_generator_is_uniform_enough() {
        let mut rng = Rng::new(5);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[rng.below(4)] += 1;
        }
        assert!(counts.iter().all(|&c| (9_500..=10_500).contains(&c)), "{counts:?}");
    }
}
