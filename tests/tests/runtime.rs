//! The agent at run time (issue 3, items 5-7): a `kill -9` and a restart
//! under traffic, `alb down` after an agent died, `alb slave add|del`
//! under traffic, bad runtime requests, a slave of another master,
//! `--primary`, and the root-only control socket.
//!
//! Losses are measured from the clients' side: each client pings the
//! server every [`INTERVAL`] (`ping -D -O`) while the change happens; a
//! client's outage is the longer of its longest run of unanswered requests
//! (times the interval) and its longest silence between two replies, less
//! one interval. Every test that measures prints what it saw (`runtime:`
//! lines; run with `--nocapture` to see them).
//!
//! Each test builds its own lab and runs its own agent under a master name
//! of its own (pins, locks, undo records and control sockets are global).
//! Needs root, the `alb` binary (`cargo build -p alb-user`), tc, ping
//! and setpriv; run one test at a time (`--test-threads=1`).

mod common;

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Output,
    thread,
    time::{Duration, Instant},
};

use alb_tests::{netns, wait_until, Lab, Proc, PREFIX_LEN4, SERVER_IP4};
use aya::programs::{SchedClassifier, TcAttachType};
use common::{leftovers, lock_held, pin_dir, run_alb, state_path, sysctl_get, Status};
use nix::{
    sched::{setns, CloneFlags},
    sys::signal::Signal,
};

/// Between two echo requests of a measuring ping.
const INTERVAL: Duration = Duration::from_millis(10);

/// "A few packets": what a client may lose to a restart or a runtime
/// change that does not concern its own slave.
const FEW: u32 = 5;

/// The fail threshold for a moved client's receive outage.
const FAIL_THRESHOLD: Duration = Duration::from_secs(1);

/// How soon a moved client must point at its new slave.
const NEIGH_DEADLINE: Duration = Duration::from_millis(300);

/// The sysctls the agent changes on a slave.
const SLAVE_SYSCTLS: [&str; 2] = ["net.ipv4.conf.{}.arp_ignore", "net.ipv6.conf.{}.disable_ipv6"];

// ---------------------------------------------------------------------
// The agent, on slaves and with options of the test's choosing.
// ---------------------------------------------------------------------

/// A running agent in a lab's server namespace. Dropping it stops the
/// agent (SIGTERM) and removes what it failed to remove, unless another
/// agent of the same master holds the lock by then.
struct Agent {
    proc: Proc,
    master: String,
    srv: String,
    /// The arguments after the binary, to start the same agent again.
    args: Vec<String>,
}

impl Agent {
    /// Starts `alb --master <lab master> --iface <each of ifaces> <extra>`,
    /// waits for "ready" and gives the master 198.18.0.1/24.
    fn start(lab: &Lab, ifaces: &[&str], extra: &[&str]) -> Self {
        let master = lab.master().to_owned();
        assert_ne!(master, "alb0", "tests must not use the global default master");
        let mut args = vec!["--master".to_owned(), master];
        for iface in ifaces {
            args.extend(["--iface".to_owned(), (*iface).to_owned()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::start_args(lab, args)
    }

    /// Starts another agent with the same arguments as this one.
    fn start_again(&self, lab: &Lab) -> Self {
        Self::start_args(lab, self.args.clone())
    }

    fn start_args(lab: &Lab, args: Vec<String>) -> Self {
        let master = lab.master().to_owned();
        let bin = common::alb_bin();
        let mut argv = vec![bin.to_str().expect("UTF-8 path")];
        argv.extend(args.iter().map(String::as_str));
        let proc = lab.spawn(lab.srv(), &argv).unwrap_or_else(|e| panic!("spawn alb: {e:#}"));
        let mut agent = Self { proc, master, srv: lab.srv().to_owned(), args };
        let deadline = Instant::now() + common::READY_TIMEOUT;
        while !agent.log().contains("ready:") {
            if let Some(status) = agent.proc.exited().expect("agent status") {
                panic!("alb exited ({status}) before it was ready:\n{}", agent.log());
            }
            assert!(Instant::now() < deadline, "alb not ready:\n{}", agent.log());
            thread::sleep(Duration::from_millis(5));
        }
        // `replace`: a restarted agent finds the address still in place.
        lab.ip(
            lab.srv(),
            &["addr", "replace", &format!("{SERVER_IP4}/{PREFIX_LEN4}"), "dev", &agent.master],
        )
        .unwrap_or_else(|e| panic!("address on {}: {e:#}", agent.master));
        agent
    }

    fn log(&self) -> String {
        self.proc.log()
    }

    /// Whether the agent process is still running.
    fn running(&mut self) -> bool {
        self.proc.exited().expect("agent status").is_none()
    }

    /// `kill -9` of the agent (its process, by PID); waits until it is gone.
    fn kill9(&mut self) {
        self.proc.signal(Signal::SIGKILL).expect("SIGKILL alb");
        let status = self.proc.wait_timeout(Duration::from_secs(5)).expect("wait for alb");
        let status = status.unwrap_or_else(|| panic!("alb survived SIGKILL:\n{}", self.log()));
        assert!(!status.success(), "a killed agent does not exit 0: {status}");
    }

    /// `alb status --master <master> --json`, run in the server namespace.
    fn status(&self) -> Status {
        let bin = common::alb_bin();
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
        Status(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("alb status --json: {e}: {}", String::from_utf8_lossy(&out.stdout))
        }))
    }

    /// Polls the status until `check` accepts it; panics with the last
    /// status and the agent's log after `timeout`.
    fn wait_status(
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
            thread::sleep(Duration::from_millis(20));
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
        common::remove_lock_file(&self.master);
    }
}

/// `/run/alb/<master>.sock`.
fn socket_path(master: &str) -> PathBuf {
    Path::new("/run/alb").join(format!("{master}.sock"))
}

/// Runs `alb args...` in the server namespace; returns its output and its
/// merged stdout and stderr, trimmed.
fn alb(lab: &Lab, args: &[&str]) -> (Output, String) {
    let out = run_alb(lab, lab.srv(), args);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out, text)
}

