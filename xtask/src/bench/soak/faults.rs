//! Applying the soak's faults to the lab and the agent: each fault is done
//! and undone (after its hold) before the next, so at most one slave is
//! out at a time. The agent always runs `--keep-datapath` with the soak's
//! config file; a restart keeps the old [`Agent`] until the new one holds
//! the lock, so the old one's drop does not remove the data path the new
//! one adopted.

use std::{path::PathBuf, time::Duration};

use alb_tests::{
    Agent, AgentCommand, Lab, SERVER_IP4,
    agent::{leftovers, run_alb},
};
use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;

use super::{
    rss::Rss,
    schedule::{FaultKind, Planned, Target},
    unix_now,
};
use crate::bench::{Ctx, pause, signals_check};

/// How long the agent may take to log a reload, an adoption, to stop.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One agent process of the soak and how it ended.
pub(super) struct Instance {
    pub(super) number: usize,
    pub(super) pid: u32,
    pub(super) started: f64,
    pub(super) ended: f64,
    /// What ended it (the fault kind, `final stop` or `died`).
    pub(super) ended_by: String,
    pub(super) exit: String,
    pub(super) log: String,
}

/// The lab, the agent and what the faults changed.
pub(super) struct Soak<'a> {
    pub(super) lab: &'a Lab,
    alb: PathBuf,
    config: PathBuf,
    pub(super) agent: Option<Agent>,
    started: f64,
    pub(super) instances: Vec<Instance>,
    pub(super) rss: Rss,
    /// MACs and addresses handed out so far.
    macs: usize,
    addrs: Vec<(usize, String)>,
}

/// The config file: every slave, or all but one, and the options a reload
/// changes with it.
fn config_text(slaves: &[&str], edited: bool) -> String {
    let list: Vec<String> = slaves.iter().map(|s| format!("\"{s}\"")).collect();
    let (lp, rebalance) = if edited { (2, 5) } else { (1, 10) };
    format!(
        "slaves = [{}]\nlp_interval = {lp}\nrebalance_interval = {rebalance}\n",
        list.join(", ")
    )
}

impl<'a> Soak<'a> {
    /// Writes the config file and starts the first agent.
    pub(super) fn start(ctx: &Ctx, lab: &'a Lab) -> Result<Self> {
        let config = lab.log_dir().join("soak.toml");
        let names: Vec<&str> = lab.slaves().iter().map(|s| s.name.as_str()).collect();
        std::fs::write(&config, config_text(&names, false))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let mut soak = Self {
            lab,
            alb: PathBuf::from(&ctx.alb),
            config,
            agent: None,
            started: unix_now(),
            instances: Vec::new(),
            rss: Rss::start(),
            macs: 0,
            addrs: Vec::new(),
        };
        let agent = soak.command(true)?.start(lab)?;
        lab.add_server_addrs()?;
        soak.adopt(agent);
        Ok(soak)
    }

    /// `alb --master M --config FILE [--keep-datapath]`.
    pub(super) fn command(&self, keep: bool) -> Result<AgentCommand> {
        let path = self.config.to_str().context("the config path is not UTF-8")?;
        let mut args = vec!["--config", path];
        if keep {
            args.push("--keep-datapath");
        }
        Ok(AgentCommand::on(self.lab, &self.alb, &[])
            .args(&args)
            .ready_timeout(Duration::from_secs(30))
            .interrupt(signals_check))
    }

    /// Makes `agent` the current one (its memory followed from now on).
    pub(super) fn adopt(&mut self, agent: Agent) {
        self.rss.follow(agent.pid(), self.instances.len() + 1);
        self.started = unix_now();
        self.agent = Some(agent);
    }

    pub(super) fn agent(&self) -> Result<&Agent> {
        self.agent.as_ref().context("no agent is running")
    }

    /// Records the current agent as ended by `by` with `exit`, and takes
    /// it out (the caller drops it once the next agent holds the lock).
    pub(super) fn retire(&mut self, by: &str, exit: String) -> Option<Agent> {
        let agent = self.agent.take()?;
        self.rss.follow(0, 0);
        self.instances.push(Instance {
            number: self.instances.len() + 1,
            pid: agent.pid(),
            started: self.started,
            ended: unix_now(),
            ended_by: by.to_owned(),
            exit,
            log: agent.log(),
        });
        Some(agent)
    }

