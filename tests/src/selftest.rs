//! The lab's own tests: it builds what it says, its helpers observe what
//! they claim, and it leaves nothing behind. They need root and build real
//! namespaces (run them one at a time, as `cargo xtask test` does).

use std::{panic, time::Duration};

use crate::{Lab, LabConfig, SERVER_IP4, netns, proc};

const MS10: Duration = Duration::from_millis(10);

fn lab_namespaces(lab: &Lab) -> Vec<String> {
    let mut names = vec![lab.srv().to_owned(), lab.sw().to_owned()];
    names.extend(lab.clients().iter().map(|c| c.ns.clone()));
    names
}

fn ns_inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}")).ino()
}

#[test]
fn builds_the_seed_topology_and_removes_it_on_drop() {
    let lab = Lab::up(LabConfig::unique().clients(3).slaves(3)).expect("lab up");
    let names = lab_namespaces(&lab);
    assert!(names.iter().all(|n| netns::exists(n)), "namespaces {names:?}");

    let slaves: Vec<_> = lab.slaves().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(slaves, ["veth17", "veth19", "veth21"]);
    assert_eq!(lab.agent_args().join(" "), "--iface veth17 --iface veth19 --iface veth21");
    for slave in lab.slaves() {
        let link = lab.link(lab.srv(), &slave.name).expect("slave link");
        assert_eq!(link.mac, slave.mac, "{} MAC", slave.name);
        assert!(link.admin_up() && link.lower_up(), "{} is up: {link:?}", slave.name);
        let port = lab.link(lab.sw(), &slave.port).expect("switch port");
        assert_eq!(port.master.as_deref(), Some("br0"), "{} on br0", slave.port);
    }
    assert_eq!(lab.slave(0).mac, "02:a1:b0:00:00:17");
    assert_eq!(lab.client(1).mac, "02:a1:c0:00:00:01");
    assert_eq!(lab.client(3).ip4, "198.18.0.13");
    assert_eq!(lab.client(3).ip6, "2001:2::13");
    let c1 = lab.client(1);
    let addrs = lab.ip(&c1.ns, &["-br", "addr", "show", "dev", "eth0"]).expect("addr");
    assert!(
        addrs.contains("198.18.0.11/24") && addrs.contains("2001:2::11/64"),
        "c1 addresses: {addrs}"
    );

    drop(lab);
    let left: Vec<_> = names.iter().filter(|n| netns::exists(n)).collect();
    assert!(left.is_empty(), "namespaces left after drop: {left:?}");
}

#[test]
fn clients_reach_each_other_and_helpers_see_it() {
    let lab = Lab::up(LabConfig::unique()).expect("lab up");
    let (c1, c2) = (lab.client(1), lab.client(2));

    let before = lab.port_stats(&c2.port).expect("port c2");
    let v4 = lab.ping(&c1.ns, &c2.ip4, 20, MS10).expect("ping v4");
    assert_eq!((v4.transmitted, v4.received), (20, 20), "{v4}");
    let v6 = lab.ping(&c1.ns, &c2.ip6, 5, MS10).expect("ping v6");
    assert_eq!(v6.lost(), 0, "{v6}");
    let seen = lab.port_stats(&c2.port).expect("port c2") - before;
    // Port c2 sends towards client 2 what client 1 sent (tx), and back (rx).
    assert!(seen.tx_packets >= 25 && seen.rx_packets >= 25, "{seen}");

    assert_eq!(lab.neigh_mac(&c1.ns, &c2.ip4).expect("neigh").as_deref(), Some(c2.mac.as_str()));
    lab.flush_neigh(&c1.ns).expect("flush");
    assert_eq!(lab.neigh_mac(&c1.ns, &c2.ip4).expect("neigh"), None);
    assert_eq!(lab.neigh_mac(&c1.ns, SERVER_IP4).expect("neigh"), None);

    let lost = lab.ping(&c1.ns, "198.18.0.250", 2, MS10).expect("ping nobody");
    assert_eq!((lost.transmitted, lost.received), (2, 0), "{lost}");
}

#[test]
fn slave_traffic_is_counted_on_the_switch_port() {
    let lab = Lab::up(LabConfig::unique()).expect("lab up");
    let srv = lab.srv();
    // Without an agent: an address straight on veth19, veth17 down, so the
    // path is known.
    lab.set_link(srv, "veth17", false).expect("veth17 down");
    assert!(!lab.link(srv, "veth17").expect("veth17").admin_up());
    lab.ip(srv, &["addr", "add", "198.18.0.99/24", "dev", "veth19"]).expect("address");
    let before = lab.traffic_snapshot().expect("snapshot");
    let ping = lab.ping(&lab.client(1).ns, "198.18.0.99", 30, MS10).expect("ping");
    assert_eq!(ping.lost(), 0, "{ping}");
    let after = lab.traffic_snapshot().expect("snapshot");
    let veth17 = after[0] - before[0];
    let veth19 = after[1] - before[1];
    assert!(veth19.rx_packets >= 30 && veth19.tx_packets >= 30, "veth19: {veth19}");
    assert_eq!(veth17.tx_packets, 0, "veth17 is down: {veth17}");
    assert_eq!(
        lab.neigh_mac(&lab.client(1).ns, "198.18.0.99").expect("neigh").as_deref(),
        Some(lab.slave(1).mac.as_str())
    );
}

