//! `cargo xtask bench`: alb's figures, each next to its baseline measured
//! in the same run, written to docs/benchmarks.{md,json,svg}.
//!
//! Labs in private namespaces: lab A (2 slaves, 4 clients) runs alb for
//! the per-packet cost, throughput, aggregation, failover and scale; its
//! twin, lab P, has the server address directly on one veth (no agent, no
//! BPF) and is the baseline of throughput and aggregation, measured in
//! turn with lab A; lab B (4 slaves, 64 clients) is for balance; lab S (3
//! slaves, 6 clients) for the chaos soak ([`soak`]). The
//! BPF_PROG_TEST_RUN measurements run in `albbench`, a bench target of the
//! tests crate (which may link the BPF object through alb-user); xtask
//! builds it, runs it in the lab and reads its JSON. The agent is the
//! release build. A run given `--only` keeps the other sections recorded
//! in the output directory ([`merge`]).

mod balance;
mod cpu;
mod failover;
mod layout;
mod merge;
mod net;
mod paired;
mod quiet;
mod rawprog;
mod report;
mod scale;
mod soak;
mod stats;

use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use alb_tests::{Agent, AgentCommand, Lab, LabConfig, SERVER_IP4, cmd};
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::{bootstrap, cargo, signals};

/// How big each measurement is.
#[derive(Clone, Debug)]
pub(crate) struct Sizes {
    pub(crate) quick: bool,
    /// Test-run repetitions per sample, and samples per case.
    pub(crate) repeat: u32,
    pub(crate) runs: u32,
    /// iperf3 seconds per throughput run, and seconds of TCP warm-up
    /// before them (`--omit`).
    pub(crate) iperf_secs: u32,
    pub(crate) omit_secs: u32,
    /// Paired rounds to keep per throughput test, and most to take (a
    /// round in which another process was busy is discarded).
    pub(crate) rounds: usize,
    pub(crate) max_rounds: usize,
    /// Paired rounds per test of the layout experiment.
    pub(crate) layout_rounds: usize,
    /// Figure 2c: seconds per run at the offered load, and rounds (none
    /// is discarded).
    pub(crate) cpu_secs: u32,
    pub(crate) cpu_rounds: usize,
    /// iperf3 seconds per aggregation test, and its rounds.
    pub(crate) agg_secs: u32,
    pub(crate) agg_rounds: usize,
    /// Failover: repetitions per scenario, and seconds before the failure,
    /// with the slave down, and after it is back.
    pub(crate) failover_reps: usize,
    pub(crate) failover_phases: [f64; 3],
    /// Client-table sizes for the scale figure.
    pub(crate) scale: Vec<u32>,
    pub(crate) spread: u32,
    pub(crate) idle_ms: u64,
    /// Clients in the balance lab.
    pub(crate) balance_clients: usize,
    /// How long the chaos soak runs (`--soak-minutes`).
    pub(crate) soak_minutes: f64,
}

impl Sizes {
    pub(crate) fn full() -> Self {
        Self {
            quick: false,
            repeat: 1_000_000,
            runs: 5,
            iperf_secs: 1,
            omit_secs: 1,
            rounds: 20,
            max_rounds: 30,
            layout_rounds: 12,
            cpu_secs: 1,
            cpu_rounds: 12,
            agg_secs: 4,
            agg_rounds: 2,
            failover_reps: 3,
            failover_phases: [1.0, 2.0, 1.5],
            scale: vec![100_000, 1_000_000],
            spread: 20_000,
            idle_ms: 11_000,
            balance_clients: 64,
            soak_minutes: 10.0,
        }
    }

    pub(crate) fn quick() -> Self {
        Self {
            quick: true,
            repeat: 10_000,
            runs: 2,
            iperf_secs: 1,
            omit_secs: 0,
            rounds: 3,
            max_rounds: 4,
            layout_rounds: 3,
            cpu_secs: 1,
            cpu_rounds: 3,
            agg_secs: 1,
            agg_rounds: 1,
            failover_reps: 1,
            failover_phases: [0.5, 1.0, 0.7],
            scale: vec![1_000, 10_000],
            spread: 1_000,
            idle_ms: 500,
            balance_clients: 8,
            soak_minutes: 1.0,
        }
    }
}

/// What the sections share: the binaries, the sizes and the sections
/// asked for.
pub(crate) struct Ctx {
    pub(crate) alb: String,
    pub(crate) albbench: String,
    pub(crate) sizes: Sizes,
    pub(crate) only: Vec<String>,
    /// Paired rounds during which others used more than this share of one
    /// CPU are discarded.
    pub(crate) busy_share: f64,
}