/// Asserts that `alb args...` failed with exit status 1 and a one-line
/// `alb: ...` message containing `expect`; returns the message.
fn assert_refused(lab: &Lab, args: &[&str], expect: &str) -> String {
    let (out, message) = alb(lab, args);
    let command = args.join(" ");
    assert_eq!(out.status.code(), Some(1), "`alb {command}` should fail; it printed:\n{message}");
    assert_eq!(message.lines().count(), 1, "`alb {command}`: one line, not:\n{message}");
    assert!(message.starts_with("alb: "), "`alb {command}` names the program: {message}");
    assert!(message.contains(expect), "`alb {command}` should mention {expect:?}: {message}");
    message
}

// ---------------------------------------------------------------------
// What the status, the devices and the kernel say.
// ---------------------------------------------------------------------

/// Every client entry as (server IP, client IP, MAC, slave).
fn assignments(status: &Status) -> Vec<(String, String, Option<String>, Option<String>)> {
    let mut all: Vec<_> =
        status.clients().into_iter().map(|c| (c.server_ip, c.client_ip, c.mac, c.slave)).collect();
    all.sort();
    all
}

/// What a runtime request must not change: master MAC, active slave, each
/// slave's name, MAC, usability and role, and every client's slave.
fn summary(status: &Status) -> String {
    let slaves: Vec<String> = status
        .slaves()
        .into_iter()
        .map(|s| format!("{} {} usable={} active={}", s.name, s.mac, s.usable, s.active))
        .collect();
    format!(
        "master {} active {:?}; slaves [{}]; clients {:?}",
        status.master_mac(),
        status.active_slave(),
        slaves.join(", "),
        assignments(status)
    )
}

/// Client counts per slave, in enslave order.
fn counts(status: &Status) -> Vec<(String, u64)> {
    status.slaves().into_iter().map(|s| (s.name, s.clients)).collect()
}

/// Whether client counts over the usable slaves differ by at most one.
fn even(status: &Status) -> bool {
    let on_usable: Vec<u64> =
        status.slaves().iter().filter(|s| s.usable).map(|s| s.clients).collect();
    match (on_usable.iter().min(), on_usable.iter().max()) {
        (Some(min), Some(max)) => max - min <= 1,
        _ => false,
    }
}

/// The slave the agent has dealt client `number` to.
fn slave_of(lab: &Lab, status: &Status, number: usize) -> String {
    let ip = &lab.client(number).ip4;
    status
        .client(ip)
        .and_then(|c| c.slave)
        .unwrap_or_else(|| panic!("no slave for client {ip} in status:\n{:#}", status.0))
}

/// The lab MAC of slave `name`.
fn mac_of(lab: &Lab, name: &str) -> String {
    lab.slaves()
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.mac.clone())
        .unwrap_or_else(|| panic!("no slave {name} in the lab"))
}

/// The switch port of slave `name`.
fn port_of(lab: &Lab, name: &str) -> String {
    lab.slaves()
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.port.clone())
        .unwrap_or_else(|| panic!("no slave {name} in the lab"))
}

/// The MAC client `number` has for the server now, if any.
fn neigh(lab: &Lab, number: usize) -> Option<String> {
    lab.neigh_mac(&lab.client(number).ns, SERVER_IP4).expect("ip neigh")
}

/// Polls the neighbour entries of `numbers` until each is `want(number)`;
/// returns how long each took from `since` (an upper bound: polled every
/// few ms), or panics after `timeout` with what each client has.
fn wait_neigh(
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
        thread::sleep(Duration::from_millis(2));
    }
}

