//! Figure 4 of the report: the outage of each flow when a slave fails,
//! and when the agent logged it.

use std::fmt::Write as _;

use serde_json::Value;

use super::section;
use crate::bench::report::{arr, f, num, yes};

pub(super) fn failover_md(md: &mut String, doc: &Value) {
    let Some(fo) = section(md, doc, "failover", "## 4. Failover outage") else {
        return;
    };
    let phases: Vec<String> = arr(&fo["phases_s"]).iter().map(|v| num(f(v), 1)).collect();
    let _ = writeln!(
        md,
        "{}. Phases {} s (before, slave down, after). Outage = the longest gap of a flow that \
         overlaps the time the slave is down: datagrams lost × 1 ms, or the silence less one \
         interval if longer (a gap is a lost datagram or a silence over 3 ms; resolution 1 ms; \
         0 = none). Worst and median over the repetitions; *failback* is the same once the \
         slave is back; the *baseline* column is the worst gap of the same flow before anything \
         failed, i.e. the noise of this shared machine.\n",
        fo["method"].as_str().unwrap_or(""),
        phases.join(" / "),
    );
    let _ = writeln!(
        md,
        "| scenario | flow | on the failed slave | outage, worst ms | median ms | each ms | failback, worst ms | baseline: worst gap before the failure, ms | ≤ 100 ms |\n|---|---|---|---|---|---|---|---|---|"
    );
    for s in arr(&fo["scenarios"]) {
        for flow in arr(&s["summary"]) {
            let worst = if flow["failover_ms_max"].is_null() {
                f64::INFINITY
            } else {
                f(&flow["failover_ms_max"])
            };
            let each: Vec<String> = arr(&flow["failover_ms"])
                .iter()
                .map(|v| if v.is_null() { "never".to_owned() } else { num(f(v), 0) })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} {} | {} | {} | {} | {} | {} | {} | {} |",
                s["id"].as_str().unwrap_or(""),
                flow["flow"].as_str().unwrap_or(""),
                flow["direction"].as_str().unwrap_or(""),
                if flow["on_failed_slave"] == true { "yes" } else { "no (survivor)" },
                if worst.is_infinite() { "never recovered".to_owned() } else { num(worst, 0) },
                num(f(&flow["failover_ms_median"]), 0),
                each.join(", "),
                num(f(&flow["failback_ms_max"]), 0),
                num(f(&flow["before_failure_ms_max"]), 0),
                yes(Some(worst <= 100.0)),
            );
        }
    }
    for sc in arr(&fo["scenarios"]) {
        let each: Vec<String> = arr(&sc["agent_down_logged_ms"])
            .iter()
            .map(|v| if v.is_null() { "not within the hold".to_owned() } else { num(f(v), 0) })
            .collect();
        let _ = writeln!(
            md,
            "\n{}: the agent logged the failure (its clients and buckets moved, the switch told) \
             {} ms after the carrier loss.",
            sc["id"].as_str().unwrap_or(""),
            each.join(", "),
        );
    }
    let _ = writeln!(
        md,
        "\nThe kernel's balance-alb cannot run here (this host has no bonding driver); \
         `cargo xtask vm-test --compare` measures it against alb in the same QEMU guest, on \
         Debian's 6.1 and 6.12 kernels: see [kernels.md](kernels.md).\n",
    );
}
