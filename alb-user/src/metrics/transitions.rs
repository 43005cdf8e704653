//! Failovers and failbacks as the agent applied them: plain counts and
//! histograms of how long the agent took, owned by the agent and copied
//! whole into each scrape's snapshot (so a scrape encodes the same instant
//! for every series, whatever the loop does meanwhile).

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::MetricType,
};

/// Slave transitions: how many, and how long the agent took for each
/// (from the committed change to the slots and buckets moved and the
/// clients queued for telling, as logged).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transitions {
    /// Slaves given up (carrier lost past downdelay, removed, deleted).
    pub failovers: u64,
    pub failover_seconds: Durations,
    /// Slaves taken (back) into service.
    pub failbacks: u64,
    pub failback_seconds: Durations,
}

impl Transitions {
    /// Records a failover (`down`) or a failback that took `seconds`.
    pub fn record(&mut self, down: bool, seconds: f64) {
        if down {
            self.failovers += 1;
            self.failover_seconds.observe(seconds);
        } else {
            self.failbacks += 1;
            self.failback_seconds.observe(seconds);
        }
    }
}

/// Upper bounds of the duration buckets: 0.5 ms to 8 s, doubling. The
/// lab's transitions take about a millisecond, 1M clients' 5-25 ms
/// (docs/benchmarks.md).
const BUCKETS: usize = 15;

/// A duration histogram as plain values, encoded as a Prometheus
/// histogram (`_bucket{le}`, `_sum`, `_count`).
#[derive(Clone, Debug, PartialEq)]
pub struct Durations {
    /// Observations per bucket (not cumulative), the last one for +Inf.
    counts: [u64; BUCKETS + 1],
    sum: f64,
    count: u64,
}

impl Default for Durations {
    fn default() -> Self {
        Self { counts: [0; BUCKETS + 1], sum: 0.0, count: 0 }
    }
}

impl Durations {
    /// The upper bound of bucket `index` (`le`).
    fn bound(index: usize) -> f64 {
        0.0005 * f64::from(1u32 << index)
    }

    pub fn observe(&mut self, seconds: f64) {
        let bucket = (0..BUCKETS).find(|&i| seconds <= Self::bound(i)).unwrap_or(BUCKETS);
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    pub const fn count(&self) -> u64 {
        self.count
    }

    pub const fn sum(&self) -> f64 {
        self.sum
    }
}

impl EncodeMetric for Durations {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, &n)| (if i < BUCKETS { Self::bound(i) } else { f64::INFINITY }, n))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_count_by_direction() {
        let mut transitions = Transitions::default();
        transitions.record(true, 0.002);
        transitions.record(true, 0.004);
        transitions.record(false, 0.001);
        assert_eq!((transitions.failovers, transitions.failbacks), (2, 1));
        assert_eq!(transitions.failover_seconds.count(), 2);
        assert!((transitions.failover_seconds.sum() - 0.006).abs() < 1e-12);
    }

    #[test]
    fn durations_fall_in_the_first_bucket_they_fit() {
        let mut durations = Durations::default();
        for seconds in [0.0001, 0.0005, 0.0006, 3.0, 100.0] {
            durations.observe(seconds);
        }
        assert_eq!(durations.counts[0], 2, "up to and including 0.5 ms");
        assert_eq!(durations.counts[1], 1, "0.6 ms is in le=0.001");
        assert_eq!(Durations::bound(BUCKETS - 1), 8.192);
        assert_eq!(durations.counts[BUCKETS - 2], 1, "3 s is in le=4.096");
        assert_eq!(durations.counts[BUCKETS], 1, "100 s only in +Inf");
    }
}
