//! `cargo xtask demo --vms N`: a bridge on the master with the master's MAC
//! and the server's addresses (as hypervisor hosts set it), N VMs on it;
//! every client pings every VM and every VM every client, and the switch's
//! forwarding table shows each VM MAC on one port, the VMs spread over the
//! slaves.

use std::{collections::BTreeSet, time::Duration};

use alb_tests::{Lab, VmKind};
use anyhow::Result;

/// Adds the VMs and drives traffic both ways; returns the failed checks.
pub(crate) fn run(lab: &mut Lab, count: usize, ipv6: bool) -> Result<usize> {
    println!(
        "\n== {count} VMs on a bridge vmbr0 over {} (with its MAC and the server's addresses)",
        lab.master()
    );
    let vms = lab.add_vms(VmKind::Bridged, count)?;
    let mut failures = 0;
    let mut check = |ok: bool, what: String| {
        println!("   [{}] {what}", if ok { " ok " } else { "FAIL" });
        if !ok {
            failures += 1;
        }
    };
    let interval = Duration::from_millis(20);
    for vm in &vms {
        println!("   {} in {}: {} {} MAC {}", vm.dev, vm.ns, vm.ip4, vm.ip6, vm.mac);
    }
    for vm in &vms {
        for client in lab.clients() {
            let mut pairs = vec![(&client.ns, &vm.ip4), (&vm.ns, &client.ip4)];
            if ipv6 {
                pairs.extend([(&client.ns, &vm.ip6), (&vm.ns, &client.ip6)]);
            }
            for (from, to) in pairs {
                let ping = lab.ping(from, to, 3, interval)?;
                check(ping.lost() == 0, format!("{from} -> {to}: {ping}"));
            }
        }
    }
    let mut ports = BTreeSet::new();
    for vm in &vms {
        let seen = lab.switch_ports_of(&vm.mac)?;
        check(seen.len() == 1, format!("VM {} on switch port(s) {seen:?}", vm.mac));
        ports.extend(seen);
    }
    let spread = ports.len() == count.min(lab.slaves().len());
    check(spread, format!("{count} VMs spread over switch ports {ports:?}"));
    Ok(failures)
}
