//! [`AgentCommand`]: how to start the agent in a lab (binary, master,
//! slaves, arguments, environment), and starting it until it is
//! [`READY`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result};

use super::Agent;
use crate::Lab;

/// How long the agent may take to attach everything and log [`READY`].
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What the agent logs once it is fully up (data path, control socket).
pub const READY: &str = "ready:";

/// How to start the agent: `bin --master <master> --iface ... <args>` in a
/// lab's server namespace, with some environment.
#[derive(Clone, Debug)]
pub struct AgentCommand {
    pub(super) bin: PathBuf,
    pub(super) ns: String,
    pub(super) master: String,
    /// Everything after the binary.
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub(super) ready_timeout: Duration,
    pub(super) interrupt: Option<fn() -> Result<()>>,
}

impl AgentCommand {
    /// `bin --master <the lab's master> --iface <each slave of the lab>`.
    pub fn new(lab: &Lab, bin: impl Into<PathBuf>) -> Self {
        let ifaces: Vec<&str> = lab.slaves().iter().map(|s| s.name.as_str()).collect();
        Self::on(lab, bin, &ifaces)
    }

    /// `bin --master <the lab's master> --iface <each of ifaces>`.
    pub fn on(lab: &Lab, bin: impl Into<PathBuf>, ifaces: &[&str]) -> Self {
        let master = lab.master().to_owned();
        let mut args = vec!["--master".to_owned(), master.clone()];
        for iface in ifaces {
            args.extend(["--iface".to_owned(), (*iface).to_owned()]);
        }
        Self {
            bin: bin.into(),
            ns: lab.srv().to_owned(),
            master,
            args,
            env: Vec::new(),
            ready_timeout: READY_TIMEOUT,
            interrupt: None,
        }
    }

    /// For master `name` instead of the lab's (a second master in the
    /// same lab).
    #[must_use]
    pub fn for_master(mut self, name: &str) -> Self {
        self.args[1] = name.to_owned();
        name.clone_into(&mut self.master);
        self
    }

    /// With more arguments after the slaves (`--primary veth19`, ...).
    #[must_use]
    pub fn args(mut self, extra: &[&str]) -> Self {
        self.args.extend(extra.iter().map(|s| (*s).to_owned()));
        self
    }

    /// Running another binary (a copy, a wrapper) with the same arguments.
    #[must_use]
    pub fn with_bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = bin.into();
        self
    }

    /// With environment variable `key` set to `value` (`RUST_LOG`).
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Waiting up to `timeout` for [`READY`] (default [`READY_TIMEOUT`]).
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Calling `check` while waiting for the agent, which gives up with its
    /// error (xtask's Ctrl-C check).
    #[must_use]
    pub fn interrupt(mut self, check: fn() -> Result<()>) -> Self {
        self.interrupt = Some(check);
        self
    }

    /// The agent binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The master the agent runs.
    pub fn master(&self) -> &str {
        &self.master
    }

    /// The namespace it runs in.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The arguments after the binary.
    pub fn arguments(&self) -> &[String] {
        &self.args
    }

    /// Starts the agent and waits until it has logged [`READY`]. A start
    /// that fails (the agent exits first, or is not ready in time) stops
    /// what was started, removes what it left and returns the agent's log
    /// in the error.
    pub fn start(&self, lab: &Lab) -> Result<Agent> {
        let bin = self.bin.to_str().context("the alb path is not UTF-8")?;
        let mut argv = vec![bin];
        argv.extend(self.args.iter().map(String::as_str));
        let env: Vec<(&str, &str)> =
            self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let proc = lab.spawn_env(&self.ns, &argv, &env)?;
        let mut agent = Agent { proc, command: self.clone() };
        agent.wait_ready()?;
        Ok(agent)
    }
}
