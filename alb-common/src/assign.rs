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
    fn buckets_are_dealt_evenly() {
        let usable = [0u8, 1];
        let on_first =
            (0..TX_BUCKETS).filter(|&b| initial_bucket_slave(b, &usable) == Some(0)).count();
        assert_eq!(on_first, TX_BUCKETS as usize / 2);
        assert_eq!(initial_bucket_slave(3, &[]), None);
    }
}
