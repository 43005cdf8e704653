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
//! VLAN devices on the master for real need 8021q: that test is ignored
//! here and runs in the guests of `cargo xtask vm-test`, which load it.
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

use alb_tests::{Lab, SERVER_IP4, Status, wait_until};
use common::{
    Agent,
    capture::{Capture, Frame},
    pings,
    raw::{RawSocket, arp, mac},
    set_port,
};

const REPLY: u16 = 2;
/// The MAC a client of VLAN 200 answers from: not any lab MAC.
const MOVED_MAC: &str = "02:a1:c9:00:00:c8";
/// A failed slave's clients are served again within this (times
/// `ALB_TEST_TIME_SCALE`), as in failover.rs.
const FAIL_THRESHOLD: Duration = Duration::from_secs(1);

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

/// Names of the VLAN devices (a master's name plus `.100` could pass
/// IFNAMSIZ).
fn vlan_dev(vlan: u16) -> String {
    format!("v{vlan}")
}

/// The second server namespace of [`vlan_devices_on_the_master_serve_two_vlans`],
/// deleted when dropped (the lab removes only its own).
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(error) = alb_tests::netns::delete(&self.0) {
            eprintln!("vlan: {error:#}");
        }
    }
}

/// The VLAN of client `number` (1, 2: 100; 3, 4: 200) and its address:
/// 198.18.0.11 for odd numbers, .12 for even ones, in both VLANs.
fn vlan_client(number: usize) -> (u16, &'static str) {
    let vlan = if number <= 2 { 100 } else { 200 };
    (vlan, if number % 2 == 1 { "198.18.0.11" } else { "198.18.0.12" })
}

