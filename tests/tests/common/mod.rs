//! Helpers shared by alb's netns integration tests (`seed.rs`, `cli.rs`,
//! `failover.rs`, `runtime.rs`, `hostile.rs`, `faults.rs`): the `alb`
//! binary, the agent (the tests library's harness, [`alb_tests::agent`],
//! with failures as panics), clients' slaves and neighbour entries, checks
//! for what a stopped agent must not leave behind, measuring pings
//! ([`pings`]) and packet captures ([`capture`]).
//!
//! Pins (`/sys/fs/bpf/alb/<master>`) and locks (`/run/alb/<master>.lock`)
//! are global, not per namespace, so every lab here gets a master name of
//! its own (derived from the lab's unique prefix), never `alb0`.

// Each test binary uses a different part of this module.
#![expect(dead_code, reason = "shared by several test binaries, each using a subset")]

pub(crate) mod capture;
pub(crate) mod datapath;
pub(crate) mod load;
pub(crate) mod pings;
pub(crate) mod raw;

use std::{
    collections::BTreeMap,
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    process::{ExitStatus, Output},
    time::{Duration, Instant},
};

use alb_tests::{
    AgentCommand, Lab, LabConfig, PREFIX_LEN4, Proc, SERVER_IP4, Slave, Status, agent, wait_until,
};
use nix::sys::signal::Signal;

/// `target/<profile>/alb`, next to the test binary's `deps` directory.
pub(crate) fn alb_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/seed-<hash> -> target/debug/alb
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("alb"))
        .unwrap_or_else(|| panic!("cannot place the alb binary relative to {}", exe.display()));
    assert!(
        bin.is_file(),
        "the alb binary is missing at {}: run cargo build -p alb-user first; cargo xtask test does",
        bin.display()
    );
    bin
}

/// Starts an agent of the lab's master on veth17 and veth19 with `env`,
/// expecting it to refuse: waits up to 20 s for it to exit; its status and
/// log.
pub(crate) fn refused_start(lab: &Lab, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let bin = alb_bin();
    let argv = [
        bin.to_str().expect("UTF-8 path"),
        "--master",
        lab.master(),
        "--iface",
        "veth17",
        "--iface",
        "veth19",
    ];
    let mut proc = lab.spawn_env(lab.srv(), &argv, env).expect("spawn alb");
    let status = proc
        .wait_timeout(Duration::from_secs(20))
        .expect("wait")
        .unwrap_or_else(|| panic!("alb still runs after 20 s:\n{}", proc.log()));
    (status, proc.log())
}

/// A master name unique to the lab with prefix `prefix` (≤ 14 bytes, so
/// that its peer `<name>p` fits in IFNAMSIZ).
pub(crate) fn master_name(prefix: &str) -> String {
    if prefix.len() <= 14 {
        return prefix.to_owned();
    }
    // Keep the tail: it holds the pid and the per-process counter.
    format!("a{}", &prefix[prefix.len() - 13..])
}

/// A lab with `clients` clients and `slaves` slaves whose master has a name
/// of its own.
pub(crate) fn lab(clients: usize, slaves: usize) -> Lab {
    let mut config = LabConfig::unique().clients(clients).slaves(slaves);
    config.master = master_name(&config.prefix);
    Lab::up(config).unwrap_or_else(|e| panic!("lab up: {e:#}"))
}

/// What a stopped or refused agent left behind for `master` in the
/// server namespace and globally (empty when clean).
pub(crate) fn leftovers(lab: &Lab, master: &str) -> Vec<String> {
    agent::leftovers(lab, master).unwrap_or_else(|e| panic!("leftovers of {master}: {e:#}"))
}

/// Removes the lock file of `master` if nobody holds it, and an undo
/// record a dead agent left.
pub(crate) fn remove_lock_file(master: &str) {
    agent::remove_lock_file(master);
}

