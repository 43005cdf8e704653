//! Header views and the one packet-access API shared by the BPF programs
//! (over `TcContext`) and the host (over byte slices).
//!
//! Every multi-byte field is a byte array in network order, so the structs
//! have alignment 1 and can be read from any offset of a frame.

/// A MAC address.
pub type Mac = [u8; 6];
/// An IPv4 address in network order.
pub type Ipv4 = [u8; 4];
/// An IPv6 address in network order.
pub type Ipv6 = [u8; 16];

pub const BROADCAST_MAC: Mac = [0xff; 6];
pub const ZERO_MAC: Mac = [0; 6];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
/// Ethertype of bonding's learning frames (`ETH_P_LOOPBACK`).
pub const ETH_P_LOOPBACK: u16 = 0x9000;

pub const ARP_OP_REQUEST: u16 = 1;
pub const ARP_OP_REPLY: u16 = 2;

pub const IPPROTO_IGMP: u8 = 2;
pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMPV6: u8 = 58;

/// A frame the data path can read: a `TcContext` in BPF, a byte slice on the host.
pub trait Frame {
    /// Copies the `T` found at `offset`, or `None` when the frame is shorter.
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;
}

impl Frame for [u8] {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let end = offset.checked_add(size_of::<T>())?;
        if end > self.len() {
            return None;
        }
        // SAFETY: `offset..end` is inside the slice, and `read_unaligned`
        // accepts any alignment. Only the header types below (all
        // `[u8; N]`/`u8` fields, valid for every bit pattern) are read.
        Some(unsafe { self.as_ptr().add(offset).cast::<T>().read_unaligned() })
    }
}

/// A copy of `T` at an 8-byte aligned address. The BPF verifier refuses
/// misaligned stack access, so LLVM reads an alignment-1 header byte by
/// byte (and spills the bytes: the stack is 512 bytes); a header read into
/// an `Aligned` has its 8-byte aligned fields (IPv6 addresses) read with
/// one load per word.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aligned<T>(pub T);

/// An IPv6 address as two words in memory order: how the data path holds
/// an address it compares, copies or sums. As 16 bytes LLVM may split it
/// into 16 values, which do not fit BPF's registers (and spill).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr6(pub [u64; 2]);

impl Addr6 {
    #[inline(always)]
    pub fn new(bytes: &Ipv6) -> Self {
        match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
            (Some(high), Some(low)) => Self([u64::from_ne_bytes(*high), u64::from_ne_bytes(*low)]),
            _ => Self([0; 2]),
        }
    }

    #[inline(always)]
    pub fn octets(self) -> Ipv6 {
        let mut bytes = [0u8; 16];
        let (high, low) = bytes.split_at_mut(8);
        high.copy_from_slice(&self.0[0].to_ne_bytes());
        low.copy_from_slice(&self.0[1].to_ne_bytes());
        bytes
    }

    /// `::`.
    #[inline(always)]
    pub const fn is_unspecified(self) -> bool {
        self.0[0] | self.0[1] == 0
    }

    /// `ff00::/8`.
    #[inline(always)]
    pub const fn is_multicast(self) -> bool {
        self.0[0].to_ne_bytes()[0] == 0xff
    }
}

/// Compares two MACs as integers: the BPF backend has no `memcmp`, and an
/// array `==` may become one.
#[inline(always)]
pub const fn mac_eq(a: &Mac, b: &Mac) -> bool {
    u32::from_ne_bytes([a[0], a[1], a[2], a[3]]) == u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
        && u16::from_ne_bytes([a[4], a[5]]) == u16::from_ne_bytes([b[4], b[5]])
}

/// Compares two IPv4 addresses as integers.
#[inline(always)]
pub const fn ipv4_eq(a: &Ipv4, b: &Ipv4) -> bool {
    u32::from_ne_bytes(*a) == u32::from_ne_bytes(*b)
}

