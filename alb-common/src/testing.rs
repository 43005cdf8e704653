//! Frame builders for tests (behind the `testing` feature): the fixtures'
//! table and the cost benchmark (`alb_tests::fixtures::frames` re-exports
//! them) and this crate's unit tests. etherparse's `PacketBuilder` builds
//! the well-formed frames, raw bytes the malformed and the exotic ones.

use alloc::{vec, vec::Vec};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, IgmpType, PacketBuilder, VlanId,
    igmp::{GroupAddress, MembershipReportV2Type},
};

use crate::wire::{Ipv4, Ipv6, Mac};

pub const BROADCAST: Mac = [0xff; 6];
pub const ZERO_MAC: Mac = [0; 6];

/// ARP operations, as the programs see them on the wire.
pub const REQUEST: u16 = 1;
pub const REPLY: u16 = 2;

/// Offsets of the fields the programs rewrite.
pub const ETH_DST: usize = 0;
pub const ETH_SRC: usize = 6;
/// The ARP sender hardware address: Ethernet header + 8.
pub const ARP_SHA: usize = 14 + 8;

/// The Ethernet minimum (without FCS): what a receiver sees for short frames.
const ETH_ZLEN: usize = 60;

/// Pads a frame to the Ethernet minimum, as it arrives from the wire.
pub fn on_wire(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < ETH_ZLEN {
        frame.resize(ETH_ZLEN, 0);
    }
    frame
}

/// An Ethernet/IPv4 ARP packet (`hlen` 6, `plen` 4), 42 bytes, as the host
/// sends it (the NIC pads it).
pub fn arp(dst: Mac, src: Mac, op: u16, sha: Mac, spa: Ipv4, tha: Mac, tpa: Ipv4) -> Vec<u8> {
    arp_any(dst, src, op, &sha, &spa, &tha, &tpa)
}

/// An ARP packet of any address lengths (hostile frames: `hlen` 8, `plen` 6).
pub fn arp_any(
    dst: Mac,
    src: Mac,
    op: u16,
    sha: &[u8],
    spa: &[u8],
    tha: &[u8],
    tpa: &[u8],
) -> Vec<u8> {
    let packet = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation(op),
        sha,
        spa,
        tha,
        tpa,
    )
    .expect("a consistent ARP packet");
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst).arp(packet).write_to_vec(&mut frame).expect("ARP frame");
    frame
}

const PAYLOAD: &[u8] = b"alb fixture payload";

pub fn tcp4(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4) -> Vec<u8> {
    tcp4_sized(dst, src, saddr, daddr, PAYLOAD)
}

/// A TCP/IPv4 segment carrying `payload`.
pub fn tcp4_sized(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4(saddr, daddr, 64)
        .tcp(80, 40_000, 1, 64_000)
        .ack(1)
        .write_to_vec(&mut frame, payload)
        .expect("TCP/IPv4 frame");
    frame
}

/// An IPv4 datagram of protocol `protocol` with 8 zero bytes of payload
/// (whatever the protocol's header would be): for decisions that read no
/// further than the IPv4 header.
pub fn ipv4_bare(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4, protocol: u8) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4(saddr, daddr, 64)
        .write(&mut frame, etherparse::IpNumber(protocol), &[0; 8])
        .expect("IPv4 frame");
    frame
}

/// An IPv6 packet from `saddr` to 2001:2::b of next header `next_header`
/// with 8 bytes of payload, the first `first` (an ICMPv6 type) or 0. The
/// header is written as is (no extension header is built for an extension
/// header's number).
pub fn ipv6_bare(dst: Mac, src: Mac, saddr: Ipv6, next_header: u8, first: Option<u8>) -> Vec<u8> {
    let daddr: Ipv6 = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];
    let header = etherparse::Ipv6Header {
        payload_length: 8,
        next_header: etherparse::IpNumber(next_header),
        hop_limit: 64,
        source: saddr,
        destination: daddr,
        ..etherparse::Ipv6Header::default()
    };
    let mut frame = ethernet(dst, src, 0x86dd);
    frame.extend_from_slice(&header.to_bytes());
    frame.push(first.unwrap_or(0));
    frame.extend_from_slice(&[0; 7]);
    frame
}

pub fn udp4(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4(saddr, daddr, 64)
        .udp(5353, 5353)
        .write_to_vec(&mut frame, PAYLOAD)
        .expect("UDP/IPv4 frame");
    frame
}

