//! Figure 7: a chaos soak. A lab of [`SLAVES`] slaves and [`CLIENTS`]
//! clients, every client pinging the server every [`INTERVAL`] for the
//! whole soak, while faults drawn from a seeded schedule ([`schedule`])
//! come every few seconds, each applied and undone by [`faults`]. Recorded:
//! the faults by kind, each client's losses sorted out against the faults
//! that concerned it ([`attribution`]), the agent's resident memory over
//! time ([`rss`]), panics in the agent's logs, and the final clean stop
//! (exit status 0; no master, pins, lock or undo record left, and once the
//! lab is gone no namespace). A benchmark, not a test: nothing fails, the
//! report states the figures and flags what is off.

mod attribution;
mod faults;
mod rss;
mod schedule;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alb_tests::{Lab, LabConfig, PingLog, Proc, SERVER_IP4, agent, netns};
use anyhow::{Context as _, Result};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use self::{
    attribution::{AFTER_S, Window, attribute},
    faults::{Instance, Soak},
    rss::Sample,
    schedule::{FaultKind, GAP_S, Planned, Target, plan},
};
use super::{Ctx, learn_clients, pause, signals_check};

pub(crate) use self::schedule::fresh_seed;

pub(crate) const SLAVES: usize = 3;
pub(crate) const CLIENTS: usize = 6;
const INTERVAL: Duration = Duration::from_millis(20);
/// No fault begins in the soak's last seconds: their losses would have no
/// time to show, nor the last fault's to be put down to it.
const TAIL_S: f64 = 5.0;
/// How long the agent may take to have every slave usable and every
/// client dealt after a fault.
const SETTLE: Duration = Duration::from_secs(10);
/// An agent that ran at least [`RSS_MIN_LIFE_S`] may grow by at most this
/// much from its first sample [`RSS_SETTLE_S`] after it started to its
/// last (KiB); more is flagged as a leak.
pub(crate) const RSS_GROWTH_BOUND_KIB: u64 = 2048;
const RSS_MIN_LIFE_S: f64 = 30.0;
const RSS_SETTLE_S: f64 = 5.0;

/// Seconds since the epoch, the clock `ping -D` stamps replies with.
pub(super) fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// One applied fault.
struct Record {
    index: usize,
    planned: Planned,
    target: String,
    started: f64,
    ended: f64,
    settled: Option<f64>,
    outcome: Result<String, String>,
    concerned: Vec<usize>,
    incident: Option<String>,
}

/// Runs the soak in a lab of its own (`config`); the figures, with what the
/// lab left once it was taken down.
pub(crate) fn run(ctx: &Ctx, config: LabConfig, seed: u64) -> Result<Value> {
    let minutes = ctx.sizes.soak_minutes;
    let (prefix, master) = (config.prefix.clone(), config.master.clone());
    eprintln!(
        "bench: soak of {minutes} min in lab {prefix} ({SLAVES} slaves, {CLIENTS} clients), \
         seed {seed} (replay: cargo xtask bench --only soak --soak-minutes {minutes} \
         --soak-seed {seed})"
    );
    let mut value = {
        let lab = Lab::up(config)?;
        soak_in(ctx, &lab, seed)?
    };
    // The lab is gone: nothing of it may be left.
    let namespaces: Vec<String> =
        netns::list()?.into_iter().filter(|n| n.starts_with(&format!("{prefix}-"))).collect();
    let pins = agent::pin_dir(&master);
    let final_stop = &mut value["final_stop"];
    final_stop["namespaces_left"] = json!(namespaces);
    final_stop["pins_left"] = json!(pins.exists());
    let clean = final_stop["exit_ok"] == true
        && final_stop["left"].as_array().is_some_and(Vec::is_empty)
        && namespaces.is_empty()
        && !pins.exists();
    final_stop["clean"] = json!(clean);
    if !clean {
        let what = format!("the final stop was not clean: {}", value["final_stop"]);
        push_flag(&mut value, what);
    }
    agent::remove_lock_file(&master);
    Ok(value)
}

fn push_flag(value: &mut Value, flag: String) {
    eprintln!("bench: soak: {flag}");
    if let Some(flags) = value["flags"].as_array_mut() {
        flags.push(json!(flag));
    }
}