    /// Applies `fault` and undoes it after its hold; a note on what was
    /// done.
    pub(super) fn apply(&mut self, fault: &Planned) -> Result<String> {
        let hold = Duration::from_secs_f64(fault.hold_s);
        let lab = self.lab;
        match (fault.kind, fault.target) {
            (FaultKind::SwitchFlap, Target::Slave(i)) => {
                let port = &lab.slave(i).port;
                lab.set_link(lab.sw(), port, false)?;
                pause(hold)?;
                lab.set_link(lab.sw(), port, true)?;
                Ok(format!("switch port {port} down {:.2} s", fault.hold_s))
            }
            (FaultKind::SlaveFlap, Target::Slave(i)) => {
                let name = &lab.slave(i).name;
                lab.set_link(lab.srv(), name, false)?;
                pause(hold)?;
                lab.set_link(lab.srv(), name, true)?;
                Ok(format!("{name} down {:.2} s", fault.hold_s))
            }
            (FaultKind::SlaveDelAdd, Target::Slave(i)) => {
                let name = lab.slave(i).name.clone();
                self.slave_command("del", &name)?;
                pause(hold)?;
                self.slave_command("add", &name)?;
                Ok(format!("alb slave del {name}, add {:.2} s later", fault.hold_s))
            }
            (FaultKind::Reload, Target::Slave(i)) => {
                let name = &lab.slave(i).name;
                let all: Vec<&str> = lab.slaves().iter().map(|s| s.name.as_str()).collect();
                let fewer: Vec<&str> = all.iter().copied().filter(|s| s != name).collect();
                let dropped = self.reload(&config_text(&fewer, true))?;
                pause(hold)?;
                let back = self.reload(&config_text(&all, false))?;
                Ok(format!("{dropped}; {:.2} s later {back}", fault.hold_s))
            }
            (FaultKind::ClientMac, Target::Client(n)) => {
                self.macs += 1;
                let mac =
                    format!("02:a1:c2:00:{:02}:{:02}", self.macs / 100 % 100, self.macs % 100);
                let c = lab.client(n);
                lab.ip(&c.ns, &["link", "set", &c.dev, "address", &mac])?;
                Ok(format!("c{n} now at {mac}"))
            }
            (FaultKind::ClientAddr, Target::Client(n)) => self.new_address(n),
            (FaultKind::KeepRestart, Target::Agent) => {
                let mut old = self.agent.take().context("no agent to restart")?;
                let status = old.stop_with(Signal::SIGTERM, AGENT_TIMEOUT)?;
                self.agent = Some(old);
                let old = self.retire(fault.kind.name(), status.to_string());
                if !status.success() {
                    bail!("the agent stopped with {status} on SIGTERM");
                }
                pause(hold)?;
                let note = self.restart()?;
                drop(old);
                Ok(format!("stopped ({status}), {note} {:.2} s later", fault.hold_s))
            }
            (FaultKind::Kill9, Target::Agent) => {
                let mut old = self.agent.take().context("no agent to kill")?;
                let status = old.kill9()?;
                self.agent = Some(old);
                let old = self.retire(fault.kind.name(), status.to_string());
                pause(hold)?;
                let note = self.restart()?;
                drop(old);
                Ok(format!("killed ({status}), {note} {:.2} s later", fault.hold_s))
            }
            (kind, target) => bail!("no fault {kind:?} on {target:?}"),
        }
    }

    /// Starts a new agent that adopts the data path the last one left.
    pub(super) fn restart(&mut self) -> Result<String> {
        let agent = self.command(true)?.start(self.lab)?;
        let adopted = "adopted the data path of an earlier agent";
        agent.wait_log(0, adopted, AGENT_TIMEOUT)?;
        self.adopt(agent);
        Ok("a new agent adopted the data path".to_owned())
    }

    /// Starts a new agent after a restart failed half-way, whether or not
    /// a data path was left to adopt (the master's addresses given again).
    fn start_over(&mut self) -> Result<String> {
        let agent = self.command(true)?.start(self.lab)?;
        let adopted = agent.log().contains("adopted the data path");
        self.lab.add_server_addrs()?;
        self.adopt(agent);
        Ok(format!("a new agent started ({})", if adopted { "adopted" } else { "from scratch" }))
    }