/// True for the IPv6 unspecified address `::`.
#[inline(always)]
pub const fn ipv6_is_unspecified(addr: &Ipv6) -> bool {
    let mut i = 0;
    let mut acc = 0u8;
    while i < 16 {
        acc |= addr[i];
        i += 1;
    }
    acc == 0
}

/// True for group addresses (multicast and broadcast): the I/G bit.
#[inline(always)]
pub const fn is_multicast(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

/// A unicast, non-zero MAC (the kernel's `is_valid_ether_addr`).
#[inline(always)]
pub fn is_valid_unicast(mac: &Mac) -> bool {
    !is_multicast(mac) && !mac_eq(mac, &ZERO_MAC)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHdr {
    pub dst: Mac,
    pub src: Mac,
    pub ether_type: [u8; 2],
}

impl EthHdr {
    pub const LEN: usize = 14;
    pub const SRC_OFFSET: usize = 6;

    #[inline(always)]
    pub const fn ether_type(&self) -> u16 {
        u16::from_be_bytes(self.ether_type)
    }
}

/// An ARP header for Ethernet and IPv4 (RFC 826 with hlen 6, plen 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpHdr {
    pub htype: [u8; 2],
    pub ptype: [u8; 2],
    pub hlen: u8,
    pub plen: u8,
    pub oper: [u8; 2],
    pub sha: Mac,
    pub spa: Ipv4,
    pub tha: Mac,
    pub tpa: Ipv4,
}

impl ArpHdr {
    pub const LEN: usize = 28;
    /// Offset of the sender hardware address inside the ARP header.
    pub const SHA_OFFSET: usize = 8;

    #[inline(always)]
    pub const fn oper(&self) -> u16 {
        u16::from_be_bytes(self.oper)
    }

    /// Ethernet/IPv4 ARP, the only kind alb reads or rewrites.
    #[inline(always)]
    pub const fn is_ethernet_ipv4(&self) -> bool {
        u16::from_be_bytes(self.htype) == 1
            && u16::from_be_bytes(self.ptype) == ETH_P_IP
            && self.hlen == 6
            && self.plen == 4
    }
}

/// The fixed part of an IPv4 header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub saddr: Ipv4,
    pub daddr: Ipv4,
}

impl Ipv4Hdr {
    pub const LEN: usize = 20;
}

/// The fixed IPv6 header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Hdr {
    pub version_class_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub saddr: Ipv6,
    pub daddr: Ipv6,
}

impl Ipv6Hdr {
    pub const LEN: usize = 40;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_wire() {
        assert_eq!(size_of::<EthHdr>(), EthHdr::LEN);
        assert_eq!(size_of::<ArpHdr>(), ArpHdr::LEN);
        assert_eq!(size_of::<Ipv4Hdr>(), Ipv4Hdr::LEN);
        assert_eq!(size_of::<Ipv6Hdr>(), Ipv6Hdr::LEN);
        assert_eq!(core::mem::offset_of!(ArpHdr, sha), ArpHdr::SHA_OFFSET);
    }

    #[test]
    fn reads_past_the_end_are_none() {
        let frame = [0u8; 20];
        assert!(frame[..].read::<EthHdr>(0).is_some());
        assert!(frame[..].read::<EthHdr>(7).is_none());
        assert!(frame[..].read::<ArpHdr>(0).is_none());
        assert!(frame[..].read::<u8>(usize::MAX).is_none());
    }

    #[test]
    fn arp_with_wrong_lengths_is_not_ethernet_ipv4() {
        let mut frame = [0u8; 28];
        frame[0..2].copy_from_slice(&1u16.to_be_bytes());
        frame[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
        frame[4] = 6;
        frame[5] = 4;
        let arp: ArpHdr = frame[..].read(0).expect("28 bytes");
        assert!(arp.is_ethernet_ipv4());
        frame[4] = 8;
        let arp: ArpHdr = frame[..].read(0).expect("28 bytes");
        assert!(!arp.is_ethernet_ipv4());
    }
}