/// An IGMPv2 membership report for `group`, sent to the group.
pub fn igmp_report(src: Mac, saddr: Ipv4, group: Ipv4) -> Vec<u8> {
    let report = IgmpType::MembershipReportV2(MembershipReportV2Type {
        group_address: GroupAddress::new(group),
    });
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, ipv4_multicast_mac(group))
        .ipv4(saddr, group, 1)
        .igmp(report)
        .write_to_vec(&mut frame, &[])
        .expect("IGMP frame");
    frame
}

/// The Ethernet group address of an IPv4 multicast group (RFC 1112).
pub fn ipv4_multicast_mac(group: Ipv4) -> Mac {
    [0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]
}

/// The Ethernet group address of an IPv6 multicast group (RFC 2464).
pub fn ipv6_multicast_mac(group: Ipv6) -> Mac {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// The solicited-node multicast address of `target` (RFC 4291).
pub fn solicited_node(target: Ipv6) -> Ipv6 {
    let mut group = [0u8; 16];
    group[..2].copy_from_slice(&[0xff, 0x02]);
    group[11..13].copy_from_slice(&[0x01, 0xff]);
    group[13..].copy_from_slice(&target[13..]);
    group
}

pub fn tcp6(dst: Mac, src: Mac, saddr: Ipv6, daddr: Ipv6) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv6(saddr, daddr, 64)
        .tcp(80, 40_000, 1, 64_000)
        .ack(1)
        .write_to_vec(&mut frame, PAYLOAD)
        .expect("TCP/IPv6 frame");
    frame
}

pub fn udp6(dst: Mac, src: Mac, saddr: Ipv6, daddr: Ipv6) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv6(saddr, daddr, 64)
        .udp(5355, 5355)
        .write_to_vec(&mut frame, PAYLOAD)
        .expect("UDP/IPv6 frame");
    frame
}

pub fn echo6(dst: Mac, src: Mac, saddr: Ipv6, daddr: Ipv6) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv6(saddr, daddr, 64)
        .icmpv6_echo_request(7, 1)
        .write_to_vec(&mut frame, PAYLOAD)
        .expect("ICMPv6 echo frame");
    frame
}

/// A neighbour solicitation for `target`, to its solicited-node group.
/// `saddr` `::` makes it duplicate address detection.
pub fn neighbour_solicitation(src: Mac, saddr: Ipv6, target: Ipv6) -> Vec<u8> {
    let group = solicited_node(target);
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, ipv6_multicast_mac(group))
        .ipv6(saddr, group, 255)
        .icmpv6(etherparse::Icmpv6Type::NeighborSolicitation)
        .write_to_vec(&mut frame, &target)
        .expect("NS frame");
    frame
}

/// A link-layer address option (1: source, 2: target) for `mac`.
pub fn lla(kind: u8, mac: Mac) -> [u8; 8] {
    [kind, 1, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]
}

/// A neighbour solicitation (135) or advertisement (136, with `flags`:
/// 0x80 router, 0x40 solicited, 0x20 override) about `target`, with raw
/// `options`; hop limit 255, checksum computed. Any other ICMPv6 type is
/// built the same way (type, code 0, `flags` and 3 zero bytes, `target`).
#[expect(clippy::too_many_arguments, reason = "every field of the message, spelled out")]
pub fn nd(
    dst: Mac,
    src: Mac,
    saddr: Ipv6,
    daddr: Ipv6,
    icmp_type: u8,
    flags: u8,
    target: Ipv6,
    options: &[u8],
) -> Vec<u8> {
    let mut payload = target.to_vec();
    payload.extend_from_slice(options);
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv6(saddr, daddr, 255)
        .icmpv6_raw(icmp_type, 0, [flags, 0, 0, 0])
        .write_to_vec(&mut frame, &payload)
        .expect("ND frame");
    frame
}

/// Recomputes the ICMPv6 checksum of `frame` (ICMPv6 right after the IPv6
/// header) over the length its IPv6 header gives, after a fixture edited it.
pub fn fix_icmpv6_checksum(frame: &mut [u8]) {
    use crate::nd::{CHECKSUM_OFFSET, ICMP_OFFSET, checksum};
    let saddr: Ipv6 = frame[22..38].try_into().expect("16 bytes");
    let daddr: Ipv6 = frame[38..54].try_into().expect("16 bytes");
    let len = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    frame[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&[0, 0]);
    let mut message = frame[ICMP_OFFSET..(ICMP_OFFSET + len).min(frame.len())].to_vec();
    message.resize(len.div_ceil(8) * 8, 0);
    let mut sum = checksum::pseudo_header(&saddr, &daddr, u32::try_from(len).expect("short"));
    for word in message.chunks(8) {
        sum = checksum::add8(sum, word.try_into().expect("8 bytes"));
    }
    frame[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&checksum::finish(sum));
}

