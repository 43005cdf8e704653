//! The running service: each client reaches the server through its own
//! slave; the agent's lines reach the journal at their priority; a stop
//! leaves the data path forwarding and `alb down` removes it.

use std::{path::Path, time::Duration};

use alb_tests::{Lab, SERVER_IP4, wait_until};

use super::fixture::{
    ALB, INFO, MASTER, Service, UNIT, WARNING, prop, require_guest, run, run_ok, text,
};

const INTERVAL: Duration = Duration::from_millis(20);

/// Replies client `n` had to `count` pings every 20 ms.
fn replies(lab: &Lab, n: usize, count: u32) -> u32 {
    let stats = lab
        .ping(&lab.client(n).ns, SERVER_IP4, count, INTERVAL)
        .unwrap_or_else(|e| panic!("ping from c{n}: {e:#}"));
    stats.received
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn each_client_learns_its_own_slaves_mac_and_is_served_through_it() {
    require_guest();
    let service = Service::start();
    let lab = &service.lab;
    for n in [1, 2] {
        lab.ping(&lab.client(n).ns, SERVER_IP4, 2, Duration::from_millis(300)).expect("ping");
    }
    for (n, slave) in [(1, 0), (2, 1)] {
        let learned = lab.neigh_mac(&lab.client(n).ns, SERVER_IP4).expect("ip neigh");
        assert_eq!(learned.as_deref(), Some(lab.slave(slave).mac.as_str()), "c{n}'s server MAC");
    }
    for (n, own, other) in [(1, 0, 1), (2, 1, 0)] {
        let before =
            (lab.slave_traffic(own).expect("own"), lab.slave_traffic(other).expect("other"));
        let got = replies(lab, n, 40);
        let own_d = lab.slave_traffic(own).expect("own") - before.0;
        let other_d = lab.slave_traffic(other).expect("other") - before.1;
        println!(
            "serve: c{n} replies={got}/40 own slave rx={} tx={} other slave rx={} tx={}",
            own_d.rx_packets, own_d.tx_packets, other_d.rx_packets, other_d.tx_packets
        );
        assert_eq!(got, 40, "c{n}'s replies");
        assert!(
            own_d.rx_packets >= 40
                && own_d.tx_packets >= 40
                && other_d.rx_packets < 10
                && other_d.tx_packets < 10,
            "c{n} both ways through its own slave: own {own_d:?}, other {other_d:?}"
        );
    }
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn the_agents_lines_reach_the_journal_at_their_priority() {
    require_guest();
    let service = Service::start();
    let journal = &service.journal;
    let del = run(&[ALB, "slave", "del", "nosuch"]);
    println!("alb slave del nosuch: {}", text(&del).trim());
    let waited = wait_until(Duration::from_secs(5), "the warning about nosuch", || {
        Ok(journal.unit_at(WARNING).contains("nosuch"))
    });
    if let Err(e) = waited {
        panic!("{e:#}: -p warning:\n{}", journal.unit_at(WARNING));
    }
    let info = journal.unit_at(INFO);
    assert!(info.lines().any(|l| l.starts_with("ready:")), "ready at info:\n{info}");
    let warning = journal.unit_at(WARNING);
    assert!(!warning.lines().any(|l| l.starts_with("ready:")), "ready above info:\n{warning}");
    let all = journal.unit();
    assert!(
        !all.lines().any(|l| matches!(l.as_bytes(), [b'<', b'0'..=b'7', b'>', ..])),
        "raw <N> prefixes in the journal:\n{all}"
    );
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn a_stop_leaves_the_data_path_forwarding_and_alb_down_removes_it() {
    require_guest();
    let service = Service::start();
    let lab = &service.lab;
    for n in [1, 2] {
        assert_eq!(replies(lab, n, 2), 2, "c{n} served before the stop");
    }
    run_ok(&["systemctl", "stop", UNIT]);
    assert!(
        prop("ActiveState") == "inactive" && prop("Result") == "success",
        "{UNIT} after systemctl stop: {} {}",
        prop("ActiveState"),
        prop("Result")
    );
    assert!(lab.link_exists(lab.srv(), MASTER).expect("ip link"), "the master left in place");
    assert!(Path::new("/sys/fs/bpf/alb/alb0").is_dir(), "the pins left in place");
    for n in [1, 2] {
        let got = replies(lab, n, 20);
        println!("stop: c{n} replies={got}/20");
        assert_eq!(got, 20, "c{n} still served with no agent");
    }
    let down = run(&[ALB, "down", "--master", MASTER]);
    println!("alb down: {} {}", down.status, text(&down).trim());
    assert!(down.status.success(), "alb down: {}", text(&down));
    assert!(!lab.link_exists(lab.srv(), MASTER).expect("ip link"), "alb down removes the master");
    assert!(!Path::new("/sys/fs/bpf/alb/alb0").exists(), "alb down removes the pins");
    let net = run_ok(&["bpftool", "net", "show"]);
    assert!(!net.contains("alb_"), "alb down detaches the programs:\n{net}");
}
