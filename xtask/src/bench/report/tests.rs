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
