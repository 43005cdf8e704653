//! `cargo xtask vm-test --systemd`: the package and the unit under a real
//! systemd. The guest boots Debian 12 (rootfs.rs) from an initramfs, with
//! systemd as PID 1; once it reaches multi-user.target, alb-vmtest.service
//! runs the test binaries (suite.rs builds them and adds them to the
//! initramfs; the busybox guests' runner, guest-tests.sh, runs them):
//! tests/tests/system.rs unless `--tests` names others, with the .deb of
//! `cargo xtask package` in `ALB_TEST_DEB`. The host passes the guest only
//! when every test each binary lists ran and passed.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{
    Guest, boot, initramfs,
    kernel::{self, Kernel},
    print_summary, rootfs,
    suite::{self, TestBinary},
    tests_summary,
};
use crate::{bootstrap::status, package};

/// The guest: enough memory for the unpacked root (~110 MB) and the test
/// binaries, the archives themselves until the kernel frees them, and
/// systemd; /sbin/init (systemd, from systemd-sysv) runs from the
/// initramfs, which stays the root. Time for the boot and each binary
/// under TCG (system.rs takes 10-15 minutes).
fn systemd_guest(binaries: usize) -> Guest {
    let binaries = u64::try_from(binaries).unwrap_or(u64::MAX);
    Guest {
        memory_mib: 2048,
        append: "console=ttyS0 quiet loglevel=1 panic=-1 tsc=reliable rdinit=/sbin/init",
        timeout: Duration::from_secs(300 + 1500 * binaries),
    }
}

/// The test binaries the guest runs without `--tests`.
pub(super) const DEFAULT_TESTS: &[&str] = &["system"];

/// The kernel of `--systemd` without `--kernel`: TCX. The unit loads the
/// clsact modules the older kernels need anyway, and the guest checks it
/// did; `--kernel all` adds 6.1, where the agent attaches through them.
pub(super) const DEFAULT_SERIES: &str = "6.12";

/// Where the runner and the package go in the guest.
const GUEST_DIR: &str = "opt/alb-vmtest";

/// The runner's unit: the test binaries' lines to the serial console as
/// libtest prints them into a pipe (into a terminal it colours them, and
/// the host parses plain lines), the package's
/// path in `ALB_TEST_DEB`; it powers the guest off when the runner ends
/// (at once: nothing in the guest needs a clean shutdown). A runner that
/// hangs is the host's to stop (the guest then did not finish).
const TEST_UNIT: &str = "\
[Unit]
Description=alb vm-test: the test binaries under systemd
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=simple
Environment=ALB_TEST_DEB=/opt/alb-vmtest/alb.deb
ExecStart=/bin/sh -c '/opt/alb-vmtest/run | cat'
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
";

/// Units a test guest has no use for (terminals, timers, file system
/// checks, modules and mounts nothing here uses): masked, for a shorter
/// boot under TCG.
const MASKED: &[&str] = &[
    "getty@tty1.service",
    "serial-getty@ttyS0.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-pstore.service",
    "modprobe@drm.service",
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "modprobe@dm_mod.service",
    "modprobe@efi_pstore.service",
    "dev-hugepages.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
];

/// Modules the lab and the agent need (dependencies are added); installed
/// in /lib/modules with their index, for the kernel to load on demand.
const MODULES: &[&str] = &["veth", "bridge", "sch_ingress", "cls_bpf"];

/// Files of a module tree that modprobe reads besides the modules.
const MODULE_INDEXES: &[&str] = &["modules.builtin", "modules.builtin.modinfo", "modules.order"];

/// Boots one systemd guest per kernel series and runs the test binaries
/// `tests` names (system.rs when it names none) in it.
pub(super) fn run(series: &[&str], cache: &Path, logs: &Path, tests: &[String]) -> Result<bool> {
    let deb = package::run()?;
    let names: Vec<String> = if tests.is_empty() {
        DEFAULT_TESTS.iter().map(|&name| name.to_owned()).collect()
    } else {
        tests.to_vec()
    };
    let (binaries, alb) = suite::build(&names)?;
    let base = rootfs::prepare(cache)?;
    let mut all_ok = true;
    let mut summary = Vec::new();
    for &series in series {
        let kernel = kernel::prepare(series, cache)?;
        let work = cache.join(format!("work-systemd-{series}"));
        let initrd = initramfs(&kernel, &base, &deb, &binaries, &alb, &work)?;
        let log = logs.join(format!("{series}-systemd.log"));
        eprintln!(
            "vm-test: booting Debian 12 with systemd on {} under QEMU TCG with {}; \
             console log in {}",
            kernel.package,
            names.join(","),
            log.display()
        );
        let started = Instant::now();
        let report = boot(&kernel.vmlinuz, &initrd, &log, &systemd_guest(binaries.len()))?;
        let secs = started.elapsed().as_secs();
        let (ok, line) = tests_summary(series, &kernel.package, secs, &report, &binaries);
        all_ok &= ok;
        summary.push(line);
    }
    print_summary(&summary);
    Ok(all_ok)
}

