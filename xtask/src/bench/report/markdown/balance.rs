//! Figure 6 of the report: how evenly clients and bytes spread over 2
//! and 4 slaves.

use std::fmt::Write as _;

use serde_json::Value;

use super::section;
use crate::bench::report::{arr, f, num};

pub(super) fn balance_md(md: &mut String, doc: &Value) {
    let Some(b) = section(md, doc, "balance", "## 6. Balance: 64 clients over 2 and 4 slaves")
    else {
        return;
    };
    let _ = writeln!(
        md,
        "{}. Baseline: {}.\n",
        b["method"].as_str().unwrap_or(""),
        b["baseline"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        md,
        "| slaves | clients | ideal per slave | clients per slave | max/min | server RX MB per slave | max/min | server TX MB per slave | max/min | pings lost |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let list = |v: &Value, scale: f64, d: usize| -> String {
        arr(&v["per_slave"]).iter().map(|x| num(f(x) / scale, d)).collect::<Vec<_>>().join(" / ")
    };
    for r in arr(&b["rows"]) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} of {} |",
            r["slaves"],
            r["clients"],
            num(f(&r["ideal_per_slave"]), 0),
            list(&r["clients_per_slave"], 1.0, 0),
            num(f(&r["clients_per_slave"]["max_over_min"]), 2),
            list(&r["rx_bytes_per_slave"], 1e6, 2),
            num(f(&r["rx_bytes_per_slave"]["max_over_min"]), 2),
            list(&r["tx_bytes_per_slave"], 1e6, 2),
            num(f(&r["tx_bytes_per_slave"]["max_over_min"]), 2),
            r["pings_lost"],
            r["pings_sent"],
        );
    }
    md.push('\n');
}
