//! Frames the agent sends itself: ARP updates and neighbour advertisements
//! that point a client at its slave, and switch learning frames. ARP and
//! learning frames are fixed 60-byte arrays (`ETH_ZLEN`), the size the
//! kernel pads them to.

use crate::{
    nd::{self, ADVERT_OVERRIDE, NEIGHBOUR_ADVERT, OPT_TARGET_LLA, checksum},
    wire::{
        ARP_OP_REPLY, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ETH_P_LOOPBACK, IPPROTO_ICMPV6, Ipv4, Ipv6,
        Mac,
    },
};

/// Minimum Ethernet frame without FCS.
pub const FRAME_LEN: usize = 60;

/// Which form of ARP update to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateForm {
    /// The kernel's RLB update (docs/bonding.md §2.5): THA = client MAC, TPA = client
    /// IP. A Linux client applies it only if its entry is older than
    /// `locktime` (1 s).
    Rlb,
    /// Gratuitous: TPA = SPA = server IP and THA = SHA. Linux applies it at
    /// once whatever the entry's age (`arp_is_garp` in net/ipv4/arp.c),
    /// so a moved client is corrected in milliseconds, not after locktime.
    Gratuitous,
}

/// A unicast ARP reply, sent to `client_mac`, that maps `server_ip` to
/// `slave_mac`.
pub fn arp_update(
    form: UpdateForm,
    slave_mac: &Mac,
    server_ip: &Ipv4,
    client_mac: &Mac,
    client_ip: &Ipv4,
) -> [u8; FRAME_LEN] {
    let (tha, tpa) = match form {
        UpdateForm::Rlb => (client_mac, client_ip),
        UpdateForm::Gratuitous => (slave_mac, server_ip),
    };
    let mut frame = [0u8; FRAME_LEN];
    frame[0..6].copy_from_slice(client_mac);
    frame[6..12].copy_from_slice(slave_mac);
    frame[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    frame[14..16].copy_from_slice(&1u16.to_be_bytes());
    frame[16..18].copy_from_slice(&ETH_P_IP.to_be_bytes());
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&ARP_OP_REPLY.to_be_bytes());
    frame[22..28].copy_from_slice(slave_mac);
    frame[28..32].copy_from_slice(server_ip);
    frame[32..38].copy_from_slice(tha);
    frame[38..42].copy_from_slice(tpa);
    frame
}

/// An unsolicited neighbour advertisement with its target link-layer
/// address option: Ethernet, IPv6 and a 32-byte message.
pub const ADVERT_FRAME_LEN: usize = nd::ICMP_OFFSET + nd::HEADER_LEN + 8;

