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

/// Which build of the agent: the tests and the demo use the debug build;
/// the benchmark and the guests the release build users run.
#[derive(Clone, Copy)]
pub(crate) enum Profile {
    Debug,
    Release,
}

/// Builds the agent (`cargo build [--release] -p alb-user`) and returns the
/// path of the `alb` binary.
pub(crate) fn build_agent(profile: Profile) -> Result<PathBuf> {
    let (flags, dir): (&[&str], _) = match profile {
        Profile::Debug => (&[], "debug"),
        Profile::Release => (&["--release"], "release"),
    };
    let mut build = cargo();
    build.arg("build").args(flags).args(["-p", "alb-user"]);
    eprintln!("xtask: building the agent ({})", cmd::describe(&build));
    status(&mut build)?;
    let alb = target_dir()?.join(dir).join("alb");
    anyhow::ensure!(alb.is_file(), "the build finished but {} is missing", alb.display());
    Ok(alb)
}
