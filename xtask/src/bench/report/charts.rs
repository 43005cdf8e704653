//! The six charts of docs/benchmarks.svg, described from the document:
//! rows of bars, reference lines and a legend each; [`super::plot`] draws
//! them.

use plotters::style::RGBColor;
use serde_json::Value;

use super::{RX_TARGET_NS, TX_TARGET_NS, arr, costs, f, floor_ns, num, ratio};

/// Series colours (Tableau 10).
pub(super) const COLORS: [RGBColor; 4] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
];
pub(super) const GREY: RGBColor = RGBColor(0x9d, 0x9d, 0x9d);
pub(super) const RED: RGBColor = RGBColor(0xcc, 0, 0);

/// One bar: its value, colour and the label drawn beside it.
pub(super) struct Bar {
    pub(super) value: f64,
    pub(super) color: RGBColor,
    pub(super) label: String,
}

/// One row of bars under a label.
pub(super) struct Row {
    pub(super) label: String,
    pub(super) bars: Vec<Bar>,
}

/// A horizontal bar chart: what [`super::plot`] draws.
pub(super) struct Chart {
    pub(super) title: String,
    pub(super) unit: String,
    pub(super) log: bool,
    pub(super) rows: Vec<Row>,
    /// Vertical dashed reference lines: value, label, colour.
    pub(super) lines: Vec<(f64, String, RGBColor)>,
    pub(super) legend: Vec<(RGBColor, String)>,
}

pub(super) fn cost_chart(doc: &Value) -> Chart {
    let rows = costs(doc)
        .into_iter()
        .map(|c| Row {
            label: c.id.clone(),
            bars: vec![Bar {
                value: c.ns,
                color: if c.program == "alb_tx" { COLORS[0] } else { COLORS[1] },
                label: num(c.ns, 0),
            }],
        })
        .collect();
    Chart {
        title: "1. Per-packet cost, BPF_PROG_TEST_RUN".into(),
        unit: "ns per run, hot, floor included".into(),
        log: false,
        rows,
        lines: vec![
            (floor_ns(doc), format!("test-run floor {} ns", num(floor_ns(doc), 0)), GREY),
            (
                floor_ns(doc) + RX_TARGET_NS,
                format!("RX target, known client: floor + {RX_TARGET_NS} ns"),
                COLORS[1],
            ),
            (
                floor_ns(doc) + TX_TARGET_NS,
                format!("TX target, known client: floor + {TX_TARGET_NS} ns"),
                COLORS[0],
            ),
        ],
        legend: vec![(COLORS[0], "alb_tx".into()), (COLORS[1], "alb_rx".into())],
    }
}

pub(super) fn throughput_chart(doc: &Value) -> Chart {
    let rows = arr(&doc["throughput"]["tests"])
        .iter()
        .map(|t| Row {
            label: t["id"].as_str().unwrap_or("").to_owned(),
            bars: [(&t["ratio_slave0"], COLORS[0]), (&t["ratio_slave1"], COLORS[2])]
                .into_iter()
                .map(|(r, color)| {
                    let r = ratio(r);
                    Bar { value: r.median, color, label: r.text() }
                })
                .collect(),
        })
        .collect();
    Chart {
        title: "2. Throughput, alb ÷ plain veth".into(),
        unit: "median ratio to the plain veth of the same round [95% interval]".into(),
        log: false,
        rows,
        lines: vec![(0.98, "target 0.98".into(), RED), (1.0, "baseline".into(), GREY)],
        legend: vec![(COLORS[0], "c1 slave 0".into()), (COLORS[2], "c2 slave 1".into())],
    }
}

pub(super) fn aggregation_chart(doc: &Value) -> Chart {
    let rows = arr(&doc["aggregation"]["tests"])
        .iter()
        .map(|t| Row {
            label: t["id"].as_str().unwrap_or("").to_owned(),
            bars: vec![
                Bar {
                    value: f(&t["baseline"]["sum"]),
                    color: GREY,
                    label: num(f(&t["baseline"]["sum"]), 2),
                },
                Bar {
                    value: f(&t["alb"]["sum"]),
                    color: COLORS[0],
                    label: format!("{} ({}x)", num(f(&t["alb"]["sum"]), 2), num(f(&t["ratio"]), 2)),
                },
            ],
        })
        .collect();
    Chart {
        title: "3. Aggregation, 2 slaves × 1 Gbit/s".into(),
        unit: "Gbit/s, 4 clients at once".into(),
        log: false,
        rows,
        lines: {
            let base: Vec<f64> = arr(&doc["aggregation"]["tests"])
                .iter()
                .map(|t| f(&t["baseline"]["sum"]))
                .collect();
            let mean = base.iter().sum::<f64>() / base.len().max(1) as f64;
            vec![(1.95 * mean, "target: 1.95 × one link".into(), RED)]
        },
        legend: vec![(GREY, "one link".into()), (COLORS[0], "alb".into())],
    }
}

