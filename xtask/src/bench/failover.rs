//! Figure 4: the outage a slave failure causes, from UDP sequence gaps at
//! 1 kpps. Client 1 is on slave 0 (active), client 2 on slave 1. In each
//! flow a datagram leaves every millisecond; a slave fails when its switch
//! port goes down (the slave loses carrier at once) and comes back later.
//! The outage of a flow is its longest gap that overlaps the time the slave
//! is down: lost datagrams x 1 ms, or the silence less one interval if
//! longer.

use std::time::Duration;

use alb_tests::{Agent, Lab, Proc, SERVER_IP4};
use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::{Ctx, last_json, learn_clients, median, mono_ns, pause, start_agent, stop_agent};

const PPS: u32 = 1000;
const INTERVAL_MS: f64 = 1000.0 / PPS as f64;

struct Flow {
    id: &'static str,
    /// The namespace the receiver runs in, its port, and where the
    /// sender runs and sends to.
    recv_ns: String,
    port: u16,
    send_ns: String,
    to: String,
}

fn flows(lab: &Lab) -> Vec<Flow> {
    let (c1, c2) = (lab.client(1), lab.client(2));
    let srv = lab.srv().to_owned();
    vec![
        Flow {
            id: "c1_rx",
            recv_ns: c1.ns.clone(),
            port: 7000,
            send_ns: srv.clone(),
            to: format!("{}:7000", c1.ip4),
        },
        Flow {
            id: "c2_rx",
            recv_ns: c2.ns.clone(),
            port: 7000,
            send_ns: srv.clone(),
            to: format!("{}:7000", c2.ip4),
        },
        Flow {
            id: "c1_tx",
            recv_ns: srv.clone(),
            port: 7001,
            send_ns: c1.ns.clone(),
            to: format!("{SERVER_IP4}:7001"),
        },
        Flow {
            id: "c2_tx",
            recv_ns: srv,
            port: 7002,
            send_ns: c2.ns.clone(),
            to: format!("{SERVER_IP4}:7002"),
        },
    ]
}

/// The outage of one flow between `from` and `until` (monotonic ns): its
/// longest gap overlapping that window, and the datagrams lost in them.
fn outage(recv: &Value, from: u64, until: u64) -> (f64, u64) {
    let mut worst = 0.0f64;
    let mut lost_total = 0;
    for gap in recv["gaps"].as_array().into_iter().flatten() {
        let before = gap["before_ns"].as_u64().unwrap_or(0);
        let at = gap["at_ns"].as_u64().unwrap_or(0);
        // A gap belongs to the window when the silence overlaps it.
        if at <= from || before >= until {
            continue;
        }
        let lost = gap["lost"].as_u64().unwrap_or(0);
        let silence = Duration::from_secs_f64(gap["silence_ms"].as_f64().unwrap_or(0.0) / 1e3);
        let interval = Duration::from_secs_f64(INTERVAL_MS / 1e3);
        // The tests' rule, from the lab library.
        worst = worst.max(alb_tests::outage(lost, silence, interval).as_secs_f64() * 1e3);
        lost_total += lost;
    }
    // Nothing arrived after the event at all: the flow never recovered.
    let last = recv["last_ns"].as_u64().unwrap_or(0);
    if last < from {
        worst = f64::INFINITY;
    }
    (worst, lost_total)
}

/// One failure of slave `slave` (0: active, 1: non-active) with a fresh
/// agent.
fn once(ctx: &Ctx, lab: &Lab, slave: usize) -> Result<Value> {
    let agent = start_agent(ctx, lab, 2, &[])?;
    learn_clients(lab, &[1, 2])?;
    let placement = agent.status()?.client_slaves();
    let mut result = measure(ctx, lab, &agent, slave, ctx.sizes.failover_phases, Duration::ZERO)?;
    let log = agent.log();
    stop_agent(agent)?;
    let agent_lines: Vec<&str> =
        log.lines().filter(|l| l.contains(" down:") || l.contains(" up:")).collect();
    result["placement"] = json!(placement);
    result["agent"] = json!(agent_lines);
    Ok(result)
}

/// What a log file gained since the last look.
struct LogTail {
    path: std::path::PathBuf,
    offset: u64,
}

