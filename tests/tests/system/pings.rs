//! Pings from both clients every 20 ms while something happens to the
//! unit (a reload, a restart, an upgrade, the watchdog), for as long as it
//! takes, then stopped with SIGINT and read with the library's ping parser
//! ([`PingLog`]).

use std::time::Duration;

use alb_tests::{Lab, PingLog, Proc, SERVER_IP4, wait_until};
use nix::sys::signal::Signal;

/// Between two requests.
const INTERVAL: Duration = Duration::from_millis(20);

/// Replies each client must have had after the change before the pings
/// stop (a second's worth): the data path was seen forwarding after it.
const AFTER: usize = 50;

/// Pings running from c1 and c2.
pub(crate) struct Pings {
    runs: Vec<(usize, Proc)>,
}

fn replies(proc: &Proc) -> usize {
    proc.log().lines().filter(|l| l.contains("bytes from")).count()
}

impl Pings {
    /// Starts them and waits until each client has had a reply.
    pub(crate) fn start(lab: &Lab) -> Self {
        let runs: Vec<(usize, Proc)> = [1, 2]
            .into_iter()
            .map(|n| {
                let proc = lab
                    .spawn_ping(&lab.client(n).ns, SERVER_IP4, INTERVAL, 1_000_000)
                    .unwrap_or_else(|e| panic!("ping from c{n}: {e:#}"));
                (n, proc)
            })
            .collect();
        for (n, proc) in &runs {
            wait_until(Duration::from_secs(5), &format!("c{n}'s first reply"), || {
                Ok(replies(proc) > 0)
            })
            .unwrap_or_else(|e| panic!("{e:#}:\n{}", proc.log()));
        }
        Self { runs }
    }

    /// Waits for [`AFTER`] more replies on each client, stops the pings
    /// (SIGINT: ping prints its summary) and returns what each saw.
    pub(crate) fn stop(self) -> Vec<(usize, PingLog)> {
        for (n, proc) in &self.runs {
            let seen = replies(proc);
            let what = format!("{AFTER} more replies on c{n}");
            // Replies may stop for good: then the loss shows in the log.
            if wait_until(Duration::from_secs(5), &what, || Ok(replies(proc) >= seen + AFTER))
                .is_err()
            {
                println!("pings: c{n} had no {AFTER} replies after the change");
            }
        }
        self.runs
            .into_iter()
            .map(|(n, mut proc)| {
                proc.signal(Signal::SIGINT).unwrap_or_else(|e| panic!("{e:#}"));
                let ended = proc.wait_timeout(Duration::from_secs(5)).expect("wait");
                assert!(ended.is_some(), "ping from c{n} did not end on SIGINT");
                let log = proc.log();
                let parsed =
                    PingLog::parse(INTERVAL, &log).unwrap_or_else(|e| panic!("c{n}: {e}:\n{log}"));
                (n, parsed)
            })
            .collect()
    }
}

/// Asserts that no client lost a request during `what`. The last request
/// does not count: SIGINT may come while its reply is on the way (a stop,
/// not a loss).
pub(crate) fn assert_none_lost(what: &str, runs: &[(usize, PingLog)]) {
    let mut lost = Vec::new();
    for (n, run) in runs {
        let missing: Vec<u32> =
            run.lost_seqs().into_iter().filter(|&seq| seq < run.transmitted).collect();
        println!(
            "{what}: c{n} lost {} of {} (every {} ms){}",
            missing.len(),
            run.transmitted,
            INTERVAL.as_millis(),
            if missing.is_empty() { String::new() } else { format!(": seq {missing:?}") }
        );
        if !missing.is_empty() {
            lost.push(format!("c{n}: {missing:?}"));
        }
    }
    assert!(lost.is_empty(), "{what}: requests without a reply: {}", lost.join("; "));
}
