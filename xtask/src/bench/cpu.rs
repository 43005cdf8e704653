//! Figure 2c: the CPU cost of the same traffic through alb and through a
//! plain veth, at a fixed offered load below saturation.
//!
//! Why not the rate at saturation (figure 2): on 2 vCPUs shared with
//! other work, one second of iperf3 at full speed measures how much CPU the
//! run got as much as what alb costs (single runs of one arm range 6-20
//! Gbit/s), so paired ratios scatter ±35%. Here every arm offers the same
//! load (iperf3 `-b`), well below what one CPU carries, and the figure is
//! the work done per CPU second: bytes (TCP) or datagrams (UDP) received,
//! divided by the CPU time of the measured processes. That time is the
//! scheduler's own clock of the iperf3 ends, read from a cpuacct cgroup
//! that holds them (`cpuacct.usage`, ns): this kernel has no
//! `CONFIG_IRQ_TIME_ACCOUNTING`, so the softirq work done in their context
//! (veth's backlog, the TC programs, the bridge) is charged to them, and
//! with `CONFIG_PARAVIRT_TIME_ACCOUNTING` time the host steals is not.
//! What runs in ksoftirqd instead is added from `/proc/<pid>/schedstat`
//! (it serves others too, so it is recorded apart). Other processes on the
//! machine then change how much CPU the run gets, not how much it uses;
//! what they still change (caches, wake-up latency) is noise common to
//! arms interleaved in one round.
//!
//! The method is validated in the same run before its ratios are read:
//! an A/A control (the plain veth against a twin plain veth) whose
//! interval must lie within [0.98, 1.02], and an A/B with a known added
//! cost (the twin with a bounded-loop TC program on its server veth, both
//! directions, whose ns per run BPF_PROG_TEST_RUN measures) that the
//! method must detect, with the ratio the known cost predicts.

use std::{cell::RefCell, path::PathBuf};

use alb_tests::{Lab, Proc, SERVER_IP4};
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::{
    Ctx, learn_clients,
    net::{PORT, TESTS, Test},
    paired,
    rawprog::{self, Pinned},
    start_agent, stop_agent,
};

/// The offered load of each test: about a quarter of what the plain veth
/// carries at saturation here (figure 2: ~13 Gbit/s, ~100 kpps).
fn offered(test: &Test) -> &'static [&'static str] {
    if test.unit == "kpps" { &["-b", "16M"] } else { &["-b", "3G"] }
}

/// The tests of the figure: each direction of one TCP stream and of
/// 64-byte UDP.
const TEST_IDS: [&str; 4] = ["tcp1_up", "tcp1_down", "udp64_up", "udp64_down"];

/// Loop iterations of the known-cost program per test: about 3% of the
/// plain veth's CPU time per packet (TCP moves ~64 KiB per skb, UDP 64
/// bytes).
fn burn_iterations(test: &Test) -> u32 {
    if test.unit == "kpps" { 300 } else { 3000 }
}

/// A cpuacct cgroup of the measured processes, removed on drop (its
/// processes must be gone by then).
struct CpuGroup {
    dir: PathBuf,
}

impl CpuGroup {
    fn new(name: &str) -> Result<Self> {
        let dir = PathBuf::from("/sys/fs/cgroup/cpuacct").join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// CPU ns its processes used (the scheduler's clock).
    fn usage_ns(&self) -> Result<u64> {
        let path = self.dir.join("cpuacct.usage");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        text.trim().parse().with_context(|| format!("{}: {text:?}", path.display()))
    }

    /// `argv` wrapped so that it joins this cgroup, then execs.
    fn wrap<'a>(&'a self, procs: &'a str, argv: &[&'a str]) -> Vec<&'a str> {
        let mut out = vec!["sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", procs];
        out.extend_from_slice(argv);
        out
    }

    fn procs_path(&self) -> String {
        self.dir.join("cgroup.procs").to_string_lossy().into_owned()
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("bench: cannot remove the cgroup {}: {e}", self.dir.display());
        }
    }
}

