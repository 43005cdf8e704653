//! Packet fixtures through `BPF_PROG_TEST_RUN`, in the manner of Katran's:
//! a table of frames per traffic type of spec §2.2 (TX) and §1.4 (host
//! ARP), and of the receive rules of §1.11 plus failover acceptance (RX).
//! Each row names the frame, the action (TC_ACT_REDIRECT, _SHOT or _OK),
//! the frame that must come out, the reason counters it bumps (exactly),
//! the slave whose counter counts it, the events and the client entries.
//!
//! Test-run does not perform redirects, so the chosen slave shows in the
//! rewritten source MAC (each slave sends with its own MAC; frames on slave
//! 0, whose MAC the master carries, keep it) and in the per-slave counters.
//!
//! IPv6 and Neighbor Discovery have their own table (`fixtures/ipv6.rs`),
//! 802.1Q-tagged frames theirs (`fixtures/vlan.rs`).
//!
//! Needs root and BPF: `cargo test -p alb-tests --test fixtures -- --test-threads=1`.

#[path = "fixtures/frames.rs"]
mod frames;
#[path = "fixtures/harness.rs"]
mod harness;
#[path = "fixtures/ipv6.rs"]
mod ipv6;
#[path = "fixtures/vlan.rs"]
mod vlan;
#[path = "fixtures/vms.rs"]
mod vms;

use alb_common::{
    assign::{bucket_of_v4, bucket_of_v6, initial_bucket_slave},
    maps::{CLIENT_MAC_KNOWN, ClientKey, ClientKey6, EventKind},
    reason::Reason::*,
    wire::{Ipv4, Ipv6, Mac},
};
use frames::*;
use harness::*;

const SERVER: Ipv4 = [198, 18, 0, 1];
const C1: Ipv4 = [198, 18, 0, 11];
const C2: Ipv4 = [198, 18, 0, 12];
const C3: Ipv4 = [198, 18, 0, 13];
const C4: Ipv4 = [198, 18, 0, 14];
const VM_IP: Ipv4 = [198, 18, 0, 50];
const C1_MAC: Mac = [0x02, 0xc1, 0, 0, 0, 0x01];
const C1_NEW_MAC: Mac = [0x02, 0xc1, 0, 0, 0, 0x99];
const C2_MAC: Mac = [0x02, 0xc2, 0, 0, 0, 0x02];
const C3_MAC: Mac = [0x02, 0xc3, 0, 0, 0, 0x03];
const C4_MAC: Mac = [0x02, 0xc4, 0, 0, 0, 0x04];
/// A VM bridged onto the master: its frames are never rewritten.
const VM_MAC: Mac = [0x02, 0xbe, 0xef, 0, 0, 0x01];
const STRANGER_MAC: Mac = [0x02, 0x5a, 0x5a, 0, 0, 0x01];

const SERVER6: Ipv6 = v6(0x1);
const PEER6: Ipv6 = v6(0xb);
const SERVER_LL: Ipv6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xa1, 0xb0, 0xff, 0xfe, 0, 0, 0x17];
const PEER_LL: Ipv6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xc1, 0, 0xff, 0xfe, 0, 0, 0x01];
const UNSPECIFIED: Ipv6 = [0; 16];
const ALL_NODES: Ipv6 = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

const fn v6(last: u8) -> Ipv6 {
    [0x20, 0x01, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]
}

/// Why test-run may refuse a frame (see `Case::may_be_refused`).
const SHORT_L2: &str = "bpf_prog_test_run_skb refuses data_size_in < ETH_HLEN";
const SHORT_L3: &str = "bpf_prog_test_run_skb refuses an IPv4/IPv6 ethertype without a full \
                        IPv4/IPv6 header (upstream 12bec2bd4b76, backported to stable)";

fn key(client_ip: Ipv4) -> ClientKey {
    ClientKey::new(SERVER, client_ip, 0)
}

fn len(frame: &[u8]) -> u64 {
    frame.len() as u64
}

// ------------------------------------------------- odd but valid frames ----

/// Recomputes the IPv4 header checksum of `frame` (IPv4 at offset 14).
fn fix_ipv4_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame[24..26].copy_from_slice(&[0, 0]);
    let mut sum: u32 =
        frame[14..14 + ihl].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let sum = u16::try_from(sum).expect("folded to 16 bits");
    frame[24..26].copy_from_slice(&(!sum).to_be_bytes());
}

/// `frame` (Ethernet + IPv4) with 4 bytes of IPv4 options (NOP, NOP, NOP,
/// end of list): IHL 6.
fn with_ipv4_options(frame: &[u8]) -> Vec<u8> {
    let mut out = frame[..34].to_vec();
    out.extend_from_slice(&[1, 1, 1, 0]);
    out.extend_from_slice(&frame[34..]);
    out[14] = 0x46;
    let total = u16::from_be_bytes([out[16], out[17]]) + 4;
    out[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum(&mut out);
    out
}

/// `frame` (Ethernet + IPv4) as a fragment: `more` sets MF; `offset` is in
/// 8-byte units (a later fragment carries no L4 header of its own).
fn as_ipv4_fragment(frame: &[u8], offset: u16, more: bool) -> Vec<u8> {
    let mut out = frame.to_vec();
    let flags_offset = offset | if more { 0x2000 } else { 0 };
    out[20..22].copy_from_slice(&flags_offset.to_be_bytes());
    fix_ipv4_checksum(&mut out);
    out
}

/// `frame` (Ethernet + IPv6) with an extension header of `kind` (44:
/// fragment, 60: destination options, 43: routing) before its payload.
fn with_ipv6_extension(frame: &[u8], kind: u8) -> Vec<u8> {
    let next = frame[20];
    let header: [u8; 8] = match kind {
        // Next header, reserved, offset 0 with M set, identification.
        44 => [next, 0, 0x00, 0x01, 0, 0, 0x0a, 0x1b],
        // Next header, length 0 (8 bytes), PadN of 4 bytes... as padding.
        60 => [next, 0, 1, 4, 0, 0, 0, 0],
        // Next header, length 0, type 4 (segment routing would need more):
        // an unknown routing type with segments left 0, which hosts skip.
        43 => [next, 0, 253, 0, 0, 0, 0, 0],
        _ => panic!("extension header {kind} not built here"),
    };
    let mut out = frame[..54].to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&frame[54..]);
    out[20] = kind;
    let payload = u16::from_be_bytes([out[18], out[19]]) + 8;
    out[18..20].copy_from_slice(&payload.to_be_bytes());
    out
}

