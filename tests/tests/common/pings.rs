//! Measuring pings: fast `ping -D -O` runs to the server from some clients
//! in the background while something happens, and what each one saw.
//!
//! A client's outage is the longer of its longest run of unanswered
//! requests (times the interval) and its longest silence between two
//! replies (from the `ping -D` timestamps), less one interval.

use std::{
    fmt, thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alb_tests::{Lab, PingLog, Proc, SERVER_IP4};

/// Seconds since the epoch, as `ping -D` prints them.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// Pings to the server running in the background from some clients.
pub(crate) struct Pings {
    runs: Vec<(usize, Proc)>,
    duration: Duration,
    interval: Duration,
}

/// Starts `ping -D -O -i interval` to the server from each of `numbers`
/// for `duration`, and waits until each has had its first reply.
pub(crate) fn start_pings(
    lab: &Lab,
    numbers: &[usize],
    duration: Duration,
    interval: Duration,
) -> Pings {
    start_pings_to(lab, SERVER_IP4, numbers, duration, interval)
}

/// [`start_pings`] to `target` (an IPv6 address of the server, say).
pub(crate) fn start_pings_to(
    lab: &Lab,
    target: &str,
    numbers: &[usize],
    duration: Duration,
    interval: Duration,
) -> Pings {
    let pings = spawn_pings_to(lab, target, numbers, duration, interval);
    for (number, proc) in &pings.runs {
        let deadline = Instant::now() + alb_tests::scaled(Duration::from_secs(2));
        while !proc.log().contains("bytes from") {
            assert!(
                Instant::now() < deadline,
                "c{number} had no reply before the test began:\n{}",
                proc.log()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
    pings
}

/// Starts `ping -D -O -i interval` to the server from each of `numbers`
/// for `duration`, without waiting for a reply (the server may be out of
/// reach at first).
pub(crate) fn spawn_pings(
    lab: &Lab,
    numbers: &[usize],
    duration: Duration,
    interval: Duration,
) -> Pings {
    spawn_pings_to(lab, SERVER_IP4, numbers, duration, interval)
}

/// [`spawn_pings`] to `target`.
pub(crate) fn spawn_pings_to(
    lab: &Lab,
    target: &str,
    numbers: &[usize],
    duration: Duration,
    interval: Duration,
) -> Pings {
    let count = u64::try_from(duration.as_millis() / interval.as_millis()).unwrap_or(u64::MAX);
    let runs: Vec<(usize, Proc)> = numbers
        .iter()
        .map(|&number| {
            let proc = lab
                .spawn_ping(&lab.client(number).ns, target, interval, count)
                .unwrap_or_else(|e| panic!("ping from c{number}: {e:#}"));
            (number, proc)
        })
        .collect();
    Pings { runs, duration, interval }
}

impl Pings {
    /// Waits up to `timeout` until every ping has had a reply.
    pub(crate) fn wait_for_first_replies(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for (number, proc) in &self.runs {
            while !proc.log().contains("bytes from") {
                assert!(
                    Instant::now() < deadline,
                    "c{number}: no reply in {timeout:?}:\n{}",
                    proc.log()
                );
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Ends every ping now (SIGINT: it prints its summary) and returns
    /// what each measured.
    pub(crate) fn interrupt(mut self) -> Vec<PingRun> {
        for (number, proc) in &mut self.runs {
            proc.signal(nix::sys::signal::Signal::SIGINT)
                .unwrap_or_else(|e| panic!("SIGINT to the ping of c{number}: {e:#}"));
        }
        self.finish()
    }

    /// Waits for every ping to end and returns what each measured.
    pub(crate) fn finish(self) -> Vec<PingRun> {
        let limit = self.duration + Duration::from_secs(10);
        let interval = self.interval;
        self.runs
            .into_iter()
            .map(|(number, mut proc)| {
                let status = proc.wait_timeout(limit).expect("wait for ping");
                assert!(status.is_some(), "ping from c{number} still running after {limit:?}");
                let log = proc.log();
                drop(proc);
                PingRun::parse(number, interval, &log)
            })
            .collect()
    }
}

/// What one measuring ping saw (parsed by the library's [`PingLog`], the
/// one ping and outage parser the benchmark uses too).
#[derive(Clone, Debug)]
pub(crate) struct PingRun {
    pub(crate) number: usize,
    pub(crate) transmitted: u32,
    parsed: PingLog,
    log: String,
}

impl PingRun {
    fn parse(number: usize, interval: Duration, log: &str) -> Self {
        let parsed =
            PingLog::parse(interval, log).unwrap_or_else(|e| panic!("c{number}: {e}:\n{log}"));
        Self { number, transmitted: parsed.transmitted, parsed, log: log.to_owned() }
    }

    pub(crate) fn received(&self) -> u32 {
        self.parsed.received()
    }

    pub(crate) fn lost(&self) -> u32 {
        self.parsed.lost()
    }

    /// The longest run of unanswered requests, times the interval.
    pub(crate) fn longest_loss(&self) -> Duration {
        self.parsed.interval * self.parsed.longest_run_lost()
    }

    /// The longest silence between two replies, less one interval.
    pub(crate) fn longest_silence(&self) -> Duration {
        self.parsed.longest_gap().saturating_sub(self.parsed.interval)
    }

    /// The longest time without a reply that overlaps [from, to] (seconds
    /// since the epoch).
    pub(crate) fn longest_gap_within(&self, from: f64, to: f64) -> Duration {
        self.parsed.longest_gap_between(from, to)
    }

    /// The client's receive outage: the longer of the two measures.
    pub(crate) fn outage(&self) -> Duration {
        self.parsed.outage()
    }

    /// How long after `since` (seconds since the epoch) the first reply
    /// came.
    pub(crate) fn first_reply_after(&self, since: f64) -> Option<Duration> {
        self.parsed.first_reply_after(since)
    }

    /// The log's last lines, for assertion messages.
    pub(crate) fn tail(&self) -> String {
        let lines: Vec<&str> = self.log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl fmt::Display for PingRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "c{}: {} of {} lost, outage {:.0} ms (longest run {:.0} ms, longest silence {:.1} ms)",
            self.number,
            self.lost(),
            self.transmitted,
            self.outage().as_secs_f64() * 1000.0,
            self.longest_loss().as_secs_f64() * 1000.0,
            self.longest_silence().as_secs_f64() * 1000.0,
        )
    }
}

/// Prints every run as `<prefix>: <what>: <run>` (run the tests with
/// `--nocapture` to see them).
pub(crate) fn report<'a>(prefix: &str, what: &str, runs: impl IntoIterator<Item = &'a PingRun>) {
    for run in runs {
        println!("{prefix}: {what}: {run}");
    }
}

/// Asserts that `run` lost no request at all.
pub(crate) fn assert_none_lost(what: &str, run: &PingRun, agent_log: &str) {
    assert_eq!(
        run.lost(),
        0,
        "{what}: {run}: none may be lost\nping tail:\n{}\nagent log:\n{agent_log}",
        run.tail()
    );
}

/// Asserts that `run` lost at most `few` requests.
pub(crate) fn assert_few_lost(what: &str, run: &PingRun, few: u32, agent_log: &str) {
    assert!(
        run.lost() <= few,
        "{what}: {run}: more than {few} lost\nping tail:\n{}\nagent log:\n{agent_log}",
        run.tail()
    );
}

/// How long the whole machine stalled during `undisturbed`, runs of
/// clients that a failure did not concern: they lose nothing and answer
/// every interval when the machine keeps up, so their longest silence is a
/// stall of the machine (a shared 2-vCPU host under builds shows 100-400
/// ms). A deadline measured over the same time allows for it.
pub(crate) fn machine_stall(undisturbed: &[&PingRun]) -> Duration {
    let stall = undisturbed.iter().map(|run| run.longest_silence()).max().unwrap_or_default();
    if stall > Duration::from_millis(20) {
        println!("\nthe machine stalled {stall:?} (seen by clients the failure did not concern)");
    }
    stall
}