fn show_ms(times: &BTreeMap<usize, Duration>) -> String {
    times
        .iter()
        .map(|(n, t)| format!("c{n} {:.0} ms", t.as_secs_f64() * 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sysctls the agent changes on `slave`, as (key, value).
fn sysctls_of(lab: &Lab, slave: &str) -> Vec<(String, String)> {
    SLAVE_SYSCTLS
        .iter()
        .map(|k| {
            let key = k.replace("{}", slave);
            let value = sysctl_get(lab, lab.srv(), &key);
            (key, value)
        })
        .collect()
}

/// Whether `slave`'s sysctls are as a running agent sets them.
fn silenced(lab: &Lab, slave: &str) -> bool {
    sysctls_of(lab, slave)
        .iter()
        .all(|(key, value)| value == if key.ends_with("arp_ignore") { "8" } else { "1" })
}

/// One TCX program on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TcProgram {
    /// `ingress` or `egress`.
    direction: &'static str,
    name: String,
    id: u32,
}

/// The TCX programs attached to `dev` in the server namespace, as the
/// kernel reports them (BPF_PROG_QUERY from a thread that has entered the
/// namespace: this bpftool predates TCX and lists none).
fn tc_programs(lab: &Lab, dev: &str) -> Vec<TcProgram> {
    let ns_path = netns::path(lab.srv());
    let dev = dev.to_owned();
    thread::spawn(move || {
        let ns = File::open(&ns_path).unwrap_or_else(|e| panic!("{}: {e}", ns_path.display()));
        // setns(2) moves only this thread, which ends with the query.
        setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the server namespace");
        let mut found = Vec::new();
        for (attach, direction) in
            [(TcAttachType::Ingress, "ingress"), (TcAttachType::Egress, "egress")]
        {
            let (_, programs) = SchedClassifier::query_tcx(&dev, attach)
                .unwrap_or_else(|e| panic!("query TCX {direction} of {dev}: {e}"));
            found.extend(programs.iter().map(|p| TcProgram {
                direction,
                name: p.name_as_str().unwrap_or_default().to_owned(),
                id: p.id(),
            }));
        }
        found
    })
    .join()
    .expect("TCX query thread")
}

/// Asserts that `dev` has no TCX program and no TC classifier at all.
fn assert_no_programs(lab: &Lab, dev: &str) {
    let tcx = tc_programs(lab, dev);
    assert!(tcx.is_empty(), "no TCX program on {dev}: {tcx:?}");
    for direction in ["ingress", "egress"] {
        let tc = lab.run(lab.srv(), &["tc", "filter", "show", "dev", dev, direction]).expect("tc");
        assert!(tc.trim().is_empty(), "no classifier on {dev} {direction}: {tc}");
    }
}

/// The programs named `name` attached to `dev`.
fn programs_named(lab: &Lab, dev: &str, name: &str) -> Vec<TcProgram> {
    tc_programs(lab, dev).into_iter().filter(|p| p.name == name).collect()
}

/// Asserts that exactly one alb program is attached to each slave's
/// ingress and to the master's egress; returns their ids by device.
fn assert_attached(lab: &Lab, master: &str, slaves: &[&str]) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    for (dev, name, kind) in
        slaves.iter().map(|s| (*s, "alb_rx", "ingress")).chain([(master, "alb_tx", "egress")])
    {
        let found = programs_named(lab, dev, name);
        assert_eq!(found.len(), 1, "one {name} on {dev}: {:?}", tc_programs(lab, dev));
        assert_eq!(found[0].direction, kind, "{name} on {dev}: {found:?}");
        ids.insert(dev.to_owned(), found[0].id);
    }
    ids
}

/// Keeps spare slave `name` (in the server namespace, not given to the
/// agent) from answering the clients' ARP requests for the server address
/// itself: with arp_ignore 0 (Linux's weak host model) it replies with its
/// own MAC, racing alb's reply, and clients that take it talk to the
/// server through a device alb does not run.
fn quiet_spare(lab: &Lab, name: &str) {
    let key = format!("net.ipv4.conf.{name}.arp_ignore");
    lab.sysctl(lab.srv(), &key, "1").unwrap_or_else(|e| panic!("{key}: {e:#}"));
}

/// Resolves the server from clients 1..=n in order (so they are dealt
/// round-robin over the slaves in enslave order).
fn resolve_all(lab: &Lab) {
    for client in lab.clients() {
        common::resolve(lab, client.number);
    }
}

/// Pings the server from every client: `count` requests 10 ms apart,
/// none lost.
fn assert_all_clients_work(lab: &Lab, count: u32) {
    for client in lab.clients() {
        let stats = lab
            .ping(&client.ns, SERVER_IP4, count, INTERVAL)
            .unwrap_or_else(|e| panic!("ping from c{}: {e:#}", client.number));
        assert_eq!(stats.lost(), 0, "c{} -> {SERVER_IP4}: {stats}", client.number);
    }
}

// ---------------------------------------------------------------------
// Measuring pings.
// ---------------------------------------------------------------------

/// Pings to the server running in the background from some clients.
struct Pings {
    runs: Vec<(usize, Proc)>,
    duration: Duration,
}

/// Starts `ping -D -O -i INTERVAL` to the server from each of `numbers`
/// for `duration`, and waits until each has had its first reply.
fn start_pings(lab: &Lab, numbers: &[usize], duration: Duration) -> Pings {
    let count = (duration.as_millis() / INTERVAL.as_millis()).to_string();
    let interval = format!("{:.3}", INTERVAL.as_secs_f64());
    let runs: Vec<(usize, Proc)> = numbers
        .iter()
        .map(|&number| {
            let argv =
                ["ping", "-n", "-D", "-O", "-i", &interval, "-c", &count, "-W", "1", SERVER_IP4];
            let proc = lab
                .spawn(&lab.client(number).ns, &argv)
                .unwrap_or_else(|e| panic!("ping from c{number}: {e:#}"));
            (number, proc)
        })
        .collect();
    for (number, proc) in &runs {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !proc.log().contains("bytes from") {
            assert!(
                Instant::now() < deadline,
                "c{number} had no reply before the test began:\n{}",
                proc.log()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
    Pings { runs, duration }
}

impl Pings {
    /// Waits for every ping to end and returns what each measured.
    fn finish(self) -> Vec<PingRun> {
        let limit = self.duration + Duration::from_secs(10);
        self.runs
            .into_iter()
            .map(|(number, mut proc)| {
                let status = proc.wait_timeout(limit).expect("wait for ping");
                assert!(status.is_some(), "ping from c{number} still running after {limit:?}");
                let log = proc.log();
                drop(proc);
                PingRun::parse(number, &log)
            })
            .collect()
    }
}

/// What one measuring ping saw.
#[derive(Clone, Debug)]
struct PingRun {
    number: usize,
    transmitted: u32,
    /// icmp_seq -> arrival time (seconds since the epoch).
    replies: BTreeMap<u32, f64>,
    log: String,
}

impl PingRun {
    fn parse(number: usize, log: &str) -> Self {
        let mut replies = BTreeMap::new();
        for line in log.lines().filter(|l| l.contains("bytes from") && !l.contains("DUP!")) {
            let time = line
                .strip_prefix('[')
                .and_then(|l| l.split(']').next())
                .and_then(|t| t.parse::<f64>().ok());
            let seq = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("icmp_seq="))
                .and_then(|s| s.parse::<u32>().ok());
            if let (Some(time), Some(seq)) = (time, seq) {
                replies.entry(seq).or_insert(time);
            }
        }
        let transmitted = log
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("c{number}: no ping summary:\n{log}"));
        Self { number, transmitted, replies, log: log.to_owned() }
    }

    fn received(&self) -> u32 {
        u32::try_from(self.replies.len()).unwrap_or(u32::MAX)
    }

    fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received())
    }

    /// The longest run of unanswered requests, times the interval.
    fn longest_loss(&self) -> Duration {
        let (mut run, mut longest) = (0_u32, 0_u32);
        for seq in 1..=self.transmitted {
            if self.replies.contains_key(&seq) {
                run = 0;
            } else {
                run += 1;
                longest = longest.max(run);
            }
        }
        INTERVAL * longest
    }

    /// The longest silence between two replies, less one interval.
    fn longest_silence(&self) -> Duration {
        let mut times: Vec<f64> = self.replies.values().copied().collect();
        times.sort_by(f64::total_cmp);
        let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        Duration::from_secs_f64(gap).saturating_sub(INTERVAL)
    }

    /// The client's receive outage: the longer of the two measures.
    fn outage(&self) -> Duration {
        self.longest_loss().max(self.longest_silence())
    }

    /// The log's last lines, for assertion messages.
    fn tail(&self) -> String {
        let lines: Vec<&str> = self.log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl fmt::Display for PingRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "c{}: {} of {} lost, outage {:.0} ms (longest run {:.0} ms, longest silence {:.1} ms)",
            self.number,
            self.lost(),
            self.transmitted,
            self.outage().as_secs_f64() * 1000.0,
            self.longest_loss().as_secs_f64() * 1000.0,
            self.longest_silence().as_secs_f64() * 1000.0,
        )
    }
}

