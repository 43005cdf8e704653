//! Transmit: which slave a frame the host sends on the master leaves by.
//! Rules: spec §2.2 (balance-alb), with host ARP handled as in §1.4.

use crate::{
    assign::{bucket_of_v4, bucket_of_v6},
    maps::ClientKey,
    reason::Reason,
    wire::{
        ARP_OP_REPLY, ARP_OP_REQUEST, BROADCAST_MAC, IPPROTO_HOPOPTS, IPPROTO_IGMP, Mac, Parsed,
        is_multicast,
    },
};

/// What the transmit path does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxPlan {
    /// Out of the active slave, unchanged.
    Active(Reason),
    /// Unicast (or multicast data) IP: on the client's slave when `client`
    /// names a known client, else on the slave of `bucket`.
    Balance { client: Option<ClientKey>, bucket: u32 },
    /// An ARP the host sent from the master's MAC: out of the client's
    /// slave (dealt now if the client is new), with that slave's MAC as
    /// Ethernet source and ARP sender.
    HostArp(HostArp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostArp {
    /// Sender IP (server) and target IP (client).
    pub key: ClientKey,
    pub op: u16,
    /// The client's MAC as the ARP names it: the target of a reply or of a
    /// unicast request, unknown (zero) for a broadcast request.
    pub client_mac: Mac,
    /// A broadcast request: every listener that knows the server IP
    /// re-points to the sender MAC, so the agent must correct them.
    pub broadcast: bool,
}

/// Decides how a frame leaving the master is sent.
#[inline(always)]
pub fn tx_plan(frame: &Parsed, master_mac: &Mac) -> TxPlan {
    match frame {
        Parsed::Arp { eth, arp } => {
            let op = arp.oper();
            let ours = arp.sha == *master_mac && eth.src == *master_mac;
            if !ours || (op != ARP_OP_REQUEST && op != ARP_OP_REPLY) {
                return TxPlan::Active(Reason::TxArpForeign);
            }
            let broadcast = op == ARP_OP_REQUEST && is_multicast(&eth.dst);
            let client_mac = if broadcast { [0; 6] } else { eth.dst };
            TxPlan::HostArp(HostArp {
                key: ClientKey { server_ip: arp.spa, client_ip: arp.tpa },
                op,
                client_mac,
                broadcast,
            })
        }
        Parsed::Ipv4 { eth, ip } => {
            if eth.dst == BROADCAST_MAC || ip.daddr == [255; 4] || ip.protocol == IPPROTO_IGMP {
                return TxPlan::Active(Reason::TxActive);
            }
            let client = (!is_multicast(&eth.dst))
                .then_some(ClientKey { server_ip: ip.saddr, client_ip: ip.daddr });
            TxPlan::Balance { client, bucket: bucket_of_v4(&ip.daddr) }
        }
        Parsed::Ipv6 { eth, ip, icmp_type } => {
            const ALL_NODES: Mac = [0x33, 0x33, 0, 0, 0, 1];
            // Router and neighbour discovery (133..=137): the peers must
            // learn the master's MAC, so these keep it and the active slave.
            let neighbour_discovery = matches!(icmp_type, Some(133..=137));
            if eth.dst == BROADCAST_MAC
                || eth.dst == ALL_NODES
                || ip.saddr == [0; 16]
                || neighbour_discovery
                || ip.next_header == IPPROTO_HOPOPTS
            {
                return TxPlan::Active(Reason::TxActive);
            }
            TxPlan::Balance { client: None, bucket: bucket_of_v6(&ip.daddr) }
        }
        Parsed::Other { .. } => TxPlan::Active(Reason::TxActive),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ArpHdr, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, EthHdr, Ipv4Hdr, Ipv6Hdr};

    const MASTER: Mac = [2, 0, 0, 0, 0, 17];
    const CLIENT: Mac = [2, 0, 0, 0, 1, 1];
    const SERVER_IP: [u8; 4] = [198, 18, 0, 1];
    const CLIENT_IP: [u8; 4] = [198, 18, 0, 11];

    fn eth(dst: Mac, src: Mac, ether_type: u16) -> EthHdr {
        EthHdr { dst, src, ether_type: ether_type.to_be_bytes() }
    }

    fn arp(op: u16, sha: Mac, tha: Mac) -> ArpHdr {
        ArpHdr {
            htype: 1u16.to_be_bytes(),
            ptype: ETH_P_IP.to_be_bytes(),
            hlen: 6,
            plen: 4,
            oper: op.to_be_bytes(),
            sha,
            spa: SERVER_IP,
            tha,
            tpa: CLIENT_IP,
        }
    }

    fn ipv4(dst_mac: Mac, daddr: [u8; 4], protocol: u8) -> Parsed {
        Parsed::Ipv4 {
            eth: eth(dst_mac, MASTER, ETH_P_IP),
            ip: Ipv4Hdr {
                version_ihl: 0x45,
                tos: 0,
                total_len: [0, 84],
                id: [0; 2],
                frag_off: [0; 2],
                ttl: 64,
                protocol,
                check: [0; 2],
                saddr: SERVER_IP,
                daddr,
            },
        }
    }

    fn ipv6(dst_mac: Mac, saddr: [u8; 16], next_header: u8, icmp_type: Option<u8>) -> Parsed {
        let mut daddr = [0u8; 16];
        daddr[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
        daddr[15] = 11;
        Parsed::Ipv6 {
            eth: eth(dst_mac, MASTER, ETH_P_IPV6),
            ip: Ipv6Hdr {
                version_class_flow: [0x60, 0, 0, 0],
                payload_len: [0, 8],
                next_header,
                hop_limit: 64,
                saddr,
                daddr,
            },
            icmp_type,
        }
    }

    #[test]
    fn host_arp_reply_goes_by_client() {
        let frame = Parsed::Arp { eth: eth(CLIENT, MASTER, ETH_P_ARP), arp: arp(2, MASTER, CLIENT) };
        let TxPlan::HostArp(host) = tx_plan(&frame, &MASTER) else { panic!("not host ARP") };
        assert_eq!(host.key, ClientKey { server_ip: SERVER_IP, client_ip: CLIENT_IP });
        assert_eq!(host.client_mac, CLIENT);
        assert!(!host.broadcast);
    }

    #[test]
    fn host_broadcast_request_is_flagged() {
        let frame =
            Parsed::Arp { eth: eth(BROADCAST_MAC, MASTER, ETH_P_ARP), arp: arp(1, MASTER, [0; 6]) };
        let TxPlan::HostArp(host) = tx_plan(&frame, &MASTER) else { panic!("not host ARP") };
        assert!(host.broadcast);
        assert_eq!(host.client_mac, [0; 6]);
    }

    #[test]
    fn foreign_and_odd_arp_stay_on_active() {
        let other = [2, 0, 0, 0, 9, 9];
        let foreign = Parsed::Arp { eth: eth(CLIENT, other, ETH_P_ARP), arp: arp(2, other, CLIENT) };
        assert_eq!(tx_plan(&foreign, &MASTER), TxPlan::Active(Reason::TxArpForeign));
        let rarp = Parsed::Arp { eth: eth(CLIENT, MASTER, ETH_P_ARP), arp: arp(3, MASTER, CLIENT) };
        assert_eq!(tx_plan(&rarp, &MASTER), TxPlan::Active(Reason::TxArpForeign));
    }

    #[test]
    fn ipv4_rules_of_spec_2_2() {
        let unicast = tx_plan(&ipv4(CLIENT, CLIENT_IP, 6), &MASTER);
        assert_eq!(
            unicast,
            TxPlan::Balance {
                client: Some(ClientKey { server_ip: SERVER_IP, client_ip: CLIENT_IP }),
                bucket: bucket_of_v4(&CLIENT_IP),
            }
        );
        for active in [
            ipv4(BROADCAST_MAC, [198, 18, 0, 255], 17),
            ipv4(CLIENT, [255; 4], 17),
            ipv4([1, 0, 0x5e, 0, 0, 22], [224, 0, 0, 22], IPPROTO_IGMP),
        ] {
            assert_eq!(tx_plan(&active, &MASTER), TxPlan::Active(Reason::TxActive));
        }
        let multicast_data = tx_plan(&ipv4([1, 0, 0x5e, 1, 1, 1], [239, 1, 1, 1], 17), &MASTER);
        assert!(matches!(multicast_data, TxPlan::Balance { client: None, .. }));
    }

    #[test]
    fn ipv6_control_stays_on_active() {
        let src = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let peer = [2, 0, 0, 0, 1, 1];
        assert!(matches!(tx_plan(&ipv6(peer, src, 6, None), &MASTER), TxPlan::Balance { .. }));
        for active in [
            ipv6(peer, src, IPPROTO_ICMPV6_FOR_TEST, Some(135)),
            ipv6(peer, src, IPPROTO_ICMPV6_FOR_TEST, Some(136)),
            ipv6([0x33, 0x33, 0, 0, 0, 1], src, 17, None),
            ipv6([0x33, 0x33, 0xff, 0, 0, 1], [0; 16], IPPROTO_ICMPV6_FOR_TEST, Some(135)),
            ipv6([0x33, 0x33, 0, 0, 0, 0x16], src, IPPROTO_HOPOPTS, None),
        ] {
            assert_eq!(tx_plan(&active, &MASTER), TxPlan::Active(Reason::TxActive));
        }
        let echo = ipv6(peer, src, IPPROTO_ICMPV6_FOR_TEST, Some(129));
        assert!(matches!(tx_plan(&echo, &MASTER), TxPlan::Balance { .. }));
    }

    const IPPROTO_ICMPV6_FOR_TEST: u8 = crate::wire::IPPROTO_ICMPV6;

    #[test]
    fn non_ip_stays_on_active() {
        let lldp = Parsed::Other { eth: eth([1, 0x80, 0xc2, 0, 0, 0xe], MASTER, 0x88cc) };
        assert_eq!(tx_plan(&lldp, &MASTER), TxPlan::Active(Reason::TxActive));
    }
}