#[test]
fn master_helpers_wait_for_it_and_address_it() {
    let lab = Lab::up(LabConfig::unique()).expect("lab up");
    let srv = lab.srv();
    assert!(!lab.link_exists(srv, "alb0").expect("exists"));
    assert!(lab.wait_for_master(Duration::from_millis(50)).is_err());
    // Stand in for the agent: the master is a veth pair.
    let mut maker = lab
        .spawn(
            srv,
            &["sh", "-c", "sleep 0.2; ip link add alb0 type veth peer name alb0p; ip link set alb0 up; sleep 60"],
        )
        .expect("spawn");
    lab.wait_for_master(Duration::from_secs(10)).expect("alb0 appears");
    lab.add_server_addrs().expect("addresses");
    lab.add_server_addrs().expect("addresses again (idempotent)");
    let addrs = lab.ip(srv, &["-br", "addr", "show", "dev", "alb0"]).expect("addr");
    assert!(addrs.contains("198.18.0.1/24") && addrs.contains("2001:2::1/64"), "{addrs}");
    let status = maker.stop().expect("stop");
    assert!(!status.success(), "sh was killed by SIGTERM: {status}");
    // The shell's child went with it: killed with its group, it is gone
    // once init has reaped it, an instant later (seen in CI under load).
    crate::wait_until(Duration::from_secs(2), "the shell's child to be gone", || {
        Ok(netns::pids(srv)?.is_empty())
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", netns::pids(srv)));
}

#[test]
fn spawned_processes_run_in_the_namespace_and_are_stopped() {
    let lab = Lab::up(LabConfig::unique()).expect("lab up");
    let c1 = lab.client(1).ns.clone();
    let mut proc = lab.spawn(&c1, &["sh", "-c", "echo started; exec sleep 600"]).expect("spawn");
    let pid = proc.pid();
    crate::wait_until(Duration::from_secs(5), "the log line", || {
        Ok(proc.log().contains("started"))
    })
    .expect("log");
    assert_eq!(
        ns_inode(&format!("/proc/{pid}/ns/net")),
        ns_inode(&netns::path(&c1).display().to_string()),
        "the process runs in {c1}"
    );
    assert!(proc.exited().expect("exited").is_none());
    drop(proc);
    assert!(!proc::alive(pid), "stopped on drop");

    // One the test loses track of is stopped with the lab.
    let leaked = lab.spawn(&c1, &["sleep", "600"]).expect("spawn");
    let leaked_pid = leaked.pid();
    std::mem::forget(leaked);
    assert!(proc::alive(leaked_pid));
    drop(lab);
    assert!(!proc::alive(leaked_pid), "stopped with the lab");
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    let config = LabConfig::unique();
    let prefix = config.prefix.clone();
    let result = panic::catch_unwind(|| {
        let lab = Lab::up(config).expect("lab up");
        let _sleeper = lab.spawn(lab.srv(), &["sleep", "600"]).expect("spawn");
        panic!("on purpose");
    });
    assert!(result.is_err());
    let left: Vec<_> = netns::list()
        .expect("list")
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // The logs are kept after a panic, for reading; not these.
    crate::tidy::remove(&std::env::temp_dir().join("alb-lab").join(&prefix));
}

#[test]
fn a_kept_lab_blocks_its_prefix_until_down() {
    let config = LabConfig::unique();
    let prefix = config.prefix.clone();
    let lab = Lab::up(config.clone()).expect("lab up");
    let srv = lab.srv().to_owned();
    lab.keep();
    assert!(netns::exists(&srv), "kept");
    assert!(Lab::list().expect("list").contains(&prefix));
    let err = Lab::up(config).expect_err("prefix in use");
    assert!(err.to_string().contains("lab down --prefix"), "{err:#}");
    assert!(netns::exists(&srv), "a refused lab leaves the existing one alone");

    // A process left in a namespace is stopped by down.
    let mut sleeper = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns::path(&srv).display()))
        .args(["sleep", "600"])
        .spawn()
        .expect("spawn");
    let pid = sleeper.id();
    crate::wait_until(Duration::from_secs(5), "the sleeper in srv", || {
        Ok(netns::pids(&srv)?.contains(&i32::try_from(pid).unwrap_or(-1)))
    })
    .expect("sleeper");
    let mut removed = Lab::down(&prefix).expect("down");
    removed.sort();
    assert_eq!(
        removed,
        [
            format!("{prefix}-c1"),
            format!("{prefix}-c2"),
            format!("{prefix}-srv"),
            format!("{prefix}-sw")
        ]
    );
    assert!(!netns::exists(&srv));
    assert!(!proc::alive(pid), "down stopped the process left in srv");
    sleeper.wait().expect("reap the sleeper");
    assert!(Lab::down(&prefix).expect("down again").is_empty());
}