/// VLAN devices on the master for real (8021q): `v100` in the server's
/// namespace and `v200` moved to a second one, both 198.18.0.1/24; four
/// clients behind the switch, c1 and c2 on VLAN 100 and c3 and c4 on VLAN
/// 200, reusing the same two addresses. Every client reaches its own
/// VLAN's server; each VLAN's two clients learn different slaves' MACs;
/// `alb status` lists each address once per VLAN; each server reaches
/// both addresses in its VLAN. When veth19 fails under pings every 20 ms
/// from all four, every client recovers within the failover bound and the
/// moved ones (one per VLAN) are told veth17's MAC by tagged ARP updates.
/// Then a group joined on `v100` is reported again through veth19, tagged
/// with VLAN 100, when veth17 (the active slave) fails: the agent's rejoin
/// per VLAN device.
#[test]
#[ignore = "guest: needs 8021q; run by cargo xtask vm-test"]
fn vlan_devices_on_the_master_serve_two_vlans() {
    assert!(
        std::path::Path::new("/sys/module/8021q").exists(),
        "this test needs the 8021q module loaded (the guests of cargo xtask vm-test load it)"
    );
    let lab: Lab = common::lab(4, 2);
    // No address on the master itself: 198.18.0.1 is the VLAN devices'.
    let agent = Agent::start_only(&lab);
    let master = agent.master().to_owned();
    let srv = lab.srv().to_owned();
    let srv2 = Namespace(format!("{srv}2"));
    alb_tests::netns::add(&srv2.0).unwrap_or_else(|e| panic!("{}: {e:#}", srv2.0));
    for vlan in [100, 200] {
        let dev = vlan_dev(vlan);
        let id = vlan.to_string();
        lab.ip(&srv, &["link", "add", "link", &master, "name", &dev, "type", "vlan", "id", &id])
            .unwrap_or_else(|e| panic!("{dev}: {e:#}"));
    }
    lab.ip(&srv, &["link", "set", "v200", "netns", &srv2.0]).expect("v200 to the second server");
    for (ns, dev) in [(srv.as_str(), "v100"), (srv2.0.as_str(), "v200")] {
        lab.ip(ns, &["link", "set", "lo", "up"]).expect("lo");
        lab.ip(ns, &["addr", "add", &format!("{SERVER_IP4}/24"), "dev", dev]).expect("address");
        lab.ip(ns, &["link", "set", dev, "up"]).expect("up");
    }
    for number in 1..=4 {
        let client = lab.client(number);
        let (vlan, ip) = vlan_client(number);
        let (dev, id) = (vlan_dev(vlan), vlan.to_string());
        lab.ip(&client.ns, &["addr", "flush", "dev", &client.dev]).expect("flush");
        lab.ip(
            &client.ns,
            &["link", "add", "link", &client.dev, "name", &dev, "type", "vlan", "id", &id],
        )
        .unwrap_or_else(|e| panic!("c{number} {dev}: {e:#}"));
        lab.ip(&client.ns, &["addr", "add", &format!("{ip}/24"), "dev", &dev]).expect("address");
        lab.ip(&client.ns, &["link", "set", &dev, "up"]).expect("up");
    }
    // In turn: c1, c2 (VLAN 100), c3, c4 (VLAN 200), each answered.
    let mut server_mac = std::collections::BTreeMap::new();
    for number in 1..=4 {
        let ns = &lab.client(number).ns;
        let stats = lab.ping(ns, SERVER_IP4, 3, Duration::from_millis(200)).expect("ping");
        assert_eq!(stats.lost(), 0, "c{number} reaches its VLAN's server: {stats:?}");
        let mac = lab.neigh_mac(ns, SERVER_IP4).expect("ip neigh");
        server_mac.insert(number, mac.unwrap_or_else(|| panic!("c{number} has no entry")));
    }
    println!("vlan: the clients' server MACs {server_mac:?}");
    assert_ne!(server_mac[&1], server_mac[&2], "VLAN 100's clients spread over the slaves");
    assert_ne!(server_mac[&3], server_mac[&4], "VLAN 200's clients spread over the slaves");
    let status = agent.status();
    let listed: Vec<(String, u16)> =
        clients(&status).into_iter().map(|(ip, vlan, _, _)| (ip, vlan)).collect();
    for number in 1..=4 {
        let (vlan, ip) = vlan_client(number);
        assert!(listed.contains(&(ip.to_owned(), vlan)), "{ip} in VLAN {vlan}: {listed:?}");
    }
    assert_eq!(listed.len(), 4, "one entry per address and VLAN: {listed:?}");
    for ns in [srv.as_str(), srv2.0.as_str()] {
        for ip in ["198.18.0.11", "198.18.0.12"] {
            let stats = lab.ping(ns, ip, 2, Duration::from_millis(200)).expect("ping");
            assert_eq!(stats.lost(), 0, "{ns} reaches {ip} in its VLAN: {stats:?}");
        }
    }

    // veth19 fails under pings every 20 ms from all four.
    let (veth17, veth19) = (lab.slave(0).clone(), lab.slave(1).clone());
    let moved: Vec<usize> = (1..=4).filter(|n| server_mac[n] == veth19.mac).collect();
    assert_eq!(moved.len(), 2, "one client per VLAN on veth19: {server_mac:?}");
    let pings =
        pings::start_pings(&lab, &[1, 2, 3, 4], Duration::from_secs(5), Duration::from_millis(20));
    thread::sleep(Duration::from_secs(2));
    set_port(&lab, &veth19.port, false);
    let runs = pings.finish();
    for run in &runs {
        println!("vlan: veth19 failed: {run}");
        assert!(
            run.outage() < alb_tests::scaled(FAIL_THRESHOLD),
            "{run} is not below {FAIL_THRESHOLD:?}\n{}\n{}",
            run.tail(),
            agent.log()
        );
    }
    for &number in &moved {
        let ns = &lab.client(number).ns;
        let mac = lab.neigh_mac(ns, SERVER_IP4).expect("ip neigh");
        assert_eq!(mac.as_deref(), Some(veth17.mac.as_str()), "c{number} told veth17's MAC");
    }

    // The rejoin: a group on v100; veth17 fails once veth19 is back.
    set_port(&lab, &veth19.port, true);
    agent.wait_status(Duration::from_secs(5), "veth19 back", |s| {
        s.slave(&veth19.name).is_some_and(|v| v.usable)
    });
    lab.ip(&srv, &["addr", "add", "239.1.2.3/32", "dev", "v100", "autojoin"]).expect("join");
    let capture = Capture::start(&lab, lab.sw(), &veth19.port, "vlan 100 and igmp");
    set_port(&lab, &veth17.port, false);
    let group = Ipv4Addr::new(239, 1, 2, 3).octets();
    let is_report = |f: &Frame| {
        let d = &f.data;
        d.len() >= 18 && d[12..16] == [0x81, 0x00, 0x00, 100] && d.windows(4).any(|w| w == group)
    };
    let seen = wait_until(Duration::from_secs(5), "a tagged report through veth19", || {
        Ok(capture.frames_so_far().iter().any(is_report))
    });
    let frames = capture.finish();
    set_port(&lab, &veth17.port, true);
    seen.unwrap_or_else(|e| {
        panic!("{e:#}: no IGMP report for 239.1.2.3 tagged with VLAN 100 on veth19's port after veth17 failed; {} frames", frames.len())
    });
}