/// A unicast, unsolicited neighbour advertisement to `client_mac` /
/// `client_ip`, from `server_ip`, saying that `server_ip` is at
/// `slave_mac`, with the override flag set: a host replaces the MAC it has
/// for the server at once (RFC 4861 §7.2.5; Linux has no lock time for
/// Neighbor Discovery, unlike ARP), and keeps the entry STALE until its
/// next reachability probe confirms it.
pub fn neighbour_advert(
    slave_mac: &Mac,
    server_ip: &Ipv6,
    client_mac: &Mac,
    client_ip: &Ipv6,
) -> [u8; ADVERT_FRAME_LEN] {
    const MESSAGE: usize = nd::HEADER_LEN + 8;
    let mut frame = [0u8; ADVERT_FRAME_LEN];
    frame[0..6].copy_from_slice(client_mac);
    frame[6..12].copy_from_slice(slave_mac);
    frame[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    frame[14] = 0x60;
    frame[18..20].copy_from_slice(&(MESSAGE as u16).to_be_bytes());
    frame[20] = IPPROTO_ICMPV6;
    frame[21] = 255;
    frame[22..38].copy_from_slice(server_ip);
    frame[38..54].copy_from_slice(client_ip);
    let icmp = nd::ICMP_OFFSET;
    frame[icmp] = NEIGHBOUR_ADVERT;
    frame[icmp + 4] = ADVERT_OVERRIDE;
    frame[icmp + 8..icmp + 24].copy_from_slice(server_ip);
    frame[icmp + 24] = OPT_TARGET_LLA;
    frame[icmp + 25] = 1;
    frame[icmp + 26..icmp + 32].copy_from_slice(slave_mac);
    let mut sum = checksum::pseudo_header(server_ip, client_ip, MESSAGE as u32);
    let mut at = icmp;
    while at < ADVERT_FRAME_LEN {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(&frame[at..at + 8]);
        sum = checksum::add8(sum, chunk);
        at += 8;
    }
    frame[nd::CHECKSUM_OFFSET..nd::CHECKSUM_OFFSET + 2].copy_from_slice(&checksum::finish(sum));
    frame
}

/// A bonding learning frame (docs/bonding.md §3.5): source = destination = `mac`,
/// ethertype 0x9000, zero padded. It teaches switches where `mac` lives.
pub fn learning_frame(mac: &Mac) -> [u8; FRAME_LEN] {
    let mut frame = [0u8; FRAME_LEN];
    frame[0..6].copy_from_slice(mac);
    frame[6..12].copy_from_slice(mac);
    frame[12..14].copy_from_slice(&ETH_P_LOOPBACK.to_be_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ArpHdr, EthHdr, Frame as _};

    fn split(frame: &[u8]) -> (EthHdr, ArpHdr) {
        (frame.read(0).expect("Ethernet"), frame.read(EthHdr::LEN).expect("ARP"))
    }

    const SLAVE: Mac = [2, 0, 0, 0, 0, 19];
    const CLIENT: Mac = [2, 0, 0, 0, 1, 2];
    const SERVER_IP: Ipv4 = [198, 18, 0, 1];
    const CLIENT_IP: Ipv4 = [198, 18, 0, 12];

    /// docs/bonding.md §2.5.
    #[test]
    fn rlb_update_is_the_kernels_update_frame() {
        let frame = arp_update(UpdateForm::Rlb, &SLAVE, &SERVER_IP, &CLIENT, &CLIENT_IP);
        let (eth, arp) = split(&frame);
        assert_eq!(eth.ether_type(), ETH_P_ARP);
        assert_eq!((eth.dst, eth.src), (CLIENT, SLAVE));
        assert_eq!(arp.oper(), ARP_OP_REPLY);
        assert_eq!((arp.sha, arp.spa, arp.tha, arp.tpa), (SLAVE, SERVER_IP, CLIENT, CLIENT_IP));
    }

    #[test]
    fn gratuitous_update_names_the_server_twice() {
        let frame = arp_update(UpdateForm::Gratuitous, &SLAVE, &SERVER_IP, &CLIENT, &CLIENT_IP);
        let (eth, arp) = split(&frame);
        assert!(arp.is_ethernet_ipv4());
        assert_eq!(eth.dst, CLIENT);
        assert_eq!((arp.sha, arp.spa, arp.tha, arp.tpa), (SLAVE, SERVER_IP, SLAVE, SERVER_IP));
    }

    #[test]
    fn a_neighbour_advertisement_is_valid_and_overrides() {
        let server = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let client = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c];
        let frame = neighbour_advert(&SLAVE, &server, &CLIENT, &client);
        let eth: EthHdr = frame.read(0).expect("Ethernet");
        assert_eq!((eth.dst, eth.src, eth.ether_type()), (CLIENT, SLAVE, ETH_P_IPV6));
        let ip: crate::wire::Ipv6Hdr = frame.read(EthHdr::LEN).expect("IPv6");
        assert_eq!((ip.saddr, ip.daddr, ip.hop_limit), (server, client, 255));
        let nd = nd::parse(&frame[..], &ip).expect("a valid advertisement");
        assert_eq!(nd.kind, nd::Kind::Advert);
        assert_eq!(nd.flags, ADVERT_OVERRIDE, "unsolicited, overriding");
        assert_eq!((nd.target.octets(), nd.lla), (server, SLAVE));
    }

    /// docs/bonding.md §3.5.
    #[test]
    fn learning_frame_is_bondings() {
        let frame = learning_frame(&SLAVE);
        assert_eq!(frame.len(), 60);
        assert_eq!(&frame[0..6], &SLAVE);
        assert_eq!(&frame[6..12], &SLAVE);
        assert_eq!(&frame[12..14], &[0x90, 0x00]);
        assert!(frame[14..].iter().all(|&b| b == 0));
    }
}