/// `frame` (802.1Q-tagged) with an outer 802.1ad tag: QinQ, service VLAN 200.
fn qinq(tagged: &[u8]) -> Vec<u8> {
    let mut out = tagged[..12].to_vec();
    out.extend_from_slice(&[0x88, 0xa8, 0x00, 0xc8]);
    out.extend_from_slice(&tagged[12..]);
    out
}

/// Two up slaves, slave 0 active: veth17 and veth19 of the seed lab.
fn two_slaves(s0: u32, s1: u32) -> alb::state::State {
    state(&[(s0, S0_MAC, true), (s1, S1_MAC, true)], Some(0))
}

/// The slave the agent's initial deal gives `bucket` over slaves 0 and 1.
fn bucket_slave(bucket: u32) -> u32 {
    u32::from(initial_bucket_slave(bucket, &[0, 1]).expect("two usable slaves"))
}

/// The first `prefix.x` whose transmit bucket is on `slave`.
fn v4_on(slave: u32, prefix: [u8; 3]) -> Ipv4 {
    (1..=254)
        .map(|last| [prefix[0], prefix[1], prefix[2], last])
        .find(|addr| bucket_slave(bucket_of_v4(addr)) == slave)
        .expect("some address in a /24 lands on each slave")
}

/// The first address `base` with its last byte varied whose bucket is on `slave`.
fn v6_on(slave: u32, base: Ipv6) -> Ipv6 {
    (1..=254)
        .map(|last| {
            let mut addr = base;
            addr[15] = last;
            addr
        })
        .find(|addr| bucket_slave(bucket_of_v6(addr)) == slave)
        .expect("some address lands on each slave")
}

fn client(ip: Ipv4, mac: Mac, slave: u32) -> Client {
    Client { key: key(ip), mac, slave, flags: CLIENT_MAC_KNOWN, tx: (0, 0), rx: (0, 0) }
}

/// Host ARP reply from the master to a client, as the kernel sends it.
fn host_reply(client_mac: Mac, client_ip: Ipv4) -> Vec<u8> {
    arp(client_mac, MASTER_MAC, REPLY, MASTER_MAC, SERVER, client_mac, client_ip)
}

/// Gratuitous ARP and probes from the master announce or test the server's
/// own address: they leave unchanged by the active slave, deal no client,
/// and (for a real address) ask the agent to re-tell the clients of other
/// slaves, who re-pointed to the master's MAC on hearing it.
#[test]
fn tx_announcements() {
    let mut lab = Lab::new(&two_slaves(VETH17, VETH19));
    let announce = |op, tha| arp(BROADCAST, MASTER_MAC, op, MASTER_MAC, SERVER, tha, SERVER);
    let cases = [
        Case::new("gratuitous request from the master", announce(REQUEST, ZERO_MAC))
            .redirect(0)
            .mac_at(ETH_SRC, MASTER_MAC)
            .mac_at(ARP_SHA, MASTER_MAC)
            .counts(&[TxArpAnnounce])
            .event(EventKind::HostArpBroadcast, 0, ClientKey::new(SERVER, SERVER, 0), MASTER_MAC, 0)
            .no_client(ClientKey::new(SERVER, SERVER, 0)),
        Case::new("gratuitous reply from the master (arping -U -A)", announce(REPLY, MASTER_MAC))
            .redirect(0)
            .mac_at(ARP_SHA, MASTER_MAC)
            .counts(&[TxArpAnnounce])
            .event(
                EventKind::HostArpBroadcast,
                0,
                ClientKey::new(SERVER, SERVER, 0),
                MASTER_MAC,
                0,
            ),
        Case::new(
            "address conflict probe (sender 0.0.0.0): no client, no event",
            arp(BROADCAST, MASTER_MAC, REQUEST, MASTER_MAC, [0; 4], ZERO_MAC, SERVER),
        )
        .redirect(0)
        .mac_at(ARP_SHA, MASTER_MAC)
        .counts(&[TxArpAnnounce])
        .no_client(ClientKey::new([0; 4], SERVER, 0)),
    ];
    lab.check_all(Program::Tx, &cases);
}

/// Host broadcast ARP request for a client's address.
fn host_who_has(client_ip: Ipv4) -> Vec<u8> {
    arp(BROADCAST, MASTER_MAC, REQUEST, MASTER_MAC, SERVER, ZERO_MAC, client_ip)
}

// ---------------------------------------------------------------- TX ----

