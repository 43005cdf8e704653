//! Figure 6: how evenly 64 clients spread over 2 and 4 slaves: clients per
//! slave (from `alb status`) and bytes per slave (from the switch ports)
//! while every client pings the server at once.

use std::{thread, time::Duration};

use alb_tests::{Lab, LinkStats, SERVER_IP4};
use anyhow::Result;
use serde_json::{Value, json};

use super::{Ctx, start_agent, stop_agent};

const PINGS: u32 = 50;
const PING_SIZE: u32 = 1000;

fn spread(values: &[f64]) -> Value {
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    json!({ "per_slave": values, "max": max, "min": min, "max_over_min": if min > 0.0 { json!(max / min) } else { Value::Null } })
}

fn once(ctx: &Ctx, lab: &Lab, slaves: usize) -> Result<Value> {
    let srv = lab.srv();
    // Devices that are not slaves must not answer ARP for the server.
    for (i, slave) in lab.slaves().iter().enumerate() {
        lab.set_link(srv, &slave.name, i < slaves)?;
    }
    for c in lab.clients() {
        lab.flush_neigh(&c.ns)?;
    }
    let agent = start_agent(ctx, lab, slaves, &[])?;
    let before = lab.traffic_snapshot()?;
    let pings: Vec<Result<alb_tests::PingStats>> = thread::scope(|scope| {
        let handles: Vec<_> = lab
            .clients()
            .iter()
            .map(|c| {
                scope.spawn(move || {
                    lab.ping_sized(&c.ns, SERVER_IP4, PINGS, Duration::from_millis(20), PING_SIZE)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("panicked"))))
            .collect()
    });
    let after = lab.traffic_snapshot()?;
    let status = agent.status()?;
    stop_agent(agent)?;
    let pings = pings.into_iter().collect::<Result<Vec<_>>>()?;
    let lost: u32 = pings.iter().map(alb_tests::PingStats::lost).sum();
    let delta: Vec<LinkStats> =
        after.iter().zip(&before).map(|(a, b)| *a - *b).take(slaves).collect();
    let clients: Vec<f64> = (0..slaves)
        .map(|i| {
            status
                .slaves
                .iter()
                .find(|s| usize::try_from(s.index) == Ok(i))
                .map_or(0.0, |s| s.clients as f64)
        })
        .collect();
    let rx: Vec<f64> = delta.iter().map(|d| d.rx_bytes as f64).collect();
    let tx: Vec<f64> = delta.iter().map(|d| d.tx_bytes as f64).collect();
    Ok(json!({
        "slaves": slaves,
        "clients": lab.clients().len(),
        "ideal_per_slave": lab.clients().len() as f64 / slaves as f64,
        "clients_per_slave": spread(&clients),
        "rx_bytes_per_slave": spread(&rx),
        "tx_bytes_per_slave": spread(&tx),
        "pings_lost": lost,
        "pings_sent": pings.iter().map(|p| p.transmitted).sum::<u32>(),
    }))
}

pub(crate) fn run(ctx: &Ctx, lab: &Lab) -> Result<Value> {
    let rows = [2, 4].into_iter().map(|k| once(ctx, lab, k)).collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "method": format!(
            "every client pings {SERVER_IP4} at once ({PINGS} x {PING_SIZE} bytes, 20 ms apart) \
             with fresh neighbour caches; clients per slave from alb status, bytes per slave \
             from the switch ports"
        ),
        "baseline": "the ideal even split, clients / slaves per slave",
        "rows": rows,
    }))
}