/// Prints every run under `what`.
fn report<'a>(what: &str, runs: impl IntoIterator<Item = &'a PingRun>) {
    for run in runs {
        println!("runtime: {what}: {run}");
    }
}

/// Asserts that `run` lost at most [`FEW`] requests.
fn assert_few_lost(what: &str, run: &PingRun, agent_log: &str) {
    assert!(
        run.lost() <= FEW,
        "{what}: {run}: more than {FEW} lost\nping tail:\n{}\nagent log:\n{agent_log}",
        run.tail()
    );
}

// ---------------------------------------------------------------------
// Restart and `alb down` (issue 3, item 6).
// ---------------------------------------------------------------------

/// `kill -9` of the agent while clients ping: the pinned programs stay
/// attached and keep serving; a new agent with the same arguments adopts
/// the maps (clients kept) and replaces the programs atomically.
#[test]
fn kill_9_keeps_traffic_flowing_and_a_restart_adopts_the_clients() {
    let lab = common::lab(4, 2);
    let master = lab.master().to_owned();
    let mut first = Agent::start(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    let before = first.status();
    let clients = assignments(&before);
    assert_eq!(clients.len(), 4, "four clients dealt: {:#}", before.0);
    assert!(even(&before), "two per slave: {:?}", counts(&before));
    let ids_before = assert_attached(&lab, &master, &["veth17", "veth19"]);

    let pings = start_pings(&lab, &[1, 2, 3, 4], Duration::from_secs(5));
    thread::sleep(Duration::from_millis(800));
    let killed_at = Instant::now();
    first.kill9();
    // The pinned links hold the programs: still attached, same programs.
    let ids_dead = assert_attached(&lab, &master, &["veth17", "veth19"]);
    assert_eq!(ids_dead, ids_before, "the same programs stay attached after kill -9");
    let links = pin_dir(&master).join("links");
    for pin in ["tx", "rx-veth17", "rx-veth19"] {
        assert!(links.join(pin).exists(), "pin {} after kill -9", links.join(pin).display());
    }
    assert!(!lock_held(&master), "the killed agent holds no lock");
    // Traffic without any agent for a while.
    thread::sleep(Duration::from_millis(1200));

    let restarted_at = Instant::now();
    let second = first.start_again(&lab);
    let ready_in = restarted_at.elapsed();
    let log = second.log();
    let adopted =
        format!("adopted the data path of an earlier agent: {} clients kept", clients.len());
    assert!(log.contains(&adopted), "the new agent says {adopted:?}:\n{log}");
    let ids_after = assert_attached(&lab, &master, &["veth17", "veth19"]);
    for (dev, id) in &ids_after {
        assert_ne!(Some(id), ids_before.get(dev), "{dev} runs the new agent's program");
    }

    let runs = pings.finish();
    println!(
        "runtime: kill -9 then restart after {:.0} ms without an agent (ready in {:.0} ms)",
        (restarted_at - killed_at).as_secs_f64() * 1000.0,
        ready_in.as_secs_f64() * 1000.0
    );
    report("kill -9 and restart", &runs);
    for run in &runs {
        assert_few_lost("kill -9 and restart", run, &second.log());
    }

    let after = second.status();
    assert_eq!(assignments(&after), clients, "the restarted agent keeps every client's slave");
    assert_eq!(counts(&after), counts(&before), "client counts per slave");
    assert_eq!(after.active_slave(), before.active_slave(), "active slave");
    assert_eq!(after.master_mac(), before.master_mac(), "master MAC");
    assert_all_clients_work(&lab, 20);
    for number in 1..=4 {
        let want = mac_of(&lab, &slave_of(&lab, &after, number));
        assert_eq!(neigh(&lab, number), Some(want), "c{number} still points at its slave");
    }
}

/// `alb down` removes what a killed agent left (master, pins, record) and
/// restores the slaves' sysctls to their values from before the agent; a
/// second `alb down` has nothing to remove; while an agent runs it is
/// refused and changes nothing.
#[test]
fn alb_down_removes_what_a_killed_agent_left() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    lab.sysctl(lab.srv(), "net.ipv4.conf.veth17.arp_ignore", "2").expect("sysctl");
    let sysctls_before: Vec<_> =
        ["veth17", "veth19"].iter().flat_map(|s| sysctls_of(&lab, s)).collect();
    assert!(
        sysctls_before.contains(&("net.ipv4.conf.veth17.arp_ignore".into(), "2".into())),
        "{sysctls_before:?}"
    );
    let mut agent = Agent::start(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    assert!(silenced(&lab, "veth17") && silenced(&lab, "veth19"), "slaves silenced");

    // While the agent runs: refused, nothing changes.
    let status = agent.status();
    let message = assert_refused(&lab, &["down", "--master", &master], &master);
    assert!(message.contains("running agent"), "says an agent runs: {message}");
    assert!(agent.running(), "the agent survives `alb down`:\n{}", agent.log());
    assert_eq!(summary(&agent.status()), summary(&status), "status unchanged");
    assert!(lab.link_exists(lab.srv(), &master).expect("ip"), "master kept");
    assert!(pin_dir(&master).join("links").join("tx").exists(), "pins kept");
    assert!(silenced(&lab, "veth17") && silenced(&lab, "veth19"), "slaves still silenced");
    assert_attached(&lab, &master, &["veth17", "veth19"]);
    assert_all_clients_work(&lab, 10);

    agent.kill9();
    let left = leftovers(&lab, &master);
    assert!(
        left.iter().any(|l| l.contains("pin directory"))
            && left.iter().any(|l| l.contains("undo record"))
            && left.iter().any(|l| l.starts_with(&format!("device {master} "))),
        "a killed agent leaves master, pins and record: {left:?}"
    );

    let (out, text) = alb(&lab, &["down", "--master", &master]);
    assert!(out.status.success(), "alb down after kill -9: {text}");
    assert!(text.contains(&format!("master {master} removed")), "says what it did: {text}");
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "alb down left {left:?}");
    assert!(!state_path(&master).exists(), "no undo record");
    assert!(!socket_path(&master).exists(), "no control socket");
    let sysctls_after: Vec<_> =
        ["veth17", "veth19"].iter().flat_map(|s| sysctls_of(&lab, s)).collect();
    assert_eq!(sysctls_after, sysctls_before, "sysctls as before the first agent");
    for slave in ["veth17", "veth19"] {
        assert_no_programs(&lab, slave);
        assert!(lab.link(lab.srv(), slave).expect("slave").admin_up(), "{slave} stays up");
    }

    let (out, text) = alb(&lab, &["down", "--master", &master]);
    assert!(out.status.success(), "a second alb down exits 0: {text}");
    assert!(text.contains("nothing to remove"), "a second alb down has nothing to do: {text}");
    assert!(leftovers(&lab, &master).is_empty(), "{:?}", leftovers(&lab, &master));
}

