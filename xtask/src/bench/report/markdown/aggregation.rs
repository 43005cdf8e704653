//! Figure 3 of the report: two 1 Gbit/s slaves against one link.

use std::fmt::Write as _;

use serde_json::Value;

use super::section;
use crate::bench::report::{arr, f, num, yes};

pub(super) fn aggregation_md(md: &mut String, doc: &Value) {
    let Some(a) =
        section(md, doc, "aggregation", "## 3. Aggregation: two 1 Gbit/s slaves vs one link")
    else {
        return;
    };
    let _ = writeln!(
        md,
        "{}. Four clients at once (c1 and c3 on slave 0, c2 and c4 on slave 1), one TCP stream \
         each, {} s, median of {} rounds alternating between the labs. Baseline: {}.\n",
        a["shaping"].as_str().unwrap_or(""),
        a["secs"],
        a["rounds"],
        a["baseline"].as_str().unwrap_or(""),
    );
    let _ = writeln!(
        md,
        "| test | one link, Gbit/s | alb, Gbit/s | per client (alb) | ratio | ≥ 1.95x |\n|---|---|---|---|---|---|"
    );
    for t in arr(&a["tests"]) {
        let each: Vec<String> = arr(&t["alb"]["each"]).iter().map(|v| num(f(v), 2)).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            t["what"].as_str().unwrap_or(""),
            num(f(&t["baseline"]["sum"]), 2),
            num(f(&t["alb"]["sum"]), 2),
            each.join(" / "),
            num(f(&t["ratio"]), 2),
            yes(Some(f(&t["ratio"]) >= 1.95)),
        );
    }
    md.push('\n');
}
