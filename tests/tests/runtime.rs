//! The agent at run time (issue 3, items 5-7): a `kill -9` and a restart
//! under traffic, `alb down` after an agent died, `alb slave add|del`
//! under traffic, bad runtime requests, a slave of another master,
//! `--primary`, and the root-only control socket.
//!
//! Losses are measured from the clients' side: each client pings the
//! server every [`INTERVAL`] (`ping -D -O`) while the change happens; a
//! client's outage is the longer of its longest run of unanswered requests
//! (times the interval) and its longest silence between two replies, less
//! one interval. Every test that measures prints what it saw (`runtime:`
//! lines; run with `--nocapture` to see them).
//!
//! Each test builds its own lab and runs its own agent under a master name
//! of its own (pins, locks, undo records and control sockets are global).
//! Needs root, the `alb` binary (`cargo build -p alb-user`), tc, ping
//! and setpriv; run one test at a time (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;
// Refused requests, a second master, the socket's owner.
#[path = "runtime/refusals.rs"]
mod refusals;

use std::{
    process::Output,
    thread,
    time::{Duration, Instant},
};

use alb::datapath::layout;
use alb_tests::{
    Lab, SERVER_IP4, Status,
    agent::{lock_held, pin_dir, socket_path, state_path},
};
use common::{
    Agent, assert_all_clients_work, counts,
    datapath::{assert_attached, assert_no_programs, silenced, sysctls_of},
    even, leftovers, mac_of, neigh,
    pings::{self, PingRun, Pings},
    port_of, resolve_all, run_alb, show_ms, slave_of, wait_neigh,
};

/// Between two echo requests of a measuring ping.
const INTERVAL: Duration = Duration::from_millis(10);

/// "A few packets": what a client may lose to a restart or a runtime
/// change that does not concern its own slave.
const FEW: u32 = 5;

/// The fail threshold for a moved client's receive outage.
const FAIL_THRESHOLD: Duration = Duration::from_secs(1);

/// How soon a moved client must point at its new slave.
const NEIGH_DEADLINE: Duration = Duration::from_millis(300);

/// Runs `alb args...` in the server namespace; returns its output and its
/// merged stdout and stderr, trimmed.
fn alb(lab: &Lab, args: &[&str]) -> (Output, String) {
    let out = run_alb(lab.srv(), args);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out, text)
}

/// Asserts that `alb args...` failed with exit status 1 and a one-line
/// `alb: ...` message containing `expect`; returns the message.
fn assert_refused(lab: &Lab, args: &[&str], expect: &str) -> String {
    let (out, message) = alb(lab, args);
    let command = args.join(" ");
    assert_eq!(out.status.code(), Some(1), "`alb {command}` should fail; it printed:\n{message}");
    assert_eq!(message.lines().count(), 1, "`alb {command}`: one line, not:\n{message}");
    assert!(message.starts_with("alb: "), "`alb {command}` names the program: {message}");
    assert!(message.contains(expect), "`alb {command}` should mention {expect:?}: {message}");
    message
}

// ---------------------------------------------------------------------
// What the status, the devices and the kernel say.
// ---------------------------------------------------------------------

/// Every client entry as (server IP, client IP, MAC, slave).
fn assignments(status: &Status) -> Vec<(String, String, Option<String>, Option<String>)> {
    let mut all: Vec<_> = status
        .clients
        .iter()
        .map(|c| (c.server_ip.clone(), c.client_ip.clone(), c.mac.clone(), c.slave.clone()))
        .collect();
    all.sort();
    all
}

/// What a runtime request must not change: master MAC, active slave, each
/// slave's name, MAC, usability and role, and every client's slave.
fn summary(status: &Status) -> String {
    let slaves: Vec<String> = status
        .slaves
        .iter()
        .map(|s| format!("{} {} usable={} active={}", s.name, s.mac, s.usable, s.active))
        .collect();
    format!(
        "master {} active {:?}; slaves [{}]; clients {:?}",
        status.master_mac,
        status.active_slave,
        slaves.join(", "),
        assignments(status)
    )
}

/// Keeps spare slave `name` (in the server namespace, not given to the
/// agent) from answering the clients' ARP requests for the server address
/// itself: with arp_ignore 0 (Linux's weak host model) it replies with its
/// own MAC, racing alb's reply, and clients that take it talk to the
/// server through a device alb does not run.
fn quiet_spare(lab: &Lab, name: &str) {
    let key = format!("net.ipv4.conf.{name}.arp_ignore");
    lab.sysctl(lab.srv(), &key, "1").unwrap_or_else(|e| panic!("{key}: {e:#}"));
}

