//! Neighbor Discovery parsing: what a host accepts parses, and each kind
//! of hostile message gets its own verdict.

use super::*;
use crate::{
    testing::{fix_nd_checksum as fix_checksum, lla_option, nd_frame},
    wire::Ipv6,
};

const CLIENT_MAC: Mac = [0x02, 0xa1, 0xc0, 0, 0, 0x01];
const MASTER_MAC: Mac = [0x02, 0xa1, 0xb0, 0, 0, 0x17];
const SERVER: Ipv6 = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const CLIENT: Ipv6 = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];
/// The solicited-node group of SERVER and its MAC.
const GROUP: Ipv6 = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1];
const GROUP_MAC: Mac = [0x33, 0x33, 0xff, 0, 0, 1];

fn header(frame: &[u8]) -> Ipv6Hdr {
    frame.read(EthHdr::LEN).expect("IPv6 header")
}

fn parsed(frame: &[u8]) -> Result<Nd, Invalid> {
    parse(frame, &header(frame))
}

/// A client's solicitation for the server, with its source address option.
fn solicitation() -> std::vec::Vec<u8> {
    let option = lla_option(OPT_SOURCE_LLA, CLIENT_MAC);
    nd_frame(GROUP_MAC, CLIENT_MAC, CLIENT, GROUP, NEIGHBOUR_SOLICIT, 0, SERVER, &option)
}

/// The server's solicited advertisement, with its target address option.
fn advertisement() -> std::vec::Vec<u8> {
    let option = lla_option(OPT_TARGET_LLA, MASTER_MAC);
    let flags = ADVERT_SOLICITED | ADVERT_OVERRIDE;
    nd_frame(CLIENT_MAC, MASTER_MAC, SERVER, CLIENT, NEIGHBOUR_ADVERT, flags, SERVER, &option)
}

#[test]
fn a_solicitation_yields_its_target_and_source_address() {
    let frame = solicitation();
    let nd = parsed(&frame).expect("valid");
    assert_eq!(nd.kind, Kind::Solicit);
    assert_eq!(nd.target.octets(), SERVER);
    assert_eq!(nd.lla, CLIENT_MAC);
    assert_eq!(nd.lla_at as usize, ICMP_OFFSET + HEADER_LEN + 2);
    assert_eq!(&frame[nd.lla_at as usize..][..6], &CLIENT_MAC);
    assert_eq!(nd.flags, 0);
}

#[test]
fn an_advertisement_yields_its_flags_and_target_address() {
    let nd = parsed(&advertisement()).expect("valid");
    assert_eq!(nd.kind, Kind::Advert);
    assert_eq!(nd.flags, ADVERT_SOLICITED | ADVERT_OVERRIDE);
    assert_eq!((nd.target.octets(), nd.lla), (SERVER, MASTER_MAC));
}

#[test]
fn an_advertisement_without_a_target_option_is_valid_without_an_address() {
    // What Linux answers to a unicast solicitation (a reachability probe).
    let flags = ADVERT_SOLICITED;
    let frame =
        nd_frame(CLIENT_MAC, MASTER_MAC, SERVER, CLIENT, NEIGHBOUR_ADVERT, flags, SERVER, &[]);
    let nd = parsed(&frame).expect("valid");
    assert_eq!((nd.lla_at, nd.lla), (0, [0; 6]));
}

#[test]
fn the_first_address_option_counts_and_others_are_skipped() {
    let mut options = std::vec::Vec::new();
    options.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]); // a DAD nonce
    options.extend_from_slice(&lla_option(OPT_TARGET_LLA, CLIENT_MAC)); // not for an NS
    options.extend_from_slice(&lla_option(OPT_SOURCE_LLA, CLIENT_MAC));
    options.extend_from_slice(&lla_option(OPT_SOURCE_LLA, MASTER_MAC));
    let frame =
        nd_frame(GROUP_MAC, CLIENT_MAC, CLIENT, GROUP, NEIGHBOUR_SOLICIT, 0, SERVER, &options);
    let nd = parsed(&frame).expect("valid");
    assert_eq!(nd.lla, CLIENT_MAC);
    assert_eq!(nd.lla_at as usize, ICMP_OFFSET + HEADER_LEN + 16 + 2);
}

