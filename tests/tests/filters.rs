//! The slaves' receive filters (issue 11, item 1), as bonding syncs them:
//! the active slave gets a unicast filter entry for the master's MAC when it
//! does not own it and for each failed slave's MAC while that slave is
//! down, and the master's multicast list; the entries move with the active
//! slave and go on a clean stop and with `alb down`.
//!
//! veth accepts every frame, so these tests read what the agent set (`bridge
//! fdb show dev IF self` for unicast, `ip maddr show dev IF`, where entries
//! added from user space are "static", for multicast) and `alb status`; the
//! vm-test guests with emulated NICs show what happens without them.
//! Needs root, bridge and ip; run one test at a time.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{collections::BTreeSet, time::Duration};

use alb_tests::{Lab, SERVER_IP4, wait_until};
use common::{Agent, leftovers, mac_of, port_of, run_alb, set_port};

const SLAVES: [&str; 3] = ["veth17", "veth19", "veth21"];

/// The unicast filter entries of `dev` (its fdb entries on the device
/// itself whose MAC is unicast).
fn unicast_filters(lab: &Lab, dev: &str) -> BTreeSet<String> {
    let out = lab
        .run(lab.srv(), &["bridge", "fdb", "show", "dev", dev, "self"])
        .unwrap_or_else(|e| panic!("bridge fdb show dev {dev}: {e:#}"));
    out.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|mac| u8::from_str_radix(&mac[..2], 16).is_ok_and(|b| b & 1 == 0))
        .map(str::to_owned)
        .collect()
}

/// The multicast link addresses added from user space to `dev` (`ip maddr`
/// marks them `static`).
fn static_multicast(lab: &Lab, dev: &str) -> BTreeSet<String> {
    let out = lab
        .ip(lab.srv(), &["maddr", "show", "dev", dev])
        .unwrap_or_else(|e| panic!("ip maddr show dev {dev}: {e:#}"));
    out.lines()
        .filter(|line| line.trim_start().starts_with("link") && line.contains("static"))
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(str::to_owned)
        .collect()
}

/// Every link-layer multicast address of the master.
fn master_multicast(lab: &Lab) -> BTreeSet<String> {
    let out = lab
        .ip(lab.srv(), &["maddr", "show", "dev", lab.master()])
        .unwrap_or_else(|e| panic!("ip maddr show dev {}: {e:#}", lab.master()));
    out.lines()
        .filter(|line| line.trim_start().starts_with("link"))
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(str::to_owned)
        .collect()
}

/// What each slave has from alb: (unicast, multicast).
fn filters(lab: &Lab) -> Vec<(BTreeSet<String>, BTreeSet<String>)> {
    SLAVES.iter().map(|dev| (unicast_filters(lab, dev), static_multicast(lab, dev))).collect()
}

fn set(macs: &[&str]) -> BTreeSet<String> {
    macs.iter().map(|m| (*m).to_owned()).collect()
}

/// Waits until the slaves' filters are `want` (in SLAVES order).
fn wait_filters(
    lab: &Lab,
    agent: &Agent,
    what: &str,
    want: &[(BTreeSet<String>, BTreeSet<String>)],
) {
    let found = wait_until(Duration::from_secs(3), what, || Ok(filters(lab) == want));
    if found.is_err() {
        panic!(
            "{what}: the slaves' filters are\n{:#?}\nnot\n{want:#?}\nagent log:\n{}",
            filters(lab),
            agent.log()
        );
    }
}