// ---------------------------------------------------------------------
// Measuring pings.
// ---------------------------------------------------------------------

/// Starts `ping -D -O -i INTERVAL` to the server from each of `numbers`
/// for `duration`, and waits until each has had its first reply.
fn start_pings(lab: &Lab, numbers: &[usize], duration: Duration) -> Pings {
    pings::start_pings(lab, numbers, duration, INTERVAL)
}

/// Prints every run under `what`.
fn report<'a>(what: &str, runs: impl IntoIterator<Item = &'a PingRun>) {
    pings::report("runtime", what, runs);
}

/// Asserts that `run` lost at most [`FEW`] requests.
fn assert_few_lost(what: &str, run: &PingRun, agent_log: &str) {
    pings::assert_few_lost(what, run, FEW, agent_log);
}

// ---------------------------------------------------------------------
// Restart and `alb down` (issue 3, item 6).
// ---------------------------------------------------------------------

/// `kill -9` of the agent while clients ping: the pinned programs stay
/// attached and keep serving; a new agent with the same arguments adopts
/// the maps (clients kept) and replaces the programs atomically. No client
/// loses a ping.
#[test]
fn kill_9_keeps_traffic_flowing_and_a_restart_adopts_the_clients() {
    let lab = common::lab(4, 2);
    let master = lab.master().to_owned();
    let mut first = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    let before = first.status();
    let clients = assignments(&before);
    assert_eq!(clients.len(), 4, "four clients dealt: {before}");
    assert!(even(&before), "two per slave: {:?}", counts(&before));
    let ids_before = assert_attached(&lab, &master, &["veth17", "veth19"]);

    let pings = start_pings(&lab, &[1, 2, 3, 4], Duration::from_secs(5));
    thread::sleep(Duration::from_millis(800));
    let killed_at = Instant::now();
    first.kill9();
    // The pinned links hold the programs: still attached, same programs.
    let ids_dead = assert_attached(&lab, &master, &["veth17", "veth19"]);
    assert_eq!(ids_dead, ids_before, "the same programs stay attached after kill -9");
    let links = layout::link_dir(&pin_dir(&master));
    let pins =
        [layout::TX_RECORD.to_owned(), layout::rx_record("veth17"), layout::rx_record("veth19")];
    for pin in pins.map(|pin| links.join(pin)) {
        assert!(pin.exists(), "pin {} after kill -9", pin.display());
    }
    assert!(!lock_held(&master), "the killed agent holds no lock");
    // Traffic without any agent for a while.
    thread::sleep(Duration::from_millis(1200));

    let restarted_at = Instant::now();
    let second = first.start_again(&lab);
    let ready_in = restarted_at.elapsed();
    // The table is read in the loop's first turns, after "ready".
    let adopted =
        format!("adopted the data path of an earlier agent: {} clients kept", clients.len());
    second
        .wait_log(0, &adopted, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("the new agent says {adopted:?}: {e:#}"));
    let ids_after = assert_attached(&lab, &master, &["veth17", "veth19"]);
    for (dev, id) in &ids_after {
        assert_ne!(Some(id), ids_before.get(dev), "{dev} runs the new agent's program");
    }

    let runs = pings.finish();
    println!(
        "runtime: kill -9 then restart after {:.0} ms without an agent (ready in {:.0} ms)",
        (restarted_at - killed_at).as_secs_f64() * 1000.0,
        ready_in.as_secs_f64() * 1000.0
    );
    report("kill -9 and restart", &runs);
    for run in &runs {
        // docs/reliability.md reports 0 in 10 runs: the programs never stop.
        pings::assert_none_lost("kill -9 and restart", run, &second.log());
    }

    let after = second.status();
    assert_eq!(assignments(&after), clients, "the restarted agent keeps every client's slave");
    assert_eq!(counts(&after), counts(&before), "client counts per slave");
    assert_eq!(after.active_slave, before.active_slave, "active slave");
    assert_eq!(after.master_mac, before.master_mac, "master MAC");
    assert_all_clients_work(&lab, 20);
    for number in 1..=4 {
        let want = mac_of(&lab, &slave_of(&lab, &after, number));
        assert_eq!(neigh(&lab, number), Some(want), "c{number} still points at its slave");
    }
}