/// CPU ns every ksoftirqd thread used so far.
fn ksoftirqd_ns() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// One lab of the figure: its cgroup, its iperf3 server, and the device
/// whose skbs the known-cost arm pays for.
struct Arm<'a> {
    lab: &'a Lab,
    client: usize,
    /// Its server's port (two arms share alb's lab).
    port: u16,
    /// Drops before `group`: its processes leave the cgroup first.
    _server: Proc,
    group: CpuGroup,
    /// One measured run of each round, for the JSON.
    samples: RefCell<Vec<Value>>,
}

impl<'a> Arm<'a> {
    fn new(lab: &'a Lab, client: usize, port: u16, tag: &str) -> Result<Self> {
        let group = CpuGroup::new(&format!("albbench{}{tag}", std::process::id()))?;
        let procs = group.procs_path();
        let port_s = port.to_string();
        let argv = ["taskset", "-c", &server_cpu(), "iperf3", "-s", "-p", &port_s, "--forceflush"];
        let server = lab.spawn(lab.srv(), &group.wrap(&procs, &argv))?;
        alb_tests::wait_until(std::time::Duration::from_secs(5), "iperf3 to listen", || {
            Ok(server.log().contains("Server listening"))
        })?;
        Ok(Self { lab, client, port, _server: server, group, samples: RefCell::new(Vec::new()) })
    }

    /// One run: work per CPU second (GB or kpackets per CPU s) over the
    /// steady part of an iperf3 run at the offered load: sampled `WARM`
    /// after it starts (its start-up, handshake and slow start left out)
    /// and again `MEASURED` later, before it ends (its report left out).
    /// Work is what the client's interface moved (bytes for TCP, packets
    /// for UDP, both directions).
    fn run(&self, test: &Test, secs: u32) -> Result<f64> {
        let c = self.lab.client(self.client);
        let procs = self.group.procs_path();
        let total = f64::from(secs) + WARM.as_secs_f64() + 0.5;
        let (port, secs_s) = (self.port.to_string(), format!("{total:.1}"));
        let mut argv =
            vec!["taskset", "-c", "0", "iperf3", "-c", SERVER_IP4, "-p", &port, "-t", &secs_s];
        // The test's own `-b 0` gives way to the offered load.
        let mut args = test.args.iter();
        while let Some(&arg) = args.next() {
            if arg == "-b" {
                args.next();
            } else {
                argv.push(arg);
            }
        }
        argv.extend_from_slice(offered(test));
        let mut client = self.lab.spawn(&c.ns, &self.group.wrap(&procs, &argv))?;
        std::thread::sleep(WARM);
        let sample = || -> Result<(u64, u64, (u64, u64))> {
            Ok((self.group.usage_ns()?, ksoftirqd_ns(), moved(self.lab, &c.ns, &c.dev)?))
        };
        let (cg0, soft0, (bytes0, skbs0)) = sample()?;
        std::thread::sleep(std::time::Duration::from_secs(u64::from(secs)));
        let (cg1, soft1, (bytes1, skbs1)) = sample()?;
        let status = client
            .wait_timeout(std::time::Duration::from_secs_f64(total + 5.0))?
            .with_context(|| format!("iperf3 in {} did not end", c.ns))?;
        if !status.success() {
            bail!("iperf3 in {} failed ({status}): {}", c.ns, client.log().trim());
        }
        let skbs = skbs1 - skbs0;
        let work = if test.unit == "kpps" { skbs } else { bytes1 - bytes0 } as f64;
        let cpu_ns = (cg1 - cg0) as f64 + (soft1 - soft0) as f64;
        self.samples.borrow_mut().push(json!({
            "work": work,
            "cgroup_ns": cg1 - cg0,
            "ksoftirqd_ns": soft1 - soft0,
            "skbs": skbs,
        }));
        // GB per CPU second (bytes per ns) or kpackets per CPU second.
        Ok(if test.unit == "kpps" { work / cpu_ns * 1e6 } else { work / cpu_ns })
    }
}