// ---------------------------------------------------------------------
// Runtime slave changes (issue 3, item 5).
// ---------------------------------------------------------------------

/// `alb slave add veth21` while four clients on veth17 and veth19 ping:
/// the counts even out, the moved clients point at veth21 within
/// [`NEIGH_DEADLINE`] and their traffic crosses it; nobody loses more than
/// a few pings.
#[test]
fn slave_add_under_traffic_deals_the_new_slave_its_share() {
    let lab = common::lab(4, 3);
    let master = lab.master().to_owned();
    quiet_spare(&lab, "veth21");
    let veth21_before = sysctls_of(&lab, "veth21");
    let agent = Agent::start(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    let before = agent.status();
    assert_eq!(
        counts(&before),
        [("veth17".to_owned(), 2), ("veth19".to_owned(), 2)],
        "two clients on each slave before the add"
    );
    for number in 1..=4 {
        let want = mac_of(&lab, &slave_of(&lab, &before, number));
        assert_eq!(neigh(&lab, number), Some(want), "c{number} resolved its slave's MAC");
    }
    assert_no_programs(&lab, "veth21");

    let pings = start_pings(&lab, &[1, 2, 3, 4], Duration::from_secs(3));
    thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let (out, text) = alb(&lab, &["slave", "add", "veth21", "--master", &master]);
    let took = t0.elapsed();
    assert!(out.status.success(), "alb slave add veth21: {text}\nagent log:\n{}", agent.log());
    assert!(text.starts_with("alb: ") && text.contains("veth21 added"), "{text}");

    let after = agent.status();
    let names: Vec<String> = after.slaves().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["veth17", "veth19", "veth21"], "three slaves in enslave order");
    assert!(after.slaves().iter().all(|s| s.usable), "all usable: {:?}", after.slaves());
    assert!(even(&after), "counts differ by at most one: {:?}", counts(&after));
    let moved: Vec<usize> =
        (1..=4).filter(|&n| slave_of(&lab, &after, n) != slave_of(&lab, &before, n)).collect();
    assert!(!moved.is_empty(), "some client moved to veth21: {:?}", counts(&after));
    let times =
        wait_neigh(&lab, &moved, t0, NEIGH_DEADLINE, |n| mac_of(&lab, &slave_of(&lab, &after, n)));
    println!(
        "runtime: slave add took {:.0} ms; moved clients point at their new slave after {} \
         (from the start of `alb slave add`)",
        took.as_secs_f64() * 1000.0,
        show_ms(&times)
    );
    for number in (1..=4).filter(|n| !moved.contains(n)) {
        let want = mac_of(&lab, &slave_of(&lab, &before, number));
        assert_eq!(neigh(&lab, number), Some(want), "c{number} did not move and was not told");
    }

    let runs = pings.finish();
    report("slave add", &runs);
    for run in &runs {
        assert_few_lost("slave add", run, &agent.log());
    }

    // veth21 is a slave like the others: silenced, receiving, carrying the
    // moved clients' traffic both ways.
    assert!(silenced(&lab, "veth21"), "veth21 silenced: {:?}", sysctls_of(&lab, "veth21"));
    assert_ne!(sysctls_of(&lab, "veth21"), veth21_before, "veth21's sysctls changed");
    assert_attached(&lab, &master, &["veth17", "veth19", "veth21"]);
    let port = port_of(&lab, "veth21");
    for &number in &moved {
        let before = lab.port_stats(&port).expect("port stats").swapped();
        let stats = lab
            .ping(&lab.client(number).ns, SERVER_IP4, 50, Duration::from_millis(2))
            .expect("ping");
        assert_eq!(stats.lost(), 0, "c{number} on veth21: {stats}");
        let crossed = lab.port_stats(&port).expect("port stats").swapped() - before;
        assert!(
            crossed.rx_packets >= 50 && crossed.tx_packets >= 50,
            "c{number}'s 50 pings cross veth21 both ways: {crossed}"
        );
    }
}