pub(super) fn failover_chart(doc: &Value) -> Chart {
    let mut rows = Vec::new();
    let kernel = |id: &str| -> Option<(f64, &'static str)> {
        match id {
            "non_active" => Some((2275.0, "683–2275")),
            "active" => Some((114.0, "41–114")),
            _ => None,
        }
    };
    for s in arr(&doc["failover"]["scenarios"]) {
        let id = s["id"].as_str().unwrap_or("");
        for flow in arr(&s["summary"]) {
            if !flow["flow"].as_str().unwrap_or("").ends_with("rx") {
                continue;
            }
            let failed = flow["on_failed_slave"] == true;
            let v = if flow["failover_ms_max"].is_null() {
                f64::INFINITY
            } else {
                f(&flow["failover_ms_max"])
            };
            let mut bars = vec![Bar {
                value: v.max(0.1),
                color: COLORS[0],
                label: if v.is_finite() { format!("{} ms", num(v, 0)) } else { "never".into() },
            }];
            let reference = if failed {
                kernel(id)
            } else if id == "active" {
                Some((2114.0, "641–2114"))
            } else {
                None
            };
            if let Some((value, label)) = reference {
                bars.push(Bar { value, color: GREY, label: format!("{label} ms") });
            }
            rows.push(Row {
                label: format!("{id}: {}", if failed { "failed slave" } else { "survivor" }),
                bars,
            });
        }
    }
    Chart {
        title: "4. Failover: client receive outage".into(),
        unit: "ms (log scale), worst of the repetitions".into(),
        log: true,
        rows,
        lines: vec![(100.0, "target 100 ms".into(), RED), (10.0, "stretch 10 ms".into(), GREY)],
        legend: vec![(COLORS[0], "alb".into()), (GREY, "kernel (ref.)".into())],
    }
}

pub(super) fn scale_chart(doc: &Value) -> Chart {
    let mut rows = Vec::new();
    for r in arr(&doc["scale"]["rows"]) {
        let n = r["clients"].as_u64().unwrap_or(0);
        for (key, label) in [("cost_at_10", "10".to_owned()), ("cost_at_scale", short(n))] {
            rows.push(Row {
                label: format!("{} map: {label}", short(n)),
                bars: vec![
                    Bar {
                        value: f(&r[key]["hot_ns"]),
                        color: COLORS[0],
                        label: num(f(&r[key]["hot_ns"]), 0),
                    },
                    Bar {
                        value: f(&r[key]["spread_ns"]),
                        color: COLORS[3],
                        label: num(f(&r[key]["spread_ns"]), 0),
                    },
                ],
            });
        }
    }
    Chart {
        title: "5. alb_tx TCP to a known client vs clients".into(),
        unit: "ns per run".into(),
        log: false,
        rows,
        lines: vec![],
        legend: vec![(COLORS[0], "hot".into()), (COLORS[3], "spread".into())],
    }
}

pub(super) fn short(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

pub(super) fn balance_chart(doc: &Value) -> Chart {
    let rows = arr(&doc["balance"]["rows"])
        .iter()
        .map(|r| Row {
            label: format!("{} slaves", r["slaves"]),
            bars: arr(&r["clients_per_slave"]["per_slave"])
                .iter()
                .enumerate()
                .map(|(i, v)| Bar {
                    value: f(v),
                    color: COLORS[i % 4],
                    label: format!("slave {i}: {}", num(f(v), 0)),
                })
                .collect(),
        })
        .collect();
    Chart {
        title: "6. Balance: clients per slave".into(),
        unit: "clients".into(),
        log: false,
        rows,
        lines: vec![],
        legend: vec![],
    }
}
