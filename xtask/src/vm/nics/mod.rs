//! `cargo xtask vm-test --nics`: alb on NICs that filter. The guest's
//! slaves are QEMU-emulated NICs with their real drivers (nic17:
//! virtio-net, nic19: e1000e) on tap devices bridged in a private
//! namespace on the host (host.rs), where the clients are namespaces too.
//! veth accepts every frame; these NICs drop unicast for MACs that are
//! not theirs and multicast for groups not on their list, so the agent's
//! filter sync is what makes the scenarios pass: each runs again with
//! `--no-filter-sync`, and the checks that depend on the filters must
//! fail there (report.rs). The host drives everything (scenarios.rs):
//! pings from the client namespaces every 20 ms, link cuts through QMP,
//! shell lines run in the guest over its second serial port (guest.rs).

mod guest;
mod host;
mod links;
mod pings;
mod report;
mod scenarios;

use std::{fs, time::Instant};

use anyhow::Result;

use self::{guest::Guest, host::Switch, report::Report, scenarios::Scenarios};
use super::{initramfs, kernel};
use crate::{bootstrap, cargo, signals};

/// `cargo xtask vm-test --nics --kernel K`.
pub(crate) fn run(kernels: &[String]) -> Result<bool> {
    bootstrap::run()?;
    alb_tests::require_root()?;
    signals::catch()?;
    let root = cargo::target_dir()?;
    let (cache, logs) = (root.join("vm-cache"), root.join("vm-logs"));
    fs::create_dir_all(&cache)?;
    fs::create_dir_all(&logs)?;
    let series: Vec<&str> = if kernels.iter().any(|k| k == "all") || kernels.is_empty() {
        kernel::SERIES.to_vec()
    } else {
        kernels.iter().map(String::as_str).collect()
    };
    let alb = cargo::build_agent(cargo::Profile::Release)?;
    let mut all_ok = true;
    let mut summary = Vec::new();
    for series in series {
        signals::check()?;
        let kernel = kernel::prepare(series, &cache)?;
        let work = cache.join(format!("work-{series}-nics"));
        fs::create_dir_all(&work)?;
        let initrd = work.join("initrd.gz");
        initramfs::build(&kernel, &alb, "nics", "0", &work, &initrd)?;
        let log = logs.join(format!("{series}-nics.log"));
        eprintln!(
            "vm-test --nics: booting {} under QEMU TCG with virtio-net and e1000e slaves; \
             console log in {}",
            kernel.package,
            log.display()
        );
        let started = Instant::now();
        let mut report = Report::new(guest::Log::create(&log)?);
        let finished = one_guest(&kernel.vmlinuz, &initrd, &work, &mut report);
        let secs = started.elapsed().as_secs();
        let failed = report.failed();
        let ok = finished.is_ok() && failed.is_empty() && report.passed() > 0;
        all_ok &= ok;
        let mut line = format!(
            "{series:<6} {} (nics): {} as expected ({} of them failures without filter sync), \
             {} not ({secs} s)",
            kernel.package,
            report.passed(),
            report.expected_failures(),
            failed.len()
        );
        if let Err(error) = &finished {
            line.push_str(&format!(" [stopped: {error:#}]"));
        }
        if !failed.is_empty() {
            line.push_str(&format!(" [{}]", failed.join(", ")));
        }
        summary.push(line);
        for (name, ms) in &report.outages {
            summary.push(format!("         outage {name}: {ms} ms"));
        }
    }
    println!("\nvm-test --nics summary:");
    for line in &summary {
        println!("  {line}");
    }
    Ok(all_ok)
}

/// Builds the host's switch, boots the guest, runs every scenario with
/// filter sync and without, and removes it all (also on failure).
fn one_guest(
    vmlinuz: &std::path::Path,
    initrd: &std::path::Path,
    work: &std::path::Path,
    report: &mut Report,
) -> Result<()> {
    let switch = Switch::up()?;
    let log = report.log();
    let mut guest = Guest::boot(vmlinuz, initrd, &switch.sw(), work, log)?;
    for sync in [true, false] {
        signals::check()?;
        Scenarios { guest: &mut guest, switch: &switch, report, sync, on_nic: [1, 2] }.run()?;
    }
    guest.shut_down()
}
