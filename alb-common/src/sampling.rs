//! Per-client counters from a sample of the frames.
//!
//! Counting every frame in its client's table entry costs a hash look-up
//! and two atomic adds on every received frame (about 40 ns of the ~100 ns
//! `alb_rx` spent on a known client's frame, docs/profile-2026-11-30.md),
//! and atomic adds to one cache line from every CPU on every frame sent to
//! a busy client. So, as sFlow does, a frame is counted with probability
//! 1/N and then weighted N: the counters are unbiased estimates, exact
//! when N is 1. The choice is a draw from a per-CPU generator (one per
//! slave, in `SlaveStats`), so periodic traffic cannot alias with it as it
//! could with "every N-th frame".

/// The default N of `client_sampling`: one frame in 16 touches its client's
/// counters. The look-up then costs ~2.5 ns a frame on average, and a
/// client's counters are within ~25% of the truth once it has sent 250
/// frames (the relative error of a count of k samples is ~1/sqrt(k)).
pub const DEFAULT_CLIENT_SAMPLING: u32 = 16;

/// The largest N `client_sampling` accepts: a frame in a million still
/// gives busy clients counters, and `N * frame length` fits a u64.
pub const MAX_CLIENT_SAMPLING: u32 = 1 << 20;

/// Advances `state` (a per-CPU generator) and returns the weight of this
/// frame in its client's counters: `every` if it is drawn (probability
/// 1/`every`), 0 if not. `every` 0 or 1 counts every frame with weight 1
/// and leaves `state` alone.
#[inline(always)]
pub fn draw(state: &mut u64, every: u32) -> u64 {
    if every <= 1 {
        return 1;
    }
    // Knuth's MMIX LCG: its high 32 bits are well spread even from state 0
    // (a zeroed per-CPU slot), and it costs a multiply and an add.
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let high = *state >> 32;
    // high < 2^32 / every, without a division in the data path.
    if high * u64::from(every) < 1 << 32 { u64::from(every) } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_counts_once_without_sampling() {
        let mut state = 7;
        for every in [0, 1] {
            assert!((0..1000).all(|_| draw(&mut state, every) == 1), "every {every}");
        }
        assert_eq!(state, 7, "no draw without sampling");
    }

    #[test]
    fn sampled_weights_add_up_to_the_frame_count() {
        // Distribution with tolerances: 1,000,000 frames, their weighted
        // sum within 2% of the count for each N (the standard deviation
        // of the estimate is sqrt(N / 1e6), 0.4% for N = 16, 3% for 1024).
        for (every, tolerance) in [(2, 0.01), (16, 0.02), (64, 0.03), (1024, 0.12)] {
            let mut state = 0;
            let frames = 1_000_000_u64;
            let sum: u64 = (0..frames).map(|_| draw(&mut state, every)).sum();
            let ratio = sum as f64 / frames as f64;
            assert!(
                (1.0 - tolerance..=1.0 + tolerance).contains(&ratio),
                "every {every}: weighted sum {sum} for {frames} frames ({ratio:.4})"
            );
        }
    }

    #[test]
    fn weights_are_zero_or_n() {
        let mut state = 0;
        for _ in 0..10_000 {
            let weight = draw(&mut state, 16);
            assert!(weight == 0 || weight == 16, "weight {weight}");
        }
    }

    #[test]
    fn interleaved_clients_are_each_estimated() {
        // Two clients whose frames strictly alternate: a counter of "every
        // N-th frame" would give one of them all the samples for even N.
        let mut state = 0;
        let mut counted = [0_u64; 2];
        for frame in 0..200_000 {
            counted[frame % 2] += draw(&mut state, 16);
        }
        for (client, count) in counted.iter().enumerate() {
            let ratio = *count as f64 / 100_000.0;
            assert!((0.95..=1.05).contains(&ratio), "client {client}: {count} for 100000 frames");
        }
    }
}
