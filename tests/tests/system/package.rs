//! The package: the first `dpkg -i` in the guest loads the unit, the
//! example file with the slaves passes `alb config check`, and an upgrade
//! (`dpkg -i` again while the agent runs) restarts the agent through
//! postinst's try-restart without losing a ping.

use std::time::Instant;

use super::{
    fixture::{ALB, CONF, Service, configure, installed, prop, require_guest, run, text},
    pings::{Pings, assert_none_lost},
};

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn dpkg_installs_the_package_and_the_unit_is_loaded_without_a_daemon_reload() {
    require_guest();
    let install = installed();
    assert_eq!(install.before, "not-found", "the unit before the package: {install:?}");
    assert!(install.dpkg.status.success(), "dpkg -i: {}", text(&install.dpkg));
    assert_eq!(install.after, "loaded", "the unit's LoadState after dpkg -i");
    assert_eq!(install.need_daemon_reload, "no", "postinst reloads systemd's units");
    println!("{}", text(&run(&[ALB, "--version"])).trim());
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn the_packaged_example_with_the_slaves_passes_config_check() {
    require_guest();
    configure(|file| file);
    let out = run(&[ALB, "config", "check", CONF]);
    println!("alb config check {CONF}: {}", text(&out).trim());
    assert!(out.status.success(), "alb config check {CONF} ({}): {}", out.status, text(&out));
}

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn an_upgrade_with_dpkg_restarts_the_agent_and_loses_no_ping() {
    let deb = require_guest();
    let service = Service::start();
    let pid = Service::main_pid();
    let pings = Pings::start(&service.lab);
    let t0 = Instant::now();
    let dpkg = run(&["dpkg", "-i", deb.to_str().expect("a UTF-8 path")]);
    println!("upgrade: dpkg -i took {:.1} s:\n{}", t0.elapsed().as_secs_f64(), text(&dpkg));
    let runs = pings.stop();
    assert!(dpkg.status.success(), "dpkg -i over the running package: {}", text(&dpkg));
    let new = Service::main_pid();
    assert!(new != pid && prop("ActiveState") == "active", "postinst restarts it: {pid} -> {new}");
    assert_none_lost("upgrade", &runs);
}