impl LogTail {
    fn new(path: &std::path::Path) -> Self {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Self { path: path.to_owned(), offset }
    }

    /// Whether the text appended since the last call contains `needle`.
    fn saw(&mut self, needle: &str) -> bool {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.path) else { return false };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return false;
        }
        let mut new = Vec::new();
        if file.read_to_end(&mut new).is_err() {
            return false;
        }
        // Keep a line's worth, so a needle cut in two is found next time.
        self.offset += new.len().saturating_sub(200) as u64;
        String::from_utf8_lossy(&new).contains(needle)
    }
}

/// Waits `d`, watching the agent's log for `needle`; the monotonic time
/// it was first seen.
fn watch(tail: &mut LogTail, needle: &str, d: Duration, seen: &mut Option<u64>) -> Result<()> {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        super::signals_check()?;
        if seen.is_none() && tail.saw(needle) {
            *seen = Some(mono_ns());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// The UDP flows of c1 and c2 in both directions while slave `slave`
/// fails and comes back, under a running `agent`; the outage of each flow
/// and how long the agent took to log the failure and the recovery
/// (which it does once it has moved the clients and buckets).
pub(crate) fn measure(
    ctx: &Ctx,
    lab: &Lab,
    agent: &Agent,
    slave: usize,
    [pre, hold, post]: [f64; 3],
    linger: Duration,
) -> Result<Value> {
    let total = pre + hold + post;
    let flows = flows(lab);
    let secs_recv = format!("{:.3}", total + 0.6);
    let secs_send = format!("{total:.3}");
    let pps = PPS.to_string();
    let mut receivers: Vec<Proc> = Vec::new();
    for f in &flows {
        let port = f.port.to_string();
        receivers.push(lab.spawn(
            &f.recv_ns,
            &[&ctx.albbench, "udp-recv", "--port", &port, "--secs", &secs_recv],
        )?);
    }
    pause(Duration::from_millis(200))?;
    let mut senders: Vec<Proc> = Vec::new();
    for f in &flows {
        senders.push(lab.spawn(
            &f.send_ns,
            &[&ctx.albbench, "udp-send", "--to", &f.to, "--pps", &pps, "--secs", &secs_send],
        )?);
    }
    let port = &lab.slave(slave).port;
    pause(Duration::from_secs_f64(pre))?;
    let mut tail = LogTail::new(agent.log_path());
    let (mut down_seen, mut up_seen) = (None, None);
    let failed_at = mono_ns();
    lab.set_link(lab.sw(), port, false)?;
    watch(&mut tail, " down: ", Duration::from_secs_f64(hold), &mut down_seen)?;
    let restored_at = mono_ns();
    lab.set_link(lab.sw(), port, true)?;
    watch(&mut tail, " up: ", Duration::from_secs_f64(post + 0.8), &mut up_seen)?;
    for p in senders.iter_mut().chain(receivers.iter_mut()) {
        p.wait_timeout(Duration::from_secs(5))?;
    }
    let end = mono_ns();
    // A slow agent: keep watching (up to `linger`) for what it has not
    // logged yet.
    let linger_end = std::time::Instant::now() + linger;
    while (down_seen.is_none() || up_seen.is_none()) && std::time::Instant::now() < linger_end {
        super::signals_check()?;
        let now = mono_ns();
        // One read serves both: the log only grows.
        let text_has = |tail: &mut LogTail, needle: &str| tail.saw(needle);
        if down_seen.is_none() {
            let offset = tail.offset;
            if text_has(&mut tail, " down: ") {
                down_seen = Some(now);
            }
            tail.offset = offset;
        }
        if up_seen.is_none() && text_has(&mut tail, " up: ") {
            up_seen = Some(now);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rows = Vec::new();
    for (f, r) in flows.iter().zip(&receivers) {
        let recv = last_json(&r.log()).with_context(|| format!("receiver of {}", f.id))?;
        let (fail_ms, fail_lost) = outage(&recv, failed_at, restored_at);
        let (back_ms, back_lost) = outage(&recv, restored_at, end);
        // The same-run baseline: the worst gap before anything failed
        // (scheduling noise of a shared 2-vCPU machine).
        let first = recv["first_ns"].as_u64().unwrap_or(0);
        let (quiet_ms, _) = outage(&recv, first, failed_at.saturating_sub(2_000_000));
        rows.push(json!({
            "flow": f.id,
            "received": recv["received"],
            "failover_ms": finite(fail_ms),
            "failover_lost": fail_lost,
            "failback_ms": finite(back_ms),
            "failback_lost": back_lost,
            "before_failure_ms": finite(quiet_ms),
        }));
    }
    let ms = |seen: Option<u64>, from: u64| seen.map(|t| t.saturating_sub(from) as f64 / 1e6);
    Ok(json!({
        "phases_s": [pre, hold, post],
        "flows": rows,
        "agent_down_logged_ms": ms(down_seen, failed_at),
        "agent_up_logged_ms": ms(up_seen, restored_at),
    }))
}

/// `None` (JSON null) for a flow that never recovered.
fn finite(ms: f64) -> Option<f64> {
    ms.is_finite().then_some(ms)
}

pub(crate) fn run(ctx: &Ctx, lab: &Lab) -> Result<Value> {
    let mut scenarios = Vec::new();
    for (slave, id, what) in [
        (1, "non_active", "slave 1 (veth19, non-active) fails: its client is c2"),
        (
            0,
            "active",
            "slave 0 (veth17, active) fails: its client is c1, c2 is on the surviving slave",
        ),
    ] {
        let mut reps = Vec::new();
        for rep in 0..ctx.sizes.failover_reps {
            eprintln!("bench: failover {id} {}/{}", rep + 1, ctx.sizes.failover_reps);
            reps.push(once(ctx, lab, slave)?);
        }
        // Per flow: the worst and the median over repetitions.
        let mut summary = Vec::new();
        for flow in ["c1_rx", "c1_tx", "c2_rx", "c2_tx"] {
            let values: Vec<Option<f64>> = reps
                .iter()
                .map(|r| {
                    r["flows"]
                        .as_array()
                        .and_then(|f| f.iter().find(|x| x["flow"] == flow))
                        .and_then(|x| x["failover_ms"].as_f64())
                })
                .collect();
            let back: Vec<f64> = reps
                .iter()
                .filter_map(|r| {
                    r["flows"]
                        .as_array()
                        .and_then(|f| f.iter().find(|x| x["flow"] == flow))
                        .and_then(|x| x["failback_ms"].as_f64())
                })
                .collect();
            let quiet: Vec<f64> = reps
                .iter()
                .filter_map(|r| {
                    r["flows"]
                        .as_array()
                        .and_then(|f| f.iter().find(|x| x["flow"] == flow))
                        .and_then(|x| x["before_failure_ms"].as_f64())
                })
                .collect();
            let recovered: Vec<f64> = values.iter().flatten().copied().collect();
            let all_recovered = recovered.len() == values.len();
            summary.push(json!({
                "flow": flow,
                "on_failed_slave": (flow.starts_with("c2") && slave == 1) || (flow.starts_with("c1") && slave == 0),
                "direction": if flow.ends_with("rx") { "server -> client (client receives)" } else { "client -> server (server receives)" },
                "failover_ms": values,
                "failover_ms_max": if all_recovered { json!(recovered.iter().copied().fold(0.0, f64::max)) } else { Value::Null },
                "failover_ms_median": if all_recovered { json!(median(&recovered)) } else { Value::Null },
                "failback_ms_max": back.iter().copied().fold(0.0, f64::max),
                "before_failure_ms_max": quiet.iter().copied().fold(0.0, f64::max),
            }));
        }
        let agent_ms: Vec<Value> = reps.iter().map(|r| r["agent_down_logged_ms"].clone()).collect();
        scenarios.push(json!({
            "id": id,
            "what": what,
            "summary": summary,
            "agent_down_logged_ms": agent_ms,
            "reps": reps,
        }));
    }
    Ok(json!({
        "pps": PPS,
        "phases_s": ctx.sizes.failover_phases,
        "method": "albbench udp-send/udp-recv, 1 datagram per ms in each direction for c1 and c2; \
                   failure = the slave's switch port set down (carrier loss), restored after the hold",
        "target_ms": 100,
        "stretch_target_ms": 10,
        "scenarios": scenarios,
    }))
}