/// Runs `alb args...` to completion in namespace `ns` (a refused start or
/// `alb status`), with a timeout: a start that was meant to be refused but
/// was not is stopped and reported. Standard output and error are merged
/// (stdout first) into both fields of the result.
pub(crate) fn run_alb(ns: &str, args: &[&str]) -> Output {
    let out = agent::run_alb(ns, &alb_bin(), args)
        .unwrap_or_else(|e| panic!("`alb {}`: {e:#}", args.join(" ")));
    let mut merged = out.stdout;
    merged.extend_from_slice(&out.stderr);
    Output { status: out.status, stdout: merged.clone(), stderr: merged }
}

/// Runs `alb args...` in the server namespace as the unprivileged user
/// `nobody` (uid and gid 65534, no supplementary groups), to completion.
pub(crate) fn alb_as_nobody(lab: &Lab, args: &[&str]) -> Output {
    let bin = alb_bin();
    let mut argv = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin.to_str().expect("UTF-8 path"),
    ];
    argv.extend_from_slice(args);
    lab.exec(lab.srv(), &argv).unwrap_or_else(|e| panic!("setpriv: {e:#}"))
}

/// `ip -o monitor link` in the server namespace, once it listens (it has
/// printed a change made after it started: the loopback's new alias).
pub(crate) fn link_monitor(lab: &Lab) -> Proc {
    let monitor = lab.spawn(lab.srv(), &["ip", "-o", "monitor", "link"]).expect("ip monitor");
    let mut probe = 0_u32;
    wait_until(Duration::from_secs(5), "ip monitor to listen", || {
        probe += 1;
        lab.ip(lab.srv(), &["link", "set", "dev", "lo", "alias", &format!("probe{probe}")])?;
        Ok(monitor.log().contains(": lo: "))
    })
    .unwrap_or_else(|e| panic!("{e:#}:\n{}", monitor.log()));
    monitor
}

/// The sysctls the agent changes on each slave, with the values the lab
/// leaves them at.
const SLAVE_SYSCTLS: [&str; 2] = ["net.ipv4.conf.{}.arp_ignore", "net.ipv6.conf.{}.disable_ipv6"];

/// Each slave's sysctls that the agent changes, with their values now: a
/// refused command must leave them as they were.
pub(crate) fn slave_sysctls(lab: &Lab) -> Vec<(String, String)> {
    lab.slaves()
        .iter()
        .flat_map(|s| SLAVE_SYSCTLS.map(|k| k.replace("{}", &s.name)))
        .map(|key| {
            let value = sysctl_get(lab, lab.srv(), &key);
            (key, value)
        })
        .collect()
}

/// `sysctl -n key` in namespace `ns`.
pub(crate) fn sysctl_get(lab: &Lab, ns: &str, key: &str) -> String {
    lab.run(ns, &["sysctl", "-n", key])
        .unwrap_or_else(|e| panic!("sysctl {key} in {ns}: {e:#}"))
        .trim()
        .to_owned()
}

/// A running agent in a lab's server namespace: the tests library's
/// [`alb_tests::Agent`] (everything it offers is reachable through
/// `Deref`), with the lab's master, the server address on the master, and
/// failures as panics. Dropping it stops the agent and removes, with a
/// warning, whatever it failed to remove, unless another agent of the same
/// master holds the lock by then (a restart after `kill -9`).
pub(crate) struct Agent(alb_tests::Agent);