/// The guest's initramfs: the cached root filesystem's archive, then an
/// archive of what this run adds to the root, then one of the test
/// binaries (the kernel unpacks them all, in order).
fn initramfs(
    kernel: &Kernel,
    base: &Path,
    deb: &Path,
    binaries: &[TestBinary],
    alb: &Path,
    work: &Path,
) -> Result<std::path::PathBuf> {
    if work.exists() {
        fs::remove_dir_all(work).with_context(|| format!("cannot clear {}", work.display()))?;
    }
    let stage = work.join("overlay");
    fs::create_dir_all(&stage)?;
    stage_overlay(kernel, deb, &stage)?;
    let overlay = work.join("overlay.cpio");
    rootfs::pack(&stage, &overlay, true)?;
    let mut tree = initramfs::Tree::default();
    suite::add_to_tree(&mut tree, binaries, alb, work)?;
    // Not the host's libraries: the root has Debian 12's own, and /lib and
    // /lib64 are links there (usr/lib, usr/lib64) that a directory in the
    // archive would replace, taking /sbin/init's target with them.
    for link in ["lib", "lib64"] {
        tree.remove(link);
    }
    let tests = work.join("tests.cpio.gz");
    initramfs::write(&tree, &tests)?;
    let initrd = work.join("initrd.cpio");
    fs::copy(base, &initrd).with_context(|| format!("cannot copy {}", base.display()))?;
    let mut out = fs::OpenOptions::new().append(true).open(&initrd)?;
    out.write_all(&fs::read(&overlay)?)?;
    out.write_all(&fs::read(&tests)?)?;
    Ok(initrd)
}

/// What this run adds to the root: the runner and its unit, the package,
/// the masks, the kernel's modules.
fn stage_overlay(kernel: &Kernel, deb: &Path, stage: &Path) -> Result<()> {
    let dir = stage.join(GUEST_DIR);
    write(&dir.join("run"), suite::RUNNER.as_bytes(), 0o755)?;
    write(&dir.join("alb.deb"), &fs::read(deb)?, 0o644)?;
    let units = stage.join("etc/systemd/system");
    write(&units.join("alb-vmtest.service"), TEST_UNIT.as_bytes(), 0o644)?;
    let wants = units.join("multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    symlink("../alb-vmtest.service", wants.join("alb-vmtest.service"))?;
    for unit in MASKED {
        symlink("/dev/null", units.join(unit))?;
    }
    write(&stage.join("etc/hostname"), b"alb-vm\n", 0o644)?;
    modules(kernel, stage)
}

/// The modules in `usr/lib/modules/<release>/` (Debian 12 has /lib ->
/// usr/lib), decompressed, with the index depmod makes.
fn modules(kernel: &Kernel, stage: &Path) -> Result<()> {
    let release = kernel
        .modules
        .file_name()
        .context("the kernel's module directory has no name")?
        .to_string_lossy()
        .into_owned();
    let tree = stage.join("usr/lib/modules").join(&release);
    let extra = tree.join("kernel/alb-vmtest");
    fs::create_dir_all(&extra)?;
    kernel::modules(kernel, MODULES, &extra)?;
    for index in MODULE_INDEXES {
        fs::copy(kernel.modules.join(index), tree.join(index))
            .with_context(|| format!("cannot copy {index} of {}", kernel.package))?;
    }
    // depmod -b reads BASE/lib/modules: a link for as long as it runs
    // (the archive must not replace the root's own /lib link).
    let lib = stage.join("lib");
    symlink("usr/lib", &lib)?;
    let depmod = status(Command::new("depmod").arg("-b").arg(stage).arg(&release));
    fs::remove_file(&lib)?;
    depmod.context("depmod (cargo xtask bootstrap installs kmod)")
}

fn write(to: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(to, bytes).with_context(|| format!("cannot write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", to.display()))
}