/// `alb slave del veth19` while its clients ping: they move to the
/// surviving slaves within the fail threshold, the others are undisturbed,
/// veth19 gets its sysctls back and loses its program, and works as an
/// ordinary device again.
#[test]
fn slave_del_under_traffic_moves_its_clients_and_gives_the_device_back() {
    let lab = common::lab(6, 3);
    let master = lab.master().to_owned();
    let veth19_before = sysctls_of(&lab, "veth19");
    let agent = Agent::start(&lab, &["veth17", "veth19", "veth21"], &[]);
    resolve_all(&lab);
    let before = agent.status();
    assert!(even(&before), "two per slave: {:?}", counts(&before));
    let on_veth19: Vec<usize> =
        (1..=6).filter(|&n| slave_of(&lab, &before, n) == "veth19").collect();
    assert_eq!(on_veth19.len(), 2, "two clients on veth19: {:?}", assignments(&before));
    let others: Vec<usize> = (1..=6).filter(|n| !on_veth19.contains(n)).collect();

    let pings = start_pings(&lab, &[1, 2, 3, 4, 5, 6], Duration::from_secs(3));
    thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let (out, text) = alb(&lab, &["slave", "del", "veth19", "--master", &master]);
    let took = t0.elapsed();
    assert!(out.status.success(), "alb slave del veth19: {text}\nagent log:\n{}", agent.log());
    assert!(text.starts_with("alb: ") && text.contains("veth19 removed"), "{text}");

    let after = agent.status();
    let names: Vec<String> = after.slaves().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["veth17", "veth21"], "veth19 is gone from the status");
    assert!(even(&after), "counts differ by at most one: {:?}", counts(&after));
    assert_eq!(after.clients().len(), 6, "no client forgotten: {:?}", assignments(&after));
    for &number in &on_veth19 {
        let slave = slave_of(&lab, &after, number);
        assert!(slave == "veth17" || slave == "veth21", "c{number} moved to {slave}");
    }
    for &number in &others {
        assert_eq!(
            slave_of(&lab, &after, number),
            slave_of(&lab, &before, number),
            "c{number} stays on its slave"
        );
    }
    let times = wait_neigh(&lab, &on_veth19, t0, FAIL_THRESHOLD, |n| {
        mac_of(&lab, &slave_of(&lab, &after, n))
    });
    println!(
        "runtime: slave del took {:.0} ms; moved clients point at their new slave after {}",
        took.as_secs_f64() * 1000.0,
        show_ms(&times)
    );

    let runs = pings.finish();
    report("slave del", &runs);
    for run in &runs {
        if on_veth19.contains(&run.number) {
            assert!(
                run.outage() < FAIL_THRESHOLD,
                "slave del: moved client {run} is not below {FAIL_THRESHOLD:?}\nping tail:\n{}\n\
                 agent log:\n{}",
                run.tail(),
                agent.log()
            );
        } else {
            assert_few_lost("slave del, a client of another slave", run, &agent.log());
        }
    }

    // veth19 as it was: sysctls, no program, no pin; still up.
    assert_eq!(sysctls_of(&lab, "veth19"), veth19_before, "veth19's sysctls restored");
    assert_no_programs(&lab, "veth19");
    assert!(!pin_dir(&master).join("links").join("rx-veth19").exists(), "rx-veth19 unpinned");
    assert_attached(&lab, &master, &["veth17", "veth21"]);
    let veth19 = lab.link(lab.srv(), "veth19").expect("veth19");
    assert!(veth19.admin_up() && veth19.lower_up(), "veth19 up with carrier: {veth19:?}");
    assert_all_clients_work(&lab, 20);

    // veth19 carries ordinary traffic of its own through its switch port.
    let c1 = lab.client(1);
    lab.ip(lab.srv(), &["addr", "add", "198.19.0.1/24", "dev", "veth19"]).expect("addr");
    lab.ip(&c1.ns, &["addr", "add", "198.19.0.11/24", "dev", &c1.dev]).expect("addr");
    let stats = lab
        .exec(
            lab.srv(),
            &[
                "ping",
                "-n",
                "-q",
                "-c",
                "5",
                "-i",
                "0.05",
                "-W",
                "1",
                "-I",
                "veth19",
                "198.19.0.11",
            ],
        )
        .expect("ping from veth19");
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "veth19 works as an ordinary device again:\n{text}");
}

