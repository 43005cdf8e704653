use super::*;
use crate::wire::Ipv6;
use crate::{
    nd::{ADVERT_OVERRIDE, ADVERT_SOLICITED, OPT_SOURCE_LLA, OPT_TARGET_LLA},
    testing::{ipv6_frame, lla_option, nd_frame},
};

const MASTER: Mac = [2, 0xa1, 0xb0, 0, 0, 0x17];
const CLIENT_MAC: Mac = [2, 0xa1, 0xc0, 0, 0, 1];
const VM: Mac = [2, 0xbe, 0xef, 0, 0, 1];
const SERVER: Ipv6 = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const CLIENT: Ipv6 = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];
const SERVER_LL: Ipv6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xa1, 0xb0, 0xff, 0xfe, 0, 0, 0x17];
const CLIENT_LL: Ipv6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xa1, 0xc0, 0xff, 0xfe, 0, 0, 1];
/// CLIENT's solicited-node group and its MAC.
const CLIENT_GROUP: Ipv6 = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x0b];
const CLIENT_GROUP_MAC: Mac = [0x33, 0x33, 0xff, 0, 0, 0x0b];
const SERVER_GROUP: Ipv6 = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1];
const SERVER_GROUP_MAC: Mac = [0x33, 0x33, 0xff, 0, 0, 1];
const ALL_NODES_IP: Ipv6 = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn key(server: Ipv6, client: Ipv6) -> Client6 {
    Client6 { server: Addr6::new(&server), client: Addr6::new(&client), vlan: 0 }
}

fn active() -> Tx6Plan {
    Tx6Plan::Active { reason: Reason::TxActive }
}

/// The host's answer to a client's multicast solicitation.
fn host_advert(server: Ipv6, client: Ipv6, tlla: Mac) -> std::vec::Vec<u8> {
    let option = lla_option(OPT_TARGET_LLA, tlla);
    let flags = ADVERT_SOLICITED | ADVERT_OVERRIDE;
    nd_frame(CLIENT_MAC, MASTER, server, client, NEIGHBOUR_ADVERT, flags, server, &option)
}

/// The host's solicitation for a client, to its solicited-node group.
fn host_solicit(slla: Mac) -> std::vec::Vec<u8> {
    let option = lla_option(OPT_SOURCE_LLA, slla);
    nd_frame(CLIENT_GROUP_MAC, MASTER, SERVER, CLIENT_GROUP, NEIGHBOUR_SOLICIT, 0, CLIENT, &option)
}

#[test]
fn data_to_a_unicast_destination_names_its_client() {
    let tcp = ipv6_frame(CLIENT_MAC, MASTER, SERVER, 6, None);
    let Tx6Plan::Balance { client, .. } = tx6_plan(&tcp[..], &MASTER, true, Tag::default()) else {
        panic!("not balanced")
    };
    // ipv6_frame sends to 2001:2::b.
    assert_eq!(client, Some(key(SERVER, CLIENT)));
    let echo = ipv6_frame(CLIENT_MAC, MASTER, SERVER, IPPROTO_ICMPV6, Some(129));
    assert!(matches!(
        tx6_plan(&echo[..], &MASTER, true, Tag::default()),
        Tx6Plan::Balance { client: Some(_), .. }
    ));
    let group = ipv6_frame([0x33, 0x33, 0, 1, 0, 0], MASTER, SERVER, 17, None);
    assert!(matches!(
        tx6_plan(&group[..], &MASTER, true, Tag::default()),
        Tx6Plan::Balance { client: None, .. }
    ));
}

#[test]
fn control_and_group_traffic_stays_on_active() {
    for frame in [
        ipv6_frame(CLIENT_MAC, MASTER, SERVER_LL, IPPROTO_ICMPV6, Some(nd::ROUTER_SOLICIT)),
        ipv6_frame(CLIENT_MAC, MASTER, SERVER_LL, IPPROTO_ICMPV6, Some(nd::ROUTER_ADVERT)),
        ipv6_frame(CLIENT_MAC, MASTER, SERVER_LL, IPPROTO_ICMPV6, Some(nd::REDIRECT)),
        ipv6_frame(ALL_NODES, MASTER, SERVER_LL, 17, None),
        ipv6_frame(BROADCAST_MAC, MASTER, SERVER, 17, None),
        // DAD: a solicitation from ::.
        nd_frame(SERVER_GROUP_MAC, MASTER, [0; 16], SERVER_GROUP, 135, 0, SERVER, &[]),
        // MLD, behind a hop-by-hop header.
        ipv6_frame([0x33, 0x33, 0, 0, 0, 0x16], MASTER, SERVER_LL, IPPROTO_HOPOPTS, None),
    ] {
        assert_eq!(tx6_plan(&frame[..], &MASTER, true, Tag::default()), active());
    }
}

