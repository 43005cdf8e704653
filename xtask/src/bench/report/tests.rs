//! The report renders whatever the run produced, and the recorded run in
//! full.

use serde_json::json;

use super::{charts::short, markdown::markdown, plot::svg};

#[test]
fn an_empty_or_partial_run_still_renders() {
    for doc in [json!({}), json!({ "meta": { "quick": true }, "errors": ["cost: failed"] })] {
        let md = markdown(&doc);
        assert!(
            md.contains("## Targets") && md.contains("Section failed") == doc["errors"].is_array()
        );
        let svg = svg(&doc).expect("renders");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}

#[test]
fn short_counts() {
    assert_eq!(short(1_000_000), "1M");
    assert_eq!(short(100_000), "100k");
    assert_eq!(short(999), "999");
}

#[test]
fn the_figure_of_the_recorded_run_names_every_chart() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.json"))
            .expect("docs/benchmarks.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let svg = svg(&doc).expect("renders");
    for title in [
        "1. Per-packet cost",
        "2. Throughput",
        "3. Aggregation",
        "4. Failover",
        "5. alb_tx",
        "6. Balance",
    ] {
        assert!(svg.contains(title), "{title} is drawn");
    }
    assert!(svg.contains("<rect"), "bars are drawn");
}

#[test]
fn figure_1_names_each_rows_method_and_the_program_sizes() {
    let row = |id: &str, method: &str, ns: u32| {
        json!({
            "id": id, "program": "alb_tx", "what": "a row", "path": ["tx_client+1"],
            "method": method, "hot": { "median_ns": ns, "min_ns": ns, "stable": true },
        })
    };
    let doc = json!({
        "cost": {
            "repeat": 1000, "runs": 2,
            "floor": { "hot": { "median_ns": 30 } },
            "cases": [row("tx_tcp_client", "direct", 100), row("tx_tcp_client_s1", "restore", 120)],
            "programs": [{ "name": "alb_tx", "xlated_insns": 2000, "jited_bytes": 9000, "verified_insns": null }],
        },
    });
    let md = markdown(&doc);
    assert!(
        md.contains("| `alb_tx` | `tx_tcp_client_s1`: a row | tx_client+1 | restore | 120 |"),
        "{md}"
    );
    assert!(!md.contains('≈'), "no estimated rows: {md}");
    assert!(md.contains("| `alb_tx` | 2000 |"), "program sizes: {md}");
}

#[test]
fn throughput_is_judged_by_the_lower_bound_of_its_interval() {
    let ratio = |median: f64, lo: f64, hi: f64| json!({ "median": median, "lo": lo, "hi": hi });
    let doc = json!({ "throughput": { "tests": [
        { "id": "tcp1_up", "what": "TCP up", "unit": "Gbit/s", "target": true, "kept": 20, "discarded": 2,
          "arms": { "plain": { "median": 10.0 }, "alb_slave0": { "median": 9.9 }, "alb_slave1": { "median": 9.8 } },
          "ratio_slave0": ratio(0.99, 0.985, 1.0), "ratio_slave1": ratio(0.99, 0.97, 1.01) },
        { "id": "udp64_up", "what": "UDP up", "unit": "kpps", "target": false, "kept": 20, "discarded": 0,
          "arms": {}, "ratio_slave0": ratio(0.5, 0.4, 0.6), "ratio_slave1": ratio(0.5, 0.4, 0.6) },
    ] } });
    let md = markdown(&doc);
    assert!(md.contains("0.990 [0.970, 1.010]"), "the interval is printed:\n{md}");
    assert!(md.contains("| 20 / 2 | **no** |"), "c2's lower bound 0.97 misses 0.98:\n{md}");
    assert!(md.contains("| 20 / 0 | (no) |"), "UDP is reported, not judged:\n{md}");
    assert!(md.contains("worst lower bound of the 95% interval | ≥ 0.98x | 0.970x"), "{md}");
}

#[test]
fn per_packet_targets_are_net_of_the_floor_and_twice_as_loose_off_the_known_client() {
    let row = |id: &str, program: &str, ns: u32| {
        json!({
            "id": id, "program": program, "what": "a row", "path": ["x+1"],
            "hot": { "median_ns": ns, "min_ns": ns, "stable": true },
        })
    };
    let doc = json!({
        "cost": {
            "repeat": 1000, "runs": 2,
            "floor": { "hot": { "median_ns": 30 } },
            "cases": [
                row("tx_tcp_client", "alb_tx", 60),
                row("tx_broadcast", "alb_tx", 75),
                row("rx_tcp_client", "alb_rx", 44),
                row("rx_broadcast", "alb_rx", 61),
            ],
        },
    });
    let md = markdown(&doc);
    let line = |figure: &str| {
        md.lines().find(|l| l.starts_with(&format!("| {figure}"))).unwrap_or_default().to_owned()
    };
    let tx = line("TX to a known client");
    assert!(tx.contains("≤ 25 ns | 30 ns") && tx.ends_with("**no** |"), "net 30 > 25: {tx}");
    let tx_other = line("every other `alb_tx` case");
    assert!(tx_other.contains("≤ 50 ns | 45 ns") && tx_other.ends_with("**yes** |"), "{tx_other}");
    let rx = line("RX from a known client");
    assert!(rx.contains("≤ 15 ns | 14 ns") && rx.ends_with("**yes** |"), "net 14 <= 15: {rx}");
    let rx_other = line("every other `alb_rx` case");
    assert!(rx_other.contains("≤ 30 ns | 31 ns") && rx_other.ends_with("**no** |"), "{rx_other}");
}

#[test]
fn the_soak_states_its_figures_and_flags() {
    let clean = json!({
        "soak": {
            "slaves": 3, "clients_n": 6, "minutes": 2.0, "soak_s": 119.0, "seed": 42,
            "method": "pings", "gap_s": [2.0, 4.0], "after_s": 2.0,
            "faults_by_kind": [{"kind": "kill9_restart", "applied": 2, "failed": 0}],
            "clients": [{"client": 1, "sent": 5950, "lost": 3, "explained": {"kill9_restart": 3},
                "explained_total": 3, "beside_a_fault": 0, "quiet": 0, "longest_outage_ms": 60.0,
                "unexplained_bursts": []}],
            "totals": {"sent": 5950, "lost": 3, "explained": 3, "beside_a_fault": 0, "quiet": 0},
            "rss": {"first_kib": 10240, "max_kib": 12288, "last_kib": 11264,
                "growth_bound_kib": 2048, "settle_s": 5.0, "min_life_s": 30.0,
                "instances": [{"instance": 1, "life_s": 61.0, "ended_by": "kill9_restart",
                    "exit": "signal: 9 (SIGKILL)", "rss_settled_kib": 10240, "rss_max_kib": 12288,
                    "rss_last_kib": 11264, "rss_growth_kib": 1024, "panics": 0, "warnings": 1}]},
            "panics": 0,
            "final_stop": {"exit": "exit status: 0", "left": [], "namespaces_left": [],
                "pins_left": false},
            "flags": [],
        }
    });
    let md = markdown(&clean);
    assert!(md.contains("## 7. Chaos soak"), "{md}");
    assert!(md.contains("--soak-seed 42"), "the replay command: {md}");
    assert!(md.contains("| c1 | 5950 | 3 | 3 (kill9_restart 3) | 0 | 0 | 60 |"), "{md}");
    assert!(
        md.contains("| 1 | 61 | kill9_restart | signal: 9 (SIGKILL) | 10.0 | 12.0 | 11.0 | 1.00 |"),
        "{md}"
    );
    assert!(md.contains("left behind: nothing") && md.contains("**Flags:** none."), "{md}");

    let mut flagged = clean;
    flagged["soak"]["flags"] =
        json!(["2 ping(s) lost with no fault of their client to explain them"]);
    flagged["soak"]["clients"][0]["unexplained_bursts"] = json!([{"at_s": 12.34, "lost": 2}]);
    flagged["soak"]["final_stop"]["left"] = json!(["pin directory /sys/fs/bpf/alb/x"]);
    let md = markdown(&flagged);
    assert!(md.contains("**Flag:** 2 ping(s) lost"), "{md}");
    assert!(md.contains("- c1 unexplained: 2 at 12.3 s"), "{md}");
    assert!(md.contains("left behind: pin directory /sys/fs/bpf/alb/x"), "{md}");
    assert!(svg(&flagged).is_ok(), "the charts ignore the soak");
}
