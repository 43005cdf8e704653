//! 802.1Q VLANs with the tag offloaded to the skb, for real: test-run
//! cannot set an skb's `vlan_present` (`bpf_prog_test_run_skb` refuses
//! it), so fixtures/vlan.rs covers the in-frame form only. This kernel has
//! no 8021q, and without it no VLAN-filtering bridge either (its bridges
//! refuse `vlan_filtering 1`) nor `act_vlan`: no VLAN device can sit on the
//! master here (the `cargo xtask vm-test` guest has them). What this kernel
//! does without 8021q is the receive side: the stack moves the tag of every
//! tagged frame a device receives into the skb's metadata before TC ingress
//! runs, so a tagged frame a client sends reaches `alb_rx` on a slave with
//! its tag offloaded. The host's tagged ARP is sent with a packet socket on
//! the master (the in-frame form on `alb_tx`).
//!
//! Needs root, the `alb` binary and tcpdump; run one test at a time
//! (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    net::Ipv4Addr,
    thread,
    time::{Duration, Instant},
};

use alb_tests::{Lab, SERVER_IP4, Status};
use common::{
    Agent,
    capture::Capture,
    raw::{RawSocket, arp, mac},
};

const REPLY: u16 = 2;
/// The MAC a client of VLAN 200 answers from: not any lab MAC.
const MOVED_MAC: &str = "02:a1:c9:00:00:c8";

/// `frame` with an 802.1Q tag for `vlan` after its Ethernet addresses.
fn tagged(frame: &[u8], vlan: u16) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&0x8100u16.to_be_bytes());
    out.extend_from_slice(&vlan.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

/// (client IP, VLAN) -> (MAC, slave) of every client in `status`.
fn clients(status: &Status) -> Vec<(String, u16, Option<String>, Option<String>)> {
    status
        .clients
        .iter()
        .map(|c| (c.client_ip.clone(), c.vlan, c.mac.clone(), c.slave.clone()))
        .collect()
}

/// Waits until `want` holds of the agent's status, or panics with it.
fn wait_status(agent: &Agent, what: &str, want: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + alb_tests::scaled(Duration::from_secs(3));
    loop {
        let status = agent.status();
        if want(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}; clients: {:?}", clients(&status));
        thread::sleep(Duration::from_millis(20));
    }
}

/// The host answers client 1's address in VLAN 100 and in VLAN 200: two
/// clients, dealt in turn (veth17, veth19). Client 1's address in VLAN 200
/// then answers from another MAC, tagged: the tag reaches `alb_rx` on
/// veth19 offloaded, the VLAN 200 client takes the new MAC (the VLAN 100
/// one keeps its own), and the agent tells it its slave's MAC again in an
/// ARP update tagged with VLAN 200, which the switch port of veth19 sees,
/// as it sees veth19's learning frames in VLAN 200 (a VLAN a client is in).
#[test]
fn offloaded_tags_received_update_the_client_of_their_vlan_only() {
    let lab: Lab = common::lab(1, 2);
    let agent = Agent::start(&lab);
    let client = lab.client(1);
    let (server_ip, client_ip): (Ipv4Addr, Ipv4Addr) =
        (SERVER_IP4.parse().expect("IPv4"), client.ip4.parse().expect("IPv4"));
    let master_mac =
        mac(&lab.link_mac(lab.srv(), agent.master()).unwrap_or_else(|e| panic!("MAC: {e:#}")));
    let client_mac = mac(&client.mac);
    let host = RawSocket::open(lab.srv(), agent.master());
    let reply = arp(client_mac, master_mac, REPLY, master_mac, server_ip, client_mac, client_ip);
    for vlan in [100, 200] {
        host.send(&tagged(&reply, vlan)).unwrap_or_else(|e| panic!("host ARP, VLAN {vlan}: {e}"));
    }
    let (s0, s1) = (lab.slave(0), lab.slave(1));
    let status = wait_status(&agent, "two clients of one address in VLANs 100 and 200", |s| {
        let all = clients(s);
        all.contains(&(client.ip4.clone(), 100, Some(client.mac.clone()), Some(s0.name.clone())))
            && all.contains(&(
                client.ip4.clone(),
                200,
                Some(client.mac.clone()),
                Some(s1.name.clone()),
            ))
    });
    assert_eq!(status.clients.len(), 2, "{:?}", clients(&status));

    let capture =
        Capture::start(&lab, lab.sw(), &s1.port, "vlan 200 and (arp or ether proto 0x9000)");
    let moved = mac(MOVED_MAC);
    let answer = arp(mac(&s1.mac), moved, REPLY, moved, client_ip, mac(&s1.mac), server_ip);
    RawSocket::open(&client.ns, &client.dev)
        .send(&tagged(&answer, 200))
        .unwrap_or_else(|e| panic!("client's tagged ARP: {e}"));
    wait_status(&agent, "the VLAN 200 client takes the new MAC, VLAN 100's keeps its own", |s| {
        let all = clients(s);
        all.contains(&(client.ip4.clone(), 200, Some(MOVED_MAC.to_owned()), Some(s1.name.clone())))
            && all.contains(&(
                client.ip4.clone(),
                100,
                Some(client.mac.clone()),
                Some(s0.name.clone()),
            ))
    });
    // Learning frames go every second (lp_interval): one round at least.
    thread::sleep(Duration::from_millis(1300));
    let frames = capture.finish();
    // From veth19, to the new MAC, VLAN 200, ARP: server IP at veth19's MAC.
    let update = frames.iter().find(|f| {
        let d = &f.data;
        d.len() >= 46
            && d[0..6] == moved
            && d[6..12] == mac(&s1.mac)
            && d[12..16] == [0x81, 0x00, 0x00, 200]
            && d[16..18] == [0x08, 0x06]
            && d[26..32] == mac(&s1.mac)
            && d[32..36] == server_ip.octets()
    });
    assert!(
        update.is_some(),
        "no ARP update tagged with VLAN 200 to {MOVED_MAC} from {} on its port; saw {} frames: \
         {:02x?}",
        s1.name,
        frames.len(),
        frames.iter().map(|f| &f.data[..f.data.len().min(42)]).collect::<Vec<_>>()
    );
    let learning = frames.iter().any(|f| {
        let d = &f.data;
        d.len() >= 18
            && d[0..6] == mac(&s1.mac)
            && d[6..12] == mac(&s1.mac)
            && d[12..18] == [0x81, 0x00, 0x00, 200, 0x90, 0x00]
    });
    assert!(learning, "no learning frame of {} tagged with VLAN 200 on its port", s1.name);
    let counters = agent.status();
    assert!(counters.counter("rx_client_mac_changed") >= 1, "{:?}", counters.counters);
}
