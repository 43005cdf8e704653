//! The system's own network tools configure the master (issue 24, items 1
//! and 2), under a real systemd in the systemd guest: alb@alb0.service
//! makes alb0, then systemd-networkd (a static address and route; DHCP
//! from a server on the switch side), ifupdown (a stanza in
//! /etc/network/interfaces; a Proxmox bridge vmbr0 over alb0),
//! NetworkManager (a keyfile) or netplan (its YAML, rendered by networkd)
//! gives it the host's address. Each test boots
//! the configuration (guest.rs: everything stopped and gone, the slaves
//! made again, alb@alb0 and the tool started in one transaction, as a boot
//! does), then restarts the tool itself, then boots again: each time the
//! tool starts only once alb@alb0 is ready, the host has its address and
//! route, the two clients are spread over the two slaves, and the slaves
//! (and the master's peer) were left alone: never down, no address, no
//! DHCP, "unmanaged" in the tool's own words.
//!
//! Guest only: every test is ignored on a development host (no systemd as
//! PID 1; the tests make the slaves in the root namespace) and checks at
//! its start that it runs where it should.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;
#[path = "network_tools/guest.rs"]
mod guest;
#[path = "network_tools/tools.rs"]
mod tools;

use std::time::Duration;

use alb_tests::{Lab, SERVER_IP4, cmd};
use guest::{Guest, addresses, run, systemctl};
use tools::Tool;

/// Boot, `systemctl restart` of the tool, boot again; the checks of the
/// module's comment after each.
fn exercise(tool: Tool) {
    let mut guest = Guest::configure(tool);
    for round in ["first boot", "restart of the tool", "second boot"] {
        eprintln!("{}: {round}", guest.tool().name);
        if round == "restart of the tool" {
            let marks = guest.slave_marks();
            systemctl(&["restart", guest.tool().units[0]], Duration::from_secs(120));
            guest.wait_configured();
            guest.assert_slaves_left_alone(&marks);
        } else {
            guest.boot();
        }
        guest.assert_clients_spread();
    }
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and systemd-networkd; run by cargo xtask vm-test --systemd"]
fn networkd_gives_alb0_a_static_address_and_route_and_leaves_the_slaves_alone() {
    exercise(tools::networkd_static());
}

#[test]
#[ignore = "guest: needs systemd as PID 1, systemd-networkd and dnsmasq; run by cargo xtask vm-test --systemd"]
fn networkd_gets_alb0_a_lease_from_the_switch_side_and_leaves_the_slaves_alone() {
    exercise(tools::networkd_dhcp());
}

#[test]
#[ignore = "guest: needs systemd as PID 1, netplan and systemd-networkd; run by cargo xtask vm-test --systemd"]
fn netplan_writes_networkd_a_file_for_alb0_alone() {
    exercise(tools::netplan());
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and ifupdown; run by cargo xtask vm-test --systemd"]
fn ifupdown_brings_up_an_alb0_stanza_and_leaves_the_slaves_alone() {
    exercise(tools::ifupdown_static());
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and NetworkManager; run by cargo xtask vm-test --systemd"]
fn network_manager_activates_an_alb0_keyfile_and_leaves_the_unmanaged_slaves_alone() {
    exercise(tools::network_manager());
}

/// The VM: a namespace with a veth on vmbr0, as a Proxmox guest's tap.
const VM_NS: &str = "nt-vm1";
const VM_MAC: &str = "02:a1:d0:00:00:01";
const VM_IP: &str = "198.18.0.201";
const VM_TAP: &str = "tap101i0";

/// Removes the VM's namespace (its veth goes with it) on drop.
struct VmGuard;

impl Drop for VmGuard {
    fn drop(&mut self) {
        let _gone = cmd::ip(&["netns", "delete", VM_NS]);
    }
}

/// Starts the VM behind vmbr0, as Proxmox does once the network is up.
fn start_vm() -> VmGuard {
    run("ip", &["netns", "add", VM_NS]);
    let guard = VmGuard;
    run(
        "ip",
        &[
            "link", "add", VM_TAP, "type", "veth", "peer", "name", "eth0", "address", VM_MAC,
            "netns", VM_NS,
        ],
    );
    run("ip", &["link", "set", VM_TAP, "master", "vmbr0", "up"]);
    for args in [
        vec!["link", "set", "lo", "up"],
        vec!["addr", "add", "198.18.0.201/24", "dev", "eth0"],
        vec!["link", "set", "eth0", "up"],
    ] {
        cmd::run(&mut alb_tests::netns::command(VM_NS, &[&["ip"][..], &args].concat()))
            .unwrap_or_else(|e| panic!("VM: {e:#}"));
    }
    guard
}

/// The bridge holds the host's address with alb0's MAC, alb0 none; every
/// client reaches the host and the VM, and the switch has the VM's MAC on
/// one port.
fn assert_bridge_serves(lab: &Lab) {
    let alb0_mac = run("cat", &["/sys/class/net/alb0/address"]);
    let bridge_mac = run("cat", &["/sys/class/net/vmbr0/address"]);
    assert_eq!(bridge_mac.trim(), alb0_mac.trim(), "vmbr0's MAC is alb0's");
    let on_alb0 = addresses("alb0");
    assert!(on_alb0.iter().all(|a| a.starts_with("fe80:")), "alb0 has {on_alb0:?}");
    let master = run("ip", &["-o", "link", "show", "alb0"]);
    assert!(master.contains("master vmbr0"), "alb0 is no port of vmbr0: {master}");
    for client in lab.clients() {
        for target in [SERVER_IP4, VM_IP] {
            let ping = lab
                .ping(&client.ns, target, 3, Duration::from_millis(50))
                .unwrap_or_else(|e| panic!("ping {target} from {}: {e:#}", client.ns));
            assert_eq!(ping.lost(), 0, "{} -> {target}: {ping}", client.ns);
        }
    }
    let ports = lab.switch_ports_of(VM_MAC).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(ports.len(), 1, "the switch has the VM's MAC {VM_MAC} on ports {ports:?}");
}

#[test]
#[ignore = "guest: needs systemd as PID 1, ifupdown and bridge-utils; run by cargo xtask vm-test --systemd"]
fn a_proxmox_bridge_over_alb0_serves_the_host_and_a_vm_from_one_switch_port() {
    let mut guest = Guest::configure(tools::ifupdown_bridge());
    for round in ["first boot", "second boot"] {
        eprintln!("vmbr0: {round}");
        guest.boot();
        let vm = start_vm();
        assert_bridge_serves(guest.lab());
        guest.assert_clients_spread();
        drop(vm);
    }
}
