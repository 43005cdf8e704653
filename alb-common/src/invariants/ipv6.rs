//! Invariants of the IPv6 decisions: what is rewritten is valid Neighbor
//! Discovery from the master about one client, and stays valid once
//! rewritten; what is learned comes from valid messages only.

use crate::{
    nd::{self, Kind, checksum},
    reason::Reason,
    verdict::ipv6::{Tx6Plan, Watch6, rx6_watch, tx6_plan},
    vlan::Tag,
    wire::{EthHdr, Frame as _, Ipv6Hdr, Mac, is_multicast},
};

/// Checks the IPv6 transmit plan of `frame` (ethertype IPv6), leaving the
/// master with MAC `master`, to be sent by a slave with MAC `slave`.
pub(super) fn check_tx(frame: &[u8], master: &Mac, slave: &Mac, from_master: bool) {
    let ip: Option<Ipv6Hdr> = frame.read(EthHdr::LEN);
    let parsed = ip.map(|ip| nd::parse(frame, &ip));
    match tx6_plan(frame, master, from_master, Tag::default()) {
        Tx6Plan::HostNd(host) => {
            let ip = ip.expect("host ND has an IPv6 header");
            let nd = match parsed {
                Some(Ok(nd)) => nd,
                other => panic!("host ND from an invalid message: {other:?}"),
            };
            assert!(from_master, "only the master's discovery is rewritten");
            assert_eq!(&frame[6..12], master);
            assert_eq!(host.kind, nd.kind);
            let (server, client) = match nd.kind {
                Kind::Advert => (nd.target.octets(), ip.daddr),
                Kind::Solicit => (ip.saddr, nd.target.octets()),
            };
            let key = host.client.key();
            assert_eq!((key.server_ip, key.client_ip), (server, client));
            assert_ne!(key.server_ip, key.client_ip);
            assert!(host.client_mac == [0; 6] || !is_multicast(&host.client_mac));
            if host.lla_at != 0 {
                assert_eq!(&frame[host.lla_at as usize..][..6], master);
                rewritten_still_valid(frame, host.lla_at as usize, host.checksum, master, slave);
            }
        }
        Tx6Plan::Balance { client, .. } => {
            if let Some(key) = client.map(|c| c.key()) {
                assert!(!is_multicast(&frame[0..6].try_into().expect("6 bytes")));
                assert_eq!(&frame[22..38], &key.server_ip);
                assert_eq!(&frame[38..54], &key.client_ip);
            }
        }
        Tx6Plan::Active { reason: Reason::TxNdInvalid } => {
            assert!(matches!(parsed, Some(Err(_))), "invalid, yet it parses: {parsed:?}");
        }
        Tx6Plan::Active { reason } => assert_eq!(reason, Reason::TxActive),
    }
}

/// The frame with `slave`'s MAC in the option at `at` and the checksum
/// updated incrementally parses again, with that MAC.
fn rewritten_still_valid(frame: &[u8], at: usize, checksum: [u8; 2], old: &Mac, new: &Mac) {
    let mut copy = [0u8; 512];
    let Some(copy) = copy.get_mut(..frame.len()) else { return };
    copy.copy_from_slice(frame);
    copy[at..at + 6].copy_from_slice(new);
    let updated = checksum::replace_mac(checksum, old, new);
    copy[nd::CHECKSUM_OFFSET..nd::CHECKSUM_OFFSET + 2].copy_from_slice(&updated);
    let ip: Ipv6Hdr = copy.read(EthHdr::LEN).expect("IPv6 header");
    match nd::parse(&*copy, &ip) {
        Ok(nd) => assert_eq!(&nd.lla, new),
        Err(why) => panic!("the rewritten message no longer verifies: {why:?}"),
    }
}

/// Checks what the receive path learns from `frame` (ethertype IPv6).
pub(super) fn check_rx(frame: &[u8]) {
    let ip: Option<Ipv6Hdr> = frame.read(EthHdr::LEN);
    let parsed = ip.map(|ip| nd::parse(frame, &ip));
    match rx6_watch(frame, Tag::default()) {
        Watch6::Nd { about } => {
            let nd = match parsed {
                Some(Ok(nd)) => nd,
                other => panic!("learned from an invalid message: {other:?}"),
            };
            if let Some((client, mac)) = about {
                assert_eq!(mac, nd.lla);
                assert!(!client.client.is_unspecified(), "DAD speaks for no client");
            }
        }
        Watch6::Invalid => assert!(matches!(parsed, Some(Err(_)))),
        Watch6::Data(client) => assert_eq!(&frame[22..38], &client.client.octets()),
        Watch6::Nothing => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nd::Invalid;

    /// The fuzz target's IPv6 seeds (fuzz/corpus/frames/ipv6_*: 8 control
    /// bytes, then the frame), each with the verdict its name promises.
    macro_rules! seed {
        ($name:literal) => {
            &include_bytes!(concat!("../../../fuzz/corpus/frames/", $name))[8..]
        };
    }

    const MASTER: Mac = [2, 0xa1, 0xb0, 0, 0, 0x17];

    fn tx(frame: &[u8]) -> Tx6Plan {
        tx6_plan(frame, &MASTER, frame[6..12] == MASTER, Tag::default())
    }

    fn parsed(frame: &[u8]) -> Result<nd::Nd, Invalid> {
        nd::parse(frame, &frame.read(EthHdr::LEN).expect("IPv6 header"))
    }

    #[test]
    fn the_fuzz_seeds_get_their_verdicts() {
        for host in [seed!("ipv6_host_na"), seed!("ipv6_host_ns_group")] {
            assert!(matches!(tx(host), Tx6Plan::HostNd(h) if h.lla_at != 0), "{:?}", tx(host));
        }
        let probe = seed!("ipv6_host_probe_link_local");
        assert!(matches!(tx(probe), Tx6Plan::HostNd(h) if h.client_mac != [0; 6]));
        for client in [seed!("ipv6_client_ns"), seed!("ipv6_client_na_no_option")] {
            assert!(matches!(rx6_watch(client, Tag::default()), Watch6::Nd { about: Some(_) }));
        }
        assert_eq!(parsed(seed!("ipv6_ns_zero_length_option")), Err(Invalid::ZeroLengthOption));
        assert_eq!(rx6_watch(seed!("ipv6_ns_zero_length_option"), Tag::default()), Watch6::Invalid);
        assert_eq!(parsed(seed!("ipv6_na_bad_checksum")), Err(Invalid::Checksum));
        assert_eq!(
            tx(seed!("ipv6_na_bad_checksum")),
            Tx6Plan::Active { reason: Reason::TxNdInvalid }
        );
        assert_eq!(parsed(seed!("ipv6_ns_truncated_option")), Err(Invalid::Length));
        let behind = seed!("ipv6_na_behind_destination_options");
        assert!(matches!(tx(behind), Tx6Plan::Balance { client: Some(_), .. }));
        for seed in [probe, behind, seed!("ipv6_host_na"), seed!("ipv6_na_bad_checksum")] {
            check_tx(seed, &MASTER, &[2, 0xa1, 0xb0, 0, 0, 0x19], seed[6..12] == MASTER);
            check_rx(seed);
        }
    }
}
