//! alb as the packaged service under a real systemd: the guest of `cargo
//! xtask vm-test --systemd` (Debian 12, systemd as PID 1) runs this binary
//! with `--include-ignored`. The package of `cargo xtask package` is
//! installed with dpkg (its path in `ALB_TEST_DEB`); the lab's slaves
//! veth17 and veth19 are in the guest's root namespace, where the unit runs
//! the agent, the switch and the clients in namespaces of their own.
//! docs/service.md says what the guest is and records its results.
//!
//! Every test is ignored on a development host (no systemd as PID 1 there,
//! and they would change the root namespace); each checks at its start
//! that it runs in that guest and panics otherwise. Their waits are the
//! library's (`alb_tests::wait_until` and the command timeouts), which
//! `ALB_TEST_TIME_SCALE` lengthens under TCG. Each starts the unit
//! over a lab of its own and stops it and runs `alb down` when it ends.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

// The package, the unit and their test guest's helpers.
#[path = "system/fixture.rs"]
mod fixture;
// Pings stopped with SIGINT, and their losses.
#[path = "system/pings.rs"]
mod pings;
// dpkg -i: the install, the config file, the upgrade.
#[path = "system/package.rs"]
mod package;
// The start: waiting for the slaves, READY=1, what the agent runs with.
#[path = "system/start.rs"]
mod start;
// The clients, the journal, a stop and `alb down`.
#[path = "system/serve.rs"]
mod serve;
// Reload, restart and the watchdog under pings.
#[path = "system/changes.rs"]
mod changes;
// systemd-analyze verify, enable, the boot transaction.
#[path = "system/unit.rs"]
mod unit;
