//! The frames the benchmark feeds the programs, and the state they run
//! against: the seed lab's addresses, two slaves, slave 0 active.

use alb::state::{SlaveState, State};
use alb_common::{
    assign::{bucket_of_v4, bucket_of_v6, initial_bucket_slave},
    wire::{Ipv4, Ipv6, Mac},
};
use etherparse::PacketBuilder;

/// `lo`, the device test-run uses for ifindex 1: a slave's ifindex here,
/// so `alb_rx` runs as on slave 0.
pub(crate) const LO: u32 = 1;
/// Made-up ifindexes of slaves that never receive here, and of the master
/// (test-run never redirects).
pub(crate) const VETH17: u32 = 1017;
pub(crate) const VETH19: u32 = 1019;
pub(crate) const MASTER_IFINDEX: u32 = 1042;

pub(crate) const S0_MAC: Mac = [0x02, 0xa1, 0xb0, 0x00, 0x00, 0x17];
pub(crate) const S1_MAC: Mac = [0x02, 0xa1, 0xb0, 0x00, 0x00, 0x19];
/// The master carries slave 0's MAC.
pub(crate) const MASTER_MAC: Mac = S0_MAC;

pub(crate) const SERVER: Ipv4 = [198, 18, 0, 1];
/// Client 1, on slave 0 (the active slave, whose MAC the master has).
pub(crate) const C1: Ipv4 = [198, 18, 0, 11];
pub(crate) const C1_MAC: Mac = [0x02, 0xa1, 0xc0, 0x00, 0x00, 0x01];
/// Client 2, on slave 1 (frames to it take slave 1's MAC).
pub(crate) const C2: Ipv4 = [198, 18, 0, 12];
pub(crate) const C2_MAC: Mac = [0x02, 0xa1, 0xc0, 0x00, 0x00, 0x02];
/// Not a client: transmit goes by bucket.
pub(crate) const STRANGER_MAC: Mac = [0x02, 0x5a, 0x5a, 0x00, 0x00, 0x01];
pub(crate) const SERVER6: Ipv6 = [0x20, 0x01, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];

/// The slave the initial deal gives `bucket` over slaves 0 and 1.
fn bucket_slave(bucket: u32) -> u8 {
    initial_bucket_slave(bucket, &[0, 1]).unwrap_or(0)
}

/// The first 198.18.1.x (not a client) whose transmit bucket is on `slave`.
pub(crate) fn stranger_on(slave: u8) -> Ipv4 {
    (1..=254)
        .map(|last| [198, 18, 1, last])
        .find(|ip| bucket_slave(bucket_of_v4(ip)) == slave)
        .expect("half the buckets are on each slave")
}

/// The first 2001:2::x peer whose transmit bucket is on `slave`.
pub(crate) fn peer6_on(slave: u8) -> Ipv6 {
    (0x0b..=0xff)
        .map(|last| {
            let mut ip = SERVER6;
            ip[15] = last;
            ip
        })
        .find(|ip| bucket_slave(bucket_of_v6(ip)) == slave)
        .expect("half the buckets are on each slave")
}

pub(crate) const BROADCAST: Mac = [0xff; 6];
pub(crate) const ARP_REQUEST: u16 = 1;
pub(crate) const ARP_REPLY: u16 = 2;

/// Offsets inside an Ethernet/ARP frame, for rewriting in place.
pub(crate) const ETH_DST: usize = 0;
pub(crate) const ARP_SPA: usize = 14 + 14;
pub(crate) const ARP_THA: usize = 14 + 18;
pub(crate) const ARP_TPA: usize = 14 + 24;

/// Two up slaves, slave 0 active, on these ifindexes.
pub(crate) fn state(s0_ifindex: u32, s1_ifindex: u32) -> State {
    State {
        master_ifindex: MASTER_IFINDEX,
        master_mac: MASTER_MAC,
        slaves: vec![
            SlaveState { ifindex: s0_ifindex, mac: S0_MAC, up: true },
            SlaveState { ifindex: s1_ifindex, mac: S1_MAC, up: true },
        ],
        active: Some(0),
    }
}

/// An Ethernet/IPv4 ARP frame, padded to the Ethernet minimum.
pub(crate) fn arp(
    dst: Mac,
    src: Mac,
    op: u16,
    sha: Mac,
    spa: Ipv4,
    tha: Mac,
    tpa: Ipv4,
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&0x0806u16.to_be_bytes());
    frame.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
    frame.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    frame.extend_from_slice(&[6, 4]);
    frame.extend_from_slice(&op.to_be_bytes());
    frame.extend_from_slice(&sha);
    frame.extend_from_slice(&spa);
    frame.extend_from_slice(&tha);
    frame.extend_from_slice(&tpa);
    frame.resize(60, 0);
    frame
}

/// A TCP/IPv4 segment with `payload` bytes.
pub(crate) fn tcp4(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4, payload: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4(saddr, daddr, 64)
        .tcp(5201, 40_000, 1, 64_000)
        .ack(1)
        .write_to_vec(&mut frame, &vec![0x5a; payload])
        .expect("TCP/IPv4 frame");
    frame
}

/// A UDP/IPv4 datagram with `payload` bytes.
pub(crate) fn udp4(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4, payload: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4(saddr, daddr, 64)
        .udp(5353, 5353)
        .write_to_vec(&mut frame, &vec![0x5a; payload])
        .expect("UDP/IPv4 frame");
    frame
}

/// A TCP/IPv6 segment with `payload` bytes.
pub(crate) fn tcp6(dst: Mac, src: Mac, saddr: Ipv6, daddr: Ipv6, payload: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv6(saddr, daddr, 64)
        .tcp(5201, 40_000, 1, 64_000)
        .ack(1)
        .write_to_vec(&mut frame, &vec![0x5a; payload])
        .expect("TCP/IPv6 frame");
    frame
}

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

/// A host ARP reply from the master to learned client 0; rewrite it for
/// client `i` with [`set_learned`].
pub(crate) fn learning_frame(master_mac: Mac) -> Vec<u8> {
    let (server, client, mac) = learned(0);
    arp(mac, master_mac, ARP_REPLY, master_mac, server, mac, client)
}

/// Points a [`learning_frame`] at learned client `i`.
pub(crate) fn set_learned(frame: &mut [u8], i: u32) {
    let (server, client, mac) = learned(i);
    frame[ETH_DST..ETH_DST + 6].copy_from_slice(&mac);
    frame[ARP_SPA..ARP_SPA + 4].copy_from_slice(&server);
    frame[ARP_THA..ARP_THA + 6].copy_from_slice(&mac);
    frame[ARP_TPA..ARP_TPA + 4].copy_from_slice(&client);
}

/// A TCP/IPv4 segment from the server address of learned client `i` to it.
pub(crate) fn tcp_to_learned(master_mac: Mac, i: u32) -> Vec<u8> {
    let (server, client, mac) = learned(i);
    tcp4(mac, master_mac, server, client, 64)
}