/// Bad runtime requests: each exits 1 with a one-line `alb: ...` message
/// and changes nothing.
#[test]
fn bad_runtime_requests_are_refused_and_change_nothing() {
    let lab = common::lab(2, 3);
    let master = lab.master().to_owned();
    let peer = format!("{master}p");
    quiet_spare(&lab, "veth21");
    let veth21_before = sysctls_of(&lab, "veth21");
    let mut agent = Agent::start(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    let before = summary(&agent.status());
    let other = format!("z{}", &master[1..]);
    let cases: [(&[&str], &str); 7] = [
        (&["slave", "add", "nosuch0", "--master", &master], "nosuch0"),
        (&["slave", "add", "veth17", "--master", &master], "already a slave"),
        (&["slave", "del", "veth21", "--master", &master], "not a slave"),
        (&["slave", "del", "nosuch0", "--master", &master], "not a slave"),
        (&["slave", "add", &master, "--master", &master], "master itself"),
        (&["slave", "add", &peer, "--master", &master], "master itself"),
        (&["slave", "add", "veth21", "--master", &other], &other),
    ];
    for (args, expect) in cases {
        let message = assert_refused(&lab, args, expect);
        println!("runtime: `alb {}` -> {message}", args.join(" "));
        assert!(agent.running(), "the agent survives `alb {}`:\n{}", args.join(" "), agent.log());
        assert_eq!(summary(&agent.status()), before, "`alb {}` changed the status", args.join(" "));
        assert_eq!(sysctls_of(&lab, "veth21"), veth21_before, "veth21 untouched");
        assert_no_programs(&lab, "veth21");
        assert!(silenced(&lab, "veth17") && silenced(&lab, "veth19"), "slaves still silenced");
    }
    assert_attached(&lab, &master, &["veth17", "veth19"]);
    assert!(!pin_dir(&master).join("links").join("rx-veth21").exists(), "no pin for veth21");
    assert!(!pin_dir(&other).exists() && !socket_path(&other).exists(), "nothing for {other}");
    assert_all_clients_work(&lab, 10);
}

/// A device that is a slave of a running master cannot be taken by a
/// second master: the second agent is refused and leaves nothing; the
/// first keeps working.
#[test]
fn a_second_master_cannot_take_a_slave_of_the_first() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let agent = Agent::start(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    let before = summary(&agent.status());
    let ids = assert_attached(&lab, &master, &["veth17", "veth19"]);

    let second = format!("z{}", &master[1..]);
    assert!(second.len() <= 14 && second != master, "{second}");
    let message = assert_refused(
        &lab,
        &["--master", &second, "--iface", "veth19"],
        "already a slave of another alb master",
    );
    assert!(message.contains("veth19"), "names the device: {message}");
    let left = leftovers(&lab, &second);
    common::remove_lock_file(&second);
    assert!(left.is_empty(), "the refused agent left {left:?}");
    assert!(!socket_path(&second).exists(), "no control socket for {second}");

    assert_eq!(summary(&agent.status()), before, "the first master's status unchanged");
    assert_eq!(assert_attached(&lab, &master, &["veth17", "veth19"]), ids, "same programs");
    assert!(silenced(&lab, "veth19"), "veth19 still silenced for the first master");
    assert_all_clients_work(&lab, 20);
}

/// `--primary veth19`: the master carries veth19's MAC and veth19 is
/// active; when its switch port goes down veth17 takes over, and when it
/// comes back veth19 is active again, still with the master's MAC.
#[test]
fn the_primary_is_active_whenever_it_is_up() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let agent = Agent::start(&lab, &["veth17", "veth19"], &["--primary", "veth19"]);
    let veth19_mac = mac_of(&lab, "veth19");
    let assert_primary_active = |status: &Status, when: &str| {
        assert_eq!(status.active_slave().as_deref(), Some("veth19"), "{when}: veth19 active");
        assert_eq!(status.master_mac(), veth19_mac, "{when}: status master MAC");
        let mac = lab.link_mac(lab.srv(), &master).expect("master MAC");
        assert_eq!(mac, veth19_mac, "{when}: the master device has veth19's MAC");
    };
    assert_primary_active(&agent.status(), "at start");
    resolve_all(&lab);
    assert_all_clients_work(&lab, 10);

    let port = port_of(&lab, "veth19");
    lab.set_link(lab.sw(), &port, false).expect("port down");
    let down = agent.wait_status(Duration::from_secs(2), "veth17 active", |s| {
        s.active_slave().as_deref() == Some("veth17")
    });
    assert!(down.slaves().iter().any(|s| s.name == "veth19" && !s.usable), "veth19 unusable");
    assert_all_clients_work(&lab, 10);

    let t0 = Instant::now();
    lab.set_link(lab.sw(), &port, true).expect("port up");
    let up = agent.wait_status(Duration::from_secs(3), "veth19 active again", |s| {
        s.active_slave().as_deref() == Some("veth19")
    });
    println!(
        "runtime: primary veth19 active again {:.0} ms after its port came up",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    assert_primary_active(&up, "after its port came back");
    assert!(up.slaves().iter().all(|s| s.usable), "both usable: {:?}", up.slaves());
    assert_all_clients_work(&lab, 10);
}

/// The control socket is root-only: the socket is mode 0600 and owned by
/// root, in a directory of mode 0700; an unprivileged user cannot use it;
/// it goes with the agent.
#[test]
fn the_control_socket_is_root_only() {
    let lab = common::lab(1, 3);
    let master = lab.master().to_owned();
    let mut agent = Agent::start(&lab, &["veth17", "veth19"], &[]);
    let path = socket_path(&master);
    let meta =
        std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.file_type().is_socket(), "{} is a socket", path.display());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{} mode", path.display());
    assert_eq!(meta.uid(), 0, "{} owned by root", path.display());
    let dir = std::fs::metadata("/run/alb").expect("/run/alb");
    assert_eq!(dir.permissions().mode() & 0o7777, 0o700, "/run/alb mode");
    assert_eq!(dir.uid(), 0, "/run/alb owned by root");

    // nobody cannot reach it.
    let bin = common::alb_bin();
    let out = lab
        .exec(
            lab.srv(),
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                bin.to_str().expect("UTF-8 path"),
                "slave",
                "add",
                "veth21",
                "--master",
                &master,
            ],
        )
        .expect("setpriv");
    let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(!out.status.success(), "an unprivileged user is refused: {text}");
    assert!(text.starts_with("alb: ") && text.contains("ermission denied"), "{text}");
    println!("runtime: `alb slave add` as nobody -> {text}");
    let names: Vec<String> = agent.status().slaves().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["veth17", "veth19"], "no slave added");
    assert_no_programs(&lab, "veth21");

    let status = agent.proc.stop().expect("stop alb");
    assert!(status.success(), "alb stops cleanly: {status}\n{}", agent.log());
    assert!(!path.exists(), "{} removed with the agent", path.display());
    wait_until(Duration::from_secs(1), "no leftovers", || Ok(leftovers(&lab, &master).is_empty()))
        .unwrap_or_else(|e| panic!("{e:#}: {:?}", leftovers(&lab, &master)));
}
