//! Transmit: which slave a frame the host sends on the master leaves by.
//! Rules: docs/bonding.md §3.2 (balance-alb), with host ARP handled as in
//! §2.3.
//!
//! The plan is computed straight from the frame, reading only the headers
//! it needs: the BPF verifier copes badly with large parsed values.

use crate::{
    assign::bucket_of_v4,
    maps::ClientKey,
    reason::Reason,
    vlan::{Tag, Untagged},
    wire::{
        ARP_OP_REPLY, ARP_OP_REQUEST, ArpHdr, BROADCAST_MAC, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6,
        EthHdr, Frame, IPPROTO_IGMP, Ipv4Hdr, Mac, ipv4_eq, is_multicast, is_valid_unicast, mac_eq,
    },
};

/// What the transmit path does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxPlan {
    /// Out of the active slave. `from_master`: the source is the master's
    /// MAC (which the active slave has too, so nothing is rewritten).
    Active { reason: Reason, from_master: bool },
    /// Unicast (or multicast data) IP: on the client's slave when `client`
    /// names a known client, else on the slave of `bucket`. Frames the
    /// master originated take the chosen slave's MAC as source.
    Balance { client: Option<ClientKey>, bucket: u32, from_master: bool },
    /// An ARP the host sent from the master's MAC: out of the client's
    /// slave (dealt now if the client is new), with that slave's MAC as
    /// Ethernet source and ARP sender.
    HostArp(HostArp),
    /// A gratuitous ARP or probe from the master: out of the active slave
    /// unchanged; for a real address (not 0.0.0.0), every client of it (in
    /// VLAN `vlan`) that is not on the active slave must be told its slave
    /// again.
    Announce { server_ip: [u8; 4], vlan: u16 },
    /// A frame from another source MAC (a VM behind a bridge on the
    /// master, a macvlan on it), whatever it carries (ARP, Neighbor
    /// Discovery, broadcast included): out of the slave that MAC is pinned
    /// to (pinned now if new), never rewritten, so the switch sees each VM
    /// MAC on one port (OVS balance-slb's rule).
    Vm { mac: Mac },
    /// IPv6: decided by [`super::ipv6::tx6_plan`], which reads the rest
    /// (kept apart so the IPv4 path stays as short as it was).
    Ipv6 { from_master: bool },
    /// Not even an Ethernet header.
    Malformed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostArp {
    /// Sender IP (server) and target IP (client), in the frame's VLAN.
    pub key: ClientKey,
    pub op: u16,
    /// The client's MAC as the ARP names it: the destination of a reply or
    /// of a unicast request; unknown (zero) for a broadcast request.
    pub client_mac: Mac,
    /// Sent to a group address (a broadcast request, or a reply some
    /// stacks broadcast): every listener that knows the server IP
    /// re-points to the sender MAC, so the agent must correct them.
    pub broadcast: bool,
}

/// Decides how a frame leaving the master is sent; `tag`: its VLAN tag
/// ([`Tag::of`]). A tagged frame is decided as the frame inside the tag,
/// and its clients are the clients of its VLAN.
#[inline(always)]
pub fn tx_plan<F: Frame + ?Sized>(frame: &F, master_mac: &Mac, tag: Tag) -> TxPlan {
    // One read of the Ethernet header, as for an untagged frame; behind an
    // in-frame tag, the inner ethertype replaces the TPID. (Reading the
    // addresses and the ethertype as two reads checked together made LLVM
    // merge the two failures, and Linux 6.1's verifier then followed a path
    // where the ethertype was never loaded.)
    let Some(mut eth) = frame.read::<EthHdr>(0) else {
        return TxPlan::Malformed;
    };
    if tag.in_frame {
        match frame.read::<[u8; 2]>(EthHdr::LEN + 2) {
            Some(inner) => eth.ether_type = inner,
            None => return TxPlan::Malformed,
        }
    }
    let frame = &Untagged::new(frame, tag);
    let from_master = mac_eq(&eth.src, master_mac);
    // The host's own frames pay this one test of a comparison made anyway.
    if !from_master && is_valid_unicast(&eth.src) {
        return TxPlan::Vm { mac: eth.src };
    }
    let active = TxPlan::Active { reason: Reason::TxActive, from_master };
    match eth.ether_type() {
        ETH_P_ARP => match frame.read::<ArpHdr>(EthHdr::LEN) {
            Some(arp) if arp.is_ethernet_ipv4() => arp_plan(&eth, &arp, master_mac, tag.vid),
            _ => active,
        },
        ETH_P_IP => match frame.read::<Ipv4Hdr>(EthHdr::LEN) {
            Some(ip) if ip.version_ihl >> 4 == 4 => ipv4_plan(&eth, &ip, from_master, tag.vid),
            _ => active,
        },
        ETH_P_IPV6 => TxPlan::Ipv6 { from_master },
        _ => active,
    }
}

