//! Bridged VMs and macvlans on the master (issue 13, items 3 and 4), beyond
//! the kernel's mode 6 (which vendors forbid under bridges): every frame
//! from a VM MAC leaves by the one slave its MAC is pinned to, unchanged,
//! so the switch sees each VM MAC on one port; VMs spread over the slaves;
//! unicast for a VM is delivered whichever slave it arrives on; when a
//! VM's slave fails its MAC moves with its slot and the new slave teaches
//! the switch at once. The kernel's own selftest matrix
//! (bond_macvlan_ipvlan.sh: clients, host and each macvlan, IPv4 and IPv6,
//! both ways) is run for bridged VMs and for macvlans.
//!
//! Needs root, the `alb` binary and ping; run one test at a time
//! (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    collections::BTreeMap,
    thread,
    time::{Duration, Instant},
};

use alb_tests::{Lab, SERVER_IP4, SERVER_IP6, Status, Vm, VmKind};
use common::{Agent, pings, set_port};

/// Between two echo requests of a measuring ping (the brief: 10 ms).
const INTERVAL: Duration = Duration::from_millis(10);
/// The failover bound of failover.rs: a moved client's outage.
const FAIL_THRESHOLD: Duration = Duration::from_secs(1);

/// A lab, its agent and its VMs. Fields drop in order: the agent stops
/// before the lab goes.
struct Rig {
    agent: Agent,
    lab: Lab,
    vms: Vec<Vm>,
}

fn rig(kind: VmKind, clients: usize, vms: usize) -> Rig {
    let mut lab = common::lab(clients, 2);
    let agent = Agent::start(&lab);
    lab.add_server_addrs().unwrap_or_else(|e| panic!("server addresses: {e:#}"));
    let vms = lab.add_vms(kind, vms).unwrap_or_else(|e| panic!("VMs: {e:#}"));
    Rig { agent, lab, vms }
}

/// Pings `target` from `ns` 3 times; every reply must come.
fn reaches(lab: &Lab, ns: &str, target: &str) {
    let ping = lab
        .ping(ns, target, 3, Duration::from_millis(20))
        .unwrap_or_else(|e| panic!("ping {target} from {ns}: {e:#}"));
    assert_eq!(ping.lost(), 0, "{ns} -> {target}: {ping}");
}

/// The kernel's selftest matrix, both families: every client reaches the
/// host and every VM, every VM reaches every client, and the VMs reach
/// each other, both ways.
fn matrix(rig: &Rig) {
    let lab = &rig.lab;
    for client in lab.clients() {
        for target in [SERVER_IP4, SERVER_IP6] {
            reaches(lab, &client.ns, target);
        }
        for vm in &rig.vms {
            reaches(lab, &client.ns, &vm.ip4);
            reaches(lab, &client.ns, &vm.ip6);
        }
    }
    for vm in &rig.vms {
        for client in lab.clients() {
            reaches(lab, &vm.ns, &client.ip4);
            reaches(lab, &vm.ns, &client.ip6);
        }
        for other in rig.vms.iter().filter(|o| o.number != vm.number) {
            reaches(lab, &vm.ns, &other.ip4);
            reaches(lab, &vm.ns, &other.ip6);
        }
    }
}

/// The VM table as `alb status --json` shows it: MAC -> slave name.
fn vm_slaves(status: &Status) -> BTreeMap<String, String> {
    status.raw["vms"]
        .as_array()
        .unwrap_or_else(|| panic!("no vms in status: {}", status.raw))
        .iter()
        .filter_map(|vm| Some((vm["mac"].as_str()?.to_owned(), vm["slave"].as_str()?.to_owned())))
        .collect()
}

