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

/// Lines of the agent's log that report a new client, and the log's size.
fn new_client_lines(agent: &Agent) -> (u64, u64) {
    let path = agent.log_path();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let lines = std::fs::File::open(path)
        .map(|f| {
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| l.contains(" dealt to slave "))
                .count()
        })
        .unwrap_or(0);
    (lines as u64, size)
}

pub(crate) fn run(ctx: &Ctx, lab: &Lab) -> Result<Value> {
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
            let probe =
                failover::measure(ctx, lab, &agent, 1, [pre, hold * 4.0, post * 2.0], linger)?;
            row["failover"] = probe;
        }
        let (lines, log_bytes) = new_client_lines(&agent);
        let stop_start = std::time::Instant::now();
        let stopped = stop_agent_within(agent, Duration::from_secs(15));
        row["agent"]["stop_s"] = json!(stop_start.elapsed().as_secs_f64());
        if let Err(e) = stopped {
            row["agent"]["stop_error"] = json!(format!("{e:#}"));
        }
        row["agent"]["new_client_log_lines"] = json!(lines);
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
                   clients once each (spread), at 10 clients and at full size in the same map",
        "rows": rows,
    }))
}
