//! Figure 5: the agent with a client table of 100k and 1M clients, filled
//! by host ARP replies run through `alb_tx` (albbench scale), one agent
//! run per size with `--max-clients` sized to fit.

use std::{
    io::{BufRead as _, BufReader},
    time::Duration,
};

use alb_tests::{Agent, Lab};
use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::{Ctx, failover, learn_clients, start_agent, stop_agent_within};

/// Room for `clients` plus the LRU's per-CPU free lists, so nothing is
/// evicted while filling.
fn max_clients(clients: u32) -> u32 {
    clients + clients / 20 + 1024
}

/// The agent's log: its info lines and its size.
fn log_lines(agent: &Agent) -> (Vec<String>, u64) {
    let path = agent.log_path();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let lines = std::fs::File::open(path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default();
    (lines, size)
}

/// The teller's bursts, in order: `told N clients in M ms`.
fn told_bursts(lines: &[String]) -> Vec<(u64, u64)> {
    lines
        .iter()
        .filter_map(|line| {
            let rest = &line[line.find("told ")? + 5..];
            let (clients, rest) = rest.split_once(" clients in ")?;
            let ms = rest.strip_suffix(" ms")?;
            Some((clients.parse().ok()?, ms.parse().ok()?))
        })
        .collect()
}

/// The first burst of at least `min` clients logged after the line that
/// contains `after`: how many were told and in how many ms.
fn burst_after(lines: &[String], after: &str, min: u64) -> Option<(u64, u64)> {
    let start = lines.iter().position(|l| l.contains(after))?;
    told_bursts(&lines[start..]).into_iter().find(|&(clients, _)| clients >= min)
}

/// The million clients are addresses only, not hosts: the switch has never
/// seen their MACs, so every ARP update to them would be flooded to every
/// port (a switch that knows its clients sends each update to one port).
/// Unknown unicast is not flooded during this figure, so the updates cost
/// what they cost on a real network: one frame each on the wire of a slave.
/// c1 and c2 are known to the switch and unaffected.
fn unknown_unicast_flood(lab: &Lab, on: bool) -> Result<()> {
    let state = if on { "on" } else { "off" };
    let ports = lab
        .slaves()
        .iter()
        .map(|s| s.port.clone())
        .chain(lab.clients().iter().map(|c| c.port.clone()));
    for port in ports {
        lab.run(lab.sw(), &["bridge", "link", "set", "dev", &port, "flood", state])?;
    }
    Ok(())
}

pub(crate) fn run(ctx: &Ctx, lab: &Lab) -> Result<Value> {
    unknown_unicast_flood(lab, false)?;
    let result = measure_all(ctx, lab);
    unknown_unicast_flood(lab, true)?;
    result
}

fn measure_all(ctx: &Ctx, lab: &Lab) -> Result<Value> {
    let s = &ctx.sizes;
    let mut rows = Vec::new();
    for &clients in &s.scale {
        eprintln!("bench: scale {clients} clients");
        let max = max_clients(clients);
        let max_arg = max.to_string();
        let agent = start_agent(ctx, lab, 2, &["--max-clients", &max_arg])?;
        let pid = agent.pid().to_string();
        let out = lab.run(
            lab.srv(),
            &[
                &ctx.albbench,
                "scale",
                "--master",
                lab.master(),
                "--max-clients",
                &max_arg,
                "--clients",
                &clients.to_string(),
                "--agent-pid",
                &pid,
                "--repeat",
                &s.repeat.to_string(),
                "--spread",
                &s.spread.to_string(),
                "--idle-ms",
                &s.idle_ms.to_string(),
            ],
        );
        let mut row: Value =
            serde_json::from_str(&out?).context("cannot parse albbench scale output")?;
        // With the table full: c1 and c2 learned on top, slave 1 fails.
        let largest = s.scale.last() == Some(&clients);
        if largest {
            eprintln!("bench: scale {clients} clients: slave 1 fails");
            learn_clients(lab, &[1, 2])?;
            let [pre, hold, post] = s.failover_phases;
            let linger = Duration::from_secs(if s.quick { 5 } else { 20 });
            let mut probe =
                failover::measure(ctx, lab, &agent, 1, [pre, hold * 4.0, post * 2.0], linger)?;
            // Every moved client told: the teller's first burst after each
            // transition, added to when the agent logged the transition.
            let (lines, _) = log_lines(&agent);
            let moved = u64::from(clients / 4);
            for (needle, logged, key) in
                [(" down: ", "agent_down_logged_ms", "down"), (" up: ", "agent_up_logged_ms", "up")]
            {
                let burst = burst_after(&lines, needle, moved);
                let at = probe[logged].as_f64();
                probe["told"][key] = json!({
                    "clients": burst.map(|b| b.0),
                    "teller_ms": burst.map(|b| b.1),
                    "all_told_after_carrier_ms": at.zip(burst).map(|(at, b)| at + b.1 as f64),
                });
            }
            row["failover"] = probe;
            // SIGTERM in the middle of the next failover: slave 1 fails
            // again and the agent is stopped while it tells the clients.
            lab.set_link(lab.sw(), &lab.slave(1).port, false)?;
            std::thread::sleep(Duration::from_millis(100));
            row["agent"]["sigterm_during_failover"] = json!(true);
        }
        let (lines, log_bytes) = log_lines(&agent);
        let info_lines = lines.iter().filter(|l| l.contains(" INFO ")).count();
        let stop_start = std::time::Instant::now();
        let stopped = stop_agent_within(agent, Duration::from_secs(15));
        row["agent"]["stop_s"] = json!(stop_start.elapsed().as_secs_f64());
        if let Err(e) = stopped {
            row["agent"]["stop_error"] = json!(format!("{e:#}"));
        }
        if largest {
            lab.set_link(lab.sw(), &lab.slave(1).port, true)?;
            let pins = alb_tests::agent::pin_dir(lab.master());
            row["agent"]["left_behind_after_stop"] = json!(pins.exists());
        }
        row["agent"]["info_log_lines"] = json!(info_lines);
        row["agent"]["log_bytes"] = json!(log_bytes);
        rows.push(row);
    }
    Ok(json!({
        "repeat": s.repeat,
        "spread": s.spread,
        "method": "albbench scale: a second copy of the programs over the agent's pinned maps; \
                   client i learned by one test-run of alb_tx with a host ARP reply to it \
                   (8 server addresses x clients from 198.18.1.0 up, all in 198.18.0.0/15); \
                   cost = TCP to a known client, one client repeated (hot) and 20k random \
                   clients once each (spread), at 10 clients and at full size in the same map; \
                   the switch does not flood unknown unicast during this figure (the million \
                   clients are addresses, not hosts: a switch that knew them would send each \
                   ARP update to one port)",
        "rows": rows,
    }))
}
