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
