//! Bonding's options and status (issue 12, item 5): `alb status` shows the
//! fields of /proc/net/bonding (primary, policy, delays, per slave link
//! failure count, speed, duplex, permanent address) and `--json` has a
//! version; `--primary-reselect failure` keeps a backup active when the
//! primary returns; `alb set active` moves the active role at run time
//! (refused for a slave that is down); `--lp-interval 0` is refused; with
//! every slave down the first one back is used at once, not after its
//! updelay.
//!
//! Needs root and the `alb` binary; run one test at a time
//! (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    thread,
    time::{Duration, Instant},
};

use alb_tests::{Lab, Status, agent::STATUS_VERSION};
use common::{
    Agent, assert_all_clients_work, leftovers, mac_of,
    pings::{self, start_pings},
    port_of, resolve_all, run_alb, set_port,
};

/// Between two echo requests of a measuring ping.
const INTERVAL: Duration = Duration::from_millis(10);

/// `alb args...` in the server namespace: exit code and merged output.
fn alb(lab: &Lab, args: &[&str]) -> (Option<i32>, String) {
    let out = run_alb(lab.srv(), args);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn usable(status: &Status, name: &str) -> bool {
    status.slave(name).is_some_and(|s| s.usable)
}

#[test]
fn status_shows_bondings_fields() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    let mut agent = Agent::start_on(
        &lab,
        &["veth17", "veth19"],
        &["--primary", "veth19", "--updelay", "100", "--downdelay", "50"],
    );
    let status = agent.status();
    assert_eq!(status.version, STATUS_VERSION, "{status}");
    assert!(status.agent, "the agent answers: {status}");
    assert_eq!(status.primary_slave.as_deref(), Some("veth19"));
    assert_eq!(status.primary_reselect.as_deref(), Some("always"));
    assert_eq!((status.updelay_ms, status.downdelay_ms), (Some(100), Some(50)));
    for slave in &status.slaves {
        assert_eq!(slave.speed_mbps, Some(10_000), "veth reports 10000 Mb/s: {slave:?}");
        assert_eq!(slave.duplex.as_deref(), Some("full"), "{slave:?}");
        assert_eq!(slave.link_failure_count, Some(0), "{slave:?}");
        assert_eq!(slave.mii_status.as_deref(), Some("up"), "{slave:?}");
        assert_eq!(slave.perm_mac, mac_of(&lab, &slave.name), "veths have no permanent address");
    }

    // A failure of veth19 is counted once its downdelay has passed.
    let port = port_of(&lab, "veth19");
    set_port(&lab, &port, false);
    agent.wait_status(Duration::from_secs(3), "veth19 down", |s| !usable(s, "veth19"));
    set_port(&lab, &port, true);
    let back = agent.wait_status(Duration::from_secs(3), "veth19 back", |s| usable(s, "veth19"));
    let failures = |name: &str| back.slave(name).and_then(|s| s.link_failure_count);
    assert_eq!((failures("veth17"), failures("veth19")), (Some(0), Some(1)), "{back}");

    let (code, text) = alb(&lab, &["status", "--master", &master]);
    assert_eq!(code, Some(0), "{text}");
    println!("options: alb status ->\n{text}");
    for line in [
        "Primary Slave: veth19 (primary_reselect always)",
        "Currently Active Slave: veth19",
        "Up Delay (ms): 100",
        "Down Delay (ms): 50",
        "Speed: 10000 Mbps",
        "Duplex: full",
        "Link Failure Count: 1",
        "Link Failure Count: 0",
        &format!("Permanent HW addr: {}", mac_of(&lab, "veth17")),
    ] {
        assert!(text.lines().any(|l| l == line), "alb status has {line:?}:\n{text}");
    }

    // Without an agent, what only it knows is null, the rest still shows.
    agent.kill9();
    let orphan = alb_tests::agent::run_alb(
        lab.srv(),
        &common::alb_bin(),
        &["status", "--master", &master, "--json"],
    )
    .expect("alb status");
    let orphan = Status::parse(&orphan.stdout).expect("status JSON without an agent");
    assert!(!orphan.agent, "{orphan}");
    assert_eq!((orphan.primary_slave, orphan.updelay_ms), (None, None));
    assert!(orphan.slaves.iter().all(|s| s.link_failure_count.is_none()));
    assert_eq!(orphan.slaves.len(), 2, "the data path's slaves still show");
    let down = agent.down().expect("alb down");
    assert!(down.status.success(), "alb down after kill -9: {down:?}");
}

