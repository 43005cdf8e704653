//! Figure 5: a running agent's client table filled with N clients by host
//! ARP replies run through `alb_tx` (test-run, one call per client), in a
//! second copy of the programs that shares the agent's pinned maps. The
//! agent sees each new client through the event ring as it would live.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    thread,
    time::{Duration, Instant},
};

use alb::datapath::{self, Datapath};
use alb_common::maps::{ClientKey, names};
use anyhow::{Context as _, Result, ensure};
use aya::maps::MapData;
use serde_json::{Value, json};

use crate::{
    cost::{Object, TC_ACT_REDIRECT, ctx},
    frames::{MAX_LEARNED, learned, learning_frame, set_learned, tcp_to_learned},
};

/// What the scale run needs to know.
pub(crate) struct Options {
    pub(crate) master: String,
    pub(crate) max_clients: u32,
    pub(crate) clients: u32,
    pub(crate) agent_pid: u32,
    pub(crate) repeat: u32,
    pub(crate) spread: u32,
    pub(crate) settle: Duration,
    pub(crate) idle: Duration,
}

/// CPU time (user + system) and memory of a process.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    cpu_s: f64,
    rss_kb: u64,
    hwm_kb: u64,
}

fn sample(pid: u32) -> Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("agent {pid} is gone"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        at: Instant::now(),
        cpu_s: (ticks(14) + ticks(15)) as f64 / hz,
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
    })
}

fn cpu_pct(a: &Sample, b: &Sample) -> f64 {
    let wall = b.at.duration_since(a.at).as_secs_f64();
    if wall > 0.0 { 100.0 * (b.cpu_s - a.cpu_s) / wall } else { 0.0 }
}

/// `memlock:` of a map, as bpftool shows it (from fdinfo).
fn memlock(map: &MapData) -> Result<u64> {
    let fd = map.fd().as_fd().as_raw_fd();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no memlock in the map's fdinfo")
}

/// Learns clients `from..to`; the kernel's summed ns.
fn learn(object: &mut Object, frame: &mut [u8], from: u32, to: u32) -> Result<u64> {
    let ctx = ctx(0);
    let mut kernel_ns = 0u64;
    for i in from..to {
        set_learned(frame, i);
        let run = object.run("alb_tx", frame, &ctx, 1)?;
        ensure!(run.action == TC_ACT_REDIRECT, "learning client {i}: action {}", run.action);
        kernel_ns += u64::from(run.ns);
    }
    Ok(kernel_ns)
}

/// Per-packet cost of TCP to a known client: the same client `repeat`
/// times (cache-hot; median of 5), and `spread` different clients once
/// each, drawn from `0..known` (cache-cold at scale).
fn cost(
    object: &mut Object,
    master_mac: [u8; 6],
    known: u32,
    repeat: u32,
    spread: u32,
) -> Result<Value> {
    let ctx = ctx(0);
    // A client on the active slave (which has the master's MAC), so the
    // frame is not rewritten and every run takes the same path.
    let active = object.maps.config()?.active_slave;
    let on_active = |i: u32| {
        let (server_ip, client_ip, _) = learned(i);
        object
            .maps
            .clients
            .get(&ClientKey::new(server_ip, client_ip, 0), 0)
            .is_ok_and(|e| object.maps.slave_of(&e) == active)
    };
    let hot_client = (known / 2..known)
        .chain(0..known / 2)
        .find(|&i| on_active(i))
        .context("no client on the active slave")?;
    let frame = tcp_to_learned(master_mac, hot_client);
    let mut hot = Vec::new();
    for _ in 0..5 {
        let run = object.run("alb_tx", &frame, &ctx, repeat)?;
        ensure!(run.action == TC_ACT_REDIRECT, "TCP to a known client: action {}", run.action);
        hot.push(run.ns);
    }
    hot.sort_unstable();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut total = 0u64;
    for _ in 0..spread {
        // xorshift: a fixed pseudo-random walk over the known clients.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = (state % u64::from(known)) as u32;
        total += u64::from(object.run("alb_tx", &tcp_to_learned(master_mac, i), &ctx, 1)?.ns);
    }
    Ok(json!({
        "hot_ns": hot[hot.len() / 2],
        "hot_samples_ns": hot,
        "spread_ns": total as f64 / f64::from(spread.max(1)),
        "spread_clients": spread,
    }))
}

pub(crate) fn run(options: &Options) -> Result<Value> {
    ensure!(options.clients <= MAX_LEARNED, "at most {MAX_LEARNED} clients fit in 198.18.0.0/15");
    let pins = datapath::pin_dir(&options.master);
    ensure!(pins.join(names::CONFIG).exists(), "no pinned maps in {}", pins.display());
    let ebpf = Datapath::load(Some(&pins), options.max_clients)
        .context("cannot load the programs over the agent's maps")?;
    let mut object = Object::from_loaded(ebpf)?;
    let config = object.maps.config()?;
    ensure!(config.usable_count > 0, "the agent has no usable slave");
    let master_mac = config.master_mac;
    let clients_map = MapData::from_pin(pins.join(names::CLIENTS))?;

    let mut frame = learning_frame(master_mac);
    let base = 10.min(options.clients);
    learn(&mut object, &mut frame, 0, base)?;
    let at_base = cost(&mut object, master_mac, base, options.repeat, options.spread)?;

    let before = sample(options.agent_pid)?;
    let start = Instant::now();
    let kernel_ns = learn(&mut object, &mut frame, base, options.clients)?;
    let learn_s = start.elapsed().as_secs_f64();
    let learned = sample(options.agent_pid)?;
    thread::sleep(options.settle);
    let settled = sample(options.agent_pid)?;
    let entries = object.maps.clients.keys().filter(Result::is_ok).count();
    let at_scale = cost(&mut object, master_mac, options.clients, options.repeat, options.spread)?;
    // One test-run call walks `walk` different keys (see walk.rs).
    let walk = options.clients.next_power_of_two().clamp(1024, 1 << 20);
    let floor = crate::walk::measure(
        clients_map.fd().as_fd().as_raw_fd(),
        options.clients,
        memlock(&clients_map)?,
        walk,
        5,
    )?;
    let idle_start = sample(options.agent_pid)?;
    thread::sleep(options.idle);
    let idle_end = sample(options.agent_pid)?;
    let new = f64::from(options.clients - base);

    Ok(json!({
        "clients": options.clients,
        "max_clients": options.max_clients,
        "entries": entries,
        "learn_s": learn_s,
        "learn_us_per_client": 1e6 * learn_s / new.max(1.0),
        "learn_kernel_ns_per_client": kernel_ns as f64 / new.max(1.0),
        "memlock_bytes": memlock(&clients_map)?,
        "cost_at_10": at_base,
        "cost_at_scale": at_scale,
        "floor": floor,
        "agent": {
            "rss_kb_before": before.rss_kb,
            "rss_kb_after": settled.rss_kb,
            "hwm_kb": idle_end.hwm_kb,
            "cpu_s_learning": learned.cpu_s - before.cpu_s,
            "cpu_pct_learning": cpu_pct(&before, &learned),
            "cpu_s_settle": settled.cpu_s - learned.cpu_s,
            "settle_s": options.settle.as_secs_f64(),
            "cpu_pct_idle": cpu_pct(&idle_start, &idle_end),
            "idle_s": options.idle.as_secs_f64(),
        },
    }))
}
