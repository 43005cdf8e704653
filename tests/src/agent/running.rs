//! [`Agent`]: a running agent, its process and log, signals and stopping
//! it, and its status read with `alb status --json` (once, or polled until
//! a check accepts it).

use std::{
    path::Path,
    process::ExitStatus,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use nix::sys::signal::Signal;

use super::{AgentCommand, READY, Status, run_alb};
use crate::{Lab, Proc, STOP_TIMEOUT};

/// A running agent (see the `agent` module's documentation). Dropping it
/// stops the agent (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and cleans up
/// after it.
#[derive(Debug)]
pub struct Agent {
    pub(super) proc: Proc,
    pub(super) command: AgentCommand,
}

impl Agent {
    pub(super) fn wait_ready(&mut self) -> Result<()> {
        let timeout = crate::scaled(self.command.ready_timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if self.proc.log().contains(READY) {
                return Ok(());
            }
            if let Some(status) = self.proc.exited()? {
                bail!("alb exited ({status}) before it was ready:\n{}", self.proc.log());
            }
            if Instant::now() >= deadline {
                bail!("alb not ready after {timeout:?}:\n{}", self.proc.log());
            }
            if let Some(check) = self.command.interrupt {
                check()?;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// How it was started.
    pub fn command(&self) -> &AgentCommand {
        &self.command
    }

    /// Starts another agent with the same command (after this one died).
    pub fn start_again(&self, lab: &Lab) -> Result<Self> {
        self.command.start(lab)
    }

    /// The master it runs.
    pub fn master(&self) -> &str {
        &self.command.master
    }

    /// The namespace it runs in.
    pub fn ns(&self) -> &str {
        &self.command.ns
    }

    /// The agent binary.
    pub fn bin(&self) -> &Path {
        &self.command.bin
    }

    /// The agent's process ID.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Everything the agent has logged so far (standard output and error).
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// The file its log goes to.
    pub fn log_path(&self) -> &Path {
        self.proc.log_path()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.proc.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Its exit status once it has exited, without waiting (or reaping).
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.proc.exited()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> Result<bool> {
        Ok(self.proc.exited()?.is_none())
    }

    /// Waits up to `timeout` for it to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.proc.wait_timeout(timeout)
    }

    /// Sends `signal` to it (its process group, by PID).
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        self.proc.signal(signal)
    }

    /// `kill -9`: SIGKILL, then waits (5 s at most) until it is gone.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        self.proc.signal(Signal::SIGKILL)?;
        match self.proc.wait_timeout(Duration::from_secs(5))? {
            Some(status) => Ok(status),
            None => bail!("alb survived SIGKILL:\n{}", self.log()),
        }
    }

    /// [`Agent::stop_with`] SIGTERM and [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.stop_with(Signal::SIGTERM, STOP_TIMEOUT)
    }

    /// Sends `signal` and waits up to `timeout` for the agent to exit;
    /// returns its exit status. If it does not exit in time it is killed
    /// (SIGKILL) and that is an error, with its log.
    pub fn stop_with(&mut self, signal: Signal, timeout: Duration) -> Result<ExitStatus> {
        if self.proc.exited()?.is_none() {
            self.proc.signal(signal)?;
        }
        match self.proc.wait_timeout(timeout)? {
            // Reaps it, and stops what may be left of its group.
            Some(_) => self.proc.stop_within(Duration::ZERO),
            None => {
                let killed = self.proc.stop_within(Duration::ZERO);
                bail!(
                    "alb ignored {signal} for {timeout:?}; killed it ({}):\n{}",
                    killed.map_or_else(|e| format!("{e:#}"), |s| s.to_string()),
                    self.proc.log()
                );
            }
        }
    }

    /// `alb status --master <master> --json`, run in its namespace.
    pub fn status(&self) -> Result<Status> {
        let out = run_alb(self.ns(), self.bin(), &["status", "--master", self.master(), "--json"])?;
        if !out.status.success() {
            bail!(
                "alb status failed ({}): {}\nagent log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log()
            );
        }
        Status::parse(&out.stdout)
    }

    /// Polls the status until `check` accepts it; after `timeout`, an error
    /// naming `what` with the last status and the agent's log.
    pub fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Status) -> bool,
    ) -> Result<Status> {
        let timeout = crate::scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status()?;
            if check(&status) {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; status:\n{status}\n\
                     agent log:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls the agent's log until it contains `needle`, from byte `from`
    /// on (a length of [`Agent::log`] taken earlier); after `timeout`, an
    /// error with the log.
    pub fn wait_log(&self, from: usize, needle: &str, timeout: Duration) -> Result<()> {
        let timeout = crate::scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.get(from..).is_some_and(|l| l.contains(needle)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the agent did not log {needle:?} within {timeout:?}:\n{log}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}