    /// `alb slave add|del NAME --master M`; an error with its message
    /// unless it exits 0.
    fn slave_command(&self, verb: &str, name: &str) -> Result<()> {
        let lab = self.lab;
        let out = run_alb(lab.srv(), &self.alb, &["slave", verb, name, "--master", lab.master()])?;
        if !out.status.success() {
            bail!(
                "alb slave {verb} {name}: {} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            );
        }
        Ok(())
    }

    /// Writes `text` to the config file, sends SIGHUP and waits for the
    /// agent's `reloaded` line (an error if it logs `not reloaded`).
    fn reload(&mut self, text: &str) -> Result<String> {
        std::fs::write(&self.config, text)
            .with_context(|| format!("cannot write {}", self.config.display()))?;
        let agent = self.agent.as_mut().context("no agent to reload")?;
        let from = agent.log().len();
        agent.signal(Signal::SIGHUP)?;
        agent.wait_log(from, " reloaded", AGENT_TIMEOUT)?;
        let log = agent.log();
        let said = log.get(from..).unwrap_or_default();
        if said.contains("not reloaded") {
            bail!("the reload was refused: {}", said.trim());
        }
        let line = said.lines().find(|l| l.contains(" reloaded")).unwrap_or_default();
        Ok(line
            .split_once(" reloaded")
            .map_or(line, |(_, r)| r)
            .trim_start_matches(':')
            .trim()
            .to_owned())
    }

    /// A new address on client `n` (198.18.0.101 on, a hundred at most:
    /// the oldest goes first) that pings the server from it.
    fn new_address(&mut self, n: usize) -> Result<String> {
        let lab = self.lab;
        let k = self.addrs.len() % 100;
        let addr = format!("198.18.0.{}", 101 + k);
        if self.addrs.len() >= 100 {
            let (owner, old) = self.addrs.remove(0);
            let c = lab.client(owner);
            lab.ip(&c.ns, &["addr", "del", &format!("{old}/24"), "dev", &c.dev])?;
        }
        let c = lab.client(n);
        lab.ip(&c.ns, &["addr", "add", &format!("{addr}/24"), "dev", &c.dev])?;
        self.addrs.push((n, addr.clone()));
        let out = lab.exec(
            &c.ns,
            &["ping", "-n", "-q", "-c", "5", "-i", "0.02", "-W", "1", "-I", &addr, SERVER_IP4],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text.lines().find(|l| l.contains("transmitted")).unwrap_or("no summary");
        Ok(format!("c{n} gained {addr}: {summary}"))
    }

    /// Puts every slave back after a fault that failed half-way: the full
    /// config file, reloaded, and `alb slave add` for any still missing
    /// (best effort).
    pub(super) fn restore_slaves(&mut self) {
        let names: Vec<&str> = self.lab.slaves().iter().map(|s| s.name.as_str()).collect();
        let missing = |soak: &Self| -> Vec<String> {
            let Ok(status) = soak.agent().and_then(Agent::status) else { return Vec::new() };
            names.iter().filter(|n| status.slave(n).is_none()).map(|n| (*n).to_owned()).collect()
        };
        if missing(self).is_empty() {
            return;
        }
        if let Err(e) = self.reload(&config_text(&names, false)) {
            eprintln!("bench: soak: repairing with a reload: {e:#}");
        }
        for name in missing(self) {
            if let Err(e) = self.slave_command("add", &name) {
                eprintln!("bench: soak: repairing with slave add: {e:#}");
            }
        }
    }

    /// Ends the soak's last agent as the final clean stop: the one running
    /// `--keep-datapath` stops (keeping the data path), an agent without
    /// it adopts the data path and then stops, removing everything. The
    /// last agent's exit status and what it left (read before the
    /// [`Agent`] is dropped, which would remove it).
    pub(super) fn final_stop(&mut self) -> Result<(String, Vec<String>)> {
        let mut kept = self.agent.take().context("no agent at the end")?;
        let status = kept.stop_with(Signal::SIGTERM, AGENT_TIMEOUT)?;
        self.agent = Some(kept);
        let kept = self.retire("final stop (--keep-datapath)", status.to_string());
        if !status.success() {
            bail!("the last soak agent stopped with {status}");
        }
        let last = self.command(false)?.start(self.lab)?;
        drop(kept);
        self.adopt(last);
        signals_check()?;
        let mut last = self.agent.take().context("no final agent")?;
        let status = last.stop_with(Signal::SIGTERM, AGENT_TIMEOUT)?;
        self.agent = Some(last);
        let last = self.retire("final stop", status.to_string());
        let left = leftovers(self.lab, self.lab.master())?;
        drop(last);
        Ok((status.to_string(), left))
    }

    /// Whether the current agent still runs; if it died on its own, it is
    /// recorded and a new one adopts what it left; if a restart failed
    /// half-way (no agent), a new one is started.
    pub(super) fn check_alive(&mut self) -> Result<Option<String>> {
        let Some(agent) = self.agent.as_mut() else {
            let note = self.start_over()?;
            return Ok(Some(format!("no agent ran after the fault; {note}")));
        };
        let Some(status) = agent.exited()? else { return Ok(None) };
        let old = self.retire("died", status.to_string());
        let note = self.restart()?;
        drop(old);
        Ok(Some(format!("the agent exited on its own ({status}); {note}")))
    }
}