/// `alb down` removes what a killed agent left (master, pins, record) and
/// restores the slaves' sysctls to their values from before the agent; a
/// second `alb down` has nothing to remove; while an agent runs it is
/// refused and changes nothing.
#[test]
fn alb_down_removes_what_a_killed_agent_left() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    lab.sysctl(lab.srv(), "net.ipv4.conf.veth17.arp_ignore", "2").expect("sysctl");
    let sysctls_before: Vec<_> =
        ["veth17", "veth19"].iter().flat_map(|s| sysctls_of(&lab, s)).collect();
    assert!(
        sysctls_before.contains(&("net.ipv4.conf.veth17.arp_ignore".into(), "2".into())),
        "{sysctls_before:?}"
    );
    let mut agent = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    assert!(silenced(&lab, "veth17") && silenced(&lab, "veth19"), "slaves silenced");

    // While the agent runs: refused, nothing changes.
    let status = agent.status();
    let message = assert_refused(&lab, &["down", "--master", &master], &master);
    assert!(message.contains("running agent"), "says an agent runs: {message}");
    assert!(agent.running(), "the agent survives `alb down`:\n{}", agent.log());
    assert_eq!(summary(&agent.status()), summary(&status), "status unchanged");
    assert!(lab.link_exists(lab.srv(), &master).expect("ip"), "master kept");
    assert!(layout::link_dir(&pin_dir(&master)).join(layout::TX_RECORD).exists(), "pins kept");
    assert!(silenced(&lab, "veth17") && silenced(&lab, "veth19"), "slaves still silenced");
    assert_attached(&lab, &master, &["veth17", "veth19"]);
    assert_all_clients_work(&lab, 10);

    agent.kill9();
    let left = leftovers(&lab, &master);
    assert!(
        left.iter().any(|l| l.contains("pin directory"))
            && left.iter().any(|l| l.contains("undo record"))
            && left.iter().any(|l| l.starts_with(&format!("device {master} "))),
        "a killed agent leaves master, pins and record: {left:?}"
    );

    let (out, text) = alb(&lab, &["down", "--master", &master]);
    assert!(out.status.success(), "alb down after kill -9: {text}");
    assert!(text.contains(&format!("master {master} removed")), "says what it did: {text}");
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "alb down left {left:?}");
    assert!(!state_path(&master).exists(), "no undo record");
    assert!(!socket_path(&master).exists(), "no control socket");
    let sysctls_after: Vec<_> =
        ["veth17", "veth19"].iter().flat_map(|s| sysctls_of(&lab, s)).collect();
    assert_eq!(sysctls_after, sysctls_before, "sysctls as before the first agent");
    for slave in ["veth17", "veth19"] {
        assert_no_programs(&lab, slave);
        assert!(lab.link(lab.srv(), slave).expect("slave").admin_up(), "{slave} stays up");
    }

    let (out, text) = alb(&lab, &["down", "--master", &master]);
    assert!(out.status.success(), "a second alb down exits 0: {text}");
    assert!(text.contains("nothing to remove"), "a second alb down has nothing to do: {text}");
    assert!(leftovers(&lab, &master).is_empty(), "{:?}", leftovers(&lab, &master));
}

// ---------------------------------------------------------------------
// Runtime slave changes (issue 3, item 5).
// ---------------------------------------------------------------------