/// The part of each run left out before the CPU time is sampled.
const WARM: std::time::Duration = std::time::Duration::from_millis(700);

/// Bytes (TCP) or packets (UDP) the client's interface `dev` in `ns` moved
/// so far, both directions (`ip -s -j link`: /sys under nsenter is the
/// root namespace's).
/// Also its skbs (packets), which pay the known cost on the server veth.
fn moved(lab: &Lab, ns: &str, dev: &str) -> Result<(u64, u64)> {
    let out = lab.run(ns, &["ip", "-s", "-j", "link", "show", "dev", dev])?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("ip -s -j link: {out}"))?;
    let stats = &v[0]["stats64"];
    let count = |dir: &str, field: &str| stats[dir][field].as_u64().context("no stats64");
    Ok((
        count("rx", "bytes")? + count("tx", "bytes")?,
        count("rx", "packets")? + count("tx", "packets")?,
    ))
}

fn server_cpu() -> String {
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1);
    (cpus - 1).to_string()
}

/// Attaches the known-cost program at `pin` to both directions of the
/// server veth of `lab` (replacing the one there).
fn attach_burn(lab: &Lab, pin: &Pinned, first: bool) -> Result<()> {
    let (srv, dev) = (lab.srv(), lab.slave(0).name.clone());
    if first {
        lab.run(srv, &["tc", "qdisc", "add", "dev", &dev, "clsact"])?;
    }
    let path = pin.path.to_str().context("pin path")?;
    for hook in ["ingress", "egress"] {
        lab.run(
            srv,
            &[
                "tc",
                "filter",
                "replace",
                "dev",
                &dev,
                hook,
                "pref",
                "1",
                "handle",
                "1",
                "bpf",
                "da",
                "object-pinned",
                path,
            ],
        )?;
    }
    Ok(())
}