/// The sections, in the order they run.
pub(crate) const SECTIONS: [&str; 9] =
    ["cost", "throughput", "cpu", "layout", "aggregation", "failover", "scale", "balance", "soak"];

/// The chaos soak's options: minutes (default: the sizes') and the seed of
/// its fault schedule (default: a fresh one, printed and recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SoakOptions {
    pub(crate) minutes: Option<f64>,
    pub(crate) seed: Option<u64>,
}

/// `cargo xtask bench [--quick] [--out DIR] [--only SECTION,...] [--render]
/// [--soak-minutes N] [--soak-seed S]`. A run given `--only` keeps the
/// other sections of the benchmarks.json already in the output directory
/// (their figures, the run that measured them in `meta`) and records its
/// own run in each section it measured (`run`).
pub(crate) fn run(
    quick: bool,
    out: Option<PathBuf>,
    only: Vec<String>,
    render: bool,
    busy_share: f64,
    soak: SoakOptions,
) -> Result<()> {
    if render {
        let dir = out.unwrap_or_else(|| cargo::root().join("docs"));
        let path = dir.join("benchmarks.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("cannot parse {}", path.display()))?;
        report::write(&dir, &doc)?;
        eprintln!("bench: rewrote {}/benchmarks.{{md,svg}} from benchmarks.json", dir.display());
        return Ok(());
    }
    if let Some(unknown) = only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        bail!("unknown section {unknown:?}: one of {}", SECTIONS.join(", "));
    }
    bootstrap::run()?;
    for tool in ["iperf3", "tc", "ping", "bpftool"] {
        if bootstrap::which(tool).is_none() {
            bail!("{tool} is missing: run cargo xtask bootstrap");
        }
    }
    let mut sizes = if quick { Sizes::quick() } else { Sizes::full() };
    if let Some(minutes) = soak.minutes {
        if !(minutes > 0.0 && minutes <= 24.0 * 60.0) {
            bail!("--soak-minutes {minutes}: give 0 < N <= 1440");
        }
        sizes.soak_minutes = minutes;
    }
    let out = out.unwrap_or_else(|| {
        if quick {
            cargo::root().join("target").join("bench-quick")
        } else {
            cargo::root().join("docs")
        }
    });
    let ctx = Ctx {
        alb: path_str(&cargo::build_agent(cargo::Profile::Release)?)?,
        albbench: path_str(&build_albbench()?)?,
        sizes,
        only,
        busy_share,
    };
    signals::catch()?;
    let started = Instant::now();
    let meta_before = machine();
    let cpu_before = cpu_by_process();
    let mut doc = json!({});
    let mut errors = Vec::new();

    let pid = std::process::id();
    let config = |suffix: &str, clients, slaves| LabConfig {
        prefix: format!("albb{pid}{suffix}"),
        clients,
        slaves,
        master: format!("ab{pid}{suffix}"),
    };
    if SECTIONS[..7].iter().any(|s| ctx.wants(s)) {
        eprintln!("bench: labs albb{pid}a (alb) and albb{pid}p (plain veth): 2 slaves, 4 clients");
        let lab = Lab::up(config("a", 4, 2))?;
        section(&ctx, &mut doc, &mut errors, "cost", || cost(&ctx, &lab));
        if ["throughput", "cpu", "layout", "aggregation"].iter().any(|s| ctx.wants(s)) {
            let plain = Lab::up(config("p", 4, 2))?;
            baseline_up(&plain)?;
            section(&ctx, &mut doc, &mut errors, "throughput", || {
                net::throughput(&ctx, &lab, &plain)
            });
            section(&ctx, &mut doc, &mut errors, "cpu", || {
                let (twin, known) = (Lab::up(config("e", 1, 2))?, Lab::up(config("k", 1, 2))?);
                baseline_up(&twin)?;
                baseline_up(&known)?;
                cpu::run(&ctx, &lab, &plain, &twin, &known)
            });
            section(&ctx, &mut doc, &mut errors, "layout", || layout::run(&ctx, &config, &plain));
            section(&ctx, &mut doc, &mut errors, "aggregation", || {
                net::aggregation(&ctx, &lab, &plain)
            });
        }
        section(&ctx, &mut doc, &mut errors, "failover", || failover::run(&ctx, &lab));
        section(&ctx, &mut doc, &mut errors, "scale", || scale::run(&ctx, &lab));
    }
    signals::check()?;
    if ctx.wants("balance") {
        let config = config("b", ctx.sizes.balance_clients, 4);
        eprintln!("bench: lab {} (4 slaves, {} clients)", config.prefix, config.clients);
        {
            let lab = Lab::up(config)?;
            section(&ctx, &mut doc, &mut errors, "balance", || balance::run(&ctx, &lab));
        }
    }
    signals::check()?;
    if ctx.wants("soak") {
        let seed = soak.seed.unwrap_or_else(soak::fresh_seed);
        let config = config("s", soak::CLIENTS, soak::SLAVES);
        section(&ctx, &mut doc, &mut errors, "soak", || soak::run(&ctx, config, seed));
    }
    for suffix in ["a", "b", "s"] {
        alb_tests::agent::remove_lock_file(&format!("ab{pid}{suffix}"));
    }

    let mut meta = meta_before;
    meta["quick"] = json!(ctx.sizes.quick);
    meta["only"] = json!(ctx.only);
    meta["duration_s"] = json!(started.elapsed().as_secs_f64());
    meta["after"] = load();
    meta["busy_others"] = busy_others(&cpu_before, started.elapsed().as_secs_f64());
    let doc = if ctx.only.is_empty() {
        doc["meta"] = meta;
        doc["errors"] = json!(errors);
        doc
    } else {
        merge::merge(&out, &doc, &meta, &errors, &ctx.only)?
    };
    report::write(&out, &doc)?;
    eprintln!(
        "bench: wrote {}/benchmarks.{{md,json,svg}} in {:.0} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    if !errors.is_empty() {
        bail!("{} section(s) failed: {}", errors.len(), errors.join("; "));
    }
    Ok(())
}

