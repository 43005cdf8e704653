//! Receive: what a slave does with a frame the network delivered to it.
//! Rules: docs/bonding.md §2.9 (balance-alb), plus failover acceptance
//! (§2.8, as alb improves it): frames for a failed slave's MAC are taken on the active
//! slave instead of being dropped as PACKET_OTHERHOST. Beyond the kernel:
//! unicast for a VM MAC (a bridged VM's, a macvlan's, learned from the
//! frames it sends) is delivered whichever slave it arrives on.

use crate::{
    maps::ClientKey,
    reason::Reason,
    vlan::{Tag, Untagged},
    wire::{
        ArpHdr, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, EthHdr, Frame, Ipv4Hdr, Mac, is_multicast, mac_eq,
    },
};

/// The slave that owns a MAC, as the receive path sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub index: u32,
    pub up: bool,
}

/// What the receive path does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxPlan {
    /// Into the master's stack; `rewrite_dst` when the frame is addressed
    /// to a slave MAC other than the master's, which the stack would
    /// otherwise drop as PACKET_OTHERHOST.
    Deliver { rewrite_dst: bool, reason: Reason },
    /// Dropped: the active slave delivers this frame.
    Drop(Reason),
    /// Left to the slave device (which has no address).
    Pass(Reason),
}

/// IEEE 802.1D link-local group addresses (01:80:c2:00:00:0x: LLDP, STP,
/// pause): the kernel passes them up the slave that received them.
#[inline(always)]
pub fn is_link_local(mac: &Mac) -> bool {
    mac[0] == 0x01
        && mac[1] == 0x80
        && mac[2] == 0xc2
        && mac[3] == 0
        && mac[4] == 0
        && mac[5] & 0xf0 == 0
}

/// Decides the fate of a frame received on slave `this` (with MAC
/// `this_mac`). `owner_of` finds the slave that owns a MAC; `is_vm` says
/// whether a MAC is a learned VM MAC (the VM table).
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "plain values the BPF program has at hand")]
pub fn rx_plan(
    dst: &Mac,
    src: &Mac,
    this: u32,
    this_mac: &Mac,
    active: u32,
    master_mac: &Mac,
    owner_of: impl Fn(&Mac) -> Option<Owner>,
    is_vm: impl Fn(&Mac) -> bool,
) -> RxPlan {
    if is_multicast(dst) {
        if this != active {
            return if is_link_local(dst) {
                RxPlan::Pass(Reason::RxLinkLocal)
            } else {
                RxPlan::Drop(Reason::RxBroadcastInactive)
            };
        }
        // A broadcast one of our slaves sent, flooded back by the switch:
        // the master (or a VM behind it, whose frames leave by its own
        // slave) sent it and must not hear it again: a bridge on the master
        // would learn the VM on the wrong port, a macvlan hear itself.
        if owner_of(src).is_some() || is_vm(src) {
            return RxPlan::Drop(Reason::RxLooped);
        }
        return RxPlan::Deliver { rewrite_dst: false, reason: Reason::RxBroadcast };
    }
    if mac_eq(dst, this_mac) {
        return RxPlan::Deliver {
            rewrite_dst: !mac_eq(dst, master_mac),
            reason: Reason::RxUnicast,
        };
    }
    // The active slave carries the master's MAC, whoever owns it: its owner
    // may be down, removed, or the user may have given the master a new one.
    if this == active && mac_eq(dst, master_mac) {
        return RxPlan::Deliver { rewrite_dst: false, reason: Reason::RxUnicast };
    }
    match owner_of(dst) {
        Some(owner) if !owner.up && this == active => {
            RxPlan::Deliver { rewrite_dst: !mac_eq(dst, master_mac), reason: Reason::RxFailover }
        }
        Some(_) => RxPlan::Pass(Reason::RxNotForUs),
        // A VM's frames leave by one slave, so the switch sends its unicast
        // there; a slot move (failover, return) changes that slave, and
        // frames still on their way to the old one are taken too.
        None if is_vm(dst) => RxPlan::Deliver { rewrite_dst: false, reason: Reason::RxVm },
        None => RxPlan::Pass(Reason::RxNotForUs),
    }
}

