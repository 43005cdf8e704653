//! Running cargo on the workspace.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use alb_tests::cmd;
use anyhow::{Context as _, Result};

use crate::bootstrap::status;

/// The workspace root (the parent of xtask/).
pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or_else(|| Path::new("."))
}

/// The cargo that runs us (`$CARGO`), else the one on PATH.
pub(crate) fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cargo = Command::new(program);
    cargo.current_dir(root());
    cargo
}

/// The workspace's target directory, as cargo resolves it.
pub(crate) fn target_dir() -> Result<PathBuf> {
    let out = cmd::run(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let meta: serde_json::Value =
        serde_json::from_str(&out).context("cannot parse `cargo metadata`")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` gave no target_directory")
}

/// Builds the agent (`cargo build -p alb-user`) and returns the path of the
/// `alb` binary.
pub(crate) fn build_agent() -> Result<PathBuf> {
    eprintln!("xtask: building the agent (cargo build -p alb-user)");
    status(cargo().args(["build", "-p", "alb-user"]))?;
    let alb = target_dir()?.join("debug").join("alb");
    anyhow::ensure!(alb.is_file(), "the build finished but {} is missing", alb.display());
    Ok(alb)
}
