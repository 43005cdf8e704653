//! The Internet checksum of ICMPv6 (RFC 4443 §2.3): a ones'-complement sum
//! over the IPv6 pseudo-header (RFC 8200 §8.1) and the message.
//!
//! Sums are kept unfolded in a `u64` of 32-bit words read in the machine's
//! own byte order: the ones'-complement sum is the same whatever the word
//! size once folded, and the sum of byte-swapped words is the byte-swapped
//! sum (RFC 1071 §2), so no word is swapped and a checksum is handled as
//! the two bytes the frame holds. The BPF programs then read the message
//! in 8-byte words, with half the additions and no byte shuffling.

use crate::wire::{IPPROTO_ICMPV6, Ipv6};

/// Adds a 64-bit word of the summed data (at an even offset) to `sum`.
#[inline(always)]
pub const fn add_word(sum: u64, word: u64) -> u64 {
    sum + (word & 0xffff_ffff) + (word >> 32)
}

/// Adds 8 bytes of the summed data (at an even offset) to `sum`.
#[inline(always)]
pub const fn add8(sum: u64, bytes: [u8; 8]) -> u64 {
    add_word(sum, u64::from_ne_bytes(bytes))
}

/// Adds a 16-byte address to `sum`.
#[inline(always)]
const fn add16(sum: u64, addr: &Ipv6) -> u64 {
    let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = *addr;
    add8(add8(sum, [a, b, c, d, e, f, g, h]), [i, j, k, l, m, n, o, p])
}

/// The unfolded sum of the pseudo-header of an ICMPv6 message of `len`
/// bytes from `src` to `dst`.
#[inline(always)]
pub const fn pseudo_header(src: &Ipv6, dst: &Ipv6, len: u32) -> u64 {
    let sum = add16(add16(0, src), dst);
    let length = u32::from_ne_bytes(len.to_be_bytes()) as u64;
    let next = u32::from_ne_bytes([0, 0, 0, IPPROTO_ICMPV6]) as u64;
    sum + length + next
}

/// Folds an unfolded sum to 16 bits with end-around carries (in the
/// machine's byte order, as the words were).
#[inline(always)]
pub const fn fold(sum: u64) -> u16 {
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Whether data summed with its checksum field in place verifies: its
/// folded sum is all ones (RFC 1071), in either byte order.
#[inline(always)]
pub const fn verifies(sum: u64) -> bool {
    fold(sum) == 0xffff
}

/// The checksum field, as the frame holds it, of data whose sum (with the
/// field zeroed) is `sum`.
#[inline(always)]
pub const fn finish(sum: u64) -> [u8; 2] {
    (!fold(sum)).to_ne_bytes()
}

/// The checksum field after a MAC at an even offset of the summed data
/// changed from `old` to `new`: RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`,
/// for each of its three 16-bit words.
#[inline(always)]
pub const fn replace_mac(checksum: [u8; 2], old: &[u8; 6], new: &[u8; 6]) -> [u8; 2] {
    let mut sum = (!u16::from_ne_bytes(checksum)) as u64;
    let mut i = 0;
    while i < 6 {
        let was = u16::from_ne_bytes([old[i], old[i + 1]]);
        let now = u16::from_ne_bytes([new[i], new[i + 1]]);
        sum += (!was) as u64 + now as u64;
        i += 2;
    }
    (!fold(sum)).to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's reference: 16-bit words, one at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = data
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        u16::try_from(sum).expect("folded")
    }

    fn sum8(data: &[u8]) -> u64 {
        data.chunks(8).fold(0, |sum, c| add8(sum, c.try_into().expect("8 bytes")))
    }

    /// A folded sum in network order.
    fn network(folded: u16) -> u16 {
        u16::from_be_bytes(folded.to_ne_bytes())
    }

    #[test]
    fn sums_of_machine_order_words_fold_to_the_16_bit_reference() {
        let data: std::vec::Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        assert_eq!(network(fold(sum8(&data))), reference(&data));
        let ones = [0xffu8; 64];
        assert_eq!(fold(sum8(&ones)), reference(&ones));
        assert_eq!(fold(0), 0);
        assert_eq!(fold(u64::from(u32::MAX) * 9), reference(&[0xff; 36]));
    }

    #[test]
    fn the_pseudo_header_counts_addresses_length_and_next_header() {
        let src = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];
        let mut raw = std::vec::Vec::new();
        raw.extend_from_slice(&src);
        raw.extend_from_slice(&dst);
        raw.extend_from_slice(&32u32.to_be_bytes());
        raw.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(network(fold(pseudo_header(&src, &dst, 32))), reference(&raw));
    }

    #[test]
    fn a_finished_checksum_verifies_and_a_flipped_bit_does_not() {
        let mut data = [0u8; 32];
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = u8::try_from(i * 7 % 256).expect("byte");
        }
        data[2..4].copy_from_slice(&[0, 0]);
        let checksum = finish(sum8(&data));
        data[2..4].copy_from_slice(&checksum);
        assert!(verifies(sum8(&data)));
        assert_eq!(
            u16::from_be_bytes(checksum),
            !reference(&{
                let mut zeroed = data;
                zeroed[2..4].copy_from_slice(&[0, 0]);
                zeroed
            })
        );
        data[9] ^= 0x10;
        assert!(!verifies(sum8(&data)));
    }

    #[test]
    fn replacing_a_mac_matches_a_full_recomputation() {
        let macs: [[u8; 6]; 4] = [
            [0x02, 0xa1, 0xb0, 0, 0, 0x17],
            [0x02, 0xa1, 0xb0, 0, 0, 0x19],
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
            [0, 0, 0, 0, 0, 1],
        ];
        for old in macs {
            for new in macs {
                for fill in [0u8, 0x5a, 0xff] {
                    let mut data = [fill; 32];
                    data[26..32].copy_from_slice(&old);
                    data[2..4].copy_from_slice(&[0, 0]);
                    let checksum = finish(sum8(&data));
                    let updated = replace_mac(checksum, &old, &new);
                    data[26..32].copy_from_slice(&new);
                    data[2..4].copy_from_slice(&updated);
                    assert!(verifies(sum8(&data)), "{old:x?} -> {new:x?} over {fill:#x}");
                    data[2..4].copy_from_slice(&[0, 0]);
                    let full = finish(sum8(&data));
                    // Equal, or the other representation of zero.
                    let (a, b) = (u16::from_ne_bytes(updated), u16::from_ne_bytes(full));
                    assert!(
                        a == b || matches!((a, b), (0, 0xffff) | (0xffff, 0)),
                        "{updated:x?} != {full:x?}"
                    );
                }
            }
        }
    }
}
