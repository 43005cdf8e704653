//! Ping from a namespace and its summary ([`PingStats`]): the traffic most
//! tests send.

use std::{fmt, time::Duration};

use anyhow::{Context as _, Result};

use super::Lab;
use crate::Proc;

/// The summary of one `ping` run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PingStats {
    pub transmitted: u32,
    pub received: u32,
    /// Average round trip in milliseconds, when any reply came.
    pub rtt_avg_ms: Option<f64>,
}

impl PingStats {
    /// Requests without a reply.
    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received)
    }

    fn parse(out: &str) -> Option<Self> {
        // "200 packets transmitted, 200 received, 0% packet loss, time 2189ms"
        let line = out.lines().find(|l| l.contains("packets transmitted"))?;
        let mut fields = line.split(", ");
        let transmitted = fields.next()?.split_whitespace().next()?.parse().ok()?;
        let received = fields.next()?.split_whitespace().next()?.parse().ok()?;
        // "rtt min/avg/max/mdev = 0.031/0.052/0.118/0.012 ms"
        let rtt_avg_ms = out
            .lines()
            .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
            .and_then(|v| v.split('/').nth(1))
            .and_then(|v| v.parse().ok());
        Some(Self { transmitted, received, rtt_avg_ms })
    }
}

impl fmt::Display for PingStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} replies", self.received, self.transmitted)?;
        if let Some(rtt) = self.rtt_avg_ms {
            write!(f, ", avg rtt {rtt:.3} ms")?;
        }
        Ok(())
    }
}

impl Lab {
    /// `ping -c count -i interval target` from namespace `ns` (IPv4 or IPv6
    /// by the target's form). Lost replies are not an error: read them from
    /// the result.
    pub fn ping(
        &self,
        ns: &str,
        target: &str,
        count: u32,
        interval: Duration,
    ) -> Result<PingStats> {
        self.ping_sized(ns, target, count, interval, 56)
    }

    /// [`Lab::ping`] with `size` bytes of payload (`ping -s`): large pings
    /// stand out from background frames in byte counters.
    pub fn ping_sized(
        &self,
        ns: &str,
        target: &str,
        count: u32,
        interval: Duration,
        size: u32,
    ) -> Result<PingStats> {
        let interval_s = format!("{:.3}", interval.as_secs_f64());
        let count = count.to_string();
        let size = size.to_string();
        // No -w: with a deadline, ping keeps sending until `count` replies.
        let argv =
            ["ping", "-n", "-q", "-c", &count, "-i", &interval_s, "-W", "1", "-s", &size, target];
        let out = self.exec(ns, &argv)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        PingStats::parse(&stdout).with_context(|| {
            format!(
                "`ping {target}` in {ns} gave no summary ({}): {}{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
    }
}

impl Lab {
    /// Starts `ping -n -D -O -i interval -c count -W 1 target` in
    /// namespace `ns` in the background: a timestamped line per reply, read
    /// with [`PingLog::parse`](super::PingLog::parse) once it has ended
    /// (after `count` requests, or SIGINT, which makes it print its
    /// summary).
    pub fn spawn_ping(
        &self,
        ns: &str,
        target: &str,
        interval: Duration,
        count: u64,
    ) -> Result<Proc> {
        let interval_s = format!("{:.3}", interval.as_secs_f64());
        let count = count.to_string();
        let argv = ["ping", "-n", "-D", "-O", "-i", &interval_s, "-c", &count, "-W", "1", target];
        self.spawn(ns, &argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_is_parsed() {
        let out = "PING 198.18.0.1 (198.18.0.1) 56(84) bytes of data.\n\n\
                   --- 198.18.0.1 ping statistics ---\n\
                   200 packets transmitted, 198 received, 1% packet loss, time 2189ms\n\
                   rtt min/avg/max/mdev = 0.031/0.052/0.118/0.012 ms\n";
        let stats = PingStats::parse(out).expect("parsed");
        assert_eq!(stats.transmitted, 200);
        assert_eq!(stats.received, 198);
        assert_eq!(stats.lost(), 2);
        assert_eq!(stats.rtt_avg_ms, Some(0.052));
        let none = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2030ms\n";
        let stats = PingStats::parse(none).expect("parsed");
        assert_eq!((stats.transmitted, stats.received), (3, 0));
        assert_eq!(stats.rtt_avg_ms, None);
    }
}