/// Spec §1.4: host ARP goes by client, dealt round-robin, sticky, with the
/// slave's MAC as Ethernet source and ARP sender; foreign ARP untouched.
#[test]
fn tx_host_arp() {
    let mut lab = Lab::new(&two_slaves(VETH17, VETH19));
    let odd = arp_any(
        C1_MAC,
        MASTER_MAC,
        REPLY,
        &[0x02; 8],
        &[198, 18, 0, 1, 0, 0],
        &[0x04; 8],
        &[198, 18, 0, 11, 0, 0],
    );
    let cases = [
        Case::new(
            "ARP reply to a new client 1: dealt slave 0, MAC unchanged",
            host_reply(C1_MAC, C1),
        )
        .redirect(0)
        .counts(&[TxNewClient, TxArpReply])
        .event(EventKind::NewClient, 0, key(C1), C1_MAC, 0)
        .client(client(C1, C1_MAC, 0)),
        Case::new(
            "ARP reply to a new client 2: dealt slave 1, SHA and source = slave 1",
            host_reply(C2_MAC, C2),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .mac_at(ARP_SHA, S1_MAC)
        .counts(&[TxNewClient, TxArpReply])
        .event(EventKind::NewClient, 1, key(C2), C2_MAC, 0)
        .client(client(C2, C2_MAC, 1)),
        Case::new("ARP reply to known client 1 again: sticky on slave 0", host_reply(C1_MAC, C1))
            .redirect(0)
            .counts(&[TxArpReply])
            .client(client(C1, C1_MAC, 0)),
        Case::new("ARP reply to known client 2 again: sticky on slave 1", host_reply(C2_MAC, C2))
            .redirect(1)
            .mac_at(ETH_SRC, S1_MAC)
            .mac_at(ARP_SHA, S1_MAC)
            .counts(&[TxArpReply])
            .client(client(C2, C2_MAC, 1)),
        Case::new(
            "ARP reply to a third new client: round-robin wraps to slave 0",
            host_reply(C3_MAC, C3),
        )
        .redirect(0)
        .counts(&[TxNewClient, TxArpReply])
        .event(EventKind::NewClient, 0, key(C3), C3_MAC, 0)
        .client(client(C3, C3_MAC, 0)),
        Case::new(
            "host broadcast ARP request for client 2: by client 2's slave, SHA = slave 1",
            host_who_has(C2),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .mac_at(ARP_SHA, S1_MAC)
        .counts(&[TxArpRequest])
        .event(EventKind::HostArpBroadcast, 1, key(C2), S1_MAC, REQUEST)
        .client(client(C2, C2_MAC, 1)),
        Case::new(
            "host broadcast ARP request for client 1: by slave 0, nothing rewritten",
            host_who_has(C1),
        )
        .redirect(0)
        .counts(&[TxArpRequest])
        .event(EventKind::HostArpBroadcast, 0, key(C1), S0_MAC, REQUEST)
        .client(client(C1, C1_MAC, 0)),
        Case::new(
            "host broadcast ARP request for an unknown client: dealt (slave 1), MAC unknown",
            host_who_has(C4),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .mac_at(ARP_SHA, S1_MAC)
        .counts(&[TxNewClient, TxArpRequest])
        .event(EventKind::NewClient, 1, key(C4), ZERO_MAC, 0)
        .event(EventKind::HostArpBroadcast, 1, key(C4), S1_MAC, REQUEST)
        .client(Client { flags: 0, ..client(C4, ZERO_MAC, 1) }),
        Case::new(
            "host unicast ARP probe to client 4: its slave, and its MAC learnt (and reported)",
            arp(C4_MAC, MASTER_MAC, REQUEST, MASTER_MAC, SERVER, C4_MAC, C4),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .mac_at(ARP_SHA, S1_MAC)
        .counts(&[TxArpRequest])
        .event(EventKind::ClientMacChanged, 1, key(C4), C4_MAC, REQUEST)
        .client(client(C4, C4_MAC, 1)),
        Case::new(
            "ARP reply from a bridged VM (not the master's MAC): unchanged, the VM's slave",
            arp(C1_MAC, VM_MAC, REPLY, VM_MAC, VM_IP, C1_MAC, C1),
        )
        .redirect(0)
        .counts(&[TxNewVm, TxVm])
        .event(EventKind::NewVm, 0, ClientKey::default(), VM_MAC, 0)
        .vm(VM_MAC, 0, 1, 0)
        .no_client(ClientKey::new(VM_IP, C1, 0)),
        Case::new(
            "ARP with the master's source but a foreign SHA (macvlan): unchanged, active slave",
            arp(C2_MAC, MASTER_MAC, REPLY, VM_MAC, VM_IP, C2_MAC, C2),
        )
        .redirect(0)
        .counts(&[TxArpForeign])
        .no_client(ClientKey::new(VM_IP, C2, 0)),
        Case::new(
            "ARP op 3 (RARP request) from the master: unchanged, active slave",
            arp(C2_MAC, MASTER_MAC, 3, MASTER_MAC, SERVER, C2_MAC, C2),
        )
        .redirect(0)
        .counts(&[TxArpForeign]),
        Case::new(
            "ARP reply cut short (30 bytes): unchanged, active slave",
            host_reply(C2_MAC, C2)[..30].to_vec(),
        )
        .redirect(0)
        .counts(&[TxActive]),
        Case::new("ARP from the master with hlen 8 / plen 6: unchanged, active slave", odd)
            .redirect(0)
            .counts(&[TxActive]),
    ];
    lab.check_all(Program::Tx, &cases);
}

/// Spec §2.2, IPv4: unicast by client (or bucket), broadcast and IGMP by
/// the active slave, multicast data balanced, bridged sources untouched.
#[test]
fn tx_ipv4() {
    let mut lab = Lab::new(&two_slaves(VETH17, VETH19));
    lab.add_client(key(C1), C1_MAC, 0);
    lab.add_client(key(C2), C2_MAC, 1);
    let to_c1 = tcp4(C1_MAC, MASTER_MAC, SERVER, C1);
    let to_c2 = tcp4(C2_MAC, MASTER_MAC, SERVER, C2);
    let far1 = v4_on(1, [198, 19, 7]);
    let far0 = v4_on(0, [198, 19, 7]);
    let group1 = v4_on(1, [239, 1, 1]);
    let with_options = with_ipv4_options(&to_c2);
    let first_fragment = as_ipv4_fragment(&to_c2, 0, true);
    let later_fragment = as_ipv4_fragment(&to_c2, 185, false);
    let cases = [
        Case::new("TCP to known client 1 (slave 0): master MAC kept", to_c1.clone())
            .redirect(0)
            .counts(&[TxClient])
            .client(Client { tx: (1, len(&to_c1)), ..client(C1, C1_MAC, 0) }),
        Case::new("TCP to known client 2 (slave 1): source = slave 1's MAC", to_c2.clone())
            .redirect(1)
            .mac_at(ETH_SRC, S1_MAC)
            .counts(&[TxClient])
            .client(Client { tx: (1, len(&to_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new("TCP to known client 2 again: same slave, client counters grow", to_c2.clone())
            .redirect(1)
            .mac_at(ETH_SRC, S1_MAC)
            .counts(&[TxClient])
            .client(Client { tx: (2, 2 * len(&to_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new(
            "UDP to an unknown destination in a slave-1 bucket",
            udp4(STRANGER_MAC, MASTER_MAC, SERVER, far1),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .counts(&[TxBucket])
        .no_client(key(far1)),
        Case::new(
            "UDP to an unknown destination in a slave-0 bucket",
            udp4(STRANGER_MAC, MASTER_MAC, SERVER, far0),
        )
        .redirect(0)
        .counts(&[TxBucket]),
        Case::new(
            "subnet broadcast (ff:ff:ff:ff:ff:ff, 198.18.0.255): active, unchanged",
            udp4(BROADCAST, MASTER_MAC, SERVER, [198, 18, 0, 255]),
        )
        .redirect(0)
        .counts(&[TxActive]),
        Case::new(
            "limited broadcast 255.255.255.255: active, unchanged",
            udp4(BROADCAST, MASTER_MAC, SERVER, [255; 4]),
        )
        .redirect(0)
        .counts(&[TxActive]),
        Case::new(
            "255.255.255.255 behind a unicast MAC: active, unchanged",
            udp4(C2_MAC, MASTER_MAC, SERVER, [255; 4]),
        )
        .redirect(0)
        .counts(&[TxActive]),
        Case::new(
            "IGMP report (to a group in a slave-1 bucket): active, unchanged",
            igmp_report(MASTER_MAC, SERVER, group1),
        )
        .redirect(0)
        .counts(&[TxActive]),
        Case::new(
            "IPv4 multicast data (UDP, same group): balanced to slave 1",
            udp4(ipv4_multicast_mac(group1), MASTER_MAC, SERVER, group1),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .counts(&[TxBucket]),
        Case::new(
            "bridged VM to a destination in a slave-1 bucket: pinned to the VM's slave, 0, \
             source kept",
            udp4(STRANGER_MAC, VM_MAC, VM_IP, far1),
        )
        .redirect(0)
        .counts(&[TxNewVm, TxVm])
        .event(EventKind::NewVm, 0, ClientKey::default(), VM_MAC, 0)
        .vm(VM_MAC, 0, 1, 0),
        Case::new(
            "bridged VM to client 2's address (of slave 1): the VM's slave, source kept",
            tcp4(C2_MAC, VM_MAC, VM_IP, C2),
        )
        .redirect(0)
        .counts(&[TxVm])
        .vm(VM_MAC, 0, 2, 0)
        // Not counted for client 2: only the host's frames are.
        .client(Client { tx: (2, 2 * len(&to_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new(
            "IPv4 header cut short (Ethernet + 10 bytes): active, unchanged",
            to_c2[..24].to_vec(),
        )
        .redirect(0)
        .counts(&[TxActive])
        .may_be_refused(SHORT_L3),
        Case::new("ethertype IPv4 but version 6 inside: active, unchanged", {
            let mut frame = to_c2.clone();
            frame[14] = 0x65;
            frame
        })
        .redirect(0)
        .counts(&[TxActive]),
        Case::new(
            "ethertype IPv4, nothing after the Ethernet header: active",
            ethernet(C2_MAC, MASTER_MAC, 0x0800),
        )
        .redirect(0)
        .counts(&[TxActive])
        .may_be_refused(SHORT_L3),
        Case::new(
            "IPv4 datagram cut right after its header: still by client 2",
            to_c2[..34].to_vec(),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .counts(&[TxClient])
        .client(Client { tx: (3, 2 * len(&to_c2) + 34), ..client(C2, C2_MAC, 1) }),
        Case::new("IPv4 with options (IHL 6) to client 2: by client 2", with_options.clone())
            .redirect(1)
            .mac_at(ETH_SRC, S1_MAC)
            .counts(&[TxClient])
            .client(Client {
                tx: (4, 2 * len(&to_c2) + 34 + len(&with_options)),
                ..client(C2, C2_MAC, 1)
            }),
        Case::new("first IPv4 fragment (MF) to client 2: by client 2", first_fragment)
            .redirect(1)
            .mac_at(ETH_SRC, S1_MAC)
            .counts(&[TxClient])
            .client(Client {
                tx: (5, 3 * len(&to_c2) + 34 + len(&with_options)),
                ..client(C2, C2_MAC, 1)
            }),
        Case::new(
            "later IPv4 fragment (offset 185, no TCP header) to client 2: by client 2, as the first",
            later_fragment,
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .counts(&[TxClient])
        .client(Client {
            tx: (6, 4 * len(&to_c2) + 34 + len(&with_options)),
            ..client(C2, C2_MAC, 1)
        }),
    ];
    lab.check_all(Program::Tx, &cases);
}

/// Spec §2.2: anything else leaves by the active slave, unchanged; a frame
/// the kernel would not even hand over is refused by test-run itself.
#[test]
fn tx_non_ip_and_truncated() {
    let mut lab = Lab::new(&two_slaves(VETH17, VETH19));
    let cases = [
        Case::new("LLDP (0x88cc): active, unchanged", lldp(MASTER_MAC))
            .redirect(0)
            .counts(&[TxActive]),
        Case::new(
            "local experimental ethertype 0x88b5, unicast: active, unchanged",
            raw(C2_MAC, MASTER_MAC, 0x88b5, 46),
        )
        .redirect(0)
        .counts(&[TxActive]),
        Case::new(
            "QinQ (802.1ad outer tag, 0x88a8): active, unchanged",
            qinq(&vlan_udp4(C2_MAC, MASTER_MAC, SERVER, C2)),
        )
        .redirect(0)
        .counts(&[TxActive]),
        Case::new("bridged VM's LLDP: the VM's slave, source kept", lldp(VM_MAC))
            .redirect(0)
            .counts(&[TxNewVm, TxVm])
            .event(EventKind::NewVm, 0, ClientKey::default(), VM_MAC, 0)
            .vm(VM_MAC, 0, 1, 0),
        Case::new("bare 14-byte Ethernet header: active", ethernet(C2_MAC, MASTER_MAC, 0x88b5))
            .redirect(0)
            .counts(&[TxActive]),
        Case::new(
            "13 bytes, not even an Ethernet header: dropped",
            ethernet(C2_MAC, MASTER_MAC, 0x88b5)[..13].to_vec(),
        )
        .shot()
        .counts(&[TxMalformed])
        .may_be_refused(SHORT_L2),
    ];
    lab.check_all(Program::Tx, &cases);
}

/// No usable slave: every frame is dropped and counted `tx_no_slave`.
#[test]
fn tx_no_slave() {
    let mut lab = Lab::new(&state(&[(VETH17, S0_MAC, false), (VETH19, S1_MAC, false)], None));
    let cases = [
        Case::new(
            "TCP to an unknown destination, both slaves down: dropped",
            tcp4(C2_MAC, MASTER_MAC, SERVER, C2),
        )
        .shot()
        .counts(&[TxBucket, TxFallbackActive, TxNoSlave]),
        Case::new(
            "broadcast, both slaves down: dropped",
            udp4(BROADCAST, MASTER_MAC, SERVER, [255; 4]),
        )
        .shot()
        .counts(&[TxActive, TxFallbackActive, TxNoSlave]),
        Case::new("LLDP, both slaves down: dropped", lldp(MASTER_MAC)).shot().counts(&[
            TxActive,
            TxFallbackActive,
            TxNoSlave,
        ]),
        Case::new(
            "ARP reply to a new client, both slaves down: dropped, not dealt",
            host_reply(C1_MAC, C1),
        )
        .shot()
        .counts(&[TxFallbackActive, TxNoSlave])
        .no_client(key(C1)),
    ];
    lab.check_all(Program::Tx, &cases);
}

/// A client whose slave is down is served by the active slave; new
/// clients and buckets are dealt over the usable slaves only.
#[test]
fn tx_fallback_to_active() {
    let mut lab = Lab::new(&state(&[(VETH17, S0_MAC, true), (VETH19, S1_MAC, false)], Some(0)));
    lab.add_client(key(C2), C2_MAC, 1);
    let to_c2 = tcp4(C2_MAC, MASTER_MAC, SERVER, C2);
    let cases = [
        Case::new("TCP to client 2 whose slave 1 is down: active slave, master MAC", to_c2.clone())
            .redirect(0)
            .counts(&[TxClient, TxFallbackActive])
            .client(Client { tx: (1, len(&to_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new(
            "ARP reply to client 2 whose slave is down: active slave, SHA = master",
            host_reply(C2_MAC, C2),
        )
        .redirect(0)
        .counts(&[TxFallbackActive, TxArpReply])
        .client(Client { tx: (1, len(&to_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new(
            "ARP reply to a new client with one usable slave: dealt slave 0",
            host_reply(C3_MAC, C3),
        )
        .redirect(0)
        .counts(&[TxNewClient, TxArpReply])
        .event(EventKind::NewClient, 0, key(C3), C3_MAC, 0)
        .client(client(C3, C3_MAC, 0)),
        Case::new(
            "UDP to a destination that two slaves would put on slave 1: slave 0",
            udp4(STRANGER_MAC, MASTER_MAC, SERVER, v4_on(1, [198, 19, 7])),
        )
        .redirect(0)
        .counts(&[TxBucket]),
    ];
    lab.check_all(Program::Tx, &cases);
}

/// The window between a link going down and the agent re-dealing: the
/// slave table says down, buckets and clients still name the slave.
#[test]
fn tx_link_down_before_redeal() {
    let mut lab = Lab::new(&two_slaves(VETH17, VETH19));
    lab.add_client(key(C2), C2_MAC, 1);
    lab.add_vm(VM_MAC, 1);
    lab.set_slave_up(1, false);
    let to_c2 = tcp4(C2_MAC, MASTER_MAC, SERVER, C2);
    let cases = [
        Case::new("TCP to client 2 of the failed slave 1: active slave, master MAC", to_c2.clone())
            .redirect(0)
            .counts(&[TxClient, TxFallbackActive])
            .client(Client { tx: (1, len(&to_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new(
            "UDP to a bucket of the failed slave 1: active slave, master MAC",
            udp4(STRANGER_MAC, MASTER_MAC, SERVER, v4_on(1, [198, 19, 7])),
        )
        .redirect(0)
        .counts(&[TxBucket, TxFallbackActive]),
        Case::new(
            "bridged VM pinned to the failed slave 1: active slave, source kept",
            udp4(STRANGER_MAC, VM_MAC, VM_IP, v4_on(1, [198, 19, 7])),
        )
        .redirect(0)
        .counts(&[TxVm, TxFallbackActive])
        .vm(VM_MAC, 1, 1, 0),
    ];
    lab.check_all(Program::Tx, &cases);
}

/// After failover: slave 0 (whose MAC the master carries) is down and
/// slave 1 is active. Everything the master sends leaves by slave 1 with
/// slave 1's MAC.
#[test]
fn tx_after_failover() {
    let mut lab = Lab::new(&state(&[(VETH17, S0_MAC, false), (VETH19, S1_MAC, true)], Some(1)));
    lab.add_client(key(C1), C1_MAC, 0);
    let to_c1 = tcp4(C1_MAC, MASTER_MAC, SERVER, C1);
    let cases = [
        Case::new(
            "broadcast from the master: slave 1, which now carries the master's MAC",
            udp4(BROADCAST, MASTER_MAC, SERVER, [255; 4]),
        )
        .redirect(1)
        .mac_at(ETH_SRC, MASTER_MAC)
        .counts(&[TxActive]),
        Case::new(
            "TCP to client 1 of the failed slave 0: the active slave 1, master's MAC kept",
            to_c1.clone(),
        )
        .redirect(1)
        .mac_at(ETH_SRC, MASTER_MAC)
        .counts(&[TxClient, TxFallbackActive])
        .client(Client { tx: (1, len(&to_c1)), ..client(C1, C1_MAC, 0) }),
        Case::new(
            "ARP reply to client 1 of the failed slave 0: slave 1, SHA = slave 1",
            host_reply(C1_MAC, C1),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .mac_at(ARP_SHA, S1_MAC)
        .counts(&[TxFallbackActive, TxArpReply])
        .client(Client { tx: (1, len(&to_c1)), ..client(C1, C1_MAC, 0) }),
        Case::new(
            "ARP reply to a new client: dealt the only usable slave, 1",
            host_reply(C3_MAC, C3),
        )
        .redirect(1)
        .mac_at(ETH_SRC, S1_MAC)
        .mac_at(ARP_SHA, S1_MAC)
        .counts(&[TxNewClient, TxArpReply])
        .event(EventKind::NewClient, 1, key(C3), C3_MAC, 0)
        .client(client(C3, C3_MAC, 1)),
        Case::new(
            "bridged VM's broadcast: pinned to the only usable slave, 1, source kept",
            udp4(BROADCAST, VM_MAC, VM_IP, [255; 4]),
        )
        .redirect(1)
        .counts(&[TxNewVm, TxVm])
        .event(EventKind::NewVm, 1, ClientKey::default(), VM_MAC, 0)
        .vm(VM_MAC, 1, 1, 0),
    ];
    lab.check_all(Program::Tx, &cases);
}

// ---------------------------------------------------------------- RX ----

/// Hostile or odd frames addressed to `dst` (issue 5, item 1), expectations
/// to be added: each must be delivered the way an ordinary frame to `dst`
/// is (never dropped, never a crash), whatever is inside.
fn hostile(dst: Mac) -> Vec<Case> {
    let ip = tcp4(dst, C2_MAC, C2, SERVER);
    let odd_arp = arp_any(
        dst,
        C2_MAC,
        REPLY,
        &[0x02; 8],
        &[198, 18, 0, 12, 0, 0],
        &[0x04; 8],
        &[198, 18, 0, 1, 0, 0],
    );
    vec![
        Case::new("hostile: ARP with hlen 8 / plen 6", on_wire(odd_arp)),
        Case::new(
            "hostile: ARP cut after 4 bytes of header",
            arp(dst, C2_MAC, REPLY, C2_MAC, C2, S1_MAC, SERVER)[..18].to_vec(),
        ),
        Case::new(
            "hostile: ethertype ARP, nothing after the Ethernet header",
            ethernet(dst, C2_MAC, 0x0806),
        ),
        Case::new("hostile: IPv4 cut after 10 bytes of header", ip[..24].to_vec())
            .may_be_refused(SHORT_L3),
        Case::new(
            "hostile: ethertype IPv4, nothing after the Ethernet header",
            ethernet(dst, C2_MAC, 0x0800),
        )
        .may_be_refused(SHORT_L3),
        Case::new("hostile: IPv4 cut right after its header", ip[..34].to_vec()),
        Case::new("hostile: IPv4 with IHL 15 and version 4 only in name", {
            let mut frame = on_wire(udp4(dst, C2_MAC, C2, SERVER));
            frame[14] = 0x4f;
            frame
        }),
        Case::new("hostile: 802.1Q-tagged (0x8100)", vlan_udp4(dst, C2_MAC, C2, SERVER)),
        Case::new("hostile: QinQ (0x88a8 outer, 0x8100 inner)", {
            qinq(&vlan_udp4(dst, C2_MAC, C2, SERVER))
        }),
        Case::new("hostile: IPv4 with options (IHL 6)", with_ipv4_options(&ip)),
        Case::new("hostile: first IPv4 fragment (MF)", as_ipv4_fragment(&ip, 0, true)),
        Case::new(
            "hostile: later IPv4 fragment (offset 185, no TCP header)",
            as_ipv4_fragment(&ip, 185, false),
        ),
        Case::new(
            "hostile: IPv6 with a fragment header",
            with_ipv6_extension(&tcp6(dst, C2_MAC, PEER6, SERVER6), 44),
        ),
        Case::new(
            "hostile: IPv6 with a routing header",
            with_ipv6_extension(&tcp6(dst, C2_MAC, PEER6, SERVER6), 43),
        ),
        Case::new(
            "hostile: IPv6 cut after 20 bytes of header",
            tcp6(dst, C2_MAC, PEER6, SERVER6)[..34].to_vec(),
        )
        .may_be_refused(SHORT_L3),
        Case::new(
            "hostile: 13 bytes, not even an Ethernet header",
            ethernet(dst, C2_MAC, 0x88b5)[..13].to_vec(),
        )
        .may_be_refused(SHORT_L2),
        Case::new("hostile: jumbo 9000-byte frame", big_udp4(dst, C2_MAC, C2, SERVER, 9000))
            .jumbo(),
    ]
}

/// Receiving on slave 1 (not active, its MAC differs from the master's).
#[test]
fn rx_on_non_active_slave() {
    let mut lab = Lab::new(&two_slaves(VETH17, LO));
    lab.add_client(key(C1), C1_MAC, 0);
    lab.add_client(key(C2), C2_MAC, 1);
    let from_c2 = on_wire(tcp4(S1_MAC, C2_MAC, C2, SERVER));
    let from_c1 = on_wire(tcp4(S1_MAC, C1_MAC, C1, SERVER));
    let c2_reply = on_wire(arp(S1_MAC, C2_MAC, REPLY, C2_MAC, C2, S1_MAC, SERVER));
    let mut cases = vec![
        Case::new(
            "TCP from client 2 to slave 1's MAC: delivered, dst = master MAC",
            from_c2.clone(),
        )
        .redirect(1)
        .mac_at(ETH_DST, MASTER_MAC)
        .counts(&[RxUnicast])
        .client(Client { rx: (1, len(&from_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new(
            "TCP from client 1 (slave 0's) arriving on slave 1: delivered, flagged",
            from_c1.clone(),
        )
        .redirect(1)
        .mac_at(ETH_DST, MASTER_MAC)
        .counts(&[RxUnicast, RxClientOffSlave])
        .client(Client { rx: (1, len(&from_c1)), ..client(C1, C1_MAC, 0) }),
        Case::new("client 2's ARP reply to slave 1: delivered, seen", c2_reply)
            .redirect(1)
            .mac_at(ETH_DST, MASTER_MAC)
            .counts(&[RxUnicast, RxArp])
            .event(EventKind::ArpSeen, 1, key(C2), C2_MAC, REPLY)
            .client(Client { rx: (1, len(&from_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new(
            "client 2's ARP with unknown opcode 9 to slave 1: delivered, seen (any opcode)",
            on_wire(arp(S1_MAC, C2_MAC, 9, C2_MAC, C2, S1_MAC, SERVER)),
        )
        .redirect(1)
        .mac_at(ETH_DST, MASTER_MAC)
        .counts(&[RxUnicast, RxArp])
        .event(EventKind::ArpSeen, 1, key(C2), C2_MAC, 9)
        .client(Client { rx: (1, len(&from_c2)), ..client(C2, C2_MAC, 1) }),
        Case::new(
            "broadcast ARP request on the non-active slave: dropped",
            on_wire(arp(BROADCAST, C2_MAC, REQUEST, C2_MAC, C2, ZERO_MAC, SERVER)),
        )
        .shot()
        .counts(&[RxBroadcastInactive]),
        Case::new(
            "IPv6 NS to a solicited-node group on the non-active slave: dropped",
            neighbour_solicitation(C2_MAC, PEER_LL, SERVER6),
        )
        .shot()
        .counts(&[RxBroadcastInactive]),
        Case::new(
            "IPv4 multicast on the non-active slave: dropped",
            udp4(ipv4_multicast_mac([239, 1, 1, 1]), C2_MAC, C2, [239, 1, 1, 1]),
        )
        .shot()
        .counts(&[RxBroadcastInactive]),
        Case::new(
            "hostile broadcast (bare header) on the non-active slave: dropped",
            ethernet(BROADCAST, C2_MAC, 0x0806),
        )
        .shot()
        .counts(&[RxBroadcastInactive]),
        Case::new(
            "LLDP (link-local group) on the non-active slave: left to the slave",
            lldp(C2_MAC),
        )
        .pass()
        .counts(&[RxLinkLocal]),
        Case::new("STP BPDU (01:80:c2:00:00:00) on the non-active slave: left to the slave", {
            on_wire(raw([0x01, 0x80, 0xc2, 0, 0, 0], C2_MAC, 0x0026, 38))
        })
        .pass()
        .counts(&[RxLinkLocal]),
        Case::new(
            "01:80:c2:00:00:21 (beyond the link-local block) on the non-active slave: dropped",
            on_wire(raw([0x01, 0x80, 0xc2, 0, 0, 0x21], C2_MAC, 0x88f5, 46)),
        )
        .shot()
        .counts(&[RxBroadcastInactive]),
        Case::new(
            "unicast for slave 0's MAC (flooded copy): left to the slave",
            on_wire(tcp4(S0_MAC, C1_MAC, C1, SERVER)),
        )
        .pass()
        .counts(&[RxNotForUs])
        .client(Client { rx: (1, len(&from_c1)), ..client(C1, C1_MAC, 0) }),
        Case::new(
            "unicast for a stranger's MAC: left to the slave",
            on_wire(tcp4(STRANGER_MAC, C1_MAC, C1, VM_IP)),
        )
        .pass()
        .counts(&[RxNotForUs]),
    ];
    cases.extend(
        hostile(S1_MAC)
            .into_iter()
            .map(|case| case.redirect(1).mac_at(ETH_DST, MASTER_MAC).counts(&[RxUnicast])),
    );
    lab.check_all(Program::Rx { ifindex: LO }, &cases);
}

/// The seed scenario through both programs: the host ARPs two clients,
/// they learn two slave MACs, answer, and traffic flows per client.
#[test]
fn arp_round_trip() {
    let mut lab = Lab::new(&two_slaves(VETH17, LO));
    lab.check_all(
        Program::Tx,
        &[
            Case::new("host ARP reply to client 1: dealt slave 0", host_reply(C1_MAC, C1))
                .redirect(0)
                .counts(&[TxNewClient, TxArpReply])
                .event(EventKind::NewClient, 0, key(C1), C1_MAC, 0)
                .client(client(C1, C1_MAC, 0)),
            Case::new(
                "host who-has client 2: dealt slave 1, asks with slave 1's MAC",
                host_who_has(C2),
            )
            .redirect(1)
            .mac_at(ETH_SRC, S1_MAC)
            .mac_at(ARP_SHA, S1_MAC)
            .counts(&[TxNewClient, TxArpRequest])
            .event(EventKind::NewClient, 1, key(C2), ZERO_MAC, 0)
            .event(EventKind::HostArpBroadcast, 1, key(C2), S1_MAC, REQUEST)
            .client(Client { flags: 0, ..client(C2, ZERO_MAC, 1) }),
        ],
    );
    let reply = on_wire(arp(S1_MAC, C2_MAC, REPLY, C2_MAC, C2, S1_MAC, SERVER));
    let from_c2 = on_wire(tcp4(S1_MAC, C2_MAC, C2, SERVER));
    lab.check_all(
        Program::Rx { ifindex: LO },
        &[
            Case::new("client 2 answers slave 1's MAC: delivered, its MAC learnt", reply)
                .redirect(1)
                .mac_at(ETH_DST, MASTER_MAC)
                .counts(&[RxUnicast, RxArp, RxClientMacChanged])
                .event(EventKind::ClientMacChanged, 1, key(C2), C2_MAC, REPLY)
                .event(EventKind::ArpSeen, 1, key(C2), C2_MAC, REPLY)
                .client(client(C2, C2_MAC, 1)),
            Case::new("TCP from client 2 to slave 1's MAC: delivered, counted", from_c2.clone())
                .redirect(1)
                .mac_at(ETH_DST, MASTER_MAC)
                .counts(&[RxUnicast])
                .client(Client { rx: (1, len(&from_c2)), ..client(C2, C2_MAC, 1) }),
        ],
    );
    let to_c2 = tcp4(C2_MAC, MASTER_MAC, SERVER, C2);
    lab.check_all(
        Program::Tx,
        &[Case::new("TCP back to client 2: slave 1 with slave 1's MAC", to_c2.clone())
            .redirect(1)
            .mac_at(ETH_SRC, S1_MAC)
            .counts(&[TxClient])
            .client(Client {
                tx: (1, len(&to_c2)),
                rx: (1, len(&from_c2)),
                ..client(C2, C2_MAC, 1)
            })],
    );
}

/// Receiving on slave 0: active, and its MAC is the master's.
#[test]
fn rx_on_active_slave() {
    let mut lab = Lab::new(&two_slaves(LO, VETH19));
    lab.add_client(key(C1), C1_MAC, 0);
    let from_c1 = on_wire(tcp4(S0_MAC, C1_MAC, C1, SERVER));
    let new_mac_reply =
        on_wire(arp(MASTER_MAC, C1_NEW_MAC, REPLY, C1_NEW_MAC, C1, MASTER_MAC, SERVER));
    let who_has = on_wire(arp(BROADCAST, C1_NEW_MAC, REQUEST, C1_NEW_MAC, C1, ZERO_MAC, SERVER));
    let mut cases = vec![
        Case::new("TCP from client 1 to the master's MAC: delivered unchanged", from_c1.clone())
            .redirect(0)
            .counts(&[RxUnicast])
            .client(Client { rx: (1, len(&from_c1)), ..client(C1, C1_MAC, 0) }),
        Case::new(
            "IPv6 TCP to the master's MAC: delivered unchanged",
            tcp6(MASTER_MAC, C2_MAC, PEER6, SERVER6),
        )
        .redirect(0)
        .counts(&[RxUnicast]),
        Case::new("client 1's ARP reply from a new MAC: delivered, entry updated", new_mac_reply)
            .redirect(0)
            .counts(&[RxUnicast, RxArp, RxClientMacChanged])
            .event(EventKind::ClientMacChanged, 0, key(C1), C1_NEW_MAC, REPLY)
            .event(EventKind::ArpSeen, 0, key(C1), C1_NEW_MAC, REPLY)
            .client(Client { rx: (1, len(&from_c1)), ..client(C1, C1_NEW_MAC, 0) }),
        Case::new("client 1's broadcast ARP request (same new MAC): delivered once, seen", who_has)
            .redirect(0)
            .counts(&[RxBroadcast, RxArp])
            .event(EventKind::ArpSeen, 0, key(C1), C1_NEW_MAC, REQUEST)
            .client(Client { rx: (1, len(&from_c1)), ..client(C1, C1_NEW_MAC, 0) }),
        Case::new(
            "ARP request from an unknown host: delivered, seen, no entry made",
            on_wire(arp(BROADCAST, C3_MAC, REQUEST, C3_MAC, C3, ZERO_MAC, SERVER)),
        )
        .redirect(0)
        .counts(&[RxBroadcast, RxArp])
        .event(EventKind::ArpSeen, 0, key(C3), C3_MAC, REQUEST)
        .no_client(key(C3)),
        Case::new(
            "IPv4 broadcast on the active slave: delivered unchanged",
            udp4(BROADCAST, C2_MAC, C2, [255; 4]),
        )
        .redirect(0)
        .counts(&[RxBroadcast]),
        Case::new(
            "our broadcast ARP request sent by slave 1, flooded back to the active slave: dropped",
            on_wire(arp(BROADCAST, S1_MAC, REQUEST, S1_MAC, SERVER, ZERO_MAC, C2)),
        )
        .shot()
        .counts(&[RxLooped]),
        Case::new(
            "our broadcast sent by slave 0 (master MAC), flooded back: dropped",
            udp4(BROADCAST, MASTER_MAC, SERVER, [255; 4]),
        )
        .shot()
        .counts(&[RxLooped]),
        Case::new("LLDP on the active slave: delivered to the master", lldp(C2_MAC))
            .redirect(0)
            .counts(&[RxBroadcast]),
        Case::new(
            "IPv6 NS on the active slave: delivered unchanged, seen",
            neighbour_solicitation(C2_MAC, PEER_LL, SERVER6),
        )
        .redirect(0)
        .counts(&[RxBroadcast, RxNd]),
        Case::new(
            "unicast for slave 1's MAC (up, flooded copy): left to the slave",
            on_wire(tcp4(S1_MAC, C2_MAC, C2, SERVER)),
        )
        .pass()
        .counts(&[RxNotForUs]),
    ];
    cases.extend(hostile(MASTER_MAC).into_iter().map(|case| case.redirect(0).counts(&[RxUnicast])));
    cases
        .extend(hostile(BROADCAST).into_iter().map(|case| case.redirect(0).counts(&[RxBroadcast])));
    lab.check_all(Program::Rx { ifindex: LO }, &cases);
}

/// Failover acceptance: frames for a down slave's MAC are taken on the
/// active slave only.
#[test]
fn rx_failover() {
    let three = |s0: u32, s1: u32| {
        state(&[(s0, S0_MAC, true), (s1, S1_MAC, true), (VETH21, S2_MAC, false)], Some(0))
    };
    let for_s2 = on_wire(tcp4(S2_MAC, C2_MAC, C2, SERVER));

    let mut active = Lab::new(&three(LO, VETH19));
    active.check_all(
        Program::Rx { ifindex: LO },
        &[
            Case::new(
                "unicast for down slave 2's MAC on the active slave: delivered, dst = master",
                for_s2.clone(),
            )
            .redirect(0)
            .mac_at(ETH_DST, MASTER_MAC)
            .counts(&[RxFailover]),
            Case::new(
                "unicast for up slave 1's MAC on the active slave: left to the slave",
                on_wire(tcp4(S1_MAC, C2_MAC, C2, SERVER)),
            )
            .pass()
            .counts(&[RxNotForUs]),
        ],
    );

    let mut other = Lab::new(&three(VETH17, LO));
    other.check_all(
        Program::Rx { ifindex: LO },
        &[Case::new(
            "unicast for down slave 2's MAC on a non-active slave: left to the slave",
            for_s2,
        )
        .pass()
        .counts(&[RxNotForUs])],
    );
}

/// A device that is not a slave of this master: everything passes untouched.
#[test]
fn rx_unknown_slave() {
    let mut lab = Lab::new(&two_slaves(VETH17, VETH19));
    let cases = [
        Case::new(
            "unicast on a device that is no slave: passed",
            on_wire(tcp4(S1_MAC, C2_MAC, C2, SERVER)),
        )
        .pass()
        .counts(&[RxUnknownSlave]),
        Case::new(
            "broadcast on a device that is no slave: passed",
            udp4(BROADCAST, C2_MAC, C2, [255; 4]),
        )
        .pass()
        .counts(&[RxUnknownSlave]),
    ];
    lab.check_all(Program::Rx { ifindex: LO }, &cases);
}