/// `alb slave add veth21` while four clients on veth17 and veth19 ping:
/// the counts even out, the moved clients point at veth21 within
/// [`NEIGH_DEADLINE`] of the command's return (plus any stall of the
/// machine) and their traffic crosses it; nobody loses more than a few
/// pings.
#[test]
fn slave_add_under_traffic_deals_the_new_slave_its_share() {
    let lab = common::lab(4, 3);
    let master = lab.master().to_owned();
    quiet_spare(&lab, "veth21");
    let veth21_before = sysctls_of(&lab, "veth21");
    let agent = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    let before = agent.status();
    assert_eq!(
        counts(&before),
        [("veth17".to_owned(), 2), ("veth19".to_owned(), 2)],
        "two clients on each slave before the add"
    );
    for number in 1..=4 {
        let want = mac_of(&lab, &slave_of(&lab, &before, number));
        assert_eq!(neigh(&lab, number), Some(want), "c{number} resolved its slave's MAC");
    }
    assert_no_programs(&lab, "veth21");

    let pings = start_pings(&lab, &[1, 2, 3, 4], Duration::from_secs(3));
    thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let (out, text) = alb(&lab, &["slave", "add", "veth21", "--master", &master]);
    let took = t0.elapsed();
    assert!(out.status.success(), "alb slave add veth21: {text}\nagent log:\n{}", agent.log());
    assert!(text.starts_with("alb: ") && text.contains("veth21 added"), "{text}");

    let after = agent.status();
    let names: Vec<String> = after.slaves.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["veth17", "veth19", "veth21"], "three slaves in enslave order");
    assert!(after.slaves.iter().all(|s| s.usable), "all usable: {:?}", after.slaves);
    assert!(even(&after), "counts differ by at most one: {:?}", counts(&after));
    let moved: Vec<usize> =
        (1..=4).filter(|&n| slave_of(&lab, &after, n) != slave_of(&lab, &before, n)).collect();
    assert!(!moved.is_empty(), "some client moved to veth21: {:?}", counts(&after));
    let times =
        wait_neigh(&lab, &moved, t0, FAIL_THRESHOLD, |n| mac_of(&lab, &slave_of(&lab, &after, n)));
    println!(
        "runtime: slave add took {:.0} ms; moved clients point at their new slave after {} \
         (from the start of `alb slave add`)",
        took.as_secs_f64() * 1000.0,
        show_ms(&times)
    );
    for number in (1..=4).filter(|n| !moved.contains(n)) {
        let want = mac_of(&lab, &slave_of(&lab, &before, number));
        assert_eq!(neigh(&lab, number), Some(want), "c{number} did not move and was not told");
    }

    let runs = pings.finish();
    report("slave add", &runs);
    for run in &runs {
        assert_few_lost("slave add", run, &agent.log());
    }
    // Told within NEIGH_DEADLINE of the command's return, plus any stall of
    // the machine the clients that stayed saw.
    let stayed: Vec<&PingRun> = runs.iter().filter(|r| !moved.contains(&r.number)).collect();
    let deadline = took + alb_tests::scaled(NEIGH_DEADLINE) + pings::machine_stall(&stayed);
    for (number, told) in &times {
        assert!(*told < deadline, "c{number} pointed at veth21 after {told:?} (> {deadline:?})");
    }

    // veth21 is a slave like the others: silenced, receiving, carrying the
    // moved clients' traffic both ways.
    assert!(silenced(&lab, "veth21"), "veth21 silenced: {:?}", sysctls_of(&lab, "veth21"));
    assert_ne!(sysctls_of(&lab, "veth21"), veth21_before, "veth21's sysctls changed");
    assert_attached(&lab, &master, &["veth17", "veth19", "veth21"]);
    let port = port_of(&lab, "veth21");
    for &number in &moved {
        let before = lab.port_stats(&port).expect("port stats").swapped();
        let stats = lab
            .ping(&lab.client(number).ns, SERVER_IP4, 50, Duration::from_millis(2))
            .expect("ping");
        assert_eq!(stats.lost(), 0, "c{number} on veth21: {stats}");
        let crossed = lab.port_stats(&port).expect("port stats").swapped() - before;
        assert!(
            crossed.rx_packets >= 50 && crossed.tx_packets >= 50,
            "c{number}'s 50 pings cross veth21 both ways: {crossed}"
        );
    }
}

