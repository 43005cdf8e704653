//! Figure 5 of the report: 100k and 1M clients (learning, memory, the
//! per-packet cost at scale, failover with a full table) and the memory
//! floor the walker measures.

use std::fmt::Write as _;

use serde_json::Value;

use super::section;
use crate::bench::report::{arr, f, num};

pub(super) fn scale_md(md: &mut String, doc: &Value) {
    let Some(sc) = section(md, doc, "scale", "## 5. Scale: 100k and 1M clients") else {
        return;
    };
    let _ = writeln!(
        md,
        "{}. One agent run per size, `--max-clients` = size + 5% + 1024.\n",
        sc["method"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        md,
        "| clients | entries | learn s | µs per client (syscall incl.) | program ns per client | map memlock MiB | TCP ns, hot: 10 → N | TCP ns, spread: 10 → N | agent RSS MiB before → after | agent CPU s while learning (+ settle) | agent CPU idle % | agent info log lines (all run) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in arr(&sc["rows"]) {
        let a = &r["agent"];
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} → {} | {} → {} | {} → {} | {} (+{}) | {} | {} |",
            r["clients"],
            r["entries"],
            num(f(&r["learn_s"]), 2),
            num(f(&r["learn_us_per_client"]), 2),
            num(f(&r["learn_kernel_ns_per_client"]), 0),
            num(f(&r["memlock_bytes"]) / 1048576.0, 1),
            num(f(&r["cost_at_10"]["hot_ns"]), 0),
            num(f(&r["cost_at_scale"]["hot_ns"]), 0),
            num(f(&r["cost_at_10"]["spread_ns"]), 0),
            num(f(&r["cost_at_scale"]["spread_ns"]), 0),
            num(f(&a["rss_kb_before"]) / 1024.0, 1),
            num(f(&a["rss_kb_after"]) / 1024.0, 1),
            num(f(&a["cpu_s_learning"]), 2),
            num(f(&a["cpu_s_settle"]), 2),
            num(f(&a["cpu_pct_idle"]), 1),
            a["info_log_lines"],
        );
    }
    for r in arr(&sc["rows"]) {
        let probe = &r["failover"];
        if probe.is_null() {
            continue;
        }
        let flows: Vec<String> = arr(&probe["flows"])
            .iter()
            .map(|x| {
                let v = &x["failover_ms"];
                format!(
                    "{} {}",
                    x["flow"].as_str().unwrap_or(""),
                    if v.is_null() {
                        "never recovered".to_owned()
                    } else {
                        format!("{} ms", num(f(v), 0))
                    }
                )
            })
            .collect();
        let when = |v: &Value| {
            if v.is_null() {
                "not before the measurement ended".to_owned()
            } else {
                format!("{} ms after", num(f(v), 0))
            }
        };
        let agent = &r["agent"];
        let during = if agent["sigterm_during_failover"].as_bool() == Some(true) {
            " (sent 100 ms into a second failure of slave 1, while the teller was telling)"
        } else {
            ""
        };
        let stop = if agent["stop_error"].is_null() {
            format!("it stopped {} s after SIGTERM{during}", num(f(&agent["stop_s"]), 2))
        } else {
            format!(
                "it did not stop within {} s of SIGTERM and was killed (`alb down` cleaned up)",
                num(f(&agent["stop_s"]), 0)
            )
        };
        let _ = writeln!(
            md,
            "\n**Failover with {} clients in the table**: c1 and c2 learned on top, slave 1 fails \
             as in figure 4 (down {} s): outage {}. The agent logged the failure (slave 1's slots \
             moved, its clients queued for the teller) {} the carrier loss, and the recovery {} \
             the carrier came back; {stop}.",
            r["clients"],
            num(f(&probe["phases_s"][1]), 0),
            flows.join(", "),
            when(&probe["agent_down_logged_ms"]),
            when(&probe["agent_up_logged_ms"]),
        );
        for (key, what) in [("down", "failure"), ("up", "recovery")] {
            let told = &probe["told"][key];
            if told["clients"].is_null() {
                let _ = writeln!(md, "\n- After the {what}: no teller burst found in the log.");
                continue;
            }
            let _ = writeln!(
                md,
                "\n- After the {what}: {} clients told (first pass: the gratuitous form) in {} ms by \
                 the teller, all told {} ms after the carrier change (target: 2000 ms).",
                told["clients"],
                told["teller_ms"],
                num(f(&told["all_told_after_carrier_ms"]), 0),
            );
        }
    }
    floor_md(md, sc);
    let _ = writeln!(
        md,
        "\n*hot*: one client, {} runs (median of 5); *spread*: random known clients, one run each \
         (test-run with repeat 1 adds its timer overhead, so compare spread with spread). The \
         10-client figures are taken in the same map before it is filled.\n",
        sc["repeat"],
    );
}

/// The scale floor: the walker's cases for each size.
fn floor_md(md: &mut String, sc: &Value) {
    let rows: Vec<&Value> = arr(&sc["rows"]).iter().filter(|r| !r["floor"].is_null()).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n**The memory floor at scale.** Test-run repeats one frame, so `alb_tx` cannot meet a \
         different client on every run of one call; a bench-only program (hand-assembled, \
         loaded with bpf(2)) can: on each run it takes the next key of a key array (a cursor in \
         a one-entry array) and looks it up in the agent's own `ALB_CLIENTS` (the LRU hash \
         filled above, the same inlined lookup as `alb_tx`'s, which marks the LRU node \
         referenced) or, for the floor, in an array of N `ClientEntry`-sized values at that \
         index; either way it reads the value's first byte. One call walks the whole key array \
         (the next power of two ≥ N keys, at most 2^20), median of 5 calls per case taken in \
         turn. *net* = ns − the hot array case (the walker's own work and test-run's loop). \
         Target: uniform random clients cost ≤ 2x the random array read, net.\n",
    );
    let _ = writeln!(
        md,
        "| clients | keys per call | case | ns per run | net ns |\n|---|---|---|---|---|"
    );
    for r in rows {
        let w = &r["floor"];
        for c in arr(&w["cases"]) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                w["clients"],
                w["walk"],
                c["what"].as_str().unwrap_or(""),
                num(f(&c["median_ns"]), 0),
                num(f(&c["net_ns"]), 0),
            );
        }
        let _ = writeln!(
            md,
            "| {} | | **random clients ÷ random array read** | {}x raw | **{}x net** (Zipf: {}x; ÷ the same-footprint array: {}x) |",
            w["clients"],
            num(f(&w["random_over_floor"]), 2),
            num(f(&w["random_over_floor_net"]), 2),
            num(f(&w["zipf_over_floor_net"]), 2),
            num(f(&w["random_over_footprint_net"]), 2),
        );
    }
}
