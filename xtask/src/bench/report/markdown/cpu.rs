//! Figure 2c of the report: CPU per unit of work at a fixed offered load,
//! with its A/A control and its known-cost check.

use std::fmt::Write as _;

use serde_json::Value;

use super::section;
use crate::bench::report::{Ratio, arr, f, num, ratio, yes};

pub(super) fn cpu_md(md: &mut String, doc: &Value) {
    let heading = "### 2c. CPU per unit of work at a fixed offered load (validated in each test before it is read)";
    let Some(c) = section(md, doc, "cpu", heading) else {
        return;
    };
    let _ = writeln!(
        md,
        "{}; {} s per run, {} rounds per test. A/A: {}. Known cost: {}; *expected* is the \
         ratio that cost predicts (the twin's CPU per unit of work against the same plus the \
         program's ns times the skbs through the veth per unit of work, median over rounds). \
         **The method is valid in a test when the A/A interval lies within [0.98, 1.02] and \
         the known-cost interval excludes 1**; alb's lower bounds are read only then (TCP \
         target ≥ 0.98, 64-byte UDP ≥ 0.97).\n",
        c["method"].as_str().unwrap_or(""),
        c["secs"],
        c["rounds"],
        c["aa"].as_str().unwrap_or(""),
        c["known_cost"].as_str().unwrap_or(""),
    );
    let _ = writeln!(
        md,
        "| test | offered | unit | plain veth | A/A: twin ÷ plain | known cost, ns | known ÷ twin | expected | valid | alb c1 (slave 0) ÷ plain | alb c2 (slave 1) ÷ plain | target met |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for test in arr(&c["tests"]) {
        let (aa, known) = (ratio(&test["aa"]), ratio(&test["known_cost"]));
        let (r0, r1) = (ratio(&test["ratio_slave0"]), ratio(&test["ratio_slave1"]));
        let valid = aa.lo >= 0.98 && aa.hi <= 1.02 && known.hi < 1.0;
        let target =
            if test["id"].as_str().is_some_and(|id| id.starts_with("udp")) { 0.97 } else { 0.98 };
        let met = |r: Ratio| r.lo >= target;
        let digits = if test["unit"].as_str().is_some_and(|u| u.starts_with('G')) { 3 } else { 0 };
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} (≥ {target}) |",
            test["what"].as_str().unwrap_or(""),
            test["offered"].as_str().unwrap_or(""),
            test["unit"].as_str().unwrap_or(""),
            num(f(&test["arms"]["plain"]["median"]), digits),
            aa.text(),
            num(f(&test["known_cost_ns"]), 0),
            known.text(),
            num(f(&test["known_cost_expected"]), 3),
            yes(Some(valid)),
            r0.text(),
            r1.text(),
            if valid { yes(Some(met(r0) && met(r1))).to_owned() } else { "(not read)".to_owned() },
        );
    }
    md.push('\n');
}