#[test]
fn a_host_advertisement_goes_by_its_client() {
    let frame = host_advert(SERVER, CLIENT, MASTER);
    let Tx6Plan::HostNd(host) = tx6_plan(&frame[..], &MASTER, true, Tag::default()) else {
        panic!("not host ND")
    };
    assert_eq!(host.client, key(SERVER, CLIENT));
    assert_eq!(host.kind, Kind::Advert);
    assert_eq!(host.client_mac, CLIENT_MAC);
    assert_eq!(&frame[host.lla_at as usize..][..6], &MASTER);
    assert_eq!(host.checksum, [frame[56], frame[57]]);
    // Link-local addresses are clients too.
    let local = host_advert(SERVER_LL, CLIENT_LL, MASTER);
    let Tx6Plan::HostNd(host) = tx6_plan(&local[..], &MASTER, true, Tag::default()) else {
        panic!("not host ND")
    };
    assert_eq!(host.client, key(SERVER_LL, CLIENT_LL));
}

#[test]
fn an_answer_to_a_probe_has_no_option_and_still_goes_by_client() {
    let frame = nd_frame(
        CLIENT_MAC,
        MASTER,
        SERVER,
        CLIENT,
        NEIGHBOUR_ADVERT,
        ADVERT_SOLICITED,
        SERVER,
        &[],
    );
    let Tx6Plan::HostNd(host) = tx6_plan(&frame[..], &MASTER, true, Tag::default()) else {
        panic!("not host ND")
    };
    assert_eq!((host.client, host.lla_at), (key(SERVER, CLIENT), 0));
}

#[test]
fn a_host_solicitation_goes_by_the_client_it_asks_for() {
    let frame = host_solicit(MASTER);
    let Tx6Plan::HostNd(host) = tx6_plan(&frame[..], &MASTER, true, Tag::default()) else {
        panic!("not host ND")
    };
    assert_eq!(host.client, key(SERVER, CLIENT));
    assert_eq!(host.kind, Kind::Solicit);
    assert_eq!(host.client_mac, [0; 6], "a group solicitation names no client MAC");
    let option = lla_option(OPT_SOURCE_LLA, MASTER);
    let probe = nd_frame(CLIENT_MAC, MASTER, SERVER, CLIENT, NEIGHBOUR_SOLICIT, 0, CLIENT, &option);
    let Tx6Plan::HostNd(host) = tx6_plan(&probe[..], &MASTER, true, Tag::default()) else {
        panic!("not host ND")
    };
    assert_eq!(host.client_mac, CLIENT_MAC, "a reachability probe names it");
}

#[test]
fn announcements_and_other_macs_discovery_stay_on_active() {
    let option = lla_option(OPT_TARGET_LLA, MASTER);
    let all = [0x33, 0x33, 0, 0, 0, 2];
    let to_all_nodes = nd_frame(
        all,
        MASTER,
        SERVER,
        ALL_NODES_IP,
        NEIGHBOUR_ADVERT,
        ADVERT_OVERRIDE,
        SERVER,
        &option,
    );
    assert_eq!(tx6_plan(&to_all_nodes[..], &MASTER, true, Tag::default()), active());
    assert_eq!(
        tx6_plan(&host_advert(SERVER, CLIENT, VM)[..], &MASTER, true, Tag::default()),
        active()
    );
    let from_vm = host_advert(SERVER, CLIENT, VM);
    assert_eq!(tx6_plan(&from_vm[..], &MASTER, false, Tag::default()), active());
    let asking_itself = {
        let option = lla_option(OPT_SOURCE_LLA, MASTER);
        nd_frame(SERVER_GROUP_MAC, MASTER, SERVER, SERVER_GROUP, 135, 0, SERVER, &option)
    };
    assert_eq!(tx6_plan(&asking_itself[..], &MASTER, true, Tag::default()), active());
}

#[test]
fn invalid_host_discovery_is_sent_unchanged_on_active() {
    let mut bad_sum = host_advert(SERVER, CLIENT, MASTER);
    bad_sum[57] ^= 1;
    assert_eq!(
        tx6_plan(&bad_sum[..], &MASTER, true, Tag::default()),
        Tx6Plan::Active { reason: Reason::TxNdInvalid }
    );
    let mut zero_length = host_advert(SERVER, CLIENT, MASTER);
    zero_length[14 + 40 + 24 + 1] = 0;
    assert_eq!(
        tx6_plan(&zero_length[..], &MASTER, true, Tag::default()),
        Tx6Plan::Active { reason: Reason::TxNdInvalid }
    );
}