impl Deref for Agent {
    type Target = alb_tests::Agent;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Agent {
    /// Starts `alb --master <lab master> --iface <each slave>` in the
    /// server namespace, waits for "ready", and gives the master
    /// 198.18.0.1/24.
    pub(crate) fn start(lab: &Lab) -> Self {
        Self::start_with(lab, &[])
    }

    /// [`Agent::start`] with `extra` options after the slaves.
    pub(crate) fn start_with(lab: &Lab, extra: &[&str]) -> Self {
        let ifaces: Vec<&str> = lab.slaves().iter().map(|s| s.name.as_str()).collect();
        Self::start_on(lab, &ifaces, extra)
    }

    /// Starts `alb --master <lab master> --iface <each of ifaces> <extra>`,
    /// waits for "ready" and gives the master 198.18.0.1/24.
    pub(crate) fn start_on(lab: &Lab, ifaces: &[&str], extra: &[&str]) -> Self {
        let agent = Self::launch(lab, &Self::command(lab, ifaces).args(extra));
        agent.add_address(lab);
        agent
    }

    /// Starts the agent on every slave and waits for "ready", without
    /// adding addresses.
    pub(crate) fn start_only(lab: &Lab) -> Self {
        let ifaces: Vec<&str> = lab.slaves().iter().map(|s| s.name.as_str()).collect();
        Self::launch(lab, &Self::command(lab, &ifaces))
    }

    /// Starts another agent with the same arguments as this one (after
    /// this one died), waits for "ready" and gives the master its address
    /// if it lost it.
    pub(crate) fn start_again(&self, lab: &Lab) -> Self {
        let agent = Self::launch(lab, self.0.command());
        agent.add_address(lab);
        agent
    }

    /// Starts `command` (another binary, other arguments), waits for
    /// "ready" and gives the master its address if it lost it.
    pub(crate) fn start_command(lab: &Lab, command: &AgentCommand) -> Self {
        let agent = Self::launch(lab, command);
        agent.add_address(lab);
        agent
    }

    /// The command that [`Agent::start_on`] runs, to change before starting it.
    pub(crate) fn command(lab: &Lab, ifaces: &[&str]) -> AgentCommand {
        assert_ne!(lab.master(), "alb0", "tests must not use the global default master");
        AgentCommand::on(lab, alb_bin(), ifaces)
    }

    fn launch(lab: &Lab, command: &AgentCommand) -> Self {
        Self(command.start(lab).unwrap_or_else(|e| panic!("start alb: {e:#}")))
    }

    /// Gives the master 198.18.0.1/24 (`replace`: a restarted agent finds
    /// the address still in place).
    fn add_address(&self, lab: &Lab) {
        let master = self.master();
        lab.ip(
            lab.srv(),
            &["addr", "replace", &format!("{SERVER_IP4}/{PREFIX_LEN4}"), "dev", master],
        )
        .unwrap_or_else(|e| panic!("address on {master}: {e:#}"));
    }

    /// Whether the agent process is still running.
    pub(crate) fn running(&mut self) -> bool {
        self.0.running().expect("agent status")
    }

    /// Its exit status once it has exited on its own, without reaping it.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.0.exited().expect("agent status")
    }

