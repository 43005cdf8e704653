//! Frame builders for the unit tests of this crate.

use std::vec::Vec;

use crate::wire::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, Ipv4, Ipv6, Mac};

fn ethernet(dst: Mac, src: Mac, ether_type: u16) -> Vec<u8> {
    let mut frame = Vec::with_capacity(64);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame
}

pub(crate) fn arp_frame(
    dst: Mac,
    src: Mac,
    op: u16,
    sha: Mac,
    spa: Ipv4,
    tha: Mac,
    tpa: Ipv4,
) -> Vec<u8> {
    let mut frame = ethernet(dst, src, ETH_P_ARP);
    frame.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    frame.extend_from_slice(&op.to_be_bytes());
    for part in [&sha[..], &spa[..], &tha[..], &tpa[..]] {
        frame.extend_from_slice(part);
    }
    frame
}

pub(crate) fn ipv4_frame(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4, protocol: u8) -> Vec<u8> {
    let mut frame = ethernet(dst, src, ETH_P_IP);
    frame.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, protocol, 0, 0]);
    frame.extend_from_slice(&saddr);
    frame.extend_from_slice(&daddr);
    frame.extend_from_slice(&[0; 8]);
    frame
}

pub(crate) fn ipv6_frame(
    dst: Mac,
    src: Mac,
    saddr: Ipv6,
    next_header: u8,
    icmp_type: Option<u8>,
) -> Vec<u8> {
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
    daddr[15] = 11;
    let mut frame = ethernet(dst, src, ETH_P_IPV6);
    frame.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, next_header, 64]);
    frame.extend_from_slice(&saddr);
    frame.extend_from_slice(&daddr);
    frame.push(icmp_type.unwrap_or(0));
    frame.extend_from_slice(&[0; 7]);
    frame
}

/// A neighbour solicitation (135) or advertisement (136) from `saddr` to
/// `daddr` about `target`, with `flags` (advertisements) and `options`
/// (raw, whole 8-byte units), hop limit 255 and a correct checksum.
#[expect(clippy::too_many_arguments, reason = "every field of the frame, spelled out")]
pub(crate) fn nd_frame(
    dst: Mac,
    src: Mac,
    saddr: Ipv6,
    daddr: Ipv6,
    icmp_type: u8,
    flags: u8,
    target: Ipv6,
    options: &[u8],
) -> Vec<u8> {
    let mut message = std::vec![icmp_type, 0, 0, 0, flags, 0, 0, 0];
    message.extend_from_slice(&target);
    message.extend_from_slice(options);
    let len = u32::try_from(message.len()).expect("short");
    let mut sum = crate::nd::checksum::pseudo_header(&saddr, &daddr, len);
    let mut padded = message.clone();
    padded.resize(message.len().div_ceil(8) * 8, 0);
    for chunk in padded.chunks(8) {
        sum = crate::nd::checksum::add8(sum, chunk.try_into().expect("8 bytes"));
    }
    message[2..4].copy_from_slice(&crate::nd::checksum::finish(sum));
    let mut frame = ethernet(dst, src, ETH_P_IPV6);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&u16::try_from(message.len()).expect("short").to_be_bytes());
    frame.extend_from_slice(&[crate::wire::IPPROTO_ICMPV6, 255]);
    frame.extend_from_slice(&saddr);
    frame.extend_from_slice(&daddr);
    frame.extend_from_slice(&message);
    frame
}

/// A link-layer address option (1: source, 2: target) for `mac`.
pub(crate) fn lla_option(kind: u8, mac: Mac) -> [u8; 8] {
    [kind, 1, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]
}

/// Recomputes the ICMPv6 checksum of an ND frame (ICMPv6 right after the
/// IPv6 header) after a test edited it, over the length the IPv6 header
/// gives (zero-padded past the frame's end).
pub(crate) fn fix_nd_checksum(frame: &mut [u8]) {
    use crate::nd::{CHECKSUM_OFFSET, ICMP_OFFSET, checksum};
    let saddr: Ipv6 = frame[22..38].try_into().expect("16 bytes");
    let daddr: Ipv6 = frame[38..54].try_into().expect("16 bytes");
    let len = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    frame[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&[0, 0]);
    let mut message: Vec<u8> = frame.get(ICMP_OFFSET..).unwrap_or_default().to_vec();
    message.resize(len.div_ceil(8) * 8, 0);
    let mut sum = checksum::pseudo_header(&saddr, &daddr, u32::try_from(len).expect("len"));
    for chunk in message.chunks(8) {
        sum = checksum::add8(sum, chunk.try_into().expect("8 bytes"));
    }
    frame[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&checksum::finish(sum));
}

/// `frame` with an 802.1Q tag for VLAN `vid` after its Ethernet addresses.
pub(crate) fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&0x8100u16.to_be_bytes());
    out.extend_from_slice(&vid.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}
