//! The MTU as bonding keeps it (issue 11, item 4): the slaves and the
//! master's peer take the master's MTU; a change on the master reaches all
//! of them; a slave added at run time takes it and a removed one gets its
//! own back; a stop restores every slave; jumbo frames cross end to end.
//! Needs root, ip and ping; run one test at a time.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::time::Duration;

use alb_tests::{BRIDGE, CLIENT_DEV, Lab, SERVER_IP4, wait_until};
use common::{Agent, run_alb};

fn mtu_of(lab: &Lab, ns: &str, dev: &str) -> u32 {
    let out = lab.ip(ns, &["-o", "link", "show", "dev", dev]).unwrap_or_else(|e| panic!("{e:#}"));
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "mtu").unwrap_or_else(|| panic!("no mtu: {out}"));
    words[at + 1].parse().unwrap_or_else(|e| panic!("mtu of {dev}: {e}: {out}"))
}

/// The switch (bridge and every port) and the clients take `mtu`: the
/// network the bond is on carries jumbo frames.
fn jumbo_network(lab: &Lab, mtu: &str) {
    let mut ports: Vec<String> = lab.slaves().iter().map(|s| s.port.clone()).collect();
    ports.extend(lab.clients().iter().map(|c| c.port.clone()));
    for port in ports.iter().map(String::as_str).chain([BRIDGE]) {
        lab.ip(lab.sw(), &["link", "set", "dev", port, "mtu", mtu]).expect("switch MTU");
    }
    for client in lab.clients() {
        lab.ip(&client.ns, &["link", "set", "dev", CLIENT_DEV, "mtu", mtu]).expect("client MTU");
    }
}

/// `ping -M do -s size`: no fragmentation, so the frame is size + 28 bytes of IP.
fn jumbo_ping(lab: &Lab, ns: &str, target: &str, size: u32) -> String {
    lab.run(
        ns,
        &[
            "ping",
            "-n",
            "-c",
            "3",
            "-i",
            "0.05",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            &size.to_string(),
            target,
        ],
    )
    .unwrap_or_else(|e| panic!("ping -s {size} {target} from {ns}: {e:#}"))
}

#[test]
fn the_slaves_follow_the_masters_mtu_and_jumbo_frames_cross() {
    let lab = common::lab(2, 3);
    jumbo_network(&lab, "9000");
    let master = lab.master().to_owned();
    let peer = format!("{master}p");
    let srv = lab.srv().to_owned();
    // The spare slave would answer ARP for the server address with its own
    // MAC (arp_ignore 0) and take clients to a device alb does not run.
    lab.sysctl(&srv, "net.ipv4.conf.veth21.arp_ignore", "1").expect("quiet spare");
    let mut agent = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    assert_eq!(mtu_of(&lab, &srv, &master), 1500, "the smallest slave MTU at start");

    lab.ip(&srv, &["link", "set", "dev", &master, "mtu", "9000"]).expect("master MTU");
    wait_until(Duration::from_secs(3), "the slaves take MTU 9000", || {
        Ok(["veth17", "veth19", peer.as_str()].iter().all(|dev| mtu_of(&lab, &srv, dev) == 9000))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    assert_eq!(mtu_of(&lab, &srv, "veth21"), 1500, "a device that is no slave keeps its MTU");

    // 8972 bytes of ICMP + 28 of headers: a 9000-byte IP packet, both ways.
    for number in 1..=2 {
        let client = lab.client(number);
        let out = jumbo_ping(&lab, &client.ns, SERVER_IP4, 8972);
        assert!(out.contains("3 received"), "c{number} -> server, 9000-byte packets:\n{out}");
        let out = jumbo_ping(&lab, &srv, &client.ip4, 8972);
        assert!(out.contains("3 received"), "server -> c{number}, 9000-byte packets:\n{out}");
    }

    // A slave added at run time takes the master's MTU, and gets its own
    // back when removed.
    let out = run_alb(&srv, &["slave", "add", "veth21", "--master", &master]);
    assert!(out.status.success(), "slave add: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(mtu_of(&lab, &srv, "veth21"), 9000, "an added slave takes the master's MTU");
    let out = run_alb(&srv, &["slave", "del", "veth21", "--master", &master]);
    assert!(out.status.success(), "slave del: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(mtu_of(&lab, &srv, "veth21"), 1500, "a removed slave gets its own MTU back");

    // Back down to 1500 on the master: the slaves follow again.
    lab.ip(&srv, &["link", "set", "dev", &master, "mtu", "1400"]).expect("master MTU");
    wait_until(Duration::from_secs(3), "the slaves take MTU 1400", || {
        Ok(["veth17", "veth19", peer.as_str()].iter().all(|dev| mtu_of(&lab, &srv, dev) == 1400))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));

    // A clean stop gives every slave its own MTU back.
    assert!(agent.stop().success());
    for dev in ["veth17", "veth19", "veth21"] {
        assert_eq!(mtu_of(&lab, &srv, dev), 1500, "{dev} has its own MTU after the stop");
    }
}
