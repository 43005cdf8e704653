//! The unit file as systemd judges it: `systemd-analyze verify` finds
//! nothing to say, and enabled, it joins multi-user.target's boot
//! transaction (with its slaves' devices, the modules and
//! network-pre.target) without an ordering cycle.

use super::fixture::{UNIT, configure, lab, require_guest, run, run_ok, text};

#[test]
#[ignore = "guest: needs systemd as PID 1 and the package installed; run by cargo xtask vm-test --systemd"]
fn the_unit_verifies_and_enabled_joins_the_boot_without_an_ordering_cycle() {
    require_guest();
    configure(|file| file);
    let _lab = lab();
    // --man=no: the guest has no man(1) to look Documentation= up with.
    let verify = run(&["systemd-analyze", "verify", "--man=no", UNIT]);
    println!("systemd-analyze verify {UNIT}: {} {}", verify.status, text(&verify).trim());
    assert!(
        verify.status.success() && text(&verify).trim().is_empty(),
        "systemd-analyze verify {UNIT}: {}",
        text(&verify)
    );
    // The sandbox every other test ran under, and systemd's opinion of it.
    let security = run(&["systemd-analyze", "security", "--no-pager", UNIT]);
    println!("{}", text(&security).lines().last().unwrap_or(""));
    run_ok(&["systemctl", "enable", UNIT]);
    let enabled = run(&["systemctl", "is-enabled", UNIT]);
    let boot = run(&["systemd-analyze", "verify", "--man=no", "multi-user.target"]);
    run_ok(&["systemctl", "disable", UNIT]);
    assert_eq!(String::from_utf8_lossy(&enabled.stdout).trim(), "enabled");
    let boot = text(&boot);
    println!(
        "systemd-analyze verify multi-user.target with {UNIT} enabled: {} lines",
        boot.lines().count()
    );
    assert!(!boot.to_lowercase().contains("cycle"), "an ordering cycle at boot:\n{boot}");
}