/// Host ARP (sender = master MAC, request or reply) goes by client; any
/// other ARP from the master's MAC (another sender, RARP) leaves unchanged
/// by the active slave (docs/bonding.md §2.3's filters). A VM's ARP never gets here.
#[inline(always)]
fn arp_plan(eth: &EthHdr, arp: &ArpHdr, master_mac: &Mac, vlan: u16) -> TxPlan {
    let op = arp.oper();
    let ours = mac_eq(&arp.sha, master_mac) && mac_eq(&eth.src, master_mac);
    if !ours || (op != ARP_OP_REQUEST && op != ARP_OP_REPLY) {
        return TxPlan::Active { reason: Reason::TxArpForeign, from_master: ours };
    }
    // Gratuitous ARP (sender IP = target IP) announces the server address
    // to everyone, and a probe (sender IP 0.0.0.0, RFC 5227) asks about it:
    // neither is about a client. They leave unchanged by the active slave;
    // clients of other slaves that heard the announcement are told their
    // own slave again (`Announce`).
    if ipv4_eq(&arp.spa, &arp.tpa) || ipv4_eq(&arp.spa, &[0; 4]) {
        return TxPlan::Announce { server_ip: arp.spa, vlan };
    }
    let broadcast = is_multicast(&eth.dst);
    TxPlan::HostArp(HostArp {
        key: ClientKey::new(arp.spa, arp.tpa, vlan),
        op,
        client_mac: if broadcast { [0; 6] } else { eth.dst },
        broadcast,
    })
}

