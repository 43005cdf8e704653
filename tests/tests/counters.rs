//! Client counters (issue 14, item 2): by default the data path counts 1
//! frame in 16 in its client's counters, weighted 16 (no hash look-up and
//! no atomic adds for the other 15), so `alb status` shows estimates,
//! within tolerance of what really crossed and said to be estimates;
//! `client_sampling = 1` counts every frame, and SIGHUP changes it.
//!
//! Needs root and the `alb` binary; run one test at a time
//! (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{fs, path::PathBuf, time::Duration};

use alb_tests::{Lab, SERVER_IP4, Status};
use common::{Agent, resolve_all, run_alb};
use nix::sys::signal::Signal;

/// The agent's default `client_sampling`.
const DEFAULT_SAMPLING: u64 = 16;

/// Echo requests per measurement.
const PINGS: u32 = 2000;

/// How far a sampled count may stray from the truth: with N = 16 and 2000
/// frames the estimate's standard deviation is sqrt(2000 * 16) = 179
/// frames (9%); 35% is nearly four of them.
const TOLERANCE: f64 = 0.35;

/// `alb status` as text.
fn status_text(lab: &Lab, agent: &Agent) -> String {
    let out = run_alb(lab.srv(), &["status", "--master", agent.master()]);
    assert!(out.status.success(), "alb status: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (rx, tx) packets of client `number`'s entry.
fn packets(lab: &Lab, status: &Status, number: usize) -> (u64, u64) {
    let ip = &lab.client(number).ip4;
    let entry = status.client(ip).unwrap_or_else(|| panic!("c{number} in the table:\n{status}"));
    (entry.rx_packets, entry.tx_packets)
}

/// `count` echo requests from client `number`, 1 ms apart, none lost.
fn ping(lab: &Lab, number: usize, count: u32) {
    let client = lab.client(number);
    let stats = lab
        .ping(&client.ns, SERVER_IP4, count, Duration::from_millis(1))
        .unwrap_or_else(|e| panic!("ping from c{number}: {e:#}"));
    assert_eq!(stats.lost(), 0, "c{number} -> {SERVER_IP4}: {stats}");
}

#[test]
fn sampled_counters_estimate_what_crossed() {
    let lab = common::lab(2, 2);
    let agent = Agent::start(&lab);
    resolve_all(&lab);
    let status = agent.status();
    assert_eq!(status.raw["client_sampling"], DEFAULT_SAMPLING, "the default:\n{status}");
    let text = status_text(&lab, &agent);
    assert!(
        text.contains("counters estimated from 1 frame in 16"),
        "the text says the counters are estimates:\n{text}"
    );
    let (c1_rx, c1_tx) = packets(&lab, &status, 1);
    let (c2_rx, c2_tx) = packets(&lab, &status, 2);
    ping(&lab, 1, PINGS);
    let status = agent.status();
    let (rx, tx) = packets(&lab, &status, 1);
    let (rx, tx) = (rx - c1_rx, tx - c1_tx);
    println!("counters: c1 sent {PINGS} requests and got {PINGS} replies; estimated {rx} / {tx}");
    let want = f64::from(PINGS);
    for (what, got) in [("rx", rx), ("tx", tx)] {
        let ratio = got as f64 / want;
        assert!(
            (1.0 - TOLERANCE..=1.0 + TOLERANCE).contains(&ratio),
            "c1's {what} estimate {got} is within {:.0}% of {PINGS}:\n{status}",
            TOLERANCE * 100.0
        );
        assert_eq!(got % DEFAULT_SAMPLING, 0, "a sampled count is a multiple of 16: {got}");
    }
    // c2 sent no IPv4 meanwhile: nothing drawn for it.
    assert_eq!(packets(&lab, &status, 2), (c2_rx, c2_tx), "c2 idle:\n{status}");
}

#[test]
fn every_frame_is_counted_when_asked_and_sighup_changes_it() {
    let lab = common::lab(1, 2);
    let path: PathBuf = lab.log_dir().join("counters.toml");
    fs::create_dir_all(lab.log_dir()).expect("log dir");
    fs::write(&path, "client_sampling = 1\n").expect("write config");
    let mut agent = Agent::start_with(&lab, &["--config", path.to_str().expect("UTF-8 path")]);
    resolve_all(&lab);
    let status = agent.status();
    assert_eq!(status.raw["client_sampling"], 1, "from the file:\n{status}");
    let text = status_text(&lab, &agent);
    assert!(!text.contains("estimated"), "exact counters:\n{text}");
    let (rx0, tx0) = packets(&lab, &status, 1);
    ping(&lab, 1, 300);
    let (rx, tx) = packets(&lab, &agent.status(), 1);
    assert_eq!((rx - rx0, tx - tx0), (300, 300), "every request and reply counted once");

    fs::write(&path, "client_sampling = 64\n").expect("write config");
    let from = agent.log().len();
    agent.signal(Signal::SIGHUP);
    agent
        .wait_log(from, "client_sampling 64", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("the reload applies client_sampling 64: {e:#}"));
    let status = agent.status();
    assert_eq!(status.raw["client_sampling"], 64, "after SIGHUP:\n{status}");
    let (rx0, tx0) = packets(&lab, &status, 1);
    // 1 in 64 of 4000 frames: 62.5 drawn on average, a standard deviation
    // of sqrt(4000 * 64) = 506 frames (13%); 50% is four of them.
    let pings = 2 * PINGS;
    ping(&lab, 1, pings);
    let (rx, tx) = packets(&lab, &agent.status(), 1);
    println!("counters: 1 in 64, c1 sent {pings} requests; estimated {} / {}", rx - rx0, tx - tx0);
    for (what, got) in [("rx", rx - rx0), ("tx", tx - tx0)] {
        assert_eq!(got % 64, 0, "{what}: a count sampled 1 in 64 is a multiple of 64: {got}");
        let ratio = got as f64 / f64::from(pings);
        assert!((0.5..=1.5).contains(&ratio), "{what}: {got} estimates {pings}");
    }
}
