//! Changes to the running unit under pings: `systemctl reload` (`alb
//! reload`) applies a changed file, and a file with an error changes
//! nothing and fails the reload; `systemctl restart` rereads the file; a
//! hung agent is killed by systemd's watchdog and the next one adopts the
//! data path. The data path forwards all along.

use std::{fs, time::Duration};

use alb_tests::wait_until;
use nix::{sys::signal::Signal, unistd::Pid};

use super::{
    fixture::{
        CONF, Journal, Service, UNIT, WARNING, active_slave, assert_only_cap_net_admin,
        primary_veth19, prop, require_guest, run, text, write,
    },
    pings::{Pings, assert_none_lost},
};

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn systemctl_reload_applies_a_changed_primary_and_loses_no_ping() {
    require_guest();
    let service = Service::start();
    let pid = Service::main_pid();
    assert_eq!(active_slave().as_deref(), Some("veth17"), "the active slave before");
    let pings = Pings::start(&service.lab);
    let file = fs::read_to_string(CONF).expect("the config file");
    write(CONF, &primary_veth19(file));
    let reload = run(&["systemctl", "reload", UNIT]);
    service.journal.wait_unit("reloaded: primary veth19");
    let runs = pings.stop();
    let journal = service.journal.unit();
    println!("{}", journal.lines().rfind(|l| l.contains("reloaded:")).unwrap_or(""));
    assert!(reload.status.success(), "systemctl reload: {}", text(&reload));
    assert!(
        prop("ActiveState") == "active" && Service::main_pid() == pid,
        "the same agent runs on after the reload"
    );
    assert_eq!(active_slave().as_deref(), Some("veth19"), "the file's primary is active");
    assert_none_lost("reload", &runs);
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn systemctl_reload_of_a_bad_file_fails_and_changes_nothing() {
    require_guest();
    let service = Service::start_with(primary_veth19);
    let pid = Service::main_pid();
    assert_eq!(active_slave().as_deref(), Some("veth19"), "the file's primary");
    let good = fs::read_to_string(CONF).expect("the config file");
    write(CONF, &format!("{good}no_such_key = 1\n"));
    let reload = run(&["systemctl", "reload", UNIT]);
    // ExecReload is `alb reload`: a refused file fails the reload.
    assert!(!reload.status.success(), "systemctl reload of a bad file succeeded");
    service.journal.wait_unit("not reloaded");
    let warnings = service.journal.unit_at(WARNING);
    println!("{warnings}");
    assert!(
        Service::main_pid() == pid && prop("ActiveState") == "active",
        "the agent keeps running after a refused file"
    );
    assert_eq!(active_slave().as_deref(), Some("veth19"), "nothing changed");
    write(CONF, &good);
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn systemctl_restart_loses_no_ping_and_the_new_agent_reads_the_file() {
    require_guest();
    let service = Service::start();
    let pid = Service::main_pid();
    assert_eq!(active_slave().as_deref(), Some("veth17"), "the active slave before");
    // Changed without a reload: only the next agent reads it.
    let file = fs::read_to_string(CONF).expect("the config file");
    write(CONF, &primary_veth19(file));
    let pings = Pings::start(&service.lab);
    let restart = run(&["systemctl", "restart", UNIT]);
    let runs = pings.stop();
    assert!(
        restart.status.success() && prop("ActiveState") == "active",
        "systemctl restart: {}",
        text(&restart)
    );
    assert_ne!(Service::main_pid(), pid, "a new agent");
    assert_none_lost("restart", &runs);
    assert_eq!(active_slave().as_deref(), Some("veth19"), "the new agent's primary, from the file");
}

/// The time (seconds since boot, as /proc/uptime) of systemd's last line
/// about the unit since `journal`'s mark that contains `needle`.
fn systemd_time(journal: &Journal, needle: &str) -> Option<f64> {
    let entries = journal.entries(&["-u", UNIT, "_PID=1"]);
    entries.iter().rfind(|e| e.message.contains(needle)).map(|e| e.uptime)
}

fn uptime() -> f64 {
    let text = fs::read_to_string("/proc/uptime").expect("/proc/uptime");
    text.split_whitespace().next().and_then(|s| s.parse().ok()).expect("the uptime")
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn the_watchdog_restarts_a_hung_agent_whose_successor_adopts_the_data_path() {
    require_guest();
    let service = Service::start();
    let pid = Service::main_pid();
    let restarts: u32 = prop("NRestarts").parse().expect("NRestarts");
    let pings = Pings::start(&service.lab);
    let journal = Journal::mark();
    nix::sys::signal::kill(Pid::from_raw(i32::try_from(pid).expect("a pid")), Signal::SIGSTOP)
        .expect("SIGSTOP the agent");
    let stopped = uptime();
    // WatchdogSec=10s, then RestartSec=1s and the next agent's start
    // (the whole wait times the time scale).
    let waited = wait_until(Duration::from_secs(15), "the next agent active", || {
        let new = Service::main_pid();
        Ok(new != pid && new != 0 && prop("ActiveState") == "active")
    });
    if let Err(e) = waited {
        panic!("{e:#}; the unit's journal:\n{}", journal.unit());
    }
    let timeline = |needle| systemd_time(&journal, needle).map(|t| format!("+{:.1}s", t - stopped));
    println!(
        "watchdog: stop=0 timeout={:?} ready={:?} (WatchdogSec=10s, RestartSec=1s)",
        timeline("Watchdog timeout"),
        timeline("Started alb@")
    );
    let new = Service::main_pid();
    let adopted = format!("_PID={new}");
    let waited = wait_until(Duration::from_secs(3), "adopted", || {
        Ok(journal.matching(&adopted).contains("adopted"))
    });
    let runs = pings.stop();
    let systemd: String = journal
        .entries(&["-u", UNIT, "_PID=1"])
        .into_iter()
        .map(|e| format!("{}\n", e.message))
        .collect();
    println!("{}", systemd.lines().rfind(|l| l.to_lowercase().contains("watchdog")).unwrap_or(""));
    assert!(
        prop("NRestarts").parse::<u32>().expect("NRestarts") == restarts + 1
            && prop("ActiveState") == "active",
        "one restart by the watchdog"
    );
    assert_ne!(new, pid, "a new agent");
    assert!(
        systemd.to_lowercase().contains("watchdog timeout"),
        "systemd logs the watchdog timeout:\n{systemd}"
    );
    if let Err(e) = waited {
        panic!("{e:#}: the new agent's lines:\n{}", journal.matching(&adopted));
    }
    assert_none_lost("watchdog", &runs);
    assert_only_cap_net_admin(new);
}