/// Figure 2c. `plain` is figure 2's baseline lab; `twin` and `known` are
/// two more plain labs built alike (`known` gets the known-cost program);
/// `lab` runs alb.
pub(crate) fn run(ctx: &Ctx, lab: &Lab, plain: &Lab, twin: &Lab, known: &Lab) -> Result<Value> {
    let s = &ctx.sizes;
    let pins = format!("/sys/fs/bpf/albbenchcpu{}", std::process::id());
    std::fs::create_dir_all(&pins).with_context(|| format!("cannot create {pins} (bpffs)"))?;
    let result = (|| {
        let agent = start_agent(ctx, lab, 2, &[])?;
        learn_clients(lab, &[1, 2])?;
        for l in [plain, twin, known] {
            learn_clients(l, &[1])?;
        }
        let arms = [
            Arm::new(plain, 1, PORT, "p")?,
            Arm::new(twin, 1, PORT, "t")?,
            Arm::new(known, 1, PORT, "k")?,
            Arm::new(lab, 1, PORT, "a")?,
            Arm::new(lab, 2, PORT + 1, "b")?,
        ];
        let names = ["plain", "plain_twin", "known_cost", "alb_slave0", "alb_slave1"];
        let mut tests = Vec::new();
        for (n, test) in TESTS.iter().filter(|t| TEST_IDS.contains(&t.id)).enumerate() {
            let iterations = burn_iterations(test);
            let pin = rawprog::pin_burn(
                iterations,
                &std::path::Path::new(&pins).join(format!("burn{iterations}")),
            )?;
            attach_burn(known, &pin, n == 0)?;
            let burn_ns = rawprog::burn_ns(&pin)?;
            for arm in &arms {
                arm.samples.borrow_mut().clear();
            }
            eprintln!(
                "bench: cpu {} ({} rounds, known cost {burn_ns:.0} ns)",
                test.id, s.cpu_rounds
            );
            let paired_arms: Vec<paired::Arm<'_>> = arms
                .iter()
                .zip(names)
                .map(|(arm, name)| paired::Arm {
                    name,
                    run: Box::new(move || arm.run(test, s.cpu_secs)),
                })
                .collect();
            let label = format!("cpu/{}", test.id);
            let budget = paired::budget(s.cpu_rounds, arms.len(), f64::from(s.cpu_secs) + 2.0);
            // No round is discarded for others' load: the figure is CPU
            // time, which their load does not add to (see the module).
            let rounds = paired::run(
                &label,
                &paired_arms,
                s.cpu_rounds,
                s.cpu_rounds,
                budget,
                f64::INFINITY,
            )?;
            let mut row = rounds.json();
            row["id"] = json!(test.id);
            row["what"] = json!(test.what);
            row["offered"] = json!(offered(test).join(" "));
            row["unit"] = json!(if test.unit == "kpps" {
                "kpackets per CPU second"
            } else {
                "GB per CPU second"
            });
            row["aa"] = rounds.compare(&label, 1, 0);
            row["known_cost"] = rounds.compare(&label, 2, 1);
            row["ratio_slave0"] = rounds.compare(&label, 3, 0);
            row["ratio_slave1"] = rounds.compare(&label, 4, 0);
            row["known_cost_ns"] = json!(burn_ns);
            row["known_cost_iterations"] = json!(iterations);
            row["known_cost_expected"] = json!(expected(&arms[1], &arms[2], burn_ns));
            row["samples"] = json!(
                names
                    .iter()
                    .zip(&arms)
                    .map(|(name, arm)| ((*name).to_owned(), json!(*arm.samples.borrow())))
                    .collect::<serde_json::Map<_, _>>()
            );
            tests.push(row);
        }
        drop(arms);
        stop_agent(agent)?;
        Ok(json!({
            "secs": s.cpu_secs,
            "rounds": s.cpu_rounds,
            "method": "iperf3 at a fixed offered load (-b) in every arm, clients on CPU 0, \
                       servers on the last CPU; figure = work per CPU second over 1 s of each \
                       run's steady part (sampled 0.7 s after the client starts, before it \
                       ends): bytes (TCP) or packets (UDP) through the client's interface, both \
                       directions, over the CPU time of the iperf3 ends (a cpuacct cgroup: the \
                       scheduler's clock, softirq in their context included) plus every \
                       ksoftirqd's; one run per arm per round, orders cycling through the \
                       permutations, no round discarded; ratio = arm / base per round, median \
                       and 95% bootstrap interval",
            "aa": "plain veth against a twin plain veth (same build, same protocol)",
            "known_cost": "the twin with a bounded-loop TC program (BPF_PROG_TEST_RUN ns per \
                           run, empty-program floor subtracted) on its server veth, ingress \
                           and egress, against the twin without it",
            "target_ratio": 0.98,
            "aa_bounds": [0.98, 1.02],
            "tests": tests,
        }))
    })();
    let _ignored = std::fs::remove_dir_all(&pins);
    result
}

/// The ratio the known cost predicts per round: the twin's CPU per unit
/// of work against the same plus `burn_ns` per skb through the veth, with
/// the known-cost arm's own skbs per unit of work; the median over rounds.
fn expected(twin: &Arm<'_>, known: &Arm<'_>, burn_ns: f64) -> f64 {
    let (t, k) = (twin.samples.borrow(), known.samples.borrow());
    let per_round: Vec<f64> = t
        .iter()
        .zip(k.iter())
        .filter_map(|(t, k)| {
            let cost =
                (t["cgroup_ns"].as_f64()? + t["ksoftirqd_ns"].as_f64()?) / t["work"].as_f64()?;
            let extra = burn_ns * k["skbs"].as_f64()? / k["work"].as_f64()?;
            Some(cost / (cost + extra))
        })
        .collect();
    super::median(&per_round)
}
