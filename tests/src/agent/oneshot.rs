//! One-shot `alb` commands ([`run_alb`]: `alb status`, `alb down`, ...),
//! run to completion in a namespace with a timeout.

use std::{path::Path, process::Output, time::Duration};

use anyhow::{Context as _, Result};

use crate::{cmd, netns};

/// How long a one-shot `alb` command ([`run_alb`]) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `bin args...` to completion in namespace `ns` within
/// [`COMMAND_TIMEOUT`] (`alb status`, `alb down`, `alb slave add`, a start
/// that should be refused). One that is still running then gets SIGTERM,
/// SIGKILL 5 s later, and is an error.
pub fn run_alb(ns: &str, bin: &Path, args: &[&str]) -> Result<Output> {
    let mut argv = vec![bin.to_str().context("the alb path is not UTF-8")?];
    argv.extend_from_slice(args);
    cmd::output_within(&mut netns::command(ns, &argv), COMMAND_TIMEOUT)
}