#[test]
fn primary_reselect_failure_keeps_the_backup_active() {
    let lab = common::lab(2, 2);
    let agent = Agent::start_on(
        &lab,
        &["veth17", "veth19"],
        &["--primary", "veth19", "--primary-reselect", "failure"],
    );
    assert_eq!(agent.status().active_slave.as_deref(), Some("veth19"), "the primary at start");
    let port = port_of(&lab, "veth19");
    set_port(&lab, &port, false);
    agent.wait_status(Duration::from_secs(3), "veth17 active", |s| {
        s.active_slave.as_deref() == Some("veth17")
    });
    let from = agent.log().len();
    set_port(&lab, &port, true);
    agent.wait_status(Duration::from_secs(3), "veth19 usable", |s| usable(s, "veth19"));
    // The return is committed in one step, the active slave chosen in it
    // (docs/reliability.md, "Failback order"): its log line names it.
    agent.wait_log(from, "veth19 up: ", Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e:#}"));
    let line = agent.log()[from..]
        .lines()
        .find(|l| l.contains("veth19 up: "))
        .unwrap_or_default()
        .to_owned();
    assert!(line.contains("; active veth17"), "failure: no switch back at the return: {line}");
    let status = agent.status();
    assert_eq!(status.active_slave.as_deref(), Some("veth17"), "failure: no switch back");
    assert_eq!(status.primary_reselect.as_deref(), Some("failure"));
    resolve_all(&lab);
    assert_all_clients_work(&lab, 10);
}

#[test]
fn set_active_moves_the_active_role_without_loss() {
    let lab = common::lab(2, 3);
    lab.sysctl(lab.srv(), "net.ipv4.conf.veth21.arp_ignore", "1").expect("quiet veth21");
    let master = lab.master().to_owned();
    let agent = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    assert_eq!(agent.status().active_slave.as_deref(), Some("veth17"));

    let pings = start_pings(&lab, &[1, 2], Duration::from_secs(2), INTERVAL);
    thread::sleep(Duration::from_millis(500));
    let (code, text) = alb(&lab, &["set", "active", "veth19", "--master", &master]);
    assert_eq!(code, Some(0), "alb set active veth19: {text}\n{}", agent.log());
    assert!(text.contains("veth19 is now the active slave"), "{text}");
    let runs = pings.finish();
    pings::report("options", "alb set active", &runs);
    for run in &runs {
        pings::assert_none_lost("alb set active", run, &agent.log());
    }
    assert_eq!(agent.status().active_slave.as_deref(), Some("veth19"));

    let (code, text) = alb(&lab, &["set", "active", "veth21", "--master", &master]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("veth21 is not a slave"), "{text}");
    set_port(&lab, &port_of(&lab, "veth17"), false);
    agent.wait_status(Duration::from_secs(3), "veth17 down", |s| !usable(s, "veth17"));
    let (code, text) = alb(&lab, &["set", "active", "veth17", "--master", &master]);
    println!("options: alb set active of a slave that is down -> {text}");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("veth17") && text.contains("link is down"), "{text}");
    assert_eq!(agent.status().active_slave.as_deref(), Some("veth19"), "unchanged");
}

#[test]
fn lp_interval_0_is_refused() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    let (code, text) = alb(&lab, &["--master", &master, "--iface", "veth17", "--lp-interval", "0"]);
    println!("options: --lp-interval 0 -> {text}");
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("alb: --lp-interval: lp_interval 0 is out of range"), "{text}");
    assert!(text.contains("allowed values 1 - 2147483647"), "{text}");
    let left = leftovers(&lab, &master);
    common::remove_lock_file(&master);
    assert!(left.is_empty(), "{left:?}");
}

/// Bonding skips updelay when no slave is usable: the first carrier back
/// is used at once; a slave still in its updelay when the last usable one
/// fails is used at once too ("N ms earlier"). With a slave usable, the
/// updelay is waited.
#[test]
fn updelay_is_skipped_when_every_slave_is_down() {
    const UPDELAY: Duration = Duration::from_secs(8);
    let lab = common::lab(1, 2);
    let agent = Agent::start_on(&lab, &["veth17", "veth19"], &["--updelay", "8000"]);
    let (p17, p19) = (port_of(&lab, "veth17"), port_of(&lab, "veth19"));
    set_port(&lab, &p17, false);
    set_port(&lab, &p19, false);
    agent.wait_status(Duration::from_secs(3), "no slave usable", |s| {
        s.slaves.iter().all(|slave| !slave.usable)
    });

    let from = agent.log().len();
    let t0 = Instant::now();
    set_port(&lab, &p17, true);
    let status = agent.wait_status(UPDELAY / 2, "veth17 used at once", |s| usable(s, "veth17"));
    println!(
        "options: veth17 used {:.0} ms after its carrier returned",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert!(t0.elapsed() < UPDELAY, "before its updelay ended");
    assert_eq!(status.active_slave.as_deref(), Some("veth17"));
    agent
        .wait_log(from, "making veth17 the new active one", Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{e:#}"));

    // veth19 returns while veth17 is usable: it waits its updelay.
    set_port(&lab, &p19, true);
    agent.wait_status(Duration::from_secs(2), "veth19 going back", |s| {
        s.slave("veth19").and_then(|s| s.mii_status.as_deref()) == Some("going back")
    });
    assert!(!usable(&agent.status(), "veth19"), "veth19 waits its updelay");

    // veth17 fails meanwhile: veth19 is used at once.
    let from = agent.log().len();
    let t1 = Instant::now();
    set_port(&lab, &p17, false);
    let status = agent.wait_status(UPDELAY / 2, "veth19 hurried", |s| usable(s, "veth19"));
    assert!(t1.elapsed() < UPDELAY, "before its updelay ended");
    assert_eq!(status.active_slave.as_deref(), Some("veth19"));
    agent
        .wait_log(from, "making veth19 the new active one", Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let line = agent.log()[from..]
        .lines()
        .find(|l| l.contains("new active one"))
        .unwrap_or_default()
        .to_owned();
    println!("options: {line}");
    assert!(line.contains("ms earlier"), "{line}");
}
