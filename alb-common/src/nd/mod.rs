//! IPv6 Neighbor Discovery (RFC 4861) as alb reads it: neighbour
//! solicitations and advertisements, validated as a host validates them
//! (§7.1.1, §7.1.2: hop limit 255, code 0, length, options, checksum)
//! before anything is learned from them or rewritten in them.
//!
//! Only messages right after the IPv6 header are read (ICMPv6 at offset 54):
//! a message behind extension headers is not Neighbor Discovery to alb (it
//! is IPv6 data: never rewritten, nothing learned).

pub mod checksum;

use crate::wire::{Addr6, EthHdr, Frame, Ipv6Hdr, Mac};

/// Where ICMPv6 starts when no extension header precedes it.
pub const ICMP_OFFSET: usize = EthHdr::LEN + Ipv6Hdr::LEN;
/// The ICMPv6 checksum field.
pub const CHECKSUM_OFFSET: usize = ICMP_OFFSET + 2;

pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOUR_SOLICIT: u8 = 135;
pub const NEIGHBOUR_ADVERT: u8 = 136;
pub const REDIRECT: u8 = 137;

/// Source link-layer address option (§4.6.1).
pub const OPT_SOURCE_LLA: u8 = 1;
/// Target link-layer address option (§4.6.1).
pub const OPT_TARGET_LLA: u8 = 2;

/// Neighbour advertisement flags, in the first byte of the flags word.
pub const ADVERT_ROUTER: u8 = 0x80;
pub const ADVERT_SOLICITED: u8 = 0x40;
pub const ADVERT_OVERRIDE: u8 = 0x20;

/// Type, code, checksum, flags (or reserved) and target: the fixed part of
/// a solicitation or advertisement.
pub const HEADER_LEN: usize = 24;
/// Most options alb walks. A host's solicitations and advertisements carry
/// one (the link-layer address) or two (a DAD nonce); longer messages are
/// not taken as Neighbor Discovery.
pub const MAX_OPTIONS: usize = 6;
/// The longest message alb reads.
pub const MAX_LEN: usize = HEADER_LEN + 8 * MAX_OPTIONS;

/// Which message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Solicit,
    Advert,
}

/// A valid neighbour solicitation or advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nd {
    pub kind: Kind,
    /// The advertisement flags (router, solicited, override); 0 for a
    /// solicitation.
    pub flags: u8,
    pub target: Addr6,
    /// Frame offset of the MAC in the message's link-layer address option
    /// (source for a solicitation, target for an advertisement); 0 when
    /// it has none.
    pub lla_at: u32,
    /// That MAC (zero when there is none).
    pub lla: Mac,
    /// The checksum field, as the frame holds it.
    pub checksum: [u8; 2],
}

/// Why a message is not valid Neighbor Discovery: a host drops it
/// (RFC 4861 §7.1), so alb neither learns from it nor rewrites it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not a solicitation or advertisement.
    Type,
    /// The frame ends before the length the IPv6 header gives.
    Truncated,
    /// Shorter than 24 bytes, longer than [`MAX_LEN`], or not a whole
    /// number of 8-byte options after the fixed part.
    Length,
    /// Hop limit other than 255: the message crossed a router.
    HopLimit,
    Code,
    /// A multicast target address.
    MulticastTarget,
    /// A solicited advertisement to a multicast address.
    SolicitedToMulticast,
    /// An option of length 0.
    ZeroLengthOption,
    /// An option that runs past the end of the message.
    OptionOverrun,
    /// A link-layer address option that is not 8 bytes (6 for Ethernet).
    LinkLayerAddressLength,
    /// The ICMPv6 checksum does not verify.
    Checksum,
}

