//! The start: a unit started before its slaves exist waits for their
//! devices, starts once they appear and is active only after READY=1 (the
//! control socket, the pins and the master in place first); then what the
//! running unit and its agent look like to systemd and to the kernel.

use std::{fs, path::Path, time::Duration};

use alb_tests::wait_until;

use super::fixture::{
    CONF, Journal, MASTER, Service, UNIT, UnitGuard, assert_only_cap_net_admin, configure, ctime,
    lab, props, require_guest, run_ok, stamp, wait_active,
};

/// The jobs systemd has queued: (unit, type, state).
fn jobs() -> Vec<(String, String, String)> {
    run_ok(&["systemctl", "list-jobs", "--no-legend", "--plain"])
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip(1);
            Some((w.next()?.to_owned(), w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn the_unit_waits_for_its_slaves_and_is_active_only_after_ready() {
    require_guest();
    configure(|file| file);
    let guard = UnitGuard;
    let journal = Journal::mark();
    run_ok(&["systemctl", "start", "--no-block", UNIT]);
    // Once everything else of the start's transaction is done (the
    // modules), only the slaves' devices are left to wait for.
    wait_until(Duration::from_secs(10), "the start's other jobs", || {
        Ok(jobs().iter().all(|(unit, ..)| unit == UNIT || unit.ends_with(".device")))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", jobs()));
    let jobs = jobs();
    let state = props()["ActiveState"].clone();
    println!("before the slaves exist: {UNIT} is {state}, jobs {jobs:?}");
    assert!(
        state == "inactive"
            && jobs.iter().any(|(u, t, s)| u == UNIT && t == "start" && s == "waiting"),
        "{UNIT} must wait for its slaves: {state}, jobs {jobs:?}"
    );
    let lab = lab();
    wait_active(&journal);
    // What must exist once systemd calls it active (READY=1 came after).
    for what in ["/run/alb/alb0.sock", "/sys/fs/bpf/alb/alb0"] {
        assert!(Path::new(what).exists(), "{what} missing when {UNIT} became active");
    }
    assert!(
        lab.link_exists(lab.srv(), MASTER).expect("ip link"),
        "{MASTER} missing when {UNIT} became active"
    );
    // From systemd's own times: the agent was started, then made its
    // control socket (the last thing before READY=1), and only then was
    // the unit active.
    let started = stamp("ExecMainStartTimestamp");
    let entered = stamp("ActiveEnterTimestamp");
    let socket = ctime("/run/alb/alb0.sock");
    println!(
        "start: activating {:.1} s (socket made after {:.1} s)",
        entered - started,
        socket - started
    );
    assert!(
        started < socket && socket <= entered,
        "started {started}, socket {socket}, active {entered}: active only after the socket"
    );
    drop(Service::running(guard, lab, journal));
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn the_running_unit_is_notify_with_a_10s_watchdog_and_its_modules_loaded() {
    require_guest();
    let service = Service::start();
    let p = props();
    for name in ["ActiveState", "SubState", "StatusText", "NotifyAccess", "WatchdogUSec", "MainPID"]
    {
        println!("{name}={}", p[name]);
    }
    assert_eq!(p["SubState"], "running");
    assert!(!p["StatusText"].is_empty(), "the agent sets STATUS=");
    assert_eq!(p["NotifyAccess"], "main");
    assert_eq!(p["WatchdogUSec"], "10s");
    assert!(p["MainPID"].parse::<u32>().expect("MainPID") > 0);
    let journal = service.journal.unit();
    println!("{}", journal.lines().find(|l| l.contains("programs attached through")).unwrap_or(""));
    // The unit loads them (modprobe@.service) whatever the kernel: the
    // sandbox hides /lib/modules from the agent's probe.
    for module in ["sch_ingress", "cls_bpf"] {
        assert!(Path::new("/sys/module").join(module).is_dir(), "{module} not loaded");
    }
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn the_master_has_its_first_slaves_mac_not_one_udev_chose() {
    require_guest();
    let service = Service::start();
    // udev gives a new device whose MAC the kernel chose at random one of
    // its own (99-default.link, MACAddressPolicy=persistent); the agent
    // creates the master with its slave's, which udev leaves alone.
    let mac = fs::read_to_string("/sys/class/net/alb0/address").expect("alb0's address");
    let said: Vec<String> = service
        .journal
        .unit()
        .lines()
        .filter(|l| l.contains("has a new MAC"))
        .map(str::to_owned)
        .collect();
    println!("alb0's MAC: {}; what the agent said of it: {said:?}", mac.trim());
    assert_eq!(mac.trim(), service.lab.slave(0).mac, "alb0's MAC");
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn once_ready_the_agent_keeps_only_cap_net_admin() {
    require_guest();
    let _service = Service::start();
    assert_only_cap_net_admin(Service::main_pid());
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn the_agent_runs_from_the_config_file_with_its_slaves() {
    require_guest();
    let service = Service::start();
    let pid = Service::main_pid();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).expect("the agent's command line");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    println!("the agent runs as: {cmdline}");
    assert!(
        cmdline.contains(&format!("--config {CONF}")) && !cmdline.contains("--iface"),
        "the unit's ExecStart takes the slaves from the file: {cmdline}"
    );
    let journal = service.journal.unit();
    assert!(
        journal.lines().any(|l| l.starts_with("ready: ") && l.contains(" over veth17, veth19 ")),
        "ready over the file's slaves:\n{journal}"
    );
}
