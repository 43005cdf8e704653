//! Running programs in the lab's namespaces: `ip -n`, one-shot commands,
//! sysctls, and long-running processes ([`Proc`]) that the lab stops when it
//! is dropped.

use std::{
    process::Output,
    sync::{Arc, atomic::Ordering},
};

use anyhow::{Context as _, Result};

use super::Lab;
use crate::{cmd, netns, proc::Proc};

impl Lab {
    /// `ip -n <ns> args...`; fails unless it exits 0, returns its output.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        cmd::ip(&full)
    }

    /// Runs `argv` in namespace `ns` and returns its output, whatever its
    /// exit status.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Result<Output> {
        cmd::output(&mut netns::command(ns, argv))
    }

    /// Runs `argv` in namespace `ns`; fails unless it exits 0, returns its
    /// standard output.
    pub fn run(&self, ns: &str, argv: &[&str]) -> Result<String> {
        cmd::run(&mut netns::command(ns, argv))
    }

    /// Sets sysctl `key` to `value` in namespace `ns`.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        self.run(ns, &["sysctl", "-q", "-w", &format!("{key}={value}")]).map(drop)
    }

    /// Starts `argv` in namespace `ns` as a long-running process; see
    /// [`Proc`].
    pub fn spawn(&self, ns: &str, argv: &[&str]) -> Result<Proc> {
        self.spawn_env(ns, argv, &[])
    }

    /// [`Lab::spawn`] with extra environment variables.
    pub fn spawn_env(&self, ns: &str, argv: &[&str], env: &[(&str, &str)]) -> Result<Proc> {
        let program = argv.first().context("spawn: empty command")?;
        let name = program.rsplit('/').next().unwrap_or(program);
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let log = self.log_dir.join(format!("{n:02}-{name}.log"));
        let mut command = netns::command(ns, argv);
        command.envs(env.iter().copied());
        Proc::start(command, name, log, Arc::clone(&self.registry))
    }
}