#[test]
fn discovery_behind_an_extension_header_is_data() {
    let mut frame = host_advert(SERVER, CLIENT, MASTER);
    // A destination options header (8 bytes of padding) before ICMPv6.
    frame.splice(54..54, [IPPROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
    frame[20] = 60;
    frame[19] += 8;
    assert!(matches!(
        tx6_plan(&frame[..], &MASTER, true, Tag::default()),
        Tx6Plan::Balance { client: Some(_), .. }
    ));
    assert_eq!(rx6_watch(&frame[..], Tag::default()), Watch6::Data(key(CLIENT, SERVER)));
}

#[test]
fn received_discovery_speaks_for_its_client() {
    let option = lla_option(OPT_SOURCE_LLA, CLIENT_MAC);
    let ns = nd_frame(SERVER_GROUP_MAC, CLIENT_MAC, CLIENT, SERVER_GROUP, 135, 0, SERVER, &option);
    assert_eq!(
        rx6_watch(&ns[..], Tag::default()),
        Watch6::Nd { about: Some((key(SERVER, CLIENT), CLIENT_MAC)) }
    );
    let option = lla_option(OPT_TARGET_LLA, CLIENT_MAC);
    let na = nd_frame(MASTER, CLIENT_MAC, CLIENT, SERVER, 136, ADVERT_SOLICITED, CLIENT, &option);
    assert_eq!(
        rx6_watch(&na[..], Tag::default()),
        Watch6::Nd { about: Some((key(SERVER, CLIENT), CLIENT_MAC)) }
    );
    let probe_answer =
        nd_frame(MASTER, CLIENT_MAC, CLIENT, SERVER, 136, ADVERT_SOLICITED, CLIENT, &[]);
    assert_eq!(
        rx6_watch(&probe_answer[..], Tag::default()),
        Watch6::Nd { about: Some((key(SERVER, CLIENT), [0; 6])) }
    );
    let dad = nd_frame(CLIENT_GROUP_MAC, CLIENT_MAC, [0; 16], CLIENT_GROUP, 135, 0, CLIENT, &[]);
    assert_eq!(rx6_watch(&dad[..], Tag::default()), Watch6::Nd { about: None });
    let mut bad = ns;
    bad[60] ^= 0x40;
    assert_eq!(rx6_watch(&bad[..], Tag::default()), Watch6::Invalid);
    let data = ipv6_frame(MASTER, CLIENT_MAC, CLIENT, 6, None);
    assert!(
        matches!(rx6_watch(&data[..], Tag::default()), Watch6::Data(k) if k.server.octets() == CLIENT)
    );
    assert_eq!(rx6_watch(&data[..30], Tag::default()), Watch6::Nothing);
}

#[test]
fn a_client_keys_its_table_entry_by_its_addresses() {
    let client = key(SERVER, CLIENT_LL);
    assert_eq!(client.key(), ClientKey6::new(SERVER, CLIENT_LL, 0));
    assert!(Addr6::new(&[0; 16]).is_unspecified() && !Addr6::new(&SERVER).is_unspecified());
    assert!(Addr6::new(&ALL_NODES_IP).is_multicast() && !Addr6::new(&SERVER_LL).is_multicast());
}

#[test]
fn tagged_discovery_is_about_a_client_of_its_vlan_and_located_past_the_tag() {
    use crate::testing::tagged;
    let plain = host_advert(SERVER, CLIENT, MASTER);
    let frame = tagged(&plain, 100);
    let tag = Tag::of(&frame[..], None);
    let Tx6Plan::HostNd(host) = tx6_plan(&frame[..], &MASTER, true, tag) else {
        panic!("a tagged host advertisement is host ND")
    };
    assert_eq!(host.client, Client6 { vlan: 100, ..key(SERVER, CLIENT) });
    assert_eq!(&frame[tag.at(host.lla_at as usize)..][..6], &MASTER);
    assert_eq!(tag.at(nd::CHECKSUM_OFFSET), nd::CHECKSUM_OFFSET + 4);
    assert_eq!(host.checksum, [frame[60], frame[61]]);
    // Offloaded: the same client, the option where an untagged frame has it.
    let offloaded = Tag::of(&plain[..], Some(100));
    assert_eq!(tx6_plan(&plain[..], &MASTER, true, offloaded), Tx6Plan::HostNd(host));
    let data = tagged(&ipv6_frame(MASTER, CLIENT_MAC, CLIENT, 6, None), 200);
    assert!(matches!(
        rx6_watch(&data[..], Tag::of(&data[..], None)),
        Watch6::Data(k) if k.vlan == 200 && k.server.octets() == CLIENT
    ));
    let option = lla_option(OPT_TARGET_LLA, CLIENT_MAC);
    let na = nd_frame(MASTER, CLIENT_MAC, CLIENT, SERVER, 136, ADVERT_SOLICITED, CLIENT, &option);
    let na = tagged(&na, 200);
    assert_eq!(
        rx6_watch(&na[..], Tag::of(&na[..], None)),
        Watch6::Nd { about: Some((Client6 { vlan: 200, ..key(SERVER, CLIENT) }, CLIENT_MAC)) }
    );
}
