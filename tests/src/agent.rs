//! The agent under test: `alb` started in a lab's server namespace, waited
//! for until it is ready, its `alb status --json` as typed values, stopped
//! (SIGTERM with a timeout, or `kill -9`), and what it leaves behind
//! removed. The behavioural tests, the demo and the benchmark all run the
//! agent through here.
//!
//! ```no_run
//! use alb_tests::{AgentCommand, Lab, LabConfig};
//!
//! let lab = Lab::up(LabConfig::unique()).expect("lab");
//! let mut agent = AgentCommand::new(&lab, "target/debug/alb")
//!     .args(&["--rebalance-interval", "1"])
//!     .start(&lab)
//!     .expect("agent");
//! lab.add_server_addrs().expect("addresses");
//! let status = agent.status().expect("status");
//! assert_eq!(status.active_slave.as_deref(), Some("veth17"));
//! assert!(agent.stop().expect("stop").success());
//! ```
//!
//! The agent's files live outside the lab's namespaces: its pins under
//! [`PIN_ROOT`]`/<master>` and its lock, undo record and control socket
//! under [`RUN_DIR`]. An [`Agent`] that is dropped stops the agent and, unless
//! another agent of the same master holds the lock by then (a restart after
//! `kill -9`), removes what it left with `alb down` and then by hand, with a
//! warning. Use a master name no one else uses (tests derive it from their
//! lab's unique prefix).

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{ExitStatus, Output},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_json::Value;

use crate::{Lab, Proc, SERVER_IP4, STOP_TIMEOUT, cmd, netns, tidy};

/// How long the agent may take to attach everything and log [`READY`].
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What the agent logs once it is fully up (data path, control socket).
pub const READY: &str = "ready:";

/// How long a one-shot `alb` command ([`run_alb`]) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the agent pins its maps and links, per master.
pub const PIN_ROOT: &str = "/sys/fs/bpf/alb";

/// Where the agent keeps its lock, undo record and control socket.
pub const RUN_DIR: &str = "/run/alb";

/// `/sys/fs/bpf/alb/<master>`.
pub fn pin_dir(master: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(master)
}

/// `/run/alb/<master>.lock`.
pub fn lock_path(master: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{master}.lock"))
}

/// `/run/alb/<master>.state`: what a running agent has changed, to undo.
pub fn state_path(master: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{master}.state"))
}

/// `/run/alb/<master>.sock`: the agent's control socket.
pub fn socket_path(master: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{master}.sock"))
}

/// Whether some process holds the agent lock of `master`.
pub fn lock_held(master: &str) -> bool {
    let Ok(file) = File::open(lock_path(master)) else {
        return false;
    };
    // SAFETY: flock(2) on a descriptor we own; released when `file` closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0
}

/// Removes the lock file of `master` if nobody holds it (the agent leaves
/// the file; a master name is used once), and an undo record a dead agent
/// left.
pub fn remove_lock_file(master: &str) {
    if !lock_held(master) {
        tidy::remove(&state_path(master));
        tidy::remove(&lock_path(master));
    }
}

/// What a stopped or refused agent left behind for `master` in the lab's
/// server namespace and globally (empty when clean): the master and its
/// peer, the pin directory, a lock holder, the undo record.
pub fn leftovers(lab: &Lab, master: &str) -> Result<Vec<String>> {
    let mut left = Vec::new();
    for dev in [master.to_owned(), format!("{master}p")] {
        if lab.link_exists(lab.srv(), &dev)? {
            left.push(format!("device {dev} in {}", lab.srv()));
        }
    }
    let pins = pin_dir(master);
    if pins.exists() {
        left.push(format!("pin directory {}", pins.display()));
    }
    if lock_held(master) {
        left.push(format!("a holder of {}", lock_path(master).display()));
    }
    let record = state_path(master);
    if record.exists() {
        left.push(format!("undo record {}", record.display()));
    }
    Ok(left)
}

/// Runs `bin args...` to completion in namespace `ns` within
/// [`COMMAND_TIMEOUT`] (`alb status`, `alb down`, `alb slave add`, a start
/// that should be refused). One that is still running then gets SIGTERM,
/// SIGKILL 5 s later, and is an error.
pub fn run_alb(ns: &str, bin: &Path, args: &[&str]) -> Result<Output> {
    let mut argv = vec![bin.to_str().context("the alb path is not UTF-8")?];
    argv.extend_from_slice(args);
    cmd::output_within(&mut netns::command(ns, &argv), COMMAND_TIMEOUT)
}