#[test]
fn the_active_slave_accepts_the_masters_mac_multicast_list_and_failed_macs() {
    let lab = common::lab(2, 3);
    let agent = Agent::start_on(&lab, &SLAVES, &[]);
    lab.ip(lab.srv(), &["addr", "add", "2001:2::1/64", "dev", lab.master(), "nodad"])
        .expect("IPv6 address on the master");
    let (m17, m19, m21) = (mac_of(&lab, "veth17"), mac_of(&lab, "veth19"), mac_of(&lab, "veth21"));
    let none = BTreeSet::new();

    // veth17 owns the master's MAC and is active: it needs the multicast
    // list only (the IPv6 address adds its solicited-node group to it).
    let mut groups = master_multicast(&lab);
    assert!(groups.contains("33:33:ff:00:00:01"), "the master joined ff02::1:ff00:1: {groups:?}");
    wait_filters(
        &lab,
        &agent,
        "multicast list on veth17",
        &[
            (none.clone(), groups.clone()),
            (none.clone(), none.clone()),
            (none.clone(), none.clone()),
        ],
    );

    // A group joined on the master later reaches the active slave.
    lab.ip(lab.srv(), &["maddr", "add", "01:00:5e:0a:0b:0c", "dev", lab.master()])
        .expect("join a group on the master");
    groups = master_multicast(&lab);
    wait_filters(
        &lab,
        &agent,
        "a new group on veth17",
        &[
            (none.clone(), groups.clone()),
            (none.clone(), none.clone()),
            (none.clone(), none.clone()),
        ],
    );

    // A non-active slave fails: the active one takes its MAC.
    set_port(&lab, &port_of(&lab, "veth21"), false);
    wait_filters(
        &lab,
        &agent,
        "veth21's MAC on veth17",
        &[
            (set(&[&m21]), groups.clone()),
            (none.clone(), none.clone()),
            (none.clone(), none.clone()),
        ],
    );
    set_port(&lab, &port_of(&lab, "veth21"), true);
    wait_filters(
        &lab,
        &agent,
        "veth21 back",
        &[
            (none.clone(), groups.clone()),
            (none.clone(), none.clone()),
            (none.clone(), none.clone()),
        ],
    );

    // The owner of the master's MAC fails: everything moves to veth19.
    set_port(&lab, &port_of(&lab, "veth17"), false);
    wait_filters(
        &lab,
        &agent,
        "the master's MAC and list on veth19",
        &[
            (none.clone(), none.clone()),
            (set(&[&m17]), groups.clone()),
            (none.clone(), none.clone()),
        ],
    );
    let status = agent.status();
    let on_19 = &status.slaves[1].filters;
    assert!(on_19.contains(&format!("unicast {m17}")), "alb status shows them: {on_19:?}");
    assert_eq!(on_19.len(), 1 + groups.len(), "alb status shows every entry: {on_19:?}");
    // It comes back and, as the owner of the master's MAC, is active again:
    // the entries move back.
    set_port(&lab, &port_of(&lab, "veth17"), true);
    wait_filters(
        &lab,
        &agent,
        "the list back on veth17",
        &[(none.clone(), groups), (none.clone(), none.clone()), (none.clone(), none.clone())],
    );

    // With --primary veth19 (set by a restart), the master takes veth19's
    // MAC, as a bond takes its primary's: the active slave owns it, so only
    // the multicast list goes there.
    let mut agent = agent;
    assert!(agent.stop().success());
    let agent = Agent::start_on(&lab, &SLAVES, &["--primary", "veth19"]);
    assert_eq!(agent.status().master_mac, m19, "the primary's MAC is the master's");
    // A new master: its list is the kernel's default one again.
    let groups = master_multicast(&lab);
    wait_filters(
        &lab,
        &agent,
        "the primary veth19 takes the list",
        &[(none.clone(), none.clone()), (none.clone(), groups), (none.clone(), none.clone())],
    );

    // The host's own traffic still works through all of it.
    let stats =
        lab.ping(&lab.client(1).ns, SERVER_IP4, 3, Duration::from_millis(50)).expect("ping");
    assert_eq!(stats.received, 3, "{stats:?}");

    // A clean stop takes every entry away.
    let mut agent = agent;
    let exit = agent.stop();
    assert!(exit.success(), "{exit}");
    assert_eq!(filters(&lab), vec![(none.clone(), none); 3], "nothing left on the slaves");
}

fn thread_sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// After `kill -9`, `alb down` removes the entries the dead agent added
/// (they are in its undo record).
#[test]
fn alb_down_removes_the_filters_a_killed_agent_added() {
    let lab = common::lab(1, 3);
    let mut agent = Agent::start_on(&lab, &SLAVES, &[]);
    set_port(&lab, &port_of(&lab, "veth17"), false);
    let m17 = mac_of(&lab, "veth17");
    wait_until(Duration::from_secs(3), "veth19 takes the master's MAC", || {
        Ok(unicast_filters(&lab, "veth19").contains(&m17))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    agent.kill9();
    assert!(unicast_filters(&lab, "veth19").contains(&m17), "kill -9 leaves them");
    let out = run_alb(lab.srv(), &["down", "--master", lab.master()]);
    assert!(out.status.success(), "alb down: {}", String::from_utf8_lossy(&out.stdout));
    for dev in SLAVES {
        assert!(unicast_filters(&lab, dev).is_empty(), "no unicast entry left on {dev}");
        assert!(static_multicast(&lab, dev).is_empty(), "no multicast entry left on {dev}");
    }
    assert!(leftovers(&lab, lab.master()).is_empty());
}

/// The test switch `--no-filter-sync` leaves the filters alone (what the
/// vm-test guests use to show that the filters matter).
#[test]
fn no_filter_sync_sets_nothing() {
    let lab = common::lab(1, 3);
    let agent = Agent::start_on(&lab, &SLAVES, &["--no-filter-sync"]);
    set_port(&lab, &port_of(&lab, "veth17"), false);
    agent.wait_status(Duration::from_secs(3), "veth19 active", |s| {
        s.active_slave.as_deref() == Some("veth19")
    });
    thread_sleep(300);
    let none = BTreeSet::new();
    assert_eq!(filters(&lab), vec![(none.clone(), none); 3], "no entry with the switch");
}
