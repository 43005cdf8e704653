//! The report's first table: each target of issue 14 beside its measured
//! figure, the same run's baseline and whether it is met.

use std::fmt::Write as _;

use serde_json::Value;

use crate::bench::report::{
    OTHER_CASES_FACTOR, RX_TARGET_NS, TX_TARGET_NS, arr, costs, f, floor_ns, min_aggregation_ratio,
    min_throughput_ratio, num, worst_net, worst_outage, yes,
};

pub(super) fn summary(md: &mut String, doc: &Value) {
    let costs = costs(doc);
    let floor = floor_ns(doc);
    let thr = min_throughput_ratio(doc);
    let agg = min_aggregation_ratio(doc);
    let outage = worst_outage(doc);
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(
        md,
        "| figure | target | measured | baseline (same run) | met |\n|---|---|---|---|---|"
    );
    let met = |v: f64, ok: bool| v.is_finite().then_some(ok);
    let other = OTHER_CASES_FACTOR;
    for (program, what, target) in [
        ("alb_tx", "TX to a known client", TX_TARGET_NS),
        ("alb_rx", "RX from a known client", RX_TARGET_NS),
    ] {
        for (known, figure, bound) in [
            (true, format!("{what} (`{program}`), net of the floor"), target),
            (false, format!("every other `{program}` case, worst, net"), other * target),
        ] {
            let net = worst_net(&costs, floor, program, known);
            let _ = writeln!(
                md,
                "| {figure} | ≤ {bound} ns | {} ns | test-run floor (empty program) {} ns | {} |",
                num(net, 0),
                num(floor, 0),
                yes(met(net, net <= bound))
            );
        }
    }
    let _ = writeln!(
        md,
        "| throughput, TCP, worst lower bound of the 95% interval | ≥ 0.98x | {}x | plain veth, no BPF, paired rounds | {} |",
        num(thr, 3),
        yes(met(thr, thr >= 0.98))
    );
    let _ = writeln!(
        md,
        "| aggregation, 2 slaves at 1 Gbit/s | ≥ 1.95x | {}x | one link | {} |",
        num(agg, 2),
        yes(met(agg, agg >= 1.95))
    );
    let outage_text = if outage.is_infinite() {
        "a flow never recovered".to_owned()
    } else {
        format!("{} ms", num(outage, 0))
    };
    let _ = writeln!(
        md,
        "| failover outage, worst flow | ≤ 100 ms (stretch ≤ 10 ms) | {outage_text} | kernel mode 6: docs/kernels.md (same guest, vm-test --compare) | {}{} |",
        yes(met(outage, outage <= 100.0)),
        if outage.is_finite() && outage <= 10.0 { " (stretch too)" } else { "" }
    );
    if let Some(big) = arr(&doc["scale"]["rows"]).last() {
        let (hot10, hot) = (f(&big["cost_at_10"]["hot_ns"]), f(&big["cost_at_scale"]["hot_ns"]));
        let (sp10, sp) =
            (f(&big["cost_at_10"]["spread_ns"]), f(&big["cost_at_scale"]["spread_ns"]));
        let _ = writeln!(
            md,
            "| {} clients, per-packet cost | no slower than 10 clients | hot {} ns, spread {} ns | 10 clients: hot {} ns, spread {} ns | {} |",
            big["clients"],
            num(hot, 0),
            num(sp, 0),
            num(hot10, 0),
            num(sp10, 0),
            yes(met(hot, hot <= hot10 * 1.1 && sp <= sp10 * 1.1)),
        );
    }
    if let Some(big) = arr(&doc["scale"]["rows"]).last().filter(|b| !b["floor"].is_null()) {
        let w = &big["floor"];
        let (net, raw) = (f(&w["random_over_floor_net"]), f(&w["random_over_floor"]));
        let _ = writeln!(
            md,
            "| {} clients, random client in one test-run call | ≤ 2x the memory floor (net of the walker) | {}x net ({}x raw) | a {}-entry array read at random, same run | {} |",
            big["clients"],
            num(net, 2),
            num(raw, 2),
            w["clients"],
            yes(met(net, net <= 2.0)),
        );
    }
    for row in arr(&doc["balance"]["rows"]) {
        let c = &row["clients_per_slave"];
        let _ = writeln!(
            md,
            "| balance, {} clients over {} slaves | even | clients per slave {}–{} | {} each | {} |",
            row["clients"],
            row["slaves"],
            num(f(&c["min"]), 0),
            num(f(&c["max"]), 0),
            num(f(&row["ideal_per_slave"]), 0),
            yes(Some(f(&c["max"]) - f(&c["min"]) <= 1.0)),
        );
    }
    md.push('\n');
}
