//! Figure 1 of the markdown report: the per-packet cost of the fixture
//! table's benchmark rows, the method, its check, and the program sizes.

use std::fmt::Write as _;

use serde_json::Value;

use crate::bench::report::{arr, costs, f, floor_ns, is_traffic, num, target_ns, yes};

pub(super) fn cost_md(md: &mut String, doc: &Value) {
    let cost = &doc["cost"];
    if cost.is_null() {
        return;
    }
    let floor = floor_ns(doc);
    // The default sampling: the largest any row ran with (exact rows: 1).
    let sampling = arr(&cost["cases"])
        .iter()
        .filter_map(|c| c["client_sampling"].as_u64())
        .max()
        .map_or_else(|| "?".to_owned(), |n| n.to_string());
    let _ = writeln!(md, "## 1. Per-packet cost (BPF_PROG_TEST_RUN)\n");
    let _ = writeln!(
        md,
        "The kernel's mean ns per run for the rows of the fixture table marked as benchmark \
         cases (`alb_tests::fixtures::table`, the rows the fixture tests check): each in a \
         freshly loaded object set up as its suite says, after the suite's earlier rows, its own \
         row checked once; *path* is the reason counters that row moves. **Hot**: {} runs per \
         test-run call, median of {} calls taken in turn with every other case; a call counts \
         only if its counters moved exactly {} times the row's (else the row is marked). \
         Test-run repeats the program on *one* skb and never restores it, so a row whose \
         program rewrites the frame (a slave other than slave 0, whose MAC the master carries) \
         would see its own output from the second run on: those rows (*restore*) run through a \
         hand-built program that writes the row's original bytes back with \
         `bpf_skb_store_bytes` and tail-calls the program under test, so every run takes the \
         row's path; the same program tail-calling an empty program is measured in the same \
         round, and *hot* = through the restore − into the empty program + the floor. \
         **Floor**, same run: an empty TC program (`r0 = 0; exit`, loaded with bpf(2)) costs \
         **{} ns** hot: that is test-run itself (loop, timer, skb), included in every figure; \
         *net* = hot − floor. Hot runs count 1 frame in {} in the client's counters (the \
         agent's default `client_sampling`); the `exact_` rows count every frame.\n",
        cost["repeat"],
        cost["runs"],
        cost["repeat"],
        num(floor, 0),
        sampling,
    );
    let _ = writeln!(
        md,
        "| program | case | path | method | hot ns | min ns | net ns | target (net) | met |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for c in costs(doc) {
        let target = target_ns(&c);
        let mut what = c.what.clone();
        if !c.stable {
            let _ = write!(what, " (over all runs: {})", c.over_all_runs);
        }
        let _ = writeln!(
            md,
            "| `{}` | `{}`: {} | {} | {} | {} | {} | {} | {} | {} |",
            c.program,
            c.id,
            what,
            c.path,
            c.method,
            num(c.ns, 0),
            num(c.min, 0),
            num(c.ns - floor, 0),
            if is_traffic(&c) { format!("≤ {target}") } else { "floor".to_owned() },
            if is_traffic(&c) { yes(Some(c.ns - floor <= target)) } else { "" },
        );
    }
    md.push('\n');
    let checks: Vec<String> = arr(&cost["cases"])
        .iter()
        .filter(|c| !c["hot_through_restore"].is_null())
        .map(|c| {
            format!(
                "`{}` {} ns direct, {} ns through the restore",
                c["id"].as_str().unwrap_or("?"),
                num(f(&c["hot"]["median_ns"]), 0),
                num(f(&c["hot_through_restore"]["median_ns"]), 0)
            )
        })
        .collect();
    if !checks.is_empty() {
        let _ = writeln!(
            md,
            "Method check, rows that leave the frame alone measured both ways in the same \
             rounds (the restore writes back bytes that are already there): {}.\n",
            checks.join("; ")
        );
    }
    super::sizes::sizes_md(md, doc);
}
