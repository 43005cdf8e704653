//! `cargo xtask lint` (and the first step of `cargo xtask test`): rustfmt
//! and clippy with warnings as errors on every crate, the BPF crate
//! included (checked for the BPF target with the nightly that builds it).

use std::process::Command;

use anyhow::Result;

use crate::{bootstrap::status, cargo};

pub(crate) fn run() -> Result<()> {
    eprintln!("xtask: cargo fmt --all --check");
    status(cargo::cargo().args(["fmt", "--all", "--check"]))?;
    eprintln!("xtask: cargo clippy (host crates, all targets, -D warnings)");
    status(cargo::cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "alb-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    eprintln!("xtask: cargo +nightly clippy (alb-ebpf for bpfel-unknown-none, -D warnings)");
    let target_dir = cargo::target_dir()?.join("bpf-clippy");
    let mut bpf = Command::new("rustup");
    bpf.current_dir(cargo::root())
        .args(["run", "nightly", "cargo", "clippy", "-p", "alb-ebpf"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--", "-D", "warnings"])
        // The stable cargo that runs xtask must not leak into nightly's.
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    status(&mut bpf)
}
