//! The one outage rule and the one parser of measuring pings, shared by the
//! behaviour tests (tests/tests/common/pings.rs) and the benchmark
//! (xtask/src/bench): a flow's outage is the longer of its longest run of
//! lost packets (times the interval) and its longest silence between two
//! arrivals, less one interval.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, Result};

/// The outage `lost` packets in a row, or a `silence` between two
/// arrivals, stand for at one packet per `interval`.
pub fn outage(lost: u64, silence: Duration, interval: Duration) -> Duration {
    let lost = interval.saturating_mul(u32::try_from(lost).unwrap_or(u32::MAX));
    lost.max(silence.saturating_sub(interval))
}

/// What a `ping -D -O -i <interval>` run printed: when each request's
/// first reply came (duplicates ignored), and how many requests went out.
#[derive(Clone, Debug, PartialEq)]
pub struct PingLog {
    pub transmitted: u32,
    pub interval: Duration,
    /// icmp_seq -> arrival time (seconds since the epoch, `ping -D`).
    pub replies: BTreeMap<u32, f64>,
}

impl PingLog {
    /// Parses the output of a finished `ping -D` run; fails without the
    /// summary line (the run did not end).
    pub fn parse(interval: Duration, log: &str) -> Result<Self> {
        let mut replies = BTreeMap::new();
        for line in log.lines().filter(|l| l.contains("bytes from") && !l.contains("DUP!")) {
            let time = line
                .strip_prefix('[')
                .and_then(|l| l.split(']').next())
                .and_then(|t| t.parse::<f64>().ok());
            let seq = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("icmp_seq="))
                .and_then(|s| s.parse::<u32>().ok());
            if let (Some(time), Some(seq)) = (time, seq) {
                replies.entry(seq).or_insert(time);
            }
        }
        let transmitted = log
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .context("no ping summary")?;
        Ok(Self { transmitted, interval, replies })
    }

    pub fn received(&self) -> u32 {
        u32::try_from(self.replies.len()).unwrap_or(u32::MAX)
    }

    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received())
    }

    /// The most requests in a row without a reply.
    pub fn longest_run_lost(&self) -> u32 {
        let (mut run, mut longest) = (0_u32, 0_u32);
        for seq in 1..=self.transmitted {
            if self.replies.contains_key(&seq) {
                run = 0;
            } else {
                run += 1;
                longest = longest.max(run);
            }
        }
        longest
    }

    /// The longest time between two replies.
    pub fn longest_gap(&self) -> Duration {
        let mut times: Vec<f64> = self.replies.values().copied().collect();
        times.sort_by(f64::total_cmp);
        Duration::from_secs_f64(times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max))
    }

    /// The longest time between two replies in a row of which the later
    /// came after `from` and the earlier before `to` (seconds since the
    /// epoch): the longest silence that overlaps [from, to].
    pub fn longest_gap_between(&self, from: f64, to: f64) -> Duration {
        let mut times: Vec<f64> = self.replies.values().copied().collect();
        times.sort_by(f64::total_cmp);
        let longest = times
            .windows(2)
            .filter(|w| w[1] > from && w[0] < to)
            .map(|w| w[1] - w[0])
            .fold(0.0, f64::max);
        Duration::from_secs_f64(longest)
    }

    /// The run's outage ([`outage`]).
    pub fn outage(&self) -> Duration {
        outage(u64::from(self.longest_run_lost()), self.longest_gap(), self.interval)
    }

    /// The unanswered requests' sequence numbers, in order.
    pub fn lost_seqs(&self) -> Vec<u32> {
        (1..=self.transmitted).filter(|seq| !self.replies.contains_key(seq)).collect()
    }

    /// When request `seq` left, in seconds since the epoch, to within a
    /// round trip: its reply's arrival if it had one, else interpolated by
    /// sequence number between the nearest answered requests around it
    /// (ping keeps its interval through an outage), or extrapolated by the
    /// interval from the nearest one on one side. `None` when nothing was
    /// answered.
    pub fn sent_at(&self, seq: u32) -> Option<f64> {
        if let Some(&t) = self.replies.get(&seq) {
            return Some(t);
        }
        let before = self.replies.range(..seq).next_back();
        let after = self.replies.range(seq..).next();
        let step = self.interval.as_secs_f64();
        match (before, after) {
            (Some((&s0, &t0)), Some((&s1, &t1))) => {
                Some(t0 + (t1 - t0) * f64::from(seq - s0) / f64::from(s1 - s0))
            }
            (Some((&s0, &t0)), None) => Some(t0 + step * f64::from(seq - s0)),
            (None, Some((&s1, &t1))) => Some(t1 - step * f64::from(s1 - seq)),
            (None, None) => None,
        }
    }

    /// How long after `since` (seconds since the epoch) the first reply
    /// came.
    pub fn first_reply_after(&self, since: f64) -> Option<Duration> {
        self.replies
            .values()
            .copied()
            .filter(|&t| t > since)
            .fold(None, |first: Option<f64>, t| Some(first.map_or(t, |f| f.min(t))))
            .map(|t| Duration::from_secs_f64(t - since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_gap_between_two_moments_counts_the_silences_that_overlap_them() {
        let replies = [(1, 100.00), (2, 100.01), (3, 100.50), (4, 100.51), (5, 101.51)];
        let log = PingLog { transmitted: 5, interval: 10 * MS, replies: replies.into() };
        // The silence from 100.01 to 100.50 overlaps [100.2, 100.3].
        let gap = log.longest_gap_between(100.2, 100.3);
        assert!((gap.as_secs_f64() - 0.49).abs() < 1e-6, "{gap:?}");
        // Only the second silence overlaps [101.0, 102.0].
        let gap = log.longest_gap_between(101.0, 102.0);
        assert!((gap.as_secs_f64() - 1.0).abs() < 1e-6, "{gap:?}");
        assert_eq!(log.longest_gap_between(99.0, 99.5), Duration::ZERO);
    }

    #[test]
    fn the_outage_is_the_longer_of_the_lost_run_and_the_silence() {
        assert_eq!(outage(0, 10 * MS, 10 * MS), Duration::ZERO);
        assert_eq!(outage(3, 40 * MS, 10 * MS), 30 * MS);
        // Replies late but none lost: the silence counts.
        assert_eq!(outage(0, 250 * MS, 10 * MS), 240 * MS);
        assert_eq!(outage(30, 100 * MS, 10 * MS), 300 * MS);
    }

    #[test]
    fn a_ping_log_gives_its_replies_runs_and_gaps() {
        let log = "PING 198.18.0.1 (198.18.0.1) 56(84) bytes of data.\n\
                   [100.000] 64 bytes from 198.18.0.1: icmp_seq=1 ttl=64 time=0.05 ms\n\
                   [100.010] 64 bytes from 198.18.0.1: icmp_seq=2 ttl=64 time=0.05 ms\n\
                   no answer yet for icmp_seq=3\n\
                   no answer yet for icmp_seq=4\n\
                   [100.050] 64 bytes from 198.18.0.1: icmp_seq=5 ttl=64 time=0.05 ms\n\
                   [100.051] 64 bytes from 198.18.0.1: icmp_seq=5 ttl=64 time=0.05 ms (DUP!)\n\
                   [100.060] 64 bytes from 198.18.0.1: icmp_seq=6 ttl=64 time=0.05 ms\n\n\
                   --- 198.18.0.1 ping statistics ---\n\
                   6 packets transmitted, 4 received, +1 duplicates, 33% packet loss\n";
        let run = PingLog::parse(10 * MS, log).expect("parses");
        assert_eq!((run.transmitted, run.received(), run.lost()), (6, 4, 2));
        assert_eq!(run.longest_run_lost(), 2);
        assert!((run.longest_gap().as_secs_f64() - 0.040).abs() < 1e-6, "{run:?}");
        assert!((run.outage().as_secs_f64() - 0.030).abs() < 1e-6, "{run:?}");
        let first = run.first_reply_after(100.02).expect("a reply after");
        assert!((first.as_secs_f64() - 0.030).abs() < 1e-6, "{first:?}");
        assert!(PingLog::parse(10 * MS, "[1.0] 64 bytes from x: icmp_seq=1\n").is_err());
    }

    #[test]
    fn an_unanswered_request_is_placed_between_its_neighbours() {
        let log = "[100.000] 64 bytes from 198.18.0.1: icmp_seq=1 ttl=64 time=0.05 ms\n\
                   [100.020] 64 bytes from 198.18.0.1: icmp_seq=2 ttl=64 time=0.05 ms\n\
                   [100.080] 64 bytes from 198.18.0.1: icmp_seq=5 ttl=64 time=0.05 ms\n\
                   6 packets transmitted, 3 received, 50% packet loss\n";
        let run = PingLog::parse(20 * MS, log).expect("parses");
        assert_eq!(run.lost_seqs(), [3, 4, 6]);
        let at = |seq| run.sent_at(seq).expect("a time");
        assert!((at(2) - 100.020).abs() < 1e-9, "answered: its arrival");
        assert!((at(3) - 100.040).abs() < 1e-9, "interpolated: {}", at(3));
        assert!((at(4) - 100.060).abs() < 1e-9, "interpolated: {}", at(4));
        assert!((at(6) - 100.100).abs() < 1e-9, "extrapolated after the last: {}", at(6));
        let none = PingLog { transmitted: 2, interval: 20 * MS, replies: BTreeMap::new() };
        assert_eq!(none.sent_at(1), None);
    }
}
