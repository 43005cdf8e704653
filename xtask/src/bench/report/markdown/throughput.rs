//! Figure 2 of the report, throughput of alb against the plain veth in
//! paired rounds, and 2b, the layout experiment (bpf_redirect_peer).

use std::fmt::Write as _;

use serde_json::Value;

use super::section;
use crate::bench::{
    report::{Ratio, arr, f, num, ratio, yes},
    stats,
};

pub(super) fn throughput_md(md: &mut String, doc: &Value) {
    let Some(t) = section(md, doc, "throughput", "## 2. Throughput: alb vs plain veth") else {
        return;
    };
    let discarded: u64 =
        arr(&t["tests"]).iter().map(|x| x["discarded"].as_u64().unwrap_or(0)).sum();
    let kept: u64 = arr(&t["tests"]).iter().map(|x| x["kept"].as_u64().unwrap_or(0)).sum();
    let others: Vec<f64> = arr(&t["tests"])
        .iter()
        .flat_map(|x| arr(&x["others_share_of_one_cpu"]).iter().map(f))
        .collect();
    let others_median = 100.0 * stats::median(&others);
    let waited: f64 = arr(&t["tests"])
        .iter()
        .map(|x| f(&x["waited_for_quiet_s"]))
        .filter(|w| w.is_finite())
        .sum();
    let _ = writeln!(
        md,
        "iperf3, {} s per run after {} s of TCP warm-up (`-O`); {}. Each test takes paired \
         rounds of three arms (the plain veth with c1, alb with c1, alb with c2), {} rounds \
         kept per test, the order cycling through every permutation of the arms. A round in \
         which another process used more than {:.0}% of a CPU (per-process CPU time from /proc \
         around the round; the bench's own processes and kernel threads excluded) is discarded: \
         {discarded} discarded, {kept} kept over all tests (each round first waited up to 5 s \
         for a quiet half second: {waited:.0} s in all); during the kept rounds others used a \
         median {} of a CPU. Each alb path gets one ratio per \
         round (alb ÷ the plain veth of the same round), their median and a 95% \
         percentile-bootstrap interval of it (4000 resamples, seeded, seeds in \
         benchmarks.json); **the target is met when the interval's lower bound is ≥ 0.98** (TCP; \
         UDP is reported the same way). Baseline: {}. alb: {}. TCP figures are the receiver's; \
         UDP is datagrams received per second with `-u -l 64 -b 0` (sender and receiver share \
         the two vCPUs with the softirq work, and the receiver drops what it cannot read: the \
         figure is the stack's, per packet, more than alb's).\n",
        t["secs"],
        t["omit_secs"],
        t["pinning"].as_str().unwrap_or("iperf3 not pinned"),
        t["rounds"],
        100.0 * f(&t["busy_share"]),
        if others_median.is_finite() { format!("{others_median:.0}%") } else { "—".to_owned() },
        t["baseline"].as_str().unwrap_or(""),
        t["alb"].as_str().unwrap_or(""),
    );
    let _ = writeln!(
        md,
        "| test | unit | plain veth | alb, c1 (slave 0) | ratio [95% interval] | alb, c2 (slave 1) | ratio [95% interval] | rounds kept / discarded | lower bound ≥ 0.98 |\n|---|---|---|---|---|---|---|---|---|"
    );
    for test in arr(&t["tests"]) {
        let (r0, r1) = (ratio(&test["ratio_slave0"]), ratio(&test["ratio_slave1"]));
        let digits = if test["unit"] == "kpps" { 0 } else { 2 };
        // A run before the paired protocol kept its medians elsewhere.
        let value = |arm: &str, old: &str| {
            let v = &test["arms"][arm]["median"];
            num(f(if v.is_null() { &test[old]["median"] } else { v }), digits)
        };
        let bound = |r: Ratio| if r.lo.is_finite() { r.lo } else { r.median };
        let met = bound(r0) >= 0.98 && bound(r1) >= 0.98;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            test["what"].as_str().unwrap_or(""),
            test["unit"].as_str().unwrap_or(""),
            value("plain", "baseline"),
            value("alb_slave0", "alb_slave0"),
            r0.text(),
            value("alb_slave1", "alb_slave1"),
            r1.text(),
            test["kept"],
            test["discarded"],
            if test["target"] == false {
                format!("({})", if met { "yes" } else { "no" })
            } else {
                yes(Some(met)).to_owned()
            },
        );
    }
    md.push('\n');
}

pub(super) fn layout_md(md: &mut String, doc: &Value) {
    let Some(l) = section(md, doc, "layout", "### 2b. Layout experiment: bpf_redirect_peer") else {
        return;
    };
    let _ = writeln!(
        md,
        "{}; {} rounds kept per test, {} s per run. Ratios are medians with their 95% \
         bootstrap interval.\n",
        l["method"].as_str().unwrap_or(""),
        l["rounds"],
        l["secs"],
    );
    let _ = writeln!(
        md,
        "| test | unit | plain veth | redirect (alb's layout) | peer layout | redirect ÷ plain | peer ÷ plain | peer ÷ redirect | rounds kept / discarded |\n|---|---|---|---|---|---|---|---|---|"
    );
    for test in arr(&l["tests"]) {
        let digits = if test["unit"] == "kpps" { 0 } else { 2 };
        let value = |arm: &str| num(f(&test["arms"][arm]["median"]), digits);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            test["what"].as_str().unwrap_or(""),
            test["unit"].as_str().unwrap_or(""),
            value("plain"),
            value("redirect"),
            value("peer"),
            ratio(&test["redirect_vs_plain"]).text(),
            ratio(&test["peer_vs_plain"]).text(),
            ratio(&test["peer_vs_redirect"]).text(),
            test["kept"],
            test["discarded"],
        );
    }
    md.push('\n');
}