/// `alb slave del veth19` while its clients ping: they move to the
/// surviving slaves within the fail threshold, the others are undisturbed,
/// veth19 gets its sysctls back and loses its program, and works as an
/// ordinary device again.
#[test]
fn slave_del_under_traffic_moves_its_clients_and_gives_the_device_back() {
    let lab = common::lab(6, 3);
    let master = lab.master().to_owned();
    let veth19_before = sysctls_of(&lab, "veth19");
    let agent = Agent::start_on(&lab, &["veth17", "veth19", "veth21"], &[]);
    resolve_all(&lab);
    let before = agent.status();
    assert!(even(&before), "two per slave: {:?}", counts(&before));
    let on_veth19: Vec<usize> =
        (1..=6).filter(|&n| slave_of(&lab, &before, n) == "veth19").collect();
    assert_eq!(on_veth19.len(), 2, "two clients on veth19: {:?}", assignments(&before));
    let others: Vec<usize> = (1..=6).filter(|n| !on_veth19.contains(n)).collect();

    let pings = start_pings(&lab, &[1, 2, 3, 4, 5, 6], Duration::from_secs(3));
    thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let (out, text) = alb(&lab, &["slave", "del", "veth19", "--master", &master]);
    let took = t0.elapsed();
    assert!(out.status.success(), "alb slave del veth19: {text}\nagent log:\n{}", agent.log());
    assert!(text.starts_with("alb: ") && text.contains("veth19 removed"), "{text}");

    let after = agent.status();
    let names: Vec<String> = after.slaves.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["veth17", "veth21"], "veth19 is gone from the status");
    assert!(even(&after), "counts differ by at most one: {:?}", counts(&after));
    assert_eq!(after.clients.len(), 6, "no client forgotten: {:?}", assignments(&after));
    for &number in &on_veth19 {
        let slave = slave_of(&lab, &after, number);
        assert!(slave == "veth17" || slave == "veth21", "c{number} moved to {slave}");
    }
    for &number in &others {
        assert_eq!(
            slave_of(&lab, &after, number),
            slave_of(&lab, &before, number),
            "c{number} stays on its slave"
        );
    }
    let times = wait_neigh(&lab, &on_veth19, t0, FAIL_THRESHOLD, |n| {
        mac_of(&lab, &slave_of(&lab, &after, n))
    });
    println!(
        "runtime: slave del took {:.0} ms; moved clients point at their new slave after {}",
        took.as_secs_f64() * 1000.0,
        show_ms(&times)
    );

    let runs = pings.finish();
    report("slave del", &runs);
    for run in &runs {
        if on_veth19.contains(&run.number) {
            assert!(
                run.outage() < alb_tests::scaled(FAIL_THRESHOLD),
                "slave del: moved client {run} is not below {FAIL_THRESHOLD:?}\nping tail:\n{}\n\
                 agent log:\n{}",
                run.tail(),
                agent.log()
            );
        } else {
            assert_few_lost("slave del, a client of another slave", run, &agent.log());
        }
    }

    // veth19 as it was: sysctls, no program, no pin; still up.
    assert_eq!(sysctls_of(&lab, "veth19"), veth19_before, "veth19's sysctls restored");
    assert_no_programs(&lab, "veth19");
    let record = layout::link_dir(&pin_dir(&master)).join(layout::rx_record("veth19"));
    assert!(!record.exists(), "rx-veth19 unpinned");
    assert_attached(&lab, &master, &["veth17", "veth21"]);
    let veth19 = lab.link(lab.srv(), "veth19").expect("veth19");
    assert!(veth19.admin_up() && veth19.lower_up(), "veth19 up with carrier: {veth19:?}");
    assert_all_clients_work(&lab, 20);

    // veth19 carries ordinary traffic of its own through its switch port.
    let c1 = lab.client(1);
    lab.ip(lab.srv(), &["addr", "add", "198.19.0.1/24", "dev", "veth19"]).expect("addr");
    lab.ip(&c1.ns, &["addr", "add", "198.19.0.11/24", "dev", &c1.dev]).expect("addr");
    let stats = lab
        .exec(
            lab.srv(),
            &[
                "ping",
                "-n",
                "-q",
                "-c",
                "5",
                "-i",
                "0.05",
                "-W",
                "1",
                "-I",
                "veth19",
                "198.19.0.11",
            ],
        )
        .expect("ping from veth19");
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "veth19 works as an ordinary device again:\n{text}");
}

/// `--primary veth19`: the master carries veth19's MAC and veth19 is
/// active; when its switch port goes down veth17 takes over, and when it
/// comes back veth19 is active again, still with the master's MAC.
#[test]
fn the_primary_is_active_whenever_it_is_up() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let agent = Agent::start_on(&lab, &["veth17", "veth19"], &["--primary", "veth19"]);
    let veth19_mac = mac_of(&lab, "veth19");
    let assert_primary_active = |status: &Status, when: &str| {
        assert_eq!(status.active_slave.as_deref(), Some("veth19"), "{when}: veth19 active");
        assert_eq!(status.master_mac, veth19_mac, "{when}: status master MAC");
        let mac = lab.link_mac(lab.srv(), &master).expect("master MAC");
        assert_eq!(mac, veth19_mac, "{when}: the master device has veth19's MAC");
    };
    assert_primary_active(&agent.status(), "at start");
    resolve_all(&lab);
    assert_all_clients_work(&lab, 10);

    let port = port_of(&lab, "veth19");
    lab.set_link(lab.sw(), &port, false).expect("port down");
    let down = agent.wait_status(Duration::from_secs(2), "veth17 active", |s| {
        s.active_slave.as_deref() == Some("veth17")
    });
    assert!(down.slaves.iter().any(|s| s.name == "veth19" && !s.usable), "veth19 unusable");
    assert_all_clients_work(&lab, 10);

    let t0 = Instant::now();
    lab.set_link(lab.sw(), &port, true).expect("port up");
    let up = agent.wait_status(Duration::from_secs(3), "veth19 active again", |s| {
        s.active_slave.as_deref() == Some("veth19")
    });
    println!(
        "runtime: primary veth19 active again {:.0} ms after its port came up",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    assert_primary_active(&up, "after its port came back");
    assert!(up.slaves.iter().all(|s| s.usable), "both usable: {:?}", up.slaves);
    assert_all_clients_work(&lab, 10);
}
