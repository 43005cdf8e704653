//! Invariants of the data path's decisions on any input, shared by the
//! libFuzzer target (`fuzz/`) and a seeded random run in the unit tests.
//!
//! The first 8 bytes of the input choose the receiving slave, the active
//! slave, which slaves are down, which slave's MAC the master has and
//! whether the frame's MACs are learned VM MACs; the rest is the frame.

mod ipv6;

use crate::{
    reason::Reason,
    verdict::{
        rx::{Owner, RxPlan, Watch, rx_plan, rx_watch},
        tx::{TxPlan, tx_plan},
    },
    vlan::Tag,
    wire::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, Mac, is_multicast, is_valid_unicast},
};

const SLAVE_MACS: [Mac; 4] = [
    [2, 0xa1, 0xb0, 0, 0, 0x17],
    [2, 0xa1, 0xb0, 0, 0, 0x19],
    [2, 0xa1, 0xb0, 0, 0, 0x21],
    [2, 0xa1, 0xb0, 0, 0, 0x23],
];

/// Checks every decision on `data` (8 control bytes, then the frame);
/// panics on a broken invariant.
pub fn check(data: &[u8]) {
    let Some((control, frame)) = data.split_first_chunk::<8>() else { return };
    let this = u32::from(control[0] % 4);
    let active = u32::from(control[1] % 4);
    let down = control[2];
    let master = SLAVE_MACS[usize::from(control[3] % 4)];
    let ether_type = frame.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));

    let vm_bits = control[5];
    match tx_plan(frame, &master, Tag::default()) {
        TxPlan::Malformed => assert!(frame.len() < 14),
        TxPlan::Vm { mac } => {
            assert_eq!(&frame[6..12], &mac, "pinned by its own source MAC");
            assert_ne!(mac, master, "the host's frames are never a VM's");
            assert!(is_valid_unicast(&mac));
        }
        TxPlan::HostArp(arp) => {
            assert_eq!(ether_type, Some(ETH_P_ARP));
            assert_eq!(&frame[6..12], &master, "only the master's ARP is rewritten");
            assert_eq!(&frame[22..28], &master);
            assert_ne!(arp.key.server_ip, arp.key.client_ip, "gratuitous ARP is not a client");
        }
        TxPlan::Announce { server_ip, .. } => {
            assert_eq!(ether_type, Some(ETH_P_ARP));
            assert_eq!(&frame[28..32], &server_ip);
        }
        TxPlan::Balance { client, from_master, .. } => {
            assert_eq!(from_master, frame[6..12] == master);
            let src: Mac = frame[6..12].try_into().expect("6 bytes");
            assert!(from_master || !is_valid_unicast(&src), "a VM's frame balanced by bucket");
            if let Some(key) = client {
                assert_eq!(ether_type, Some(ETH_P_IP));
                assert!(!is_multicast(&frame[0..6].try_into().expect("6 bytes")));
                assert_eq!(&frame[26..30], &key.server_ip);
                assert_eq!(&frame[30..34], &key.client_ip);
            }
        }
        TxPlan::Active { reason, .. } => {
            assert!(matches!(reason, Reason::TxActive | Reason::TxArpForeign));
        }
        TxPlan::Ipv6 { from_master } => {
            assert_eq!(ether_type, Some(ETH_P_IPV6));
            assert_eq!(from_master, frame[6..12] == master);
            let other = SLAVE_MACS[usize::from(control[4] % 4)];
            ipv6::check_tx(frame, &master, &other, from_master);
        }
    }

    if frame.len() >= 12 {
        let dst: Mac = frame[0..6].try_into().expect("6 bytes");
        let src: Mac = frame[6..12].try_into().expect("6 bytes");
        let owner_of = |mac: &Mac| {
            SLAVE_MACS.iter().position(|m| m == mac).map(|i| Owner {
                index: u32::try_from(i).expect("four slaves"),
                up: down & (1 << i) == 0,
            })
        };
        // Bit 0: the destination is a learned VM MAC; bit 1: the source.
        let is_vm = |mac: &Mac| {
            (vm_bits & 1 != 0 && *mac == dst && owner_of(mac).is_none())
                || (vm_bits & 2 != 0 && *mac == src && owner_of(mac).is_none())
        };
        let plan =
            rx_plan(&dst, &src, this, &SLAVE_MACS[this as usize], active, &master, owner_of, is_vm);
        if let RxPlan::Drop(Reason::RxLooped) = plan {
            assert!(owner_of(&src).is_some() || is_vm(&src));
        }
        if let RxPlan::Deliver { rewrite_dst: false, reason: Reason::RxVm } = plan {
            assert!(!is_multicast(&dst) && is_vm(&dst) && owner_of(&dst).is_none());
        } else if let RxPlan::Deliver { rewrite_dst, reason } = plan {
            if is_multicast(&dst) {
                assert_eq!(this, active, "group frames only through the active slave");
                assert!(!rewrite_dst);
                assert_eq!(reason, Reason::RxBroadcast);
            } else {
                assert_eq!(rewrite_dst, dst != master);
                // Unicast is delivered by the slave it is addressed to, or by
                // the active slave for the master's MAC or a failed slave's.
                assert!(
                    dst == SLAVE_MACS[this as usize]
                        || (this == active && (dst == master || reason == Reason::RxFailover)),
                    "unicast for {dst:x?} delivered on slave {this} (active {active})"
                );
            }
        }
    }

    match rx_watch(frame, Tag::default()) {
        Watch::Ipv4(key) => {
            assert_eq!(ether_type, Some(ETH_P_IP));
            assert_eq!(&frame[26..30], &key.client_ip);
        }
        Watch::Arp(arp) => {
            assert_eq!(ether_type, Some(ETH_P_ARP));
            assert!(arp.is_ethernet_ipv4());
        }
        Watch::Ipv6 => {
            assert_eq!(ether_type, Some(ETH_P_IPV6));
            ipv6::check_rx(frame);
        }
        Watch::Nothing => {}
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    /// xorshift64*: reproducible inputs without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }

        fn coin(&mut self) -> bool {
            self.next() & 1 == 1
        }
    }

    /// Random frames, biased towards the shapes the decisions care about:
    /// real ethertypes, our MACs, broadcast, ARP and IP header fields.
    #[test]
    fn decisions_hold_their_invariants_on_random_frames() {
        let mut rng = Rng(0x00a1_b0c0_dead_beef);
        for _ in 0..200_000 {
            let len = usize::from(rng.byte()) % 90;
            let mut data: Vec<u8> = (0..8 + len).map(|_| rng.byte()).collect();
            let frame = &mut data[8..];
            if frame.len() >= 14 {
                let macs = [super::SLAVE_MACS[usize::from(rng.byte() % 4)], [0xff; 6]];
                if rng.coin() {
                    frame[0..6].copy_from_slice(&macs[usize::from(rng.coin())]);
                }
                if rng.coin() {
                    frame[6..12].copy_from_slice(&macs[0]);
                }
                let types: [u16; 4] = [0x0800, 0x0806, 0x86dd, 0x8100];
                frame[12..14].copy_from_slice(&types[usize::from(rng.byte() % 4)].to_be_bytes());
            }
            if frame.len() >= 20 && rng.coin() {
                frame[14..20].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            super::check(&data);
        }
    }

    /// Valid Neighbor Discovery from the master and from clients (the only
    /// frames that are rewritten or learned from, and which random bytes
    /// never hit: the checksum), then a few bytes changed, with the
    /// checksum made right again half the time, so that broken options and
    /// lengths get past it.
    #[test]
    fn discovery_decisions_hold_their_invariants_on_mutated_messages() {
        use crate::{
            nd::{OPT_SOURCE_LLA, OPT_TARGET_LLA},
            testing::{fix_nd_checksum, lla_option, nd_frame},
            verdict::ipv6::{Tx6Plan, Watch6, rx6_watch, tx6_plan},
            vlan::Tag,
        };
        let mut rng = Rng(0x0000_0bad_c0de_0006);
        let server = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let client = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];
        let group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x0b];
        let (mut rewritten, mut learned) = (0, 0);
        for _ in 0..100_000 {
            let master_index = rng.byte() % 4;
            let master = super::SLAVE_MACS[usize::from(master_index)];
            let peer = [2, 0xa1, 0xc0, 0, 0, rng.byte()];
            let mut options = Vec::new();
            for _ in 0..rng.byte() % 4 {
                let kind = [OPT_SOURCE_LLA, OPT_TARGET_LLA, 14][usize::from(rng.byte() % 3)];
                options
                    .extend_from_slice(&lla_option(kind, if rng.coin() { master } else { peer }));
            }
            let (icmp_type, flags) = if rng.coin() { (135, 0) } else { (136, 0x60) };
            // A host asks about the client, or answers about itself.
            let about = if icmp_type == 135 { client } else { server };
            let frame = match rng.byte() % 4 {
                0 => nd_frame(peer, master, server, client, icmp_type, flags, about, &options),
                1 => nd_frame(
                    [0x33, 0x33, 0xff, 0, 0, 0x0b],
                    master,
                    server,
                    group,
                    135,
                    0,
                    client,
                    &options,
                ),
                2 => nd_frame(master, peer, client, server, icmp_type, flags, client, &options),
                _ => nd_frame(master, peer, [0; 16], group, 135, 0, server, &options),
            };
            let mut data: Vec<u8> = (0..8).map(|_| rng.byte()).collect();
            data[3] = master_index;
            data.extend_from_slice(&frame);
            for _ in 0..rng.byte() % 4 {
                let at = 8 + usize::from(rng.byte()) % frame.len();
                data[at] = rng.byte();
            }
            if rng.coin() {
                data.truncate(8 + usize::from(rng.byte()) % (frame.len() + 1));
            }
            if data.len() >= 8 + 58 && rng.coin() {
                fix_nd_checksum(&mut data[8..]);
            }
            super::check(&data);
            let frame = &data[8..];
            let from_master = frame.get(6..12) == Some(&master[..]);
            if let Tx6Plan::HostNd(host) = tx6_plan(frame, &master, from_master, Tag::default()) {
                rewritten += usize::from(host.lla_at != 0);
            }
            if let Watch6::Nd { about: Some((_, mac)) } = rx6_watch(frame, Tag::default()) {
                learned += usize::from(mac != [0; 6]);
            }
        }
        // The run reaches the rewrite and the learning, not only refusals.
        assert!(rewritten > 1_000 && learned > 1_000, "{rewritten} rewritten, {learned} learned");
    }
}
