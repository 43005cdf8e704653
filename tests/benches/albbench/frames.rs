//! The scale figure's clients: many learned clients, each named by its
//! index, and the frames that teach and reach them (built with the
//! fixtures' frame builders).

use alb_common::wire::{Ipv4, Mac};
use alb_tests::fixtures::frames::{REPLY, arp, on_wire, tcp4_sized};

/// Offsets inside an Ethernet/ARP frame, for rewriting in place.
const ETH_DST: usize = 0;
const ARP_SPA: usize = 14 + 14;
const ARP_THA: usize = 14 + 18;
const ARP_TPA: usize = 14 + 24;

/// The key of learned client `i` of [`learning_frame`]: 8 server
/// addresses (198.18.0.1-8) times clients from 198.18.1.0 up, all in
/// 198.18.0.0/15 (room for 1,046,528 clients).
pub(crate) fn learned(i: u32) -> (Ipv4, Ipv4, Mac) {
    let server = [198, 18, 0, 1 + (i % 8) as u8];
    let client = (u32::from_be_bytes([198, 18, 1, 0]) + i / 8).to_be_bytes();
    let n = i.to_be_bytes();
    let mac = [0x02, 0xcc, n[0], n[1], n[2], n[3]];
    (server, client, mac)
}

/// The most clients [`learned`] can name inside 198.18.0.0/15.
pub(crate) const MAX_LEARNED: u32 = 8 * (131_072 - 256);

/// A host ARP reply from the master to learned client 0, padded to the
/// Ethernet minimum; rewrite it for client `i` with [`set_learned`].
pub(crate) fn learning_frame(master_mac: Mac) -> Vec<u8> {
    let (server, client, mac) = learned(0);
    on_wire(arp(mac, master_mac, REPLY, master_mac, server, mac, client))
}

/// Points a [`learning_frame`] at learned client `i`.
pub(crate) fn set_learned(frame: &mut [u8], i: u32) {
    let (server, client, mac) = learned(i);
    frame[ETH_DST..ETH_DST + 6].copy_from_slice(&mac);
    frame[ARP_SPA..ARP_SPA + 4].copy_from_slice(&server);
    frame[ARP_THA..ARP_THA + 6].copy_from_slice(&mac);
    frame[ARP_TPA..ARP_TPA + 4].copy_from_slice(&client);
}

/// A TCP/IPv4 segment (64 bytes of payload) from the server address of
/// learned client `i` to it.
pub(crate) fn tcp_to_learned(master_mac: Mac, i: u32) -> Vec<u8> {
    let (server, client, mac) = learned(i);
    tcp4_sized(mac, master_mac, server, client, &[0x5a; 64])
}
