//! Helpers shared by alb's netns integration tests (`seed.rs`, `cli.rs`,
//! `failover.rs`, `runtime.rs`, `hostile.rs`, `faults.rs`): the `alb`
//! binary, an agent guard that starts it in a lab's server namespace and
//! cleans up after it, `alb status --json` as typed values, clients' slaves
//! and neighbour entries, checks for what a stopped agent must not leave
//! behind, measuring pings ([`pings`]) and packet captures ([`capture`]).
//!
//! Pins (`/sys/fs/bpf/alb/<master>`) and locks (`/run/alb/<master>.lock`)
//! are global, not per namespace, so every lab here gets a master name of
//! its own (derived from the lab's unique prefix), never `alb0`.

// Each test binary uses a different part of this module.
#![expect(dead_code, reason = "shared by several test binaries, each using a subset")]

pub(crate) mod capture;
pub(crate) mod datapath;
pub(crate) mod pings;
pub(crate) mod raw;

use std::{
    collections::BTreeMap,
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{ExitStatus, Output},
    time::{Duration, Instant},
};

use alb_tests::{Lab, LabConfig, PREFIX_LEN4, Proc, SERVER_IP4, Slave, netns};
use nix::sys::signal::Signal;
use serde_json::Value;

/// How long the agent may take to attach and log "ready".
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(15);

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

/// `/sys/fs/bpf/alb/<master>`.
pub(crate) fn pin_dir(master: &str) -> PathBuf {
    Path::new("/sys/fs/bpf/alb").join(master)
}

/// `/run/alb/<master>.lock`.
pub(crate) fn lock_path(master: &str) -> PathBuf {
    Path::new("/run/alb").join(format!("{master}.lock"))
}

/// Whether some process holds the agent lock of `master`.
pub(crate) fn lock_held(master: &str) -> bool {
    let Ok(file) = File::open(lock_path(master)) else {
        return false;
    };
    // SAFETY: flock(2) on a descriptor we own; released when `file` closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0
}

/// Removes the lock file of `master` if nobody holds it (the agent leaves
/// the file; tests use a fresh master name each run), and an undo record a
/// dead agent left.
pub(crate) fn remove_lock_file(master: &str) {
    if !lock_held(master) {
        let _ = std::fs::remove_file(state_path(master));
        let _ = std::fs::remove_file(lock_path(master));
    }
}