/// Waits until the status lists every VM of the rig, and returns them.
fn wait_vms(rig: &Rig) -> BTreeMap<String, String> {
    let deadline = Instant::now() + alb_tests::scaled(Duration::from_secs(5));
    loop {
        let vms = vm_slaves(&rig.agent.status());
        if rig.vms.iter().all(|vm| vms.contains_key(&vm.mac)) {
            return vms;
        }
        assert!(Instant::now() < deadline, "VMs missing from status: {vms:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The switch port of a slave by name.
fn port_of(lab: &Lab, slave: &str) -> String {
    lab.slaves()
        .iter()
        .find(|s| s.name == slave)
        .unwrap_or_else(|| panic!("no slave {slave}"))
        .port
        .clone()
}

#[test]
fn bridged_vms_and_clients_reach_each_other_both_families() {
    let rig = rig(VmKind::Bridged, 2, 2);
    matrix(&rig);
    let vms = wait_vms(&rig);
    let slaves: std::collections::BTreeSet<&String> = vms.values().collect();
    assert_eq!(slaves.len(), 2, "2 VMs over 2 slaves, spread: {vms:?}");
    let out = common::run_alb(rig.lab.srv(), &["status", "--master", rig.agent.master()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("VM MACs: 2"), "alb status lists the VMs:\n{text}");
}

#[test]
fn macvlans_and_clients_reach_each_other_both_families() {
    let rig = rig(VmKind::Macvlan, 2, 2);
    matrix(&rig);
    let vms = wait_vms(&rig);
    let slaves: std::collections::BTreeSet<&String> = vms.values().collect();
    assert_eq!(slaves.len(), 2, "2 macvlans over 2 slaves, spread: {vms:?}");
}

/// During sustained traffic both ways, the switch's forwarding table has
/// each VM MAC on exactly one port, its slave's, every time it is read.
#[test]
fn each_vm_mac_sits_on_one_switch_port_under_traffic() {
    let rig = rig(VmKind::Bridged, 2, 3);
    matrix(&rig);
    let lab = &rig.lab;
    let runs: Vec<_> = rig
        .vms
        .iter()
        .map(|vm| {
            let to_vm =
                pings::spawn_pings_to(lab, &vm.ip4, &[1, 2], Duration::from_secs(3), INTERVAL);
            let from_vm = lab
                .spawn(&vm.ns, &["ping", "-n", "-q", "-i", "0.01", "-c", "300", &lab.client(1).ip6])
                .unwrap_or_else(|e| panic!("ping from {}: {e:#}", vm.ns));
            (to_vm, from_vm)
        })
        .collect();
    let vms = wait_vms(&rig);
    let mut reads = 0;
    let deadline = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < deadline {
        for vm in &rig.vms {
            let ports = lab.switch_ports_of(&vm.mac).unwrap_or_else(|e| panic!("fdb: {e:#}"));
            let expected = port_of(lab, &vms[&vm.mac]);
            assert_eq!(ports, [expected], "VM {} on the switch: {ports:?}", vm.mac);
        }
        reads += 1;
        thread::sleep(Duration::from_millis(20));
    }
    // A loaded machine reads the table more slowly; a handful is enough.
    assert!(reads >= 5, "only {reads} reads of the switch's table");
    for (to_vm, mut from_vm) in runs {
        for run in to_vm.finish() {
            assert!(run.lost() <= 2, "client -> VM lost {} of {}", run.lost(), run.transmitted);
        }
        let _done = from_vm.wait_timeout(Duration::from_secs(10));
    }
}

/// A VM whose slave fails keeps working within the failover bound: its
/// MAC moves with its slot and the switch learns it on the new port.
#[test]
fn a_vm_survives_its_slave_failing() {
    let rig = rig(VmKind::Bridged, 1, 2);
    matrix(&rig);
    let lab = &rig.lab;
    let vms = wait_vms(&rig);
    for vm in &rig.vms {
        let slave = vms[&vm.mac].clone();
        let port = port_of(lab, &slave);
        let run = pings::start_pings_to(lab, &vm.ip4, &[1], Duration::from_secs(3), INTERVAL);
        thread::sleep(Duration::from_millis(500));
        set_port(lab, &port, false);
        let runs = run.finish();
        for run in &runs {
            assert!(
                run.outage() < alb_tests::scaled(FAIL_THRESHOLD),
                "VM {} on {slave}: outage {:?} not below {FAIL_THRESHOLD:?}\n{}\nagent log:\n{}",
                vm.mac,
                run.outage(),
                run.tail(),
                rig.agent.log_tail(30)
            );
            eprintln!("VM {} on {slave} failed: outage {:?}", vm.mac, run.outage());
        }
        let moved = vm_slaves(&rig.agent.status());
        assert_ne!(moved[&vm.mac], slave, "VM {} still on its failed slave", vm.mac);
        let ports = lab.switch_ports_of(&vm.mac).unwrap_or_else(|e| panic!("fdb: {e:#}"));
        assert_eq!(ports, [port_of(lab, &moved[&vm.mac])], "switch follows VM {}", vm.mac);
        // The slave comes back and takes its slots, and the VM, back: the
        // switch follows again.
        set_port(lab, &port, true);
        let back = Instant::now() + alb_tests::scaled(Duration::from_secs(3));
        while vm_slaves(&rig.agent.status())[&vm.mac] != slave {
            assert!(Instant::now() < back, "VM {} not back on {slave}", vm.mac);
            thread::sleep(Duration::from_millis(50));
        }
        reaches(lab, &lab.client(1).ns, &vm.ip4);
        let ports = lab.switch_ports_of(&vm.mac).unwrap_or_else(|e| panic!("fdb: {e:#}"));
        assert_eq!(ports, [port], "switch follows VM {} back", vm.mac);
    }
}

/// A VM that sends nothing for the ageing time is forgotten, and pinned
/// again when it sends.
#[test]
fn a_silent_vm_ages_out() {
    let mut lab = common::lab(1, 2);
    let agent = Agent::start_with(&lab, &["--vm-ageing", "2"]);
    lab.add_server_addrs().unwrap_or_else(|e| panic!("server addresses: {e:#}"));
    let vms = lab.add_vms(VmKind::Bridged, 1).unwrap_or_else(|e| panic!("VMs: {e:#}"));
    reaches(&lab, &vms[0].ns, &lab.client(1).ip4);
    assert!(vm_slaves(&agent.status()).contains_key(&vms[0].mac));
    // IPv6 would have the VM send router solicitations and reports now and
    // then; it has none here but to be sure, wait past the ageing time.
    let deadline = Instant::now() + alb_tests::scaled(Duration::from_secs(8));
    while vm_slaves(&agent.status()).contains_key(&vms[0].mac) {
        assert!(Instant::now() < deadline, "VM not aged out:\n{}", agent.log_tail(20));
        thread::sleep(Duration::from_millis(200));
    }
    agent.wait_log(0, "aged out", Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e:#}"));
    reaches(&lab, &vms[0].ns, &lab.client(1).ip4);
    assert!(vm_slaves(&agent.status()).contains_key(&vms[0].mac), "pinned again");
    drop(agent);
}