impl Ctx {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

/// Runs one section (if asked for); a failure is recorded and the run
/// goes on (an interrupt stops it).
fn section(
    ctx: &Ctx,
    doc: &mut Value,
    errors: &mut Vec<String>,
    name: &str,
    f: impl FnOnce() -> Result<Value>,
) {
    if !ctx.wants(name) {
        return;
    }
    if signals::check().is_err() {
        errors.push(format!("{name}: interrupted"));
        return;
    }
    let start = Instant::now();
    eprintln!("bench: == {name}");
    match f() {
        Ok(mut value) => {
            value["section_s"] = json!(start.elapsed().as_secs_f64());
            doc[name] = value;
            eprintln!("bench: {name} done in {:.1} s", start.elapsed().as_secs_f64());
        }
        Err(e) => {
            eprintln!("bench: {name} failed: {e:#}");
            errors.push(format!("{name}: {e:#}"));
        }
    }
}

/// Figure 1, run in the server namespace of lab A (no agent).
fn cost(ctx: &Ctx, lab: &Lab) -> Result<Value> {
    let s = &ctx.sizes;
    let out = lab.run(
        lab.srv(),
        &[&ctx.albbench, "cost", "--repeat", &s.repeat.to_string(), "--runs", &s.runs.to_string()],
    )?;
    serde_json::from_str(&out).context("cannot parse albbench cost output")
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str().map(str::to_owned).with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Builds the `albbench` bench target and returns its executable.
fn build_albbench() -> Result<PathBuf> {
    eprintln!("bench: building albbench (cargo bench -p alb-tests --bench albbench --no-run)");
    let out = cmd::run(cargo::cargo().args([
        "bench",
        "-p",
        "alb-tests",
        "--bench",
        "albbench",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]))?;
    out.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "albbench")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .context("cargo built no albbench executable")
}

/// Starts the release agent in lab `lab`'s server namespace on its first
/// `slaves` slaves, `alb --master <lab master> --iface <slaves...> <extra>`,
/// waits for "ready" and gives the master the server's addresses.
pub(crate) fn start_agent(ctx: &Ctx, lab: &Lab, slaves: usize, extra: &[&str]) -> Result<Agent> {
    let ifaces: Vec<&str> = lab.slaves()[..slaves].iter().map(|s| s.name.as_str()).collect();
    let agent = AgentCommand::on(lab, &ctx.alb, &ifaces)
        .args(extra)
        .ready_timeout(Duration::from_secs(30))
        .interrupt(signals::check)
        .start(lab)?;
    lab.add_server_addrs()?;
    Ok(agent)
}

/// Stops the agent (SIGTERM; it removes its master and pins).
pub(crate) fn stop_agent(agent: Agent) -> Result<()> {
    stop_agent_within(agent, alb_tests::STOP_TIMEOUT)
}

/// [`stop_agent`], with SIGKILL after `timeout`; a killed agent or one that
/// exits non-zero is an error, and what it left (pins live outside the lab)
/// is removed with `alb down`, then by hand.
pub(crate) fn stop_agent_within(mut agent: Agent, timeout: Duration) -> Result<()> {
    let stopped = agent.stop_with(nix::sys::signal::Signal::SIGTERM, timeout);
    if let Ok(status) = &stopped {
        if status.success() {
            return Ok(());
        }
    }
    let cleaned = agent.clean_up();
    let how = match stopped {
        Ok(status) => format!("the agent stopped with {status}"),
        Err(e) => format!("{e:#}"),
    };
    bail!(
        "{how}{}; last log lines:\n{}",
        if cleaned.is_empty() { String::new() } else { format!("; {}", cleaned.join("; ")) },
        agent.log_tail(20)
    );
}

/// Each client in turn pings the server, so the agent deals them in
/// order (c1 slave 0, c2 slave 1, ...).
pub(crate) fn learn_clients(lab: &Lab, clients: &[usize]) -> Result<()> {
    for &n in clients {
        let c = lab.client(n);
        lab.flush_neigh(&c.ns)?;
        let ping = lab.ping(&c.ns, SERVER_IP4, 3, Duration::from_millis(20))?;
        if ping.received == 0 {
            bail!("client {} cannot reach {SERVER_IP4}: {ping}", c.ns);
        }
    }
    Ok(())
}

/// Plain veth: the server address directly on veth17, every other slave
/// down (so no other device answers ARP for it), no agent, no BPF.
pub(crate) fn baseline_up(lab: &Lab) -> Result<()> {
    let srv = lab.srv();
    for slave in &lab.slaves()[1..] {
        lab.set_link(srv, &slave.name, false)?;
    }
    let s0 = &lab.slave(0).name;
    lab.ip(srv, &["addr", "replace", &format!("{SERVER_IP4}/24"), "dev", s0])?;
    Ok(())
}

/// [`signals::check`] for the sections.
pub(crate) fn signals_check() -> Result<()> {
    signals::check()
}

/// Median of a non-empty list.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A pause that an interrupt cuts short.
pub(crate) fn pause(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        signals::check()?;
        thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

/// CLOCK_MONOTONIC in ns (the clock albbench stamps arrivals with).
pub(crate) fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// The last line of a process log that parses as JSON (albbench prints
/// one document at exit).
pub(crate) fn last_json(log: &str) -> Result<Value> {
    log.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(Value::is_object))
        .with_context(|| format!("no JSON in the output: {}", log.trim()))
}

/// The machine: CPU, kernel, memory, date, commit, load.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let vcpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let text = |program: &str, args: &[&str]| {
        cmd::run(cmd::command(program, args).current_dir(cargo::root()))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    json!({
        "cpu": field("model name"),
        "cpu_mhz": field("cpu MHz"),
        "vcpus": vcpus,
        "mem_gib": mem_kb as f64 / 1024.0 / 1024.0,
        "kernel": text("uname", &["-srvm"]),
        "date": text("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        "commit": text("git", &["rev-parse", "--short=12", "HEAD"]),
        "dirty": !text("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        "iperf3": text("iperf3", &["--version"]).lines().next().unwrap_or_default(),
        "before": load(),
    })
}

/// Load average and the other engineers' test runs on the machine.
fn load() -> Value {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let me = std::process::id();
    let mut others = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if pid == me {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let is_cargo = args.first().is_some_and(|a| a.ends_with(b"cargo"));
            if is_cargo && args.iter().any(|a| *a == b"test") {
                others += 1;
            }
        }
    }
    json!({
        "loadavg": loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "other_cargo_test": others,
    })
}

/// CPU seconds used so far by every process: pid -> (name, seconds).
fn cpu_by_process() -> std::collections::HashMap<u32, (String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let name = head.split_once('(').map_or("?", |(_, n)| n).to_owned();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime: fields 14 and 15, the 12th and 13th after ')'.
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.insert(pid, (name, (ticks(11) + ticks(12)) as f64 / hz));
    }
    out
}

/// The processes that were there before and after the run and used the
/// most CPU meanwhile: other people's work on this shared machine.
fn busy_others(before: &std::collections::HashMap<u32, (String, f64)>, wall_s: f64) -> Value {
    let after = cpu_by_process();
    let mut busy: Vec<(String, u32, f64)> = after
        .iter()
        .filter_map(|(pid, (name, cpu))| {
            let (_, was) = before.get(pid)?;
            Some((name.clone(), *pid, cpu - was))
        })
        .filter(|(_, pid, used)| *pid != std::process::id() && *used > 0.05 * wall_s)
        .collect();
    busy.sort_by(|a, b| b.2.total_cmp(&a.2));
    json!(busy
        .iter()
        .take(5)
        .map(|(name, pid, used)| json!({ "name": name, "pid": pid, "cpu_s": used, "share_of_one_cpu": used / wall_s }))
        .collect::<Vec<_>>())
}
