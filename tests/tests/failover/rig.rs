//! The failover tests' rig: a lab with its agent, status helpers and the
//! measuring pings.

use std::time::Duration;

use alb_tests::{Lab, SlaveStatus, Status};

use super::{FAIL_THRESHOLD, INTERVAL};
use crate::common::{
    self, Agent,
    pings::{self, PingRun, Pings},
};

/// A lab and its agent. Fields drop in order: the agent stops before the
/// lab goes.
pub(super) struct Rig {
    pub(super) agent: Agent,
    pub(super) lab: Lab,
}

/// A lab with `clients` clients and `slaves` slaves, an agent started with
/// `extra` options, and every client resolved in order (so they are dealt
/// round-robin over the usable slaves in enslave order).
pub(super) fn rig(clients: usize, slaves: usize, extra: &[&str]) -> Rig {
    let lab = common::lab(clients, slaves);
    let agent = Agent::start_with(&lab, extra);
    for number in 1..=clients {
        common::resolve(&lab, number);
    }
    Rig { agent, lab }
}

// ---------------------------------------------------------------------
// Status and neighbour helpers.
// ---------------------------------------------------------------------

/// The status of slave `name`.
pub(super) fn slave_status<'a>(status: &'a Status, name: &str) -> &'a SlaveStatus {
    status.slave(name).unwrap_or_else(|| panic!("no slave {name} in status:\n{status}"))
}

pub(super) fn usable(status: &Status, name: &str) -> bool {
    slave_status(status, name).usable
}

pub(super) fn link_state(status: &Status, name: &str) -> String {
    slave_status(status, name).link.clone()
}

pub(super) fn client_count(status: &Status, name: &str) -> u64 {
    slave_status(status, name).clients
}

/// Whether the usable slaves' client counts differ by at most one and the
/// unusable slaves have none.
pub(super) fn even(status: &Status) -> bool {
    common::even(status) && status.slaves.iter().filter(|s| !s.usable).all(|s| s.clients == 0)
}

// ---------------------------------------------------------------------
// Measuring pings.
// ---------------------------------------------------------------------

/// Starts `ping -D -O -i INTERVAL` to the server from each of `numbers`
/// for `duration`, and waits until each has had its first reply.
pub(super) fn start_pings(lab: &Lab, numbers: &[usize], duration: Duration) -> Pings {
    pings::start_pings(lab, numbers, duration, INTERVAL)
}

/// Prints every run under `what` and asserts each outage is below the
/// fail threshold.
pub(super) fn assert_outages_below_threshold<'a>(
    what: &str,
    runs: impl IntoIterator<Item = &'a PingRun>,
    agent: &Agent,
) {
    let runs: Vec<&PingRun> = runs.into_iter().collect();
    for run in &runs {
        println!("failover: {what}: {run}");
    }
    for run in runs {
        assert!(
            run.outage() < alb_tests::scaled(FAIL_THRESHOLD),
            "{what}: {run} is not below {FAIL_THRESHOLD:?}\nping tail:\n{}\nagent log:\n{}",
            run.tail(),
            agent.log()
        );
    }
}

/// Asserts that `run` lost nothing at all.
pub(super) fn assert_undisturbed(what: &str, run: &PingRun) {
    assert_eq!(run.lost(), 0, "{what}: {run} should lose nothing\nping tail:\n{}", run.tail());
}
