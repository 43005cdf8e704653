//! docs/benchmarks.{json,md,svg} from the collected figures: the figures
//! pulled out of the document (here), the markdown report ([`markdown`],
//! a file per section), and six horizontal bar charts described in
//! [`charts`] and drawn with plotters ([`plot`]).

mod charts;
mod markdown;
mod plot;

use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::Value;

/// Analysis written by hand (the profile), embedded after the tables.
const NOTES: &str = include_str!("../notes.md");

pub(crate) fn write(dir: &Path, doc: &Value) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(doc)? + "\n";
    std::fs::write(dir.join("benchmarks.json"), json)?;
    std::fs::write(dir.join("benchmarks.md"), markdown::markdown(doc))?;
    std::fs::write(dir.join("benchmarks.svg"), plot::svg(doc)?)?;
    Ok(())
}

// ---------------------------------------------------------------------
// Figures pulled out of the document, shared by the markdown and the SVG.
// ---------------------------------------------------------------------

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() { format!("{v:.decimals$}") } else { "—".to_owned() }
}

fn yes(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**yes**",
        Some(false) => "**no**",
        None => "n/a",
    }
}

struct Cost {
    id: String,
    program: String,
    what: String,
    path: String,
    /// The hot median (for a rewriting row: through the restore, its own
    /// cost subtracted).
    ns: f64,
    /// `direct`, or `restore` for a row whose program rewrites the frame.
    method: String,
    min: f64,
    /// Every run took one run's path (false: e.g. events lost to a full ring).
    stable: bool,
    over_all_runs: String,
}

fn costs(doc: &Value) -> Vec<Cost> {
    let join = |v: &Value| arr(v).iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ");
    arr(&doc["cost"]["cases"])
        .iter()
        .map(|c| {
            let hot = &c["hot"];
            Cost {
                id: c["id"].as_str().unwrap_or_default().to_owned(),
                program: c["program"].as_str().unwrap_or_default().to_owned(),
                what: c["what"].as_str().unwrap_or_default().to_owned(),
                path: join(&c["path"]),
                ns: f(&hot["median_ns"]),
                method: c["method"].as_str().unwrap_or("direct").to_owned(),
                min: f(&hot["min_ns"]),
                stable: hot["stable"] != false,
                over_all_runs: join(&hot["path_over_all_runs"]),
            }
        })
        .collect()
}

/// Issue 14's targets, net of the floor (the empty program) of the same
/// run: IPv4 TCP to a known client through `alb_tx`, from one through
/// `alb_rx`. Every other traffic case may cost twice its path's target.
const TX_TARGET_NS: f64 = 25.0;
const RX_TARGET_NS: f64 = 15.0;
const OTHER_CASES_FACTOR: f64 = 2.0;

/// The floor case of alb_rx (a device that is no slave) is not a traffic
/// type of the issue.
fn is_traffic(c: &Cost) -> bool {
    c.id != "rx_not_a_slave"
}

/// Whether a row is a known client's TCP (on either slave), the case the
/// path's own target is for.
fn is_known_client(c: &Cost) -> bool {
    c.id.starts_with("tx_tcp_client") || c.id.starts_with("rx_tcp_client")
}

/// A row's target, net of the floor.
fn target_ns(c: &Cost) -> f64 {
    let path = if c.program == "alb_tx" { TX_TARGET_NS } else { RX_TARGET_NS };
    if is_known_client(c) { path } else { OTHER_CASES_FACTOR * path }
}

/// The worst net cost of `program` over the known-client rows (`known`)
/// or over the other traffic rows.
fn worst_net(costs: &[Cost], floor: f64, program: &str, known: bool) -> f64 {
    costs
        .iter()
        .filter(|c| c.program == program && is_traffic(c) && is_known_client(c) == known)
        .map(|c| c.ns - floor)
        .fold(f64::NAN, f64::max)
}

/// The empty program's hot median: test-run's own cost per run.
fn floor_ns(doc: &Value) -> f64 {
    f(&doc["cost"]["floor"]["hot"]["median_ns"])
}

/// A paired comparison: the median ratio and its interval (a run before
/// the paired protocol recorded a bare ratio: no interval).
#[derive(Clone, Copy)]
struct Ratio {
    median: f64,
    lo: f64,
    hi: f64,
}

fn ratio(v: &Value) -> Ratio {
    if v.is_number() {
        return Ratio { median: f(v), lo: f64::NAN, hi: f64::NAN };
    }
    Ratio { median: f(&v["median"]), lo: f(&v["lo"]), hi: f(&v["hi"]) }
}

impl Ratio {
    /// `0.993 [0.981, 1.004]`.
    fn text(self) -> String {
        if self.lo.is_finite() {
            format!("{} [{}, {}]", num(self.median, 3), num(self.lo, 3), num(self.hi, 3))
        } else {
            num(self.median, 3)
        }
    }
}

/// The worst lower bound of the throughput tests under the target (TCP),
/// or of every test in a run without intervals.
fn min_throughput_ratio(doc: &Value) -> f64 {
    arr(&doc["throughput"]["tests"])
        .iter()
        .filter(|t| t["target"] != false)
        .flat_map(|t| [ratio(&t["ratio_slave0"]), ratio(&t["ratio_slave1"])])
        .map(|r| if r.lo.is_finite() { r.lo } else { r.median })
        .fold(f64::NAN, f64::min)
}

fn min_aggregation_ratio(doc: &Value) -> f64 {
    arr(&doc["aggregation"]["tests"]).iter().map(|t| f(&t["ratio"])).fold(f64::NAN, f64::min)
}

/// The worst failover outage over every flow and scenario; infinite if a
/// flow never recovered.
fn worst_outage(doc: &Value) -> f64 {
    let mut worst = f64::NAN;
    for s in arr(&doc["failover"]["scenarios"]) {
        for flow in arr(&s["summary"]) {
            let v = if flow["failover_ms_max"].is_null() {
                f64::INFINITY
            } else {
                f(&flow["failover_ms_max"])
            };
            worst = worst.max(v);
        }
    }
    worst
}

#[cfg(test)]
mod tests;