/// What a stopped or refused agent left behind for `master` in the
/// server namespace and globally (empty when clean).
pub(crate) fn leftovers(lab: &Lab, master: &str) -> Vec<String> {
    let mut left = Vec::new();
    for dev in [master.to_owned(), format!("{master}p")] {
        if lab.link_exists(lab.srv(), &dev).expect("ip link show") {
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
    left
}

/// `/run/alb/<master>.state`: what a running agent has changed, to undo.
pub(crate) fn state_path(master: &str) -> PathBuf {
    Path::new("/run/alb").join(format!("{master}.state"))
}

/// Runs `alb args...` to completion in namespace `ns` (a refused start or
/// `alb status`), with a timeout: a start that was meant to be refused but
/// was not is stopped and reported.
pub(crate) fn run_alb(lab: &Lab, ns: &str, args: &[&str]) -> Output {
    let bin = alb_bin();
    let mut argv = vec![bin.to_str().expect("UTF-8 path")];
    argv.extend_from_slice(args);
    let mut proc = lab.spawn(ns, &argv).expect("spawn alb");
    let status = proc.wait_timeout(Duration::from_secs(20)).expect("wait for alb");
    let log = proc.log();
    let status = match status {
        Some(status) => status,
        None => {
            let _ = proc.stop();
            panic!("`alb {}` was still running after 20 s; it printed:\n{log}", args.join(" "));
        }
    };
    drop(proc);
    // The lab's spawn merges stdout and stderr into one log.
    Output { status, stdout: log.clone().into_bytes(), stderr: log.into_bytes() }
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

/// `sysctl -n key` in namespace `ns`.
pub(crate) fn sysctl_get(lab: &Lab, ns: &str, key: &str) -> String {
    lab.run(ns, &["sysctl", "-n", key])
        .unwrap_or_else(|e| panic!("sysctl {key} in {ns}: {e:#}"))
        .trim()
        .to_owned()
}

/// A running agent in a lab's server namespace. Dropping it stops the
/// agent (SIGTERM) and removes whatever it failed to remove, with a
/// warning, so that a failing test leaves no pins, socket or lock file
/// behind, unless another agent of the same master holds the lock by then
/// (a restart after `kill -9`).
pub(crate) struct Agent {
    proc: Proc,
    master: String,
    srv: String,
    /// The arguments after the binary, to start the same agent again.
    args: Vec<String>,
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
        let agent = Self::launch(lab, Self::args(lab, ifaces, extra));
        agent.add_address(lab);
        agent
    }

    /// Starts the agent on every slave and waits for "ready", without
    /// adding addresses.
    pub(crate) fn start_only(lab: &Lab) -> Self {
        let ifaces: Vec<&str> = lab.slaves().iter().map(|s| s.name.as_str()).collect();
        Self::launch(lab, Self::args(lab, &ifaces, &[]))
    }

    /// Starts another agent with the same arguments as this one (after
    /// this one died), waits for "ready" and gives the master its address
    /// if it lost it.
    pub(crate) fn start_again(&self, lab: &Lab) -> Self {
        let agent = Self::launch(lab, self.args.clone());
        agent.add_address(lab);
        agent
    }

    fn args(lab: &Lab, ifaces: &[&str], extra: &[&str]) -> Vec<String> {
        let master = lab.master().to_owned();
        assert_ne!(master, "alb0", "tests must not use the global default master");
        let mut args = vec!["--master".to_owned(), master];
        for iface in ifaces {
            args.extend(["--iface".to_owned(), (*iface).to_owned()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Spawns `alb args...` in the server namespace and waits for "ready".
    fn launch(lab: &Lab, args: Vec<String>) -> Self {
        let master = lab.master().to_owned();
        let bin = alb_bin();
        let mut argv = vec![bin.to_str().expect("UTF-8 path")];
        argv.extend(args.iter().map(String::as_str));
        let proc = lab.spawn(lab.srv(), &argv).unwrap_or_else(|e| panic!("spawn alb: {e:#}"));
        let mut agent = Self { proc, master, srv: lab.srv().to_owned(), args };
        agent.wait_ready();
        agent
    }

    /// Gives the master 198.18.0.1/24 (`replace`: a restarted agent finds
    /// the address still in place).
    fn add_address(&self, lab: &Lab) {
        lab.ip(
            lab.srv(),
            &["addr", "replace", &format!("{SERVER_IP4}/{PREFIX_LEN4}"), "dev", &self.master],
        )
        .unwrap_or_else(|e| panic!("address on {}: {e:#}", self.master));
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.proc.log().contains("ready:") {
                return;
            }
            if let Some(status) = self.proc.exited().expect("agent status") {
                panic!("alb exited ({status}) before it was ready:\n{}", self.proc.log());
            }
            assert!(
                Instant::now() < deadline,
                "alb not ready after {READY_TIMEOUT:?}:\n{}",
                self.proc.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn master(&self) -> &str {
        &self.master
    }

    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// What the agent has logged so far.
    pub(crate) fn log(&self) -> String {
        self.proc.log()
    }

    /// Whether the agent process is still running.
    pub(crate) fn running(&mut self) -> bool {
        self.proc.exited().expect("agent status").is_none()
    }

    /// Its exit status once it has exited on its own, without reaping it.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.exited().expect("agent status")
    }

    /// Waits up to `timeout` for the agent to exit on its own.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_timeout(timeout).expect("wait for alb")
    }

    /// Sends `signal` to the agent (its process group, by PID).
    pub(crate) fn signal(&mut self, signal: Signal) {
        self.proc.signal(signal).unwrap_or_else(|e| panic!("{signal} to alb: {e:#}"));
    }

    /// `kill -9` of the agent (its process, by PID); waits until it is gone.
    pub(crate) fn kill9(&mut self) {
        self.proc.signal(Signal::SIGKILL).expect("SIGKILL alb");
        let status = self.proc.wait_timeout(Duration::from_secs(5)).expect("wait for alb");
        let status = status.unwrap_or_else(|| panic!("alb survived SIGKILL:\n{}", self.log()));
        assert!(!status.success(), "a killed agent does not exit 0: {status}");
    }

    /// `alb status --master <master> --json`, run in the server namespace.
    pub(crate) fn status(&self) -> Status {
        let bin = alb_bin();
        let argv =
            [bin.to_str().expect("UTF-8 path"), "status", "--master", &self.master, "--json"];
        let out =
            alb_tests::cmd::output(&mut netns::command(&self.srv, &argv)).expect("alb status");
        assert!(
            out.status.success(),
            "alb status failed ({}): {}\nagent log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("alb status --json: {e}: {}", String::from_utf8_lossy(&out.stdout))
        });
        Status(json)
    }

    /// Polls the status until `check` accepts it; panics with the last
    /// status and the agent's log after `timeout`.
    pub(crate) fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Status) -> bool,
    ) -> Status {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            if check(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; status:\n{:#}\nagent log:\n{}",
                status.0,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the agent with SIGTERM and returns its exit status.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        self.stop_with(Signal::SIGTERM)
    }

    /// Sends `signal` and waits up to [`alb_tests::STOP_TIMEOUT`] for the
    /// agent to exit on its own; panics (after killing it) if it does not.
    pub(crate) fn stop_with(&mut self, signal: Signal) -> ExitStatus {
        self.proc.signal(signal).expect("signal alb");
        match self.proc.wait_timeout(alb_tests::STOP_TIMEOUT).expect("wait for alb") {
            Some(_) => self.proc.stop().expect("reap alb"),
            None => {
                let _ = self.proc.stop();
                panic!(
                    "alb ignored {signal} for {:?}:\n{}",
                    alb_tests::STOP_TIMEOUT,
                    self.proc.log()
                );
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(e) = self.proc.stop() {
            eprintln!("stopping alb: {e:#}");
        }
        // A later agent of the same master may run on (kill -9 tests).
        if lock_held(&self.master) {
            return;
        }
        let pins = pin_dir(&self.master);
        if pins.exists() {
            eprintln!("alb left {} behind; removing it", pins.display());
            let _ = std::fs::remove_dir_all(&pins);
            let _ = std::fs::remove_dir(pins.parent().expect("parent"));
        }
        let _ = std::fs::remove_file(socket_path(&self.master));
        remove_lock_file(&self.master);
    }
}

/// `/run/alb/<master>.sock`: the agent's control socket.
pub(crate) fn socket_path(master: &str) -> PathBuf {
    Path::new("/run/alb").join(format!("{master}.sock"))
}

/// `alb status --json`.
#[derive(Clone, Debug)]
pub(crate) struct Status(pub(crate) Value);

/// One slave in [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlaveStatus {
    pub(crate) name: String,
    pub(crate) mac: String,
    pub(crate) usable: bool,
    pub(crate) active: bool,
    pub(crate) clients: u64,
    pub(crate) rx_packets: u64,
    pub(crate) tx_packets: u64,
}

/// One client in [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientStatus {
    pub(crate) server_ip: String,
    pub(crate) client_ip: String,
    pub(crate) mac: Option<String>,
    pub(crate) slave: Option<String>,
    pub(crate) rx_packets: u64,
    pub(crate) tx_packets: u64,
}

impl Status {
    fn str_of(value: &Value, field: &str) -> String {
        value[field].as_str().unwrap_or_else(|| panic!("no {field} in {value}")).to_owned()
    }

    fn u64_of(value: &Value, field: &str) -> u64 {
        value[field].as_u64().unwrap_or_else(|| panic!("no {field} in {value}"))
    }

    pub(crate) fn master_mac(&self) -> String {
        Self::str_of(&self.0, "master_mac")
    }

    pub(crate) fn active_slave(&self) -> Option<String> {
        self.0["active_slave"].as_str().map(str::to_owned)
    }

    pub(crate) fn slaves(&self) -> Vec<SlaveStatus> {
        self.0["slaves"]
            .as_array()
            .unwrap_or_else(|| panic!("no slaves in {}", self.0))
            .iter()
            .map(|s| SlaveStatus {
                name: Self::str_of(s, "name"),
                mac: Self::str_of(s, "mac"),
                usable: s["usable"].as_bool().unwrap_or_default(),
                active: s["active"].as_bool().unwrap_or_default(),
                clients: Self::u64_of(s, "clients"),
                rx_packets: Self::u64_of(s, "rx_packets"),
                tx_packets: Self::u64_of(s, "tx_packets"),
            })
            .collect()
    }

    pub(crate) fn clients(&self) -> Vec<ClientStatus> {
        self.0["clients"]
            .as_array()
            .unwrap_or_else(|| panic!("no clients in {}", self.0))
            .iter()
            .map(|c| ClientStatus {
                server_ip: Self::str_of(c, "server_ip"),
                client_ip: Self::str_of(c, "client_ip"),
                mac: c["mac"].as_str().map(str::to_owned),
                slave: c["slave"].as_str().map(str::to_owned),
                rx_packets: Self::u64_of(c, "rx_packets"),
                tx_packets: Self::u64_of(c, "tx_packets"),
            })
            .collect()
    }

    /// The client entry of `client_ip` for the server address.
    pub(crate) fn client(&self, client_ip: &str) -> Option<ClientStatus> {
        self.clients().into_iter().find(|c| c.client_ip == client_ip && c.server_ip == SERVER_IP4)
    }

    /// Data-path counter `name` (absent counters are zero).
    pub(crate) fn counter(&self, name: &str) -> u64 {
        self.0["counters"][name].as_u64().unwrap_or(0)
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
    status.slaves().into_iter().map(|s| (s.name, s.clients)).collect()
}

/// Whether client counts over the usable slaves differ by at most one.
pub(crate) fn even(status: &Status) -> bool {
    let on_usable: Vec<u64> =
        status.slaves().iter().filter(|s| s.usable).map(|s| s.clients).collect();
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
        .unwrap_or_else(|| panic!("no slave for client {ip} in status:\n{:#}", status.0))
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