fn soak_in(ctx: &Ctx, lab: &Lab, seed: u64) -> Result<Value> {
    let soak_s = ctx.sizes.soak_minutes * 60.0;
    let mut soak = Soak::start(ctx, lab)?;
    let all: Vec<usize> = (1..=CLIENTS).collect();
    learn_clients(lab, &all)?;
    let count = ((soak_s + 120.0) / INTERVAL.as_secs_f64()) as u64;
    let mut pings: Vec<(usize, Proc)> = Vec::new();
    for &n in &all {
        pings.push((n, lab.spawn_ping(&lab.client(n).ns, SERVER_IP4, INTERVAL, count)?));
    }
    for (n, p) in &pings {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.log().contains("bytes from") {
            signals_check()?;
            anyhow::ensure!(Instant::now() < deadline, "c{n} has no reply to its pings");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let t0 = unix_now();
    let begun = Instant::now();
    let faults_until = begun + Duration::from_secs_f64((soak_s - TAIL_S).max(0.0));
    let most = (soak_s / GAP_S.0) as usize + 1;
    let mut records = Vec::new();
    for (index, planned) in plan(seed, most, SLAVES, CLIENTS).into_iter().enumerate() {
        pause(Duration::from_secs_f64(planned.gap_s))?;
        let worst = Duration::from_secs_f64(planned.hold_s) + Duration::from_secs(2);
        if Instant::now() + worst > faults_until {
            break;
        }
        records.push(one_fault(&mut soak, lab, index, planned)?);
        let r = records.last().expect("pushed");
        eprintln!(
            "bench: soak {:>4.0} s: {} {}: {}",
            r.started - t0,
            planned.kind.name(),
            r.target,
            match &r.outcome {
                Ok(note) => note.clone(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
    }
    let end = begun + Duration::from_secs_f64(soak_s);
    pause(end.saturating_duration_since(Instant::now()))?;
    let stop_at = unix_now();
    let mut logs = Vec::new();
    for (n, mut p) in pings {
        p.signal(Signal::SIGINT)?;
        p.wait_timeout(Duration::from_secs(5))?;
        logs.push((n, p.log()));
    }
    let stopped = soak.final_stop();
    let mut instances = std::mem::take(&mut soak.instances);
    let samples = soak.rss.samples();
    drop(soak);
    instances.sort_by_key(|i| i.number);

    let mut value = figures(seed, soak_s, t0, stop_at, &records, &logs, &instances, &samples)?;
    value["final_stop"] = match stopped {
        Ok((exit, left)) => {
            json!({"exit": exit, "exit_ok": exit == "exit status: 0", "left": left})
        }
        Err(e) => json!({"exit": format!("{e:#}"), "exit_ok": false,
            "left": ["not checked: the final stop failed"]}),
    };
    Ok(value)
}

/// The lab's clients dealt to each slave now: client number -> slave.
fn placement(soak: &Soak<'_>) -> Option<BTreeMap<usize, String>> {
    let status = soak.agent().ok()?.status().ok()?;
    let lab = soak.lab;
    Some(
        (1..=CLIENTS)
            .filter_map(|n| Some((n, status.client(&lab.client(n).ip4)?.slave?)))
            .collect(),
    )
}

/// Waits until every slave is usable and every client dealt; when.
fn settle(soak: &Soak<'_>) -> Result<Option<f64>> {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        signals_check()?;
        let status = soak.agent().ok().and_then(|a| a.status().ok());
        if let Some(s) = status {
            let usable = s.slaves.len() == SLAVES && s.slaves.iter().all(|x| x.usable);
            let dealt = soak
                .lab
                .clients()
                .iter()
                .all(|c| s.client(&c.ip4).is_some_and(|e| e.slave.is_some()));
            if usable && dealt {
                return Ok(Some(unix_now()));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(None)
}

/// Applies one fault, waits for the agent to settle, and records which
/// clients it concerned.
fn one_fault(soak: &mut Soak<'_>, lab: &Lab, index: usize, planned: Planned) -> Result<Record> {
    let before = placement(soak);
    let target = match planned.target {
        Target::Slave(i) => lab.slave(i).name.clone(),
        Target::Client(n) => format!("c{n}"),
        Target::Agent => "agent".to_owned(),
    };
    let started = unix_now();
    let outcome = soak.apply(&planned);
    let ended = unix_now();
    signals_check()?;
    if outcome.is_err() {
        repair(soak, lab);
    }
    let incident = soak.check_alive()?;
    let settled = settle(soak)?;
    let after = placement(soak);
    let concerned: Vec<usize> = (1..=CLIENTS)
        .filter(|n| {
            let (was, now) = match (&before, &after) {
                (Some(b), Some(a)) => (b.get(n), a.get(n)),
                _ => return true,
            };
            was != now
                || match planned.target {
                    Target::Slave(_) => was == Some(&target) || now == Some(&target),
                    Target::Client(c) => c == *n,
                    Target::Agent => true,
                }
        })
        .collect();
    Ok(Record {
        index,
        planned,
        target,
        started,
        ended,
        settled,
        outcome: outcome.map_err(|e| format!("{e:#}")),
        concerned,
        incident,
    })
}

/// After a fault that failed half-way: every link up and every slave back
/// (best effort; what stays broken shows in the next faults and losses).
fn repair(soak: &mut Soak<'_>, lab: &Lab) {
    for slave in lab.slaves() {
        for (ns, dev) in [(lab.sw(), &slave.port), (lab.srv(), &slave.name)] {
            if let Err(e) = lab.set_link(ns, dev, true) {
                eprintln!("bench: soak: repairing {dev}: {e:#}");
            }
        }
    }
    soak.restore_slaves();
}

/// Everything the soak measured, as the report reads it.
#[expect(clippy::too_many_arguments, reason = "the soak's parts, gathered once")]
fn figures(
    seed: u64,
    soak_s: f64,
    t0: f64,
    stop_at: f64,
    records: &[Record],
    logs: &[(usize, String)],
    instances: &[Instance],
    samples: &[Sample],
) -> Result<Value> {
    let mut flags = Vec::new();
    // Faults by kind.
    let mut by_kind: BTreeMap<&str, (u32, u32)> =
        FaultKind::ALL.iter().map(|k| (k.name(), (0, 0))).collect();
    for r in records {
        let entry = by_kind.entry(r.planned.kind.name()).or_default();
        match r.outcome {
            Ok(_) => entry.0 += 1,
            Err(_) => entry.1 += 1,
        }
    }
    let failed: u32 = by_kind.values().map(|v| v.1).sum();
    if failed > 0 {
        flags.push(format!("{failed} fault(s) could not be applied or undone"));
    }
    let unsettled = records.iter().filter(|r| r.settled.is_none()).count();
    if unsettled > 0 {
        flags.push(format!(
            "{unsettled} fault(s) left a slave unusable or a client undealt for over {} s",
            SETTLE.as_secs()
        ));
    }
    let incidents: Vec<&String> = records.iter().filter_map(|r| r.incident.as_ref()).collect();
    if !incidents.is_empty() {
        flags.push(format!(
            "the agent exited on its own or failed to restart {} time(s)",
            incidents.len()
        ));
    }
    let mut windows: Vec<Window> = records
        .iter()
        .map(|r| Window {
            kind: r.planned.kind.name(),
            from: r.started,
            until: r.settled.unwrap_or(r.ended + SETTLE.as_secs_f64()),
            clients: r.concerned.clone(),
        })
        .collect();
    for r in records.iter().filter(|r| r.incident.is_some()) {
        windows.push(Window {
            kind: "agent_exited_on_its_own",
            from: r.started,
            until: r.settled.unwrap_or(r.ended + SETTLE.as_secs_f64()),
            clients: (1..=CLIENTS).collect(),
        });
    }

    // Each client's losses, between the soak's start and a second before
    // the pings were stopped (a request then may still be in flight).
    let until = stop_at - 1.0;
    let mut clients = Vec::new();
    let (mut sent_all, mut lost_all, mut explained_all, mut beside_all, mut quiet_all) =
        (0, 0, 0, 0, 0);
    for (n, log) in logs {
        let ping = PingLog::parse(INTERVAL, log).with_context(|| format!("the ping of c{n}"))?;
        let in_soak = |t: f64| t >= t0 && t <= until;
        let sent: Vec<(u32, f64)> = (1..=ping.transmitted)
            .filter_map(|seq| Some((seq, ping.sent_at(seq)?)))
            .filter(|&(_, t)| in_soak(t))
            .collect();
        let lost: Vec<f64> = sent
            .iter()
            .filter(|(seq, _)| !ping.replies.contains_key(seq))
            .map(|&(_, t)| t)
            .collect();
        let (mut run, mut longest) = (0_u32, 0_u32);
        for (seq, _) in &sent {
            run = if ping.replies.contains_key(seq) { 0 } else { run + 1 };
            longest = longest.max(run);
        }
        let a = attribute(*n, &lost, &windows, 3.0 * INTERVAL.as_secs_f64());
        sent_all += sent.len();
        lost_all += lost.len();
        explained_all += a.explained_total();
        beside_all += a.beside_a_fault;
        quiet_all += a.quiet;
        clients.push(json!({
            "client": n,
            "sent": sent.len(),
            "lost": lost.len(),
            "longest_outage_ms": f64::from(longest) * INTERVAL.as_secs_f64() * 1000.0,
            "explained": a.explained,
            "explained_total": a.explained_total(),
            "beside_a_fault": a.beside_a_fault,
            "quiet": a.quiet,
            "unexplained": a.unexplained(),
            "unexplained_bursts": a.unexplained_bursts.iter().take(20)
                .map(|(t, k)| json!({"at_s": t - t0, "lost": k})).collect::<Vec<_>>(),
        }));
    }
    let unexplained = beside_all + quiet_all;
    if unexplained > 0 {
        flags.push(format!(
            "{unexplained} ping(s) lost with no fault of their client to explain them \
             ({beside_all} beside another client's or slave's fault, {quiet_all} with no fault near)"
        ));
    }

    // The agent's memory and logs, per instance.
    let mut rows = Vec::new();
    let mut panics = 0;
    let mut worst_growth: Option<i64> = None;
    for inst in instances {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.instance == inst.number).collect();
        let settled = mine.iter().find(|s| s.at >= inst.started + RSS_SETTLE_S);
        let (first, last) = (mine.first(), mine.last());
        let max = mine.iter().map(|s| s.rss_kib).max();
        let life = inst.ended - inst.started;
        let growth = match (settled, last) {
            (Some(s), Some(l)) if life >= RSS_MIN_LIFE_S => {
                Some(i64::try_from(l.rss_kib).unwrap_or(0) - i64::try_from(s.rss_kib).unwrap_or(0))
            }
            _ => None,
        };
        if let Some(g) = growth {
            worst_growth = Some(worst_growth.map_or(g, |w| w.max(g)));
        }
        let panic_lines: Vec<&str> = inst.log.lines().filter(|l| l.contains("panicked")).collect();
        panics += panic_lines.len();
        // env_logger's level, after the timestamp.
        let warnings: Vec<&str> =
            inst.log.lines().filter(|l| l.contains(" WARN") || l.contains(" ERROR")).collect();
        rows.push(json!({
            "instance": inst.number,
            "pid": inst.pid,
            "started_s": inst.started - t0,
            "life_s": life,
            "ended_by": inst.ended_by,
            "exit": inst.exit,
            "rss_first_kib": first.map(|s| s.rss_kib),
            "rss_settled_kib": settled.map(|s| s.rss_kib),
            "rss_max_kib": max,
            "rss_last_kib": last.map(|s| s.rss_kib),
            "rss_growth_kib": growth,
            "panics": panic_lines.len(),
            "panic_lines": panic_lines.iter().take(5).collect::<Vec<_>>(),
            "warnings": warnings.len(),
            "warning_lines": warnings.iter().take(5).collect::<Vec<_>>(),
        }));
    }
    if panics > 0 {
        flags.push(format!("{panics} panic line(s) in the agent's logs"));
    }
    if let Some(g) = worst_growth.filter(|&g| g > i64::try_from(RSS_GROWTH_BOUND_KIB).unwrap_or(0))
    {
        flags.push(format!(
            "an agent's resident memory grew by {g} KiB over its life, more than the bound \
             of {RSS_GROWTH_BOUND_KIB} KiB"
        ));
    }
    let rss: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
    let faults: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "index": r.index,
                "kind": r.planned.kind.name(),
                "target": r.target,
                "gap_s": r.planned.gap_s,
                "hold_s": r.planned.hold_s,
                "at_s": r.started - t0,
                "took_s": r.ended - r.started,
                "settled_s": r.settled.map(|s| s - r.ended),
                "ok": r.outcome.is_ok(),
                "note": match &r.outcome { Ok(n) => n.clone(), Err(e) => format!("failed: {e}") },
                "concerned": r.concerned,
                "incident": r.incident,
            })
        })
        .collect();
    Ok(json!({
        "seed": seed,
        "minutes": soak_s / 60.0,
        "soak_s": stop_at - t0,
        "slaves": SLAVES,
        "clients_n": CLIENTS,
        "interval_ms": INTERVAL.as_millis(),
        "gap_s": [GAP_S.0, GAP_S.1],
        "after_s": AFTER_S,
        "method": "every client pings the server (ping -D -O) for the whole soak; a fault comes \
                   after a seeded pause once the previous one is undone and the agent has every \
                   slave usable and every client dealt",
        "faults_by_kind": by_kind.iter().map(|(k, (ok, bad))| json!({"kind": k, "applied": ok, "failed": bad})).collect::<Vec<_>>(),
        "faults": faults,
        "clients": clients,
        "totals": {
            "sent": sent_all,
            "lost": lost_all,
            "explained": explained_all,
            "beside_a_fault": beside_all,
            "quiet": quiet_all,
            "unexplained": unexplained,
        },
        "rss": {
            "growth_bound_kib": RSS_GROWTH_BOUND_KIB,
            "min_life_s": RSS_MIN_LIFE_S,
            "settle_s": RSS_SETTLE_S,
            "first_kib": rss.first(),
            "max_kib": rss.iter().max(),
            "last_kib": rss.last(),
            "worst_growth_kib": worst_growth,
            "instances": rows,
            // Every fifth sample: [seconds into the soak, agent, KiB].
            "samples_every_5": samples.iter().step_by(5)
                .map(|s| json!([(s.at - t0).round(), s.instance, s.rss_kib]))
                .collect::<Vec<_>>(),
        },
        "panics": panics,
        "incidents": incidents,
        "flags": flags,
    }))
}