/// How to start the agent: `bin --master <master> --iface ... <args>` in a
/// lab's server namespace, with some environment.
#[derive(Clone, Debug)]
pub struct AgentCommand {
    bin: PathBuf,
    ns: String,
    master: String,
    /// Everything after the binary.
    args: Vec<String>,
    env: Vec<(String, String)>,
    ready_timeout: Duration,
    interrupt: Option<fn() -> Result<()>>,
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

/// A running agent (see the module documentation). Dropping it stops the
/// agent (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and cleans up after it.
#[derive(Debug)]
pub struct Agent {
    proc: Proc,
    command: AgentCommand,
}

impl Agent {
    fn wait_ready(&mut self) -> Result<()> {
        let timeout = self.command.ready_timeout;
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

    /// `alb down --master <master>` in its namespace (removes what a dead
    /// agent left; refused while an agent runs).
    pub fn down(&self) -> Result<Output> {
        run_alb(self.ns(), self.bin(), &["down", "--master", self.master()])
    }

    /// Removes what the (stopped) agent left, unless another agent of the
    /// same master holds the lock: `alb down` if pins or an undo record are
    /// left, then by hand the pins, the control socket, the undo record and
    /// the lock file. Returns a warning for each thing it had to remove.
    pub fn clean_up(&self) -> Vec<String> {
        let master = self.master();
        let mut warnings = Vec::new();
        if lock_held(master) {
            return warnings;
        }
        if pin_dir(master).exists() || state_path(master).exists() {
            match self.down() {
                Ok(out) if out.status.success() => warnings.push(format!(
                    "alb left pins or an undo record for {master}; `alb down` removed them: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Ok(out) => warnings.push(format!(
                    "`alb down --master {master}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => warnings.push(format!("`alb down --master {master}`: {e:#}")),
            }
        }
        let pins = pin_dir(master);
        if pins.exists() {
            warnings.push(format!("alb left {} behind; removing it", pins.display()));
            tidy::remove(&pins);
            // The parent goes only when no other master uses it.
            tidy::remove_empty_dir(Path::new(PIN_ROOT));
        }
        tidy::remove(&socket_path(master));
        remove_lock_file(master);
        warnings
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(e) = self.proc.stop() {
            eprintln!("stopping alb: {e:#}");
        }
        for warning in self.clean_up() {
            eprintln!("{warning}");
        }
    }
}

/// The `alb status --json` layout these types read (its `version` field).
pub const STATUS_VERSION: u32 = 3;

/// `alb status --json`: the fields the tests, the demo and the benchmark
/// read. Fields the agent adds later are accepted and kept in
/// [`Status::raw`]; a document of another [`STATUS_VERSION`] is refused.
#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    /// The layout's version, [`STATUS_VERSION`].
    pub version: u32,
    pub master: String,
    pub mode: String,
    pub master_mac: String,
    pub active_slave: Option<String>,
    /// Whether the agent answered; the fields it gives are null when not.
    pub agent: bool,
    /// Bonding's primary.
    pub primary_slave: Option<String>,
    /// `always`, `better` or `failure`.
    pub primary_reselect: Option<String>,
    pub updelay_ms: Option<u64>,
    pub downdelay_ms: Option<u64>,
    pub lp_interval_s: Option<u64>,
    pub rebalance_interval_s: Option<u64>,
    /// The config file the agent re-reads on SIGHUP.
    pub config_file: Option<String>,
    pub slaves: Vec<SlaveStatus>,
    pub clients: Vec<ClientStatus>,
    /// Data-path counters by reason name.
    pub counters: BTreeMap<String, u64>,
    /// The whole document as printed.
    #[serde(skip)]
    pub raw: Value,
}

/// One slave in [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SlaveStatus {
    /// Its index in enslave order.
    pub index: u32,
    pub name: String,
    pub mac: String,
    /// Carrier as the kernel reports it (`up`, `down`).
    pub link: String,
    /// The agent's link state: `up`, `going down`, `down`, `going back`.
    pub mii_status: Option<String>,
    /// Downs committed since it was enslaved (from the agent).
    pub link_failure_count: Option<u64>,
    pub speed_mbps: Option<u32>,
    /// `full` or `half`.
    pub duplex: Option<String>,
    /// Bonding's Permanent HW addr.
    pub perm_mac: String,
    /// Whether the data path may use it.
    pub usable: bool,
    pub active: bool,
    /// Clients dealt to it.
    pub clients: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Receive filter entries the agent added (`unicast 02:..`).
    #[serde(default)]
    pub filters: Vec<String>,
}

/// One client in [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ClientStatus {
    pub server_ip: String,
    pub client_ip: String,
    /// The VLAN ID (0: untagged).
    #[serde(default)]
    pub vlan: u16,
    pub mac: Option<String>,
    pub slave: Option<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Status {
    /// Parses what `alb status --json` printed.
    pub fn parse(json: &[u8]) -> Result<Self> {
        let raw: Value = serde_json::from_slice(json).with_context(|| {
            format!("alb status --json printed no JSON: {}", String::from_utf8_lossy(json))
        })?;
        if raw["version"] != STATUS_VERSION {
            bail!(
                "alb status --json has version {}; these tests read version {STATUS_VERSION}: {raw:#}",
                raw["version"]
            );
        }
        let mut status = Self::deserialize(&raw)
            .with_context(|| format!("unexpected alb status --json: {raw:#}"))?;
        status.raw = raw;
        Ok(status)
    }

    /// Slave `name`, if the agent has it.
    pub fn slave(&self, name: &str) -> Option<&SlaveStatus> {
        self.slaves.iter().find(|s| s.name == name)
    }

    /// The entry of client `client_ip` of the server address
    /// ([`SERVER_IP4`]).
    pub fn client(&self, client_ip: &str) -> Option<ClientStatus> {
        self.clients.iter().find(|c| c.client_ip == client_ip && c.server_ip == SERVER_IP4).cloned()
    }

    /// (client IP, slave name or `none`) for every client entry.
    pub fn client_slaves(&self) -> Vec<(String, String)> {
        self.clients
            .iter()
            .map(|c| (c.client_ip.clone(), c.slave.clone().unwrap_or_else(|| "none".to_owned())))
            .collect()
    }

    /// Data-path counter `name` (absent counters are zero).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

impl fmt::Display for Status {
    /// The document as the agent printed it, indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string_pretty(&self.raw) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{:?}", self.raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_is_read_and_unknown_fields_are_kept() {
        let json = br#"{
            "master": "alb0", "mode": "balance-alb", "master_mac": "02:a1:b0:00:00:17",
            "master_ifindex": 7, "version": 3, "active_slave": "veth17", "agent": true,
            "primary_slave": null, "primary_reselect": "always", "updelay_ms": 0,
            "downdelay_ms": 0, "lp_interval_s": 1, "rebalance_interval_s": 10,
            "config_file": null,
            "slaves": [{"index": 0, "name": "veth17", "ifindex": 3, "mac": "02:a1:b0:00:00:17",
                "link": "up", "mii_status": "up", "link_failure_count": 0, "speed_mbps": 10000,
                "duplex": "full", "perm_mac": "02:a1:b0:00:00:17",
                "usable": true, "active": true, "clients": 1, "slot": 4,
                "rx_packets": 1, "rx_bytes": 2, "tx_packets": 3, "tx_bytes": 4}],
            "clients": [{"server_ip": "198.18.0.1", "client_ip": "198.18.0.11",
                "mac": "02:a1:c0:00:00:01", "slave": "veth17",
                "rx_packets": 5, "rx_bytes": 6, "tx_packets": 7, "tx_bytes": 8},
                {"server_ip": "198.18.0.1", "client_ip": "198.18.0.12", "mac": null,
                "slave": null, "rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0}],
            "counters": {"rx_arp": 9}
        }"#;
        let status = Status::parse(json).expect("parsed");
        assert_eq!(status.active_slave.as_deref(), Some("veth17"));
        assert_eq!(status.slave("veth17").map(|s| s.tx_bytes), Some(4));
        assert_eq!(status.client("198.18.0.11").and_then(|c| c.slave).as_deref(), Some("veth17"));
        assert_eq!(status.client("198.18.0.12").map(|c| c.mac), Some(None));
        assert_eq!(status.counter("rx_arp"), 9);
        assert_eq!(status.counter("tx_bucket"), 0);
        assert_eq!(status.raw["version"], 3);
        assert_eq!(
            status.client_slaves(),
            [
                ("198.18.0.11".to_owned(), "veth17".to_owned()),
                ("198.18.0.12".to_owned(), "none".to_owned())
            ]
        );
        assert!(status.to_string().contains("\"slot\": 4"));
        assert_eq!(status.slave("veth17").and_then(|s| s.link_failure_count), Some(0));
        assert!(Status::parse(b"not json").is_err());
        let other = raw_with_version(json, 2);
        let refused = Status::parse(&other).expect_err("another version");
        assert!(format!("{refused:#}").contains("version 2"), "{refused:#}");
        assert!(Status::parse(br#"{"master": "alb0"}"#).is_err());
    }

    fn raw_with_version(json: &[u8], version: u32) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(json).expect("json");
        value["version"] = version.into();
        serde_json::to_vec(&value).expect("json")
    }
}