/// A router solicitation to all-routers (ff02::2).
pub fn router_solicitation(src: Mac, saddr: Ipv6) -> Vec<u8> {
    let all_routers: Ipv6 = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, ipv6_multicast_mac(all_routers))
        .ipv6(saddr, all_routers, 255)
        .icmpv6(etherparse::Icmpv6Type::RouterSolicitation)
        .write_to_vec(&mut frame, &[])
        .expect("RS frame");
    frame
}

/// An MLDv2 report (ICMPv6 143 behind a hop-by-hop header with Router
/// Alert) to ff02::16, raw: etherparse does not build MLD.
pub fn mld_report(src: Mac, saddr: Ipv6, group: Ipv6) -> Vec<u8> {
    let all_mld_routers: Ipv6 = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16];
    let hop_by_hop = [58, 0, 5, 2, 0, 0, 1, 0];
    let mut mld = vec![143, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0];
    mld.extend_from_slice(&group);
    let payload_len = u16::try_from(hop_by_hop.len() + mld.len()).expect("short");
    let mut frame = ethernet(ipv6_multicast_mac(all_mld_routers), src, 0x86dd);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&payload_len.to_be_bytes());
    frame.extend_from_slice(&[0, 1]); // next header: hop-by-hop; hop limit 1
    frame.extend_from_slice(&saddr);
    frame.extend_from_slice(&all_mld_routers);
    frame.extend_from_slice(&hop_by_hop);
    frame.extend_from_slice(&mld);
    frame
}

/// An 802.1Q-tagged UDP/IPv4 frame (VLAN 100).
pub fn vlan_udp4(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .single_vlan(VlanId::try_new(100).expect("VLAN id"))
        .ipv4(saddr, daddr, 64)
        .udp(5353, 5353)
        .write_to_vec(&mut frame, PAYLOAD)
        .expect("VLAN frame");
    frame
}

/// An Ethernet header and nothing else.
pub fn ethernet(dst: Mac, src: Mac, ether_type: u16) -> Vec<u8> {
    let mut frame = Vec::with_capacity(64);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame
}

/// A non-IP frame: `ether_type` and a payload of `len` bytes.
pub fn raw(dst: Mac, src: Mac, ether_type: u16, len: usize) -> Vec<u8> {
    let mut frame = ethernet(dst, src, ether_type);
    frame.extend((0..len).map(|i| u8::try_from(i % 251).expect("< 251")));
    frame
}

/// An LLDP frame to the nearest-bridge group (01:80:c2:00:00:0e).
pub fn lldp(src: Mac) -> Vec<u8> {
    let mut frame = ethernet([0x01, 0x80, 0xc2, 0, 0, 0x0e], src, 0x88cc);
    // Chassis ID (MAC), Port ID (ifname "veth17"), TTL 120, End.
    frame.extend_from_slice(&[0x02, 0x07, 0x04]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&[0x04, 0x07, 0x05]);
    frame.extend_from_slice(b"veth17");
    frame.extend_from_slice(&[0x06, 0x02, 0x00, 0x78, 0x00, 0x00]);
    on_wire(frame)
}

/// A UDP/IPv4 frame of exactly `len` bytes (jumbo frames).
pub fn big_udp4(dst: Mac, src: Mac, saddr: Ipv4, daddr: Ipv4, len: usize) -> Vec<u8> {
    let headers = 14 + 20 + 8;
    let payload: Vec<u8> =
        (0..len - headers).map(|i| u8::try_from(i % 253).expect("< 253")).collect();
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4(saddr, daddr, 64)
        .udp(9, 9)
        .write_to_vec(&mut frame, &payload)
        .expect("jumbo frame");
    assert_eq!(frame.len(), len);
    frame
}

/// `frame` with an 802.1Q tag for VLAN `vid` after its Ethernet addresses
/// (the tag in the frame, as a driver that does not offload it delivers it).
pub fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&0x8100u16.to_be_bytes());
    out.extend_from_slice(&vid.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

/// The builders under the names this crate's unit tests use.
#[cfg(test)]
pub(crate) use self::{
    arp as arp_frame, fix_icmpv6_checksum as fix_nd_checksum, ipv4_bare as ipv4_frame,
    ipv6_bare as ipv6_frame, lla as lla_option, nd as nd_frame,
};
