//! `cargo xtask test`: lint, then the whole suite on the host's hook
//! (TCX), then the clsact pass: the test binaries that cover the data
//! path's life ([`CLSACT_PASS`]) again with `ALB_TEST_HOOK=clsact`, so
//! every agent they start attaches through clsact, the hook of kernels
//! before 6.6 (tests/src/hook.rs); then, once both passed, the smoke list
//! ([`GUEST_SMOKE`]) in the 5.10 guest (`cargo xtask vm-test --kernel 5.10
//! --tests seed,privileges,cli`): the oldest kernel measured, with clsact and
//! bpf() checked on every command.

use std::{
    process::{Command, ExitCode},
    time::Instant,
};

use alb_tests::hook::TEST_HOOK_VAR;
use anyhow::Result;

use crate::{bootstrap, cargo, lint, package, signals, vm};

/// The integration test binaries of the clsact pass: the seed scenario,
/// failover, the data path's life (kill -9 and adoption, `alb down`, slave
/// add and del), the service's restart and upgrade, and the hook itself
/// (each asserts the hook of its pass).
pub(crate) const CLSACT_PASS: [&str; 5] = ["seed", "failover", "runtime", "service", "hooks"];

/// The test binaries the 5.10 guest runs after the host's passes: the seed
/// scenario, the capabilities the agent keeps (CAP_BPF on 5.10) through a
/// failover and a failback that move the clients with no bpf() refused,
/// and the commands (`alb status`, `down`, `slave add|del`, the refusals, a
/// kernel without cls_bpf refused in one line). failover is not in it yet:
/// its deadlines on a moved client's neighbour entry (300 ms times the
/// time scale), read by polling `ip neigh` in every client, missed once in
/// a quiet guest (1.9 s against 1.2 s, docs/kernels.md), and CI must not
/// flake; `cargo xtask vm-test` runs it.
pub(crate) const GUEST_SMOKE: [&str; 3] = ["seed", "privileges", "cli"];

/// The guest's kernel series.
const GUEST_KERNEL: &str = "5.10";

/// Runs both passes (the second also when the first failed, unless it was
/// interrupted: each says what it found); fails if either did.
pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    bootstrap::run()?;
    lint::run()?;
    // The behaviour tests run the agent binary; `cargo test` builds only
    // the library of alb-user (a dependency of the tests), not its binary.
    cargo::build_agent(cargo::Profile::Debug)?;
    // tests/tests/package.rs installs it, and upgrades from the package
    // of an earlier commit (built once, then cached in target/package-at/).
    package::run()?;
    let previous = alb_tests::package::PREVIOUS_FORMAT_COMMIT;
    eprintln!("xtask: the package of {previous} (for the upgrade test)");
    alb_tests::package::package_at(&cargo::target_dir()?, previous)?;
    // alb-ebpf is built for the BPF target only (by alb-user's build
    // script, which also embeds it in the agent under test); it cannot be
    // compiled for the host. Kernel-state tests must not run in parallel.
    let mut whole = cargo::cargo();
    whole.args(["test", "--workspace", "--exclude", "alb-ebpf"]);
    let tcx = pass("the whole suite (tcx)", whole, args)?;
    if tcx > 128 {
        // Interrupted (Ctrl-C): not a failure to go on from.
        return Ok(ExitCode::from(u8::try_from(tcx).unwrap_or(1)));
    }
    // The same package selection as the first pass, so that cargo
    // resolves the same features and runs the binaries it already built
    // (`-p alb-tests` alone would build them again).
    let mut clsact = cargo::cargo();
    clsact.args(["test", "--workspace", "--exclude", "alb-ebpf"]);
    for binary in CLSACT_PASS {
        clsact.args(["--test", binary]);
    }
    clsact.env(TEST_HOOK_VAR, "clsact");
    let clsact = pass(&format!("the clsact pass ({})", CLSACT_PASS.join(", ")), clsact, args)?;
    let failed = [tcx, clsact].into_iter().find(|&code| code != 0);
    if let Some(code) = failed {
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    let tests: Vec<String> = GUEST_SMOKE.iter().map(|&t| t.to_owned()).collect();
    let name = format!("the {GUEST_KERNEL} guest ({})", GUEST_SMOKE.join(", "));
    eprintln!(
        "xtask: {name}: cargo xtask vm-test --kernel {GUEST_KERNEL} --tests {}",
        tests.join(",")
    );
    let started = Instant::now();
    let passed = vm::run(&[GUEST_KERNEL.to_owned()], None, false, &tests)?;
    eprintln!(
        "xtask: {name}: {} in {:.0} s",
        if passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs one pass of `cargo test` (one test at a time, with `args` for the
/// test binaries) and says how long it took; returns its exit code.
fn pass(name: &str, mut cargo: Command, args: &[String]) -> Result<i32> {
    cargo.args(["--", "--test-threads=1"]).args(args).env("RUST_BACKTRACE", "1");
    eprintln!("xtask: {name}: {}", alb_tests::cmd::describe(&cargo));
    let started = Instant::now();
    let status = cargo.status()?;
    let code = signals::exit_code(status);
    eprintln!(
        "xtask: {name}: {} in {:.0} s",
        if code == 0 { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(code)
}