#[test]
fn hostile_messages_each_get_their_verdict() {
    let option = lla_option(OPT_SOURCE_LLA, CLIENT_MAC);
    let ns = |options: &[u8]| {
        nd_frame(GROUP_MAC, CLIENT_MAC, CLIENT, GROUP, NEIGHBOUR_SOLICIT, 0, SERVER, options)
    };
    let mut zero_length = option;
    zero_length[1] = 0;
    assert_eq!(parsed(&ns(&zero_length)), Err(Invalid::ZeroLengthOption));
    let mut overrun = option;
    overrun[1] = 2;
    assert_eq!(parsed(&ns(&overrun)), Err(Invalid::OptionOverrun));
    let mut wide = [0u8; 16];
    wide[..2].copy_from_slice(&[OPT_SOURCE_LLA, 2]);
    assert_eq!(parsed(&ns(&wide)), Err(Invalid::LinkLayerAddressLength));
    // A truncated option: 4 bytes where a whole 8-byte unit must be.
    assert_eq!(parsed(&ns(&option[..4])), Err(Invalid::Length));
    // The IPv6 length claims more than the frame holds.
    let mut cut = solicitation();
    cut.truncate(cut.len() - 4);
    assert_eq!(parsed(&cut), Err(Invalid::Truncated));
    let mut bad_sum = solicitation();
    bad_sum[CHECKSUM_OFFSET] ^= 0x01;
    assert_eq!(parsed(&bad_sum), Err(Invalid::Checksum));
    let mut routed = solicitation();
    routed[EthHdr::LEN + 7] = 64;
    assert_eq!(parsed(&routed), Err(Invalid::HopLimit));
    let mut coded = solicitation();
    coded[ICMP_OFFSET + 1] = 1;
    fix_checksum(&mut coded);
    assert_eq!(parsed(&coded), Err(Invalid::Code));
    let multicast_target =
        nd_frame(GROUP_MAC, CLIENT_MAC, CLIENT, GROUP, NEIGHBOUR_SOLICIT, 0, GROUP, &option);
    assert_eq!(parsed(&multicast_target), Err(Invalid::MulticastTarget));
    let solicited_to_all = nd_frame(
        [0x33, 0x33, 0, 0, 0, 1],
        MASTER_MAC,
        SERVER,
        [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        NEIGHBOUR_ADVERT,
        ADVERT_SOLICITED,
        SERVER,
        &lla_option(OPT_TARGET_LLA, MASTER_MAC),
    );
    assert_eq!(parsed(&solicited_to_all), Err(Invalid::SolicitedToMulticast));
    let long = ns(&[0u8; 8 * (MAX_OPTIONS + 1)]);
    assert_eq!(parsed(&long), Err(Invalid::Length));
    let echo = nd_frame(CLIENT_MAC, MASTER_MAC, SERVER, CLIENT, 129, 0, SERVER, &[]);
    assert_eq!(parsed(&echo), Err(Invalid::Type));
    let short = solicitation();
    assert_eq!(parsed(&short[..ICMP_OFFSET + 10]), Err(Invalid::Truncated));
}

#[test]
fn the_longest_message_parses() {
    let mut options = [0u8; 8 * MAX_OPTIONS];
    for unit in options.chunks_mut(8) {
        unit[..2].copy_from_slice(&[14, 1]);
    }
    options[8 * 5..].copy_from_slice(&lla_option(OPT_SOURCE_LLA, CLIENT_MAC));
    let frame =
        nd_frame(GROUP_MAC, CLIENT_MAC, CLIENT, GROUP, NEIGHBOUR_SOLICIT, 0, SERVER, &options);
    assert_eq!(parsed(&frame).expect("valid").lla, CLIENT_MAC);
}