/// What a delivered frame tells about clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// IPv4 from `key.client_ip` to `key.server_ip`: count it for the client.
    Ipv4(ClientKey),
    /// An Ethernet/IPv4 ARP: learn from it, for the client of the frame's
    /// VLAN (`Tag::vid`). The VLAN is not carried here: an enum with it
    /// made LLVM copy the undefined payload of `Nothing` through a register
    /// after a failed read, which the verifier refuses.
    Arp(ArpHdr),
    /// IPv6: [`super::ipv6::rx6_watch`] reads the rest.
    Ipv6,
    Nothing,
}

/// Whether a delivered frame can skip [`rx_watch`]: plain IPv4 (its
/// EtherType, untagged or with the tag offloaded) not drawn for its
/// client's counters (`weight` 0). Nothing else on receive learns from
/// IPv4 data, so most frames then skip the parse, the client look-up and
/// the call `alb_rx` makes to watch.
#[inline(always)]
pub fn rx_unwatched<F: Frame + ?Sized>(frame: &F, weight: u64) -> bool {
    weight == 0
        && frame
            .read::<[u8; 2]>(12)
            .is_some_and(|ether_type| u16::from_be_bytes(ether_type) == ETH_P_IP)
}

/// Reads what the receive path learns from a frame it delivers; `tag`: its
/// VLAN tag ([`Tag::of`]), whose VLAN its client is in.
#[inline(always)]
pub fn rx_watch<F: Frame + ?Sized>(frame: &F, tag: Tag) -> Watch {
    let frame = &Untagged::new(frame, tag);
    let Some(ether_type) = frame.read::<[u8; 2]>(12) else { return Watch::Nothing };
    match u16::from_be_bytes(ether_type) {
        ETH_P_IP => match frame.read::<Ipv4Hdr>(EthHdr::LEN) {
            Some(ip) if ip.version_ihl >> 4 == 4 => {
                Watch::Ipv4(ClientKey::new(ip.daddr, ip.saddr, tag.vid))
            }
            _ => Watch::Nothing,
        },
        ETH_P_ARP => match frame.read::<ArpHdr>(EthHdr::LEN) {
            Some(arp) if arp.is_ethernet_ipv4() => Watch::Arp(arp),
            _ => Watch::Nothing,
        },
        ETH_P_IPV6 => Watch::Ipv6,
        _ => Watch::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::BROADCAST_MAC;

    const S0: Mac = [2, 0, 0, 0, 0, 17];
    const S1: Mac = [2, 0, 0, 0, 0, 19];
    const S2: Mac = [2, 0, 0, 0, 0, 21];
    const MASTER: Mac = S0;
    const PEER: Mac = [2, 0, 0, 0, 1, 1];

    fn owners(dst: &Mac) -> Option<Owner> {
        match *dst {
            S0 => Some(Owner { index: 0, up: true }),
            S1 => Some(Owner { index: 1, up: true }),
            S2 => Some(Owner { index: 2, up: false }),
            _ => None,
        }
    }

    const VM: Mac = [2, 0, 0, 0, 7, 1];

    fn vms(mac: &Mac) -> bool {
        *mac == VM
    }

    #[test]
    fn unicast_for_a_vm_is_delivered_on_any_slave_unchanged() {
        for (this, mac) in [(0, S0), (1, S1)] {
            assert_eq!(
                rx_plan(&VM, &PEER, this, &mac, 0, &MASTER, owners, vms),
                RxPlan::Deliver { rewrite_dst: false, reason: Reason::RxVm }
            );
        }
        // An unknown MAC (a VM that aged out, another host's) is not ours.
        assert_eq!(
            rx_plan(&[2, 0, 0, 0, 7, 2], &PEER, 1, &S1, 0, &MASTER, owners, vms),
            RxPlan::Pass(Reason::RxNotForUs)
        );
    }

    #[test]
    fn a_vms_broadcast_flooded_back_is_dropped_and_others_delivered_once() {
        assert_eq!(
            rx_plan(&BROADCAST_MAC, &VM, 0, &S0, 0, &MASTER, owners, vms),
            RxPlan::Drop(Reason::RxLooped)
        );
        assert_eq!(
            rx_plan(&BROADCAST_MAC, &VM, 1, &S1, 0, &MASTER, owners, vms),
            RxPlan::Drop(Reason::RxBroadcastInactive)
        );
        // A client's broadcast to the VMs: through the active slave only.
        assert_eq!(
            rx_plan(&BROADCAST_MAC, &PEER, 1, &S1, 0, &MASTER, owners, vms),
            RxPlan::Drop(Reason::RxBroadcastInactive)
        );
    }

    #[test]
    fn broadcast_only_through_the_active_slave() {
        let on_active = rx_plan(&BROADCAST_MAC, &PEER, 0, &S0, 0, &MASTER, owners, vms);
        assert_eq!(on_active, RxPlan::Deliver { rewrite_dst: false, reason: Reason::RxBroadcast });
        let on_other = rx_plan(&BROADCAST_MAC, &PEER, 1, &S1, 0, &MASTER, owners, vms);
        assert_eq!(on_other, RxPlan::Drop(Reason::RxBroadcastInactive));
        let ipv6_multicast = [0x33, 0x33, 0xff, 0, 0, 1];
        assert_eq!(
            rx_plan(&ipv6_multicast, &PEER, 1, &S1, 0, &MASTER, owners, vms),
            RxPlan::Drop(Reason::RxBroadcastInactive)
        );
    }

    #[test]
    fn our_own_broadcasts_flooded_back_are_dropped() {
        assert_eq!(
            rx_plan(&BROADCAST_MAC, &S1, 0, &S0, 0, &MASTER, owners, vms),
            RxPlan::Drop(Reason::RxLooped)
        );
    }

    #[test]
    fn link_local_stays_on_a_non_active_slave() {
        let lldp = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
        assert_eq!(
            rx_plan(&lldp, &PEER, 1, &S1, 0, &MASTER, owners, vms),
            RxPlan::Pass(Reason::RxLinkLocal)
        );
        assert!(!is_link_local(&[0x01, 0x80, 0xc2, 0, 0, 0x21]));
    }

    #[test]
    fn unicast_for_the_receiving_slave_is_delivered() {
        assert_eq!(
            rx_plan(&S1, &PEER, 1, &S1, 0, &MASTER, owners, vms),
            RxPlan::Deliver { rewrite_dst: true, reason: Reason::RxUnicast }
        );
        assert_eq!(
            rx_plan(&S0, &PEER, 0, &S0, 0, &MASTER, owners, vms),
            RxPlan::Deliver { rewrite_dst: false, reason: Reason::RxUnicast }
        );
    }

    #[test]
    fn flooded_copies_for_a_live_slave_are_not_delivered_twice() {
        assert_eq!(
            rx_plan(&S1, &PEER, 0, &S0, 0, &MASTER, owners, vms),
            RxPlan::Pass(Reason::RxNotForUs)
        );
        assert_eq!(
            rx_plan(&S0, &PEER, 1, &S1, 0, &MASTER, owners, vms),
            RxPlan::Pass(Reason::RxNotForUs)
        );
    }

    #[test]
    fn a_failed_slaves_mac_is_accepted_on_the_active_slave_only() {
        assert_eq!(
            rx_plan(&S2, &PEER, 0, &S0, 0, &MASTER, owners, vms),
            RxPlan::Deliver { rewrite_dst: true, reason: Reason::RxFailover }
        );
        assert_eq!(
            rx_plan(&S2, &PEER, 1, &S1, 0, &MASTER, owners, vms),
            RxPlan::Pass(Reason::RxNotForUs)
        );
    }

    #[test]
    fn watch_reads_client_traffic_and_arp() {
        use crate::testing::{arp_frame, ipv4_frame};
        let server = [198, 18, 0, 1];
        let client = [198, 18, 0, 11];
        let ping = ipv4_frame(S0, [2, 0, 0, 0, 1, 1], client, server, 1);
        let none = Tag::default();
        assert_eq!(rx_watch(&ping[..], none), Watch::Ipv4(ClientKey::new(server, client, 0)));
        let arp = arp_frame(S0, [2, 0, 0, 0, 1, 1], 2, [2, 0, 0, 0, 1, 1], client, S0, server);
        assert!(matches!(rx_watch(&arp[..], none), Watch::Arp(a) if a.spa == client));
        assert_eq!(rx_watch(&arp[..20], none), Watch::Nothing);
        assert_eq!(rx_watch(&ping[..30], none), Watch::Nothing);
    }

    #[test]
    fn watch_puts_clients_in_their_vlan_whichever_form_the_tag_takes() {
        use crate::testing::{arp_frame, ipv4_frame, tagged};
        let server = [198, 18, 0, 1];
        let client = [198, 18, 0, 11];
        let ping = ipv4_frame(S0, PEER, client, server, 1);
        let in_frame = tagged(&ping, 100);
        let tag = Tag::of(&in_frame[..], None);
        assert_eq!(rx_watch(&in_frame[..], tag), Watch::Ipv4(ClientKey::new(server, client, 100)));
        let offloaded = Tag::of(&ping[..], Some(100));
        assert_eq!(
            rx_watch(&ping[..], offloaded),
            Watch::Ipv4(ClientKey::new(server, client, 100))
        );
        let arp = tagged(&arp_frame(S0, PEER, 2, PEER, client, S0, server), 200);
        assert!(matches!(
            rx_watch(&arp[..], Tag::of(&arp[..], None)),
            Watch::Arp(a) if a.spa == client && a.sha == PEER
        ));
        assert_eq!(rx_watch(&in_frame[..30], tag), Watch::Nothing, "cut inside the IPv4 header");
    }

    #[test]
    fn the_active_slave_takes_the_masters_mac_whoever_owns_it() {
        let new_master = [2, 0, 0, 0, 0, 0xaa];
        // No slave owns the master's MAC (removed, or set by the user).
        assert_eq!(
            rx_plan(&new_master, &PEER, 1, &S1, 1, &new_master, owners, vms),
            RxPlan::Deliver { rewrite_dst: false, reason: Reason::RxUnicast }
        );
        // A non-active slave still leaves it to the active one.
        assert_eq!(
            rx_plan(&new_master, &PEER, 0, &S0, 1, &new_master, owners, vms),
            RxPlan::Pass(Reason::RxNotForUs)
        );
    }

    #[test]
    fn only_undrawn_ipv4_skips_the_watch() {
        use crate::testing::{ipv4_frame, tagged};
        let ipv4 = ipv4_frame(S0, PEER, [198, 18, 0, 11], [198, 18, 0, 1], 1);
        assert!(rx_unwatched(&ipv4[..], 0), "IPv4 not drawn");
        assert!(!rx_unwatched(&ipv4[..], 16), "IPv4 drawn: counted for its client");
        let mut arp = ipv4.clone();
        arp[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
        assert!(!rx_unwatched(&arp[..], 0), "ARP is always watched (learning)");
        let mut ipv6 = ipv4.clone();
        ipv6[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        assert!(!rx_unwatched(&ipv6[..], 0), "IPv6 is always watched (Neighbor Discovery)");
        let in_frame = tagged(&ipv4, 100);
        assert!(!rx_unwatched(&in_frame[..], 0), "an in-frame tag: watch finds what is behind it");
        assert!(!rx_unwatched(&ipv4[..12], 0), "too short to tell");
    }

    #[test]
    fn strangers_are_not_ours() {
        let stranger = [2, 9, 9, 9, 9, 9];
        assert_eq!(
            rx_plan(&stranger, &PEER, 0, &S0, 0, &MASTER, owners, vms),
            RxPlan::Pass(Reason::RxNotForUs)
        );
    }
}
