//! The paired protocol of the throughput figures: every arm (a baseline
//! and what is compared with it) runs once per round, in an order that
//! cycles through every permutation of the arms; a round in which another
//! process burned CPU is discarded and counted (each round first waits, up
//! to 5 s, for a quiet half second); each compared arm gets
//! one ratio per kept round, their median and a 95% percentile-bootstrap
//! interval (seeded: the interval can be recomputed from the values).

use anyhow::Result;
use serde_json::{Value, json};

use super::{
    quiet::{self, Others, Snapshot},
    stats,
};

/// Bootstrap resamples per interval, and its level.
pub(crate) const RESAMPLES: usize = 4000;
pub(crate) const LEVEL: f64 = 0.95;

/// One arm: a name and one measurement of it.
pub(crate) struct Arm<'a> {
    pub(crate) name: &'static str,
    pub(crate) run: Box<dyn Fn() -> Result<f64> + 'a>,
}

/// The rounds of one test.
pub(crate) struct Rounds {
    pub(crate) names: Vec<&'static str>,
    /// One value per arm, for each kept round.
    pub(crate) kept: Vec<Vec<f64>>,
    pub(crate) orders: Vec<Vec<usize>>,
    /// What others used during each kept round, in shares of one CPU.
    pub(crate) kept_others: Vec<f64>,
    /// The discarded rounds: their values and who was busy.
    pub(crate) discarded: Vec<Value>,
    /// Seconds spent waiting for a quiet machine before rounds.
    pub(crate) waited_s: f64,
    /// The budget ran out before `rounds` rounds were kept.
    pub(crate) out_of_time: bool,
}

/// A budget for `rounds` rounds of `arms` runs of `secs` each: half as
/// much again as they take on a quiet machine.
pub(crate) fn budget(rounds: usize, arms: usize, secs: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(1.5 * rounds as f64 * arms as f64 * (secs + 0.3))
}

/// The longest wait for a quiet machine before a round.
const QUIET_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes rounds until `rounds` are kept, `max_rounds` were taken or
/// `budget` has passed (a machine busy for longer is reported with fewer
/// rounds, not waited out).
pub(crate) fn run(
    label: &str,
    arms: &[Arm<'_>],
    rounds: usize,
    max_rounds: usize,
    budget: std::time::Duration,
    busy_share: f64,
) -> Result<Rounds> {
    let start = std::time::Instant::now();
    let mut out = Rounds {
        names: arms.iter().map(|a| a.name).collect(),
        kept: Vec::new(),
        orders: Vec::new(),
        kept_others: Vec::new(),
        discarded: Vec::new(),
        waited_s: 0.0,
        out_of_time: false,
    };
    for attempt in 0..max_rounds.max(rounds) {
        if out.kept.len() >= rounds {
            break;
        }
        if start.elapsed() > budget {
            eprintln!("bench: {label}: out of time after {attempt} rounds");
            out.out_of_time = true;
            break;
        }
        super::signals_check()?;
        let order = stats::round_order(arms.len(), attempt);
        out.waited_s += quiet::wait_quiet(QUIET_WAIT, busy_share).as_secs_f64();
        let before = Snapshot::take();
        let mut values = vec![f64::NAN; arms.len()];
        for &i in &order {
            values[i] = (arms[i].run)()?;
        }
        let others = Others::between(&before, &Snapshot::take());
        if others.busy(busy_share) {
            eprintln!(
                "bench: {label} round {}: discarded, others used {:.0}% of a CPU ({})",
                attempt + 1,
                100.0 * others.share,
                others.busiest.first().map_or("?", |b| b.0.as_str())
            );
            out.discarded.push(json!({ "values": values, "others": others.json() }));
        } else {
            out.kept.push(values);
            out.orders.push(order);
            out.kept_others.push(others.share);
        }
    }
    Ok(out)
}

impl Rounds {
    /// The kept values of arm `i`.
    pub(crate) fn values(&self, i: usize) -> Vec<f64> {
        self.kept.iter().map(|r| r[i]).collect()
    }

    /// Arm `arm` against arm `base`: the per-round ratios, their median
    /// and bootstrap interval; the seed is derived from `label` and the
    /// two names.
    pub(crate) fn compare(&self, label: &str, arm: usize, base: usize) -> Value {
        let ratios = stats::ratios(&self.values(arm), &self.values(base));
        let seed = stats::seed_of(&format!("{label}/{}/{}", self.names[arm], self.names[base]));
        let i = stats::bootstrap_median(&ratios, RESAMPLES, LEVEL, seed);
        json!({
            "arm": self.names[arm],
            "base": self.names[base],
            "pairs": ratios.len(),
            "median": i.median,
            "lo": i.lo,
            "hi": i.hi,
            "level": LEVEL,
            "resamples": RESAMPLES,
            "seed": seed,
            "ratios": ratios,
        })
    }

    /// Every arm's kept values and median, the orders and the discards.
    pub(crate) fn json(&self) -> Value {
        let arms: serde_json::Map<String, Value> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let v = self.values(i);
                ((*name).to_owned(), json!({ "median": stats::median(&v), "values": v }))
            })
            .collect();
        json!({
            "arms": arms,
            "kept": self.kept.len(),
            "discarded": self.discarded.len(),
            "discarded_rounds": self.discarded,
            "waited_for_quiet_s": self.waited_s,
            "out_of_time": self.out_of_time,
            "orders": self.orders,
            "others_share_of_one_cpu": self.kept_others,
        })
    }
}