    /// Waits up to `timeout` for the agent to exit on its own.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.0.wait_exit(timeout).expect("wait for alb")
    }

    /// Sends `signal` to the agent (its process group, by PID).
    pub(crate) fn signal(&mut self, signal: Signal) {
        self.0.signal(signal).unwrap_or_else(|e| panic!("{signal} to alb: {e:#}"));
    }

    /// `kill -9` of the agent (its process, by PID); waits until it is gone.
    pub(crate) fn kill9(&mut self) {
        let status = self.0.kill9().unwrap_or_else(|e| panic!("kill -9 alb: {e:#}"));
        assert!(!status.success(), "a killed agent does not exit 0: {status}");
    }

    /// `alb status --master <master> --json`, run in the server namespace.
    pub(crate) fn status(&self) -> Status {
        self.0.status().unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Polls the status until `check` accepts it; panics with the last
    /// status and the agent's log after `timeout`.
    pub(crate) fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        check: impl FnMut(&Status) -> bool,
    ) -> Status {
        self.0.wait_status(timeout, what, check).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Stops the agent with SIGTERM and returns its exit status.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        self.stop_with(Signal::SIGTERM)
    }

    /// Sends `signal` and waits up to [`alb_tests::STOP_TIMEOUT`] for the
    /// agent to exit on its own; panics (after killing it) if it does not.
    pub(crate) fn stop_with(&mut self, signal: Signal) -> ExitStatus {
        self.0.stop_with(signal, alb_tests::STOP_TIMEOUT).unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// Pings the server from client `number` (so it ARPs first if it has no
/// entry) and returns the MAC it resolved 198.18.0.1 to.
pub(crate) fn resolve(lab: &Lab, number: usize) -> String {
    let client = lab.client(number);
    let ping = lab
        .ping(&client.ns, SERVER_IP4, 1, Duration::from_millis(10))
        .unwrap_or_else(|e| panic!("ping from c{number}: {e:#}"));
    assert_eq!(ping.lost(), 0, "c{number} pings the server: {ping}");
    lab.neigh_mac(&client.ns, SERVER_IP4)
        .expect("ip neigh")
        .unwrap_or_else(|| panic!("c{number} has no neighbour entry for {SERVER_IP4}"))
}

// ---------------------------------------------------------------------
// Clients, slaves and neighbour entries.
// ---------------------------------------------------------------------

/// Client counts per slave, in enslave order.
pub(crate) fn counts(status: &Status) -> Vec<(String, u64)> {
    status.slaves.iter().map(|s| (s.name.clone(), s.clients)).collect()
}

/// Whether client counts over the usable slaves differ by at most one.
pub(crate) fn even(status: &Status) -> bool {
    let on_usable: Vec<u64> =
        status.slaves.iter().filter(|s| s.usable).map(|s| s.clients).collect();
    match (on_usable.iter().min(), on_usable.iter().max()) {
        (Some(min), Some(max)) => max - min <= 1,
        _ => false,
    }
}

/// The slave the agent has dealt client `number` to.
pub(crate) fn slave_of(lab: &Lab, status: &Status, number: usize) -> String {
    let ip = &lab.client(number).ip4;
    status
        .client(ip)
        .and_then(|c| c.slave)
        .unwrap_or_else(|| panic!("no slave for client {ip} in status:\n{status}"))
}

/// The lab's description of slave `name`.
fn lab_slave<'a>(lab: &'a Lab, name: &str) -> &'a Slave {
    lab.slaves()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no slave {name} in the lab"))
}

/// The lab MAC of slave `name`.
pub(crate) fn mac_of(lab: &Lab, name: &str) -> String {
    lab_slave(lab, name).mac.clone()
}

/// The switch port of slave `name`.
pub(crate) fn port_of(lab: &Lab, name: &str) -> String {
    lab_slave(lab, name).port.clone()
}

/// Takes switch port `port` down or up (its slave loses or regains carrier).
pub(crate) fn set_port(lab: &Lab, port: &str, up: bool) {
    lab.set_link(lab.sw(), port, up).unwrap_or_else(|e| panic!("set {port}: {e:#}"));
}

/// The MAC client `number` has for the server now, if any.
pub(crate) fn neigh(lab: &Lab, number: usize) -> Option<String> {
    lab.neigh_mac(&lab.client(number).ns, SERVER_IP4).expect("ip neigh")
}