/// Parses and validates the solicitation or advertisement that follows
/// the IPv6 header `ip` (whose next header is ICMPv6) in `frame`.
///
/// Written for the BPF verifier and its 512-byte stack. The message is a
/// whole number of 8-byte words (the fixed part is three, every option a
/// whole number) and every option starts on a word, so it is read one word
/// at a time, each at a fixed offset (fixed-size reads), and each word is
/// summed and, if an option starts on it, looked at as it is read: no word
/// is kept but the first three, and nothing is indexed by a variable.
/// Everything is unrolled (Linux 6.1 refuses some loop shapes).
#[inline(always)]
pub fn parse<F: Frame + ?Sized>(frame: &F, ip: &Ipv6Hdr) -> Result<Nd, Invalid> {
    let len = usize::from(u16::from_be_bytes(ip.payload_len));
    if !(HEADER_LEN..=MAX_LEN).contains(&len) || len % 8 != 0 {
        return Err(Invalid::Length);
    }
    let count = len / 8;
    // Word `i` of the message: bytes `8 * i..8 * i + 8`, in memory order.
    let word = |i: usize| match frame.read::<[u8; 8]>(ICMP_OFFSET + 8 * i) {
        Some(bytes) => Ok(u64::from_ne_bytes(bytes)),
        None => Err(Invalid::Truncated),
    };
    let first = word(0)?;
    let [icmp_type, code, checksum_high, checksum_low, flags, ..] = first.to_ne_bytes();
    let kind = match icmp_type {
        NEIGHBOUR_SOLICIT => Kind::Solicit,
        NEIGHBOUR_ADVERT => Kind::Advert,
        _ => return Err(Invalid::Type),
    };
    if ip.hop_limit != 255 {
        return Err(Invalid::HopLimit);
    }
    if code != 0 {
        return Err(Invalid::Code);
    }
    let target = Addr6([word(1)?, word(2)?]);
    if target.is_multicast() {
        return Err(Invalid::MulticastTarget);
    }
    let flags = match kind {
        Kind::Solicit => 0,
        Kind::Advert => flags & (ADVERT_ROUTER | ADVERT_SOLICITED | ADVERT_OVERRIDE),
    };
    if flags & ADVERT_SOLICITED != 0 && ip.daddr[0] == 0xff {
        return Err(Invalid::SolicitedToMulticast);
    }

    let mut sum = checksum::pseudo_header(&ip.saddr, &ip.daddr, len as u32);
    sum = checksum::add_word(
        checksum::add_word(checksum::add_word(sum, first), target.0[0]),
        target.0[1],
    );
    let wanted = match kind {
        Kind::Solicit => OPT_SOURCE_LLA,
        Kind::Advert => OPT_TARGET_LLA,
    };
    // The word the next option starts on.
    let mut next = HEADER_LEN / 8;
    // The word of the link-layer address option, and the option itself.
    let mut lla_word = 0;
    let mut lla = 0u64;
    // Word `i`, if the message goes on: summed, and looked at if an option
    // starts on it.
    macro_rules! option {
        ($($i:literal)*) => {$(
            if $i < count {
                let option = word($i)?;
                sum = checksum::add_word(sum, option);
                if $i == next {
                    let [kind, units, ..] = option.to_ne_bytes();
                    if units == 0 {
                        return Err(Invalid::ZeroLengthOption);
                    }
                    next = $i + usize::from(units);
                    if next > count {
                        return Err(Invalid::OptionOverrun);
                    }
                    // The first one counts, as in Linux (ndisc_parse_options).
                    if kind == wanted && lla_word == 0 {
                        if units != 1 {
                            return Err(Invalid::LinkLayerAddressLength);
                        }
                        lla_word = $i;
                        lla = option;
                    }
                }
            }
        )*};
    }
    option!(3 4 5 6 7 8);
    const _: () = assert!(MAX_OPTIONS == 6 && MAX_LEN == 72, "six option words are walked");
    if !checksum::verifies(sum) {
        return Err(Invalid::Checksum);
    }
    let [_, _, a, b, c, d, e, f] = lla.to_ne_bytes();
    Ok(Nd {
        kind,
        flags,
        target,
        lla_at: if lla_word == 0 { 0 } else { (ICMP_OFFSET + 8 * lla_word + 2) as u32 },
        lla: [a, b, c, d, e, f],
        checksum: [checksum_high, checksum_low],
    })
}

#[cfg(test)]
mod tests;