/// Broadcast, limited broadcast and IGMP by the active slave; the rest,
/// multicast data included, balanced (docs/bonding.md §3.2).
#[inline(always)]
fn ipv4_plan(eth: &EthHdr, ip: &Ipv4Hdr, from_master: bool, vlan: u16) -> TxPlan {
    if mac_eq(&eth.dst, &BROADCAST_MAC)
        || ipv4_eq(&ip.daddr, &[255; 4])
        || ip.protocol == IPPROTO_IGMP
    {
        return TxPlan::Active { reason: Reason::TxActive, from_master };
    }
    let client = (!is_multicast(&eth.dst)).then_some(ClientKey::new(ip.saddr, ip.daddr, vlan));
    TxPlan::Balance { client, bucket: bucket_of_v4(&ip.daddr), from_master }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{arp_frame, ipv4_frame, ipv6_frame};

    const MASTER: Mac = [2, 0, 0, 0, 0, 17];
    const CLIENT: Mac = [2, 0, 0, 0, 1, 1];
    const SERVER_IP: [u8; 4] = [198, 18, 0, 1];
    const CLIENT_IP: [u8; 4] = [198, 18, 0, 11];

    fn active() -> TxPlan {
        TxPlan::Active { reason: Reason::TxActive, from_master: true }
    }

    #[test]
    fn host_arp_reply_goes_by_client() {
        let frame = arp_frame(CLIENT, MASTER, 2, MASTER, SERVER_IP, CLIENT, CLIENT_IP);
        let TxPlan::HostArp(host) = tx_plan(&frame[..], &MASTER, Tag::default()) else {
            panic!("not host ARP")
        };
        assert_eq!(host.key, ClientKey::new(SERVER_IP, CLIENT_IP, 0));
        assert_eq!(host.client_mac, CLIENT);
        assert!(!host.broadcast);
    }

    #[test]
    fn host_broadcast_request_is_flagged() {
        let frame = arp_frame(BROADCAST_MAC, MASTER, 1, MASTER, SERVER_IP, [0; 6], CLIENT_IP);
        let TxPlan::HostArp(host) = tx_plan(&frame[..], &MASTER, Tag::default()) else {
            panic!("not host ARP")
        };
        assert!(host.broadcast);
        assert_eq!(host.client_mac, [0; 6]);
    }

    #[test]
    fn gratuitous_arp_and_probes_are_announcements() {
        let garp = arp_frame(BROADCAST_MAC, MASTER, 1, MASTER, SERVER_IP, [0; 6], SERVER_IP);
        assert_eq!(
            tx_plan(&garp[..], &MASTER, Tag::default()),
            TxPlan::Announce { server_ip: SERVER_IP, vlan: 0 }
        );
        let garp_reply = arp_frame(BROADCAST_MAC, MASTER, 2, MASTER, SERVER_IP, MASTER, SERVER_IP);
        assert_eq!(
            tx_plan(&garp_reply[..], &MASTER, Tag::default()),
            TxPlan::Announce { server_ip: SERVER_IP, vlan: 0 }
        );
        let probe = arp_frame(BROADCAST_MAC, MASTER, 1, MASTER, [0; 4], [0; 6], SERVER_IP);
        assert_eq!(
            tx_plan(&probe[..], &MASTER, Tag::default()),
            TxPlan::Announce { server_ip: [0; 4], vlan: 0 }
        );
    }

    #[test]
    fn a_broadcast_reply_is_flagged_too() {
        let frame = arp_frame(BROADCAST_MAC, MASTER, 2, MASTER, SERVER_IP, CLIENT, CLIENT_IP);
        let TxPlan::HostArp(host) = tx_plan(&frame[..], &MASTER, Tag::default()) else {
            panic!("not host ARP")
        };
        assert!(host.broadcast);
    }

    #[test]
    fn foreign_and_odd_arp_stay_on_active() {
        let other = [2, 0, 0, 0, 9, 9];
        // Another sender in an ARP from the master's MAC.
        let foreign = arp_frame(CLIENT, MASTER, 2, other, SERVER_IP, CLIENT, CLIENT_IP);
        assert_eq!(
            tx_plan(&foreign[..], &MASTER, Tag::default()),
            TxPlan::Active { reason: Reason::TxArpForeign, from_master: false }
        );
        let rarp = arp_frame(CLIENT, MASTER, 3, MASTER, SERVER_IP, CLIENT, CLIENT_IP);
        assert_eq!(
            tx_plan(&rarp[..], &MASTER, Tag::default()),
            TxPlan::Active { reason: Reason::TxArpForeign, from_master: true }
        );
    }

    /// docs/bonding.md §3.2.
    #[test]
    fn ipv4_is_balanced_as_bonding_balances_it() {
        let unicast = ipv4_frame(CLIENT, MASTER, SERVER_IP, CLIENT_IP, 6);
        assert_eq!(
            tx_plan(&unicast[..], &MASTER, Tag::default()),
            TxPlan::Balance {
                client: Some(ClientKey::new(SERVER_IP, CLIENT_IP, 0)),
                bucket: bucket_of_v4(&CLIENT_IP),
                from_master: true,
            }
        );
        for frame in [
            ipv4_frame(BROADCAST_MAC, MASTER, SERVER_IP, [198, 18, 0, 255], 17),
            ipv4_frame(CLIENT, MASTER, SERVER_IP, [255; 4], 17),
            ipv4_frame([1, 0, 0x5e, 0, 0, 22], MASTER, SERVER_IP, [224, 0, 0, 22], IPPROTO_IGMP),
        ] {
            assert_eq!(tx_plan(&frame[..], &MASTER, Tag::default()), active());
        }
        let multicast_data =
            ipv4_frame([1, 0, 0x5e, 1, 1, 1], MASTER, SERVER_IP, [239, 1, 1, 1], 17);
        assert!(matches!(
            tx_plan(&multicast_data[..], &MASTER, Tag::default()),
            TxPlan::Balance { client: None, .. }
        ));
    }

    #[test]
    fn frames_of_other_source_macs_are_pinned_by_mac_whatever_they_carry() {
        let vm = [2, 9, 9, 9, 9, 9];
        let src6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        for frame in [
            ipv4_frame(CLIENT, vm, SERVER_IP, CLIENT_IP, 6),
            ipv4_frame(BROADCAST_MAC, vm, SERVER_IP, [198, 18, 0, 255], 17),
            arp_frame(CLIENT, vm, 2, vm, SERVER_IP, CLIENT, CLIENT_IP),
            arp_frame(BROADCAST_MAC, vm, 1, vm, SERVER_IP, [0; 6], CLIENT_IP),
            // The VM claims the master's MAC in its ARP: still the VM's frame.
            arp_frame(CLIENT, vm, 2, MASTER, SERVER_IP, CLIENT, CLIENT_IP),
        ] {
            assert_eq!(tx_plan(&frame[..], &MASTER, Tag::default()), TxPlan::Vm { mac: vm });
        }
        assert_eq!(
            tx_plan(&ipv6_frame(CLIENT, vm, src6, 58, None)[..], &MASTER, Tag::default()),
            TxPlan::Vm { mac: vm }
        );
        // No valid source MAC: not a VM; the frame goes as before.
        let zero = ipv4_frame(CLIENT, [0; 6], SERVER_IP, CLIENT_IP, 6);
        assert!(matches!(
            tx_plan(&zero[..], &MASTER, Tag::default()),
            TxPlan::Balance { from_master: false, .. }
        ));
        let group = ipv4_frame(CLIENT, [3, 0, 0, 0, 0, 1], SERVER_IP, CLIENT_IP, 6);
        assert!(matches!(
            tx_plan(&group[..], &MASTER, Tag::default()),
            TxPlan::Balance { from_master: false, .. }
        ));
        // A frame of the VM's too short for its ethertype is still pinned.
        let short = ipv4_frame(CLIENT, vm, SERVER_IP, CLIENT_IP, 6);
        assert_eq!(tx_plan(&short[..14], &MASTER, Tag::default()), TxPlan::Vm { mac: vm });
    }

    #[test]
    fn ipv6_is_left_to_its_own_plan() {
        let src = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let tcp = ipv6_frame(CLIENT, MASTER, src, 6, None);
        assert_eq!(tx_plan(&tcp[..], &MASTER, Tag::default()), TxPlan::Ipv6 { from_master: true });
        let unknown = ipv6_frame(CLIENT, [0; 6], src, 6, None);
        assert_eq!(
            tx_plan(&unknown[..], &MASTER, Tag::default()),
            TxPlan::Ipv6 { from_master: false }
        );
    }

    #[test]
    fn tagged_frames_are_decided_inside_their_vlan() {
        use crate::testing::tagged;
        let reply = arp_frame(CLIENT, MASTER, 2, MASTER, SERVER_IP, CLIENT, CLIENT_IP);
        let in_frame = tagged(&reply, 100);
        let tag = Tag::of(&in_frame[..], None);
        let TxPlan::HostArp(host) = tx_plan(&in_frame[..], &MASTER, tag) else {
            panic!("a tagged host ARP reply is host ARP")
        };
        assert_eq!(host.key, ClientKey::new(SERVER_IP, CLIENT_IP, 100));
        // The same frame with its tag offloaded: the same client.
        let offloaded = Tag::of(&reply[..], Some(100));
        assert_eq!(tx_plan(&reply[..], &MASTER, offloaded), TxPlan::HostArp(host));
        // Another VLAN reusing the addresses: another client.
        let TxPlan::HostArp(other) = tx_plan(&reply[..], &MASTER, Tag::of(&reply[..], Some(200)))
        else {
            panic!("host ARP")
        };
        assert_ne!(other.key, host.key);
        let tcp = tagged(&ipv4_frame(CLIENT, MASTER, SERVER_IP, CLIENT_IP, 6), 100);
        assert_eq!(
            tx_plan(&tcp[..], &MASTER, Tag::of(&tcp[..], None)),
            TxPlan::Balance {
                client: Some(ClientKey::new(SERVER_IP, CLIENT_IP, 100)),
                bucket: bucket_of_v4(&CLIENT_IP),
                from_master: true,
            }
        );
        let garp =
            tagged(&arp_frame(BROADCAST_MAC, MASTER, 1, MASTER, SERVER_IP, [0; 6], SERVER_IP), 7);
        assert_eq!(
            tx_plan(&garp[..], &MASTER, Tag::of(&garp[..], None)),
            TxPlan::Announce { server_ip: SERVER_IP, vlan: 7 }
        );
        let igmp =
            ipv4_frame([1, 0, 0x5e, 0, 0, 22], MASTER, SERVER_IP, [224, 0, 0, 22], IPPROTO_IGMP);
        let igmp = tagged(&igmp, 7);
        assert_eq!(tx_plan(&igmp[..], &MASTER, Tag::of(&igmp[..], None)), active());
        let src6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let v6 = tagged(&ipv6_frame(CLIENT, MASTER, src6, 6, None), 7);
        assert_eq!(
            tx_plan(&v6[..], &MASTER, Tag::of(&v6[..], None)),
            TxPlan::Ipv6 { from_master: true }
        );
        // QinQ: a tag inside the offloaded one is not IP to alb.
        assert_eq!(tx_plan(&tcp[..], &MASTER, Tag::of(&tcp[..], Some(5))), active());
        // A tag and nothing after it.
        assert_eq!(tx_plan(&tcp[..16], &MASTER, Tag::of(&tcp[..], None)), TxPlan::Malformed);
    }

    #[test]
    fn non_ip_and_truncated_frames() {
        let mut lldp = [0u8; 60];
        lldp[0..6].copy_from_slice(&[1, 0x80, 0xc2, 0, 0, 0xe]);
        lldp[6..12].copy_from_slice(&MASTER);
        lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
        assert_eq!(tx_plan(&lldp[..], &MASTER, Tag::default()), active());
        assert_eq!(tx_plan(&lldp[..13], &MASTER, Tag::default()), TxPlan::Malformed);
        let arp = arp_frame(CLIENT, MASTER, 2, MASTER, SERVER_IP, CLIENT, CLIENT_IP);
        assert_eq!(tx_plan(&arp[..30], &MASTER, Tag::default()), active());
    }
}