/// Polls the neighbour entries of `numbers` until each is `want(number)`;
/// returns how long each took from `since` (an upper bound: polled every
/// few ms), or panics after `timeout` with what each client has.
pub(crate) fn wait_neigh(
    lab: &Lab,
    numbers: &[usize],
    since: Instant,
    timeout: Duration,
    want: impl Fn(usize) -> String,
) -> BTreeMap<usize, Duration> {
    let timeout = alb_tests::scaled(timeout);
    let mut done = BTreeMap::new();
    loop {
        for &number in numbers {
            if !done.contains_key(&number) && neigh(lab, number).as_deref() == Some(&want(number)) {
                done.insert(number, since.elapsed());
            }
        }
        if done.len() == numbers.len() {
            return done;
        }
        if since.elapsed() > timeout {
            let have: Vec<String> = numbers
                .iter()
                .map(|&n| format!("c{n}: {:?} (want {})", neigh(lab, n), want(n)))
                .collect();
            panic!("neighbour entries not updated within {timeout:?}: {}", have.join("; "));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `c1 12 ms, c2 15 ms`.
pub(crate) fn show_ms(times: &BTreeMap<usize, Duration>) -> String {
    times
        .iter()
        .map(|(n, t)| format!("c{n} {:.0} ms", t.as_secs_f64() * 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pings the server from every client: `count` requests 10 ms apart,
/// none lost.
pub(crate) fn assert_all_clients_work(lab: &Lab, count: u32) {
    for client in lab.clients() {
        let stats = lab
            .ping(&client.ns, SERVER_IP4, count, Duration::from_millis(10))
            .unwrap_or_else(|e| panic!("ping from c{}: {e:#}", client.number));
        assert_eq!(stats.lost(), 0, "c{} -> {SERVER_IP4}: {stats}", client.number);
    }
}

/// Resolves the server from clients 1..=n in order (so they are dealt
/// round-robin over the usable slaves in enslave order).
pub(crate) fn resolve_all(lab: &Lab) {
    for client in lab.clients() {
        resolve(lab, client.number);
    }
}

/// The CPU time process `pid` has used so far, all its threads, user and
/// system (`utime + stime` of `/proc/<pid>/stat`).
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The fields after the command name (in parentheses): state is the
    // first, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_else(|| panic!("/proc/{pid}/stat: {stat}"));
    let ticks: u64 = [11, 12]
        .iter()
        .map(|&i| fields[i].parse::<u64>().unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}")))
        .sum();
    // SAFETY: sysconf(3) reads a constant.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    Duration::from_millis(ticks * 1000 / per_second.max(1))
}

/// The sockets process `pid` holds, as (kind, detail): `inet tcp`, `inet
/// udp6`, ... for IP sockets (with their local address), `packet` (with
/// its protocol), `netlink`, `unix` (with its path) or `other`.
pub(crate) fn sockets_of(pid: u32) -> Vec<(String, String)> {
    let fd_dir = format!("/proc/{pid}/fd");
    let inodes: Vec<String> = std::fs::read_dir(&fd_dir)
        .unwrap_or_else(|e| panic!("{fd_dir}: {e}"))
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    // /proc/<pid>/net/* lists the sockets of the process's namespace; the
    // inode column tells which are the process's.
    let table = |name: &str| -> Vec<Vec<String>> {
        std::fs::read_to_string(format!("/proc/{pid}/net/{name}"))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let mut found = Vec::new();
    for inode in inodes {
        let mut kind = ("other".to_owned(), String::new());
        for name in ["tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6"] {
            // sl local_address rem_address st ... uid timeout inode
            if let Some(row) = table(name).into_iter().find(|r| r.get(9) == Some(&inode)) {
                kind = (format!("inet {name}"), row.get(1).cloned().unwrap_or_default());
            }
        }
        // sk RefCnt Type Proto Iface R Rmem User Inode
        if let Some(row) = table("packet").into_iter().find(|r| r.get(8) == Some(&inode)) {
            let proto =
                u16::from_str_radix(row.get(3).map_or("0", String::as_str), 16).unwrap_or(0);
            kind = ("packet".to_owned(), format!("protocol {proto}"));
        }
        // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
        if table("netlink").iter().any(|r| r.get(9) == Some(&inode)) {
            kind = ("netlink".to_owned(), String::new());
        }
        // Num RefCount Protocol Flags Type St Inode Path
        if let Some(row) = table("unix").into_iter().find(|r| r.get(6) == Some(&inode)) {
            kind = ("unix".to_owned(), row.get(7).cloned().unwrap_or_default());
        }
        found.push(kind);
    }
    found.sort();
    found
}
