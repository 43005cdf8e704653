//! `cargo xtask bootstrap`: installs what building and testing alb needs and
//! a fresh machine lacks, and only that, saying what it does.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use alb_tests::cmd;
use anyhow::{Context as _, Result, bail};

/// Debian packages: LLVM 22 for bpf-linker, and the lab's tools.
pub(crate) const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "bpftool",
    "iproute2",
    "iputils-ping",
    "tcpdump",
    "iperf3",
    "arping",
    "ethtool",
    // systemd-analyze, which checks the unit file (tests/tests/service.rs).
    "systemd",
    // promtool, which checks the shipped alert rules (tests/tests/metrics.rs).
    "prometheus",
    // cargo xtask vm-test: the guests and their initramfs.
    "qemu-system-x86",
    "busybox-static",
    // cargo xtask vm-test --systemd: its Debian root filesystem, packed as
    // an initramfs; depmod for the kernel modules copied into it.
    "debootstrap",
    "cpio",
    "kmod",
];

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPFFS: &str = "/sys/fs/bpf";

fn say(msg: &str) {
    eprintln!("bootstrap: {msg}");
}

/// Runs every step; each checks first and acts only when something is
/// missing.
pub(crate) fn run() -> Result<()> {
    alb_tests::require_root().context("bootstrap installs packages and mounts bpffs")?;
    debian_packages()?;
    rust_src()?;
    bpf_linker()?;
    bpffs()?;
    say("packages, rust-src, bpf-linker 0.13.0 and bpffs are in place");
    Ok(())
}

fn debian_packages() -> Result<()> {
    if which("dpkg-query").is_none() {
        say(&format!(
            "no dpkg-query: not a Debian system; make sure these are installed: {}",
            DEBIAN_PACKAGES.join(" ")
        ));
        return Ok(());
    }
    let mut missing = Vec::new();
    for &package in DEBIAN_PACKAGES {
        let out = cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))?;
        if String::from_utf8_lossy(&out.stdout).trim() != "install ok installed" {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    say(&format!(
        "installing Debian packages: {} (apt-get update, then apt-get install)",
        missing.join(" ")
    ));
    apt_get(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(missing);
    apt_get(&args)
}

fn apt_get(args: &[&str]) -> Result<()> {
    let mut apt = Command::new("apt-get");
    apt.arg("-q")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null());
    status(&mut apt)
}

fn rust_src() -> Result<()> {
    if which("rustup").is_none() {
        say("no rustup: make sure the nightly toolchain with rust-src and clippy is installed");
        return Ok(());
    }
    let out = cmd::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !out.status.success() {
        say("the nightly toolchain is missing: installing it with rust-src and clippy");
        return status(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
            "--component",
            "clippy",
        ]));
    }
    let installed = String::from_utf8_lossy(&out.stdout);
    // rust-src: the BPF build compiles core; clippy: `cargo xtask lint`
    // checks the BPF crate with the nightly that builds it.
    for component in ["rust-src", "clippy"] {
        if !installed.lines().any(|l| l.trim().starts_with(component)) {
            say(&format!("adding {component} to the nightly toolchain"));
            status(Command::new("rustup").args([
                "component",
                "add",
                component,
                "--toolchain",
                "nightly",
            ]))?;
        }
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    let cargo_bin = cargo_home().join("bin");
    let installed = which("bpf-linker").or_else(|| {
        let p = cargo_bin.join("bpf-linker");
        p.is_file().then_some(p)
    });
    if let Some(linker) = &installed {
        let out = cmd::output(Command::new(linker).arg("--version"))?;
        if String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION) {
            put_on_path(&cargo_bin, linker);
            return Ok(());
        }
    }
    if !Path::new(LLVM_PREFIX).join("bin/llvm-config").exists() {
        bail!("{LLVM_PREFIX}/bin/llvm-config is missing: install llvm-22-dev first");
    }
    say(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (cargo install, about a minute)"
    ));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    status(
        Command::new(cargo)
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            // The default llvm-config here may be another LLVM (14 on
            // Debian 12), and bpf-linker's build fails to link against it.
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )?;
    let linker = cargo_bin.join("bpf-linker");
    if !linker.is_file() {
        bail!("cargo install bpf-linker finished, but {} is missing", linker.display());
    }
    put_on_path(&cargo_bin, &linker);
    Ok(())
}

/// Makes `linker` (in `cargo_bin`) reachable through PATH for the builds this
/// process starts, if it is not already.
fn put_on_path(cargo_bin: &Path, linker: &Path) {
    if which("bpf-linker").is_some() {
        return;
    }
    say(&format!(
        "{} is not on PATH; adding {} for this run",
        linker.display(),
        cargo_bin.display()
    ));
    let mut paths = vec![cargo_bin.to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    if let Ok(joined) = std::env::join_paths(paths) {
        // SAFETY: called from the main thread before any other thread is
        // started, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("PATH", joined) };
    }
}

fn bpffs() -> Result<()> {
    let mounted =
        Command::new("mountpoint").args(["-q", BPFFS]).status().is_ok_and(|s| s.success());
    if mounted {
        return Ok(());
    }
    say(&format!("mounting bpffs at {BPFFS} (the agent pins its maps there)"));
    std::fs::create_dir_all(BPFFS).with_context(|| format!("cannot create {BPFFS}"))?;
    status(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

/// `program` as found on PATH.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Runs `cmd` with inherited output; fails unless it exits 0.
pub(crate) fn status(cmd: &mut Command) -> Result<()> {
    let line = cmd::describe(cmd);
    let status = cmd.status().with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}
