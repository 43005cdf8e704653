//! Ping streams from the host's client namespaces: which requests got a
//! reply, and from that the receive outage around a failure. The host
//! keeps a 20 ms interval exactly (the guest under TCG could not), so
//! lost requests times the interval is the outage.

use std::{
    collections::BTreeSet,
    process::{Child, Stdio},
    time::Duration,
};

use alb_tests::netns;
use anyhow::{Context as _, Result};

use super::host::Switch;

/// The interval of every stream.
pub(super) const INTERVAL: Duration = Duration::from_millis(20);
/// The share of requests answered that means "working".
const WORKING: f64 = 0.5;

/// A running `ping` in a client namespace.
pub(super) struct Stream {
    pub(super) name: String,
    child: Child,
}

impl Stream {
    /// `ping -i 0.02 -c COUNT TARGET` in namespace `ns`.
    pub(super) fn start(name: &str, ns: &str, target: &str, count: u32) -> Result<Self> {
        Self::start_with(name, ns, target, count, &[])
    }

    /// The same with more options for ping (`-s SIZE` ...).
    pub(super) fn start_with(
        name: &str,
        ns: &str,
        target: &str,
        count: u32,
        options: &[&str],
    ) -> Result<Self> {
        let interval = format!("{:.3}", INTERVAL.as_secs_f64());
        let count = count.to_string();
        let mut argv = vec!["ping", "-n", "-i", interval.as_str(), "-c", count.as_str(), "-W", "1"];
        argv.extend_from_slice(options);
        argv.push(target);
        let child = netns::command(ns, &argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start ping {target} in {ns}"))?;
        Ok(Self { name: name.to_owned(), child })
    }

    /// Waits for the stream to end and reads what came back.
    pub(super) fn finish(self) -> Result<Replies> {
        let out = self.child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        Replies::parse(&text).with_context(|| {
            format!(
                "ping {} printed no summary: {}{}",
                self.name,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
    }
}

/// `count` pings at 20 ms from client `c`, waited for.
pub(super) fn ping(switch: &Switch, c: usize, target: &str, count: u32) -> Result<Replies> {
    Stream::start(&format!("c{c}"), &switch.client(c), target, count)?
        .finish()
        .with_context(|| format!("ping {target} from c{c}"))
}

/// Waits for every stream; their names and replies.
pub(super) fn finish(streams: Vec<Stream>) -> Result<Vec<(String, Replies)>> {
    streams
        .into_iter()
        .map(|stream| {
            let name = stream.name.clone();
            stream.finish().map(|replies| (name, replies))
        })
        .collect()
}

/// What one stream got back.
#[derive(Debug, PartialEq)]
pub(super) struct Replies {
    pub(super) sent: u32,
    /// Sequence numbers (from 1) that were answered, duplicates once.
    pub(super) answered: BTreeSet<u32>,
}

impl Replies {
    fn parse(out: &str) -> Option<Self> {
        // "300 packets transmitted, 297 received, 1% packet loss, time 6662ms"
        let sent = out
            .lines()
            .find(|l| l.contains("packets transmitted"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        // "64 bytes from 198.18.0.1: icmp_seq=12 ttl=64 time=1.23 ms"
        let answered = out
            .lines()
            .filter(|l| l.contains(" bytes from "))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("icmp_seq=")))
            .filter_map(|s| s.parse().ok())
            .collect();
        Some(Self { sent, answered })
    }

    /// The share of requests `from..=to` (1-based) that were answered.
    pub(super) fn answered_share(&self, from: u32, to: u32) -> f64 {
        let to = to.min(self.sent);
        if to < from {
            return 0.0;
        }
        let got = self.answered.range(from..=to).count();
        f64::from(u32::try_from(got).unwrap_or(u32::MAX)) / f64::from(to - from + 1)
    }

    /// The longest run of unanswered requests, as time: the receive outage.
    pub(super) fn outage(&self) -> Duration {
        let mut longest = 0u32;
        let mut run = 0u32;
        for seq in 1..=self.sent {
            if self.answered.contains(&seq) {
                run = 0;
            } else {
                run += 1;
                longest = longest.max(run);
            }
        }
        INTERVAL * longest
    }

    /// Answered again by the end: half of the last `tail` requests at
    /// least. A stream that needs a missing filter gets none of them; a
    /// loaded TCG guest can stall for a hundred milliseconds and more, which
    /// is an outage to report, not a failure.
    pub(super) fn recovered(&self, tail: u32) -> bool {
        self.answered_share(self.sent.saturating_sub(tail) + 1, self.sent) >= WORKING
    }

    /// Answered before anything failed (requests `1..=head`), in the same
    /// sense.
    pub(super) fn working_before(&self, head: u32) -> bool {
        self.answered_share(1, head) >= WORKING
    }

    /// One line for the report: `297/300 answered, outage 60 ms`.
    pub(super) fn describe(&self) -> String {
        format!(
            "{}/{} answered, outage {} ms",
            self.answered.len(),
            self.sent,
            self.outage().as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "PING 198.18.0.1 (198.18.0.1) 56(84) bytes of data.\n\
        64 bytes from 198.18.0.1: icmp_seq=1 ttl=64 time=1.1 ms\n\
        64 bytes from 198.18.0.1: icmp_seq=2 ttl=64 time=1.2 ms\n\
        64 bytes from 198.18.0.1: icmp_seq=5 ttl=64 time=1.2 ms\n\
        64 bytes from 198.18.0.1: icmp_seq=5 ttl=64 time=1.3 ms (DUP!)\n\
        64 bytes from 198.18.0.1: icmp_seq=6 ttl=64 time=1.2 ms\n\
        \n--- 198.18.0.1 ping statistics ---\n\
        6 packets transmitted, 4 received, +1 duplicates, 33% packet loss, time 100ms\n";

    #[test]
    fn replies_count_sequence_numbers_once() {
        let replies = Replies::parse(OUT).unwrap();
        assert_eq!(replies.sent, 6);
        assert_eq!(replies.answered, BTreeSet::from([1, 2, 5, 6]));
        assert_eq!(replies.outage(), INTERVAL * 2);
        // Half of the requests answered is working: 5 and 6 of 3..=6.
        assert!(replies.recovered(2) && replies.recovered(4));
        assert!(replies.working_before(2));
        assert!((replies.answered_share(1, 2) - 1.0).abs() < 1e-9);
        assert_eq!(replies.describe(), "4/6 answered, outage 40 ms");
    }

    #[test]
    fn nothing_answered_is_one_long_outage() {
        let replies =
            Replies::parse("3 packets transmitted, 0 received, 100% packet loss").unwrap();
        assert_eq!(replies.outage(), INTERVAL * 3);
        assert!(!replies.recovered(3) && !replies.working_before(3));
        assert!(Replies::parse("ping: connect: Network is unreachable").is_none());
    }
}
