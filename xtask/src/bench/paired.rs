//! The paired protocol of the throughput figures: every arm (a baseline
//! and what is compared with it) runs once per round, in an order that
//! cycles through every permutation of the arms; a round in which another
//! process burned CPU is discarded and counted (each round first waits, up
//! to 10 s, for a quiet half second); each compared arm gets
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
    /// The discarded rounds: their values and who was busy.
    pub(crate) discarded: Vec<Value>,
    /// Seconds spent waiting for a quiet machine before rounds.
    pub(crate) waited_s: f64,
}

/// The longest wait for a quiet machine before a round.
const QUIET_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Takes rounds until `rounds` are kept or `max_rounds` were taken.
pub(crate) fn run(
    label: &str,
    arms: &[Arm<'_>],
    rounds: usize,
    max_rounds: usize,
) -> Result<Rounds> {
    let mut out = Rounds {
        names: arms.iter().map(|a| a.name).collect(),
        kept: Vec::new(),
        orders: Vec::new(),
        discarded: Vec::new(),
        waited_s: 0.0,
    };
    for attempt in 0..max_rounds.max(rounds) {
        if out.kept.len() >= rounds {
            break;
        }
        super::signals_check()?;
        let order = stats::round_order(arms.len(), attempt);
        out.waited_s += quiet::wait_quiet(QUIET_WAIT).as_secs_f64();
        let before = Snapshot::take();
        let mut values = vec![f64::NAN; arms.len()];
        for &i in &order {
            values[i] = (arms[i].run)()?;
        }
        let others = Others::between(&before, &Snapshot::take());
        if others.busy() {
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
            "orders": self.orders,
        })
    }
}
