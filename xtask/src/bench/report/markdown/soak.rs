//! Figure 7 of the report: the chaos soak. The faults applied by kind,
//! each client's lost pings against the faults that concerned it, the
//! agent's memory per process, panics and the final clean stop, and what
//! the run flagged.

use std::fmt::Write as _;

use serde_json::Value;

use super::section;
use crate::bench::report::{arr, f, num};

pub(super) fn soak_md(md: &mut String, doc: &Value) {
    let Some(s) = section(md, doc, "soak", "## 7. Chaos soak") else {
        return;
    };
    let run = &s["run"];
    let when = if run.is_null() {
        String::new()
    } else {
        format!(
            " Measured by `cargo xtask bench --only soak` on {} at commit `{}`{} (loadavg {} at \
             the start, {} at the end).",
            run["date"].as_str().unwrap_or("?"),
            run["commit"].as_str().unwrap_or("?"),
            if run["dirty"] == true { " (with uncommitted changes)" } else { "" },
            run["before"]["loadavg"].as_str().unwrap_or("?"),
            run["after"]["loadavg"].as_str().unwrap_or("?"),
        )
    };
    let _ = writeln!(
        md,
        "{} slaves, {} clients, {:.1} minutes ({:.0} s measured), seed {} (replay: `cargo xtask \
         bench --only soak --soak-minutes {} --soak-seed {}`).{when} Method: {}; pauses of \
         {}-{} s. A lost ping is *explained* when it left while a fault that concerned its \
         client was applied or within {} s of the agent settling after it (a slave's fault \
         concerns the clients on that slave before or after it and any client it moved; a \
         client's fault that client; a restart every client); *beside a fault* when another \
         client's or slave's fault was under way; *quiet* when no fault was near. The last two \
         are the losses no fault explains.\n",
        s["slaves"],
        s["clients_n"],
        f(&s["minutes"]),
        f(&s["soak_s"]),
        s["seed"],
        s["minutes"],
        s["seed"],
        s["method"].as_str().unwrap_or(""),
        num(f(&s["gap_s"][0]), 0),
        num(f(&s["gap_s"][1]), 0),
        num(f(&s["after_s"]), 0),
    );
    let _ = writeln!(md, "| fault | applied | failed |\n|---|---|---|");
    for k in arr(&s["faults_by_kind"]) {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            k["kind"].as_str().unwrap_or(""),
            k["applied"],
            k["failed"]
        );
    }
    let _ = writeln!(
        md,
        "\n| client | pings sent | lost | explained (by fault) | beside a fault | quiet | longest outage, ms |\n|---|---|---|---|---|---|---|"
    );
    for c in arr(&s["clients"]) {
        let by: Vec<String> = c["explained"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| c{} | {} | {} | {}{} | {} | {} | {} |",
            c["client"],
            c["sent"],
            c["lost"],
            c["explained_total"],
            if by.is_empty() { String::new() } else { format!(" ({})", by.join(", ")) },
            c["beside_a_fault"],
            c["quiet"],
            num(f(&c["longest_outage_ms"]), 0),
        );
    }
    let t = &s["totals"];
    let _ = writeln!(
        md,
        "| all | {} | {} | {} | {} | {} | |\n",
        t["sent"], t["lost"], t["explained"], t["beside_a_fault"], t["quiet"]
    );
    let rss = &s["rss"];
    let kib = |v: &Value| if v.is_null() { "—".to_owned() } else { num(f(v) / 1024.0, 1) };
    let _ = writeln!(
        md,
        "Agent resident memory (`VmRSS`, sampled every second): {} MiB at the start, {} MiB at \
         most, {} MiB at the end. Each agent process below; *growth* is from its first sample {} \
         s after it started to its last, for processes that ran at least {} s; the bound is {} \
         MiB.\n",
        kib(&rss["first_kib"]),
        kib(&rss["max_kib"]),
        kib(&rss["last_kib"]),
        num(f(&rss["settle_s"]), 0),
        num(f(&rss["min_life_s"]), 0),
        kib(&rss["growth_bound_kib"]),
    );
    let _ = writeln!(
        md,
        "| agent | ran, s | ended by | exit | RSS settled, MiB | max | last | growth, MiB | panics | warnings and errors logged |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for i in arr(&rss["instances"]) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i["instance"],
            num(f(&i["life_s"]), 0),
            i["ended_by"].as_str().unwrap_or(""),
            i["exit"].as_str().unwrap_or(""),
            kib(&i["rss_settled_kib"]),
            kib(&i["rss_max_kib"]),
            kib(&i["rss_last_kib"]),
            if i["rss_growth_kib"].is_null() {
                "— (short)".to_owned()
            } else {
                num(f(&i["rss_growth_kib"]) / 1024.0, 2)
            },
            i["panics"],
            i["warnings"],
        );
    }
    let stop = &s["final_stop"];
    let left: Vec<String> = arr(&stop["left"])
        .iter()
        .chain(arr(&stop["namespaces_left"]))
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let _ = writeln!(
        md,
        "\nPanics in the agents' logs: {}. Final stop (an agent without `--keep-datapath` adopts \
         the data path, then SIGTERM): {}; left behind: {}{}.\n",
        s["panics"],
        stop["exit"].as_str().unwrap_or("?"),
        if left.is_empty() { "nothing".to_owned() } else { left.join(", ") },
        if stop["pins_left"] == true { ", pins" } else { "" },
    );
    let flags = arr(&s["flags"]);
    if flags.is_empty() {
        let _ = writeln!(md, "**Flags:** none.\n");
    } else {
        for flag in flags {
            let _ = writeln!(md, "**Flag:** {}\n", flag.as_str().unwrap_or(""));
        }
        for c in arr(&s["clients"]) {
            let bursts: Vec<String> = arr(&c["unexplained_bursts"])
                .iter()
                .map(|b| format!("{} at {} s", b["lost"], num(f(&b["at_s"]), 1)))
                .collect();
            if !bursts.is_empty() {
                let _ = writeln!(md, "- c{} unexplained: {}", c["client"], bursts.join(", "));
            }
        }
        md.push('\n');
    }
}
