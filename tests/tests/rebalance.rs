//! Transmit rebalancing end to end (`--rebalance-interval`): the server
//! sends UDP to destinations that are no client's, so their traffic goes by
//! transmit bucket, and every one of them hashes into a bucket of veth17.
//! With rebalancing off the load stays on veth17 (the control); with it on,
//! the agent moves buckets to veth19 until the per-slave transmit bytes are
//! about even, and then leaves them alone. Distributions are asserted with
//! tolerances, as the kernel's `xdp_bonding.c` selftest does.
//!
//! Needs root and the `alb` binary (`cargo build -p alb-user`); run one
//! test at a time (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    collections::BTreeSet,
    thread,
    time::{Duration, Instant},
};

use alb_tests::{Lab, LinkStats};
use common::{
    Agent,
    datapath::tx_buckets,
    load::{UdpLoad, bucket_of, destinations_on, neighbours},
};

/// Destinations, each in a bucket of its own, all on veth17 at first.
const FLOWS: usize = 8;
/// Every `EVERY`, one `SIZE`-byte datagram to each: 8 x 500/s x 1000 B,
/// about 4 MB/s, far above the slaves' background (learning frames, ND).
const SIZE: usize = 1000;
const EVERY: Duration = Duration::from_millis(2);
/// What the test measures over, once the load has settled.
const WINDOW: Duration = Duration::from_secs(2);
/// The share each slave must carry once rebalanced.
const EVEN: std::ops::RangeInclusive<f64> = 0.40..=0.60;

const REBALANCED: &str = "rebalanced transmit load";

/// What each slave transmitted between two snapshots, in bytes.
fn tx_bytes(after: &[LinkStats], before: &[LinkStats]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| (*a - *b).tx_bytes).collect()
}

fn shares(bytes: &[u64]) -> Vec<f64> {
    let total: u64 = bytes.iter().sum();
    bytes.iter().map(|&b| b as f64 / total.max(1) as f64).collect()
}

/// What each slave transmits over the next [`WINDOW`], in bytes.
fn measure(lab: &Lab) -> Vec<u64> {
    let before = lab.traffic_snapshot().expect("snapshot");
    thread::sleep(WINDOW);
    tx_bytes(&lab.traffic_snapshot().expect("snapshot"), &before)
}

/// Imbalanced transmit load makes the agent move buckets, and the per-slave
/// transmit split becomes even: 8 equal UDP flows from the server, all in
/// buckets of veth17. With `--rebalance-interval 0` veth17 carries them all
/// (the control). With `--rebalance-interval 1` the agent logs "rebalanced
/// transmit load", only buckets that carried load move, veth17 and veth19
/// then each carry 40-60% of the bytes, and the next rounds move nothing
/// more (a flow moves only when balance really improves).
#[test]
fn imbalanced_transmit_load_moves_buckets_until_the_slaves_share_it() {
    let lab = common::lab(1, 2);
    let c1_mac = lab.client(1).mac.clone();

    // The control: the same load without rebalancing stays on veth17.
    let agent = Agent::start_with(&lab, &["--rebalance-interval", "0"]);
    lab.add_server_addrs().expect("server addresses");
    // The switch learns c1's MAC, so the load is not flooded.
    common::resolve(&lab, 1);
    let buckets = tx_buckets(agent.master());
    let dests = destinations_on(&buckets, 0, 0, FLOWS);
    neighbours(&lab, &dests, &c1_mac);
    let load = UdpLoad::start(&lab, vec![dests.clone()], Duration::MAX, SIZE, EVERY);
    thread::sleep(Duration::from_millis(500));
    let control = measure(&lab);
    load.stop();
    let control_shares = shares(&control);
    println!(
        "rebalance: rebalancing off: tx bytes per slave {control:?}, shares {control_shares:.3?}"
    );
    assert!(
        control[0] > 4_000_000,
        "the load is real: veth17 sent {} B in {WINDOW:?}: {control:?}",
        control[0]
    );
    assert!(
        control_shares[0] >= 0.95,
        "without rebalancing the load stays in veth17's buckets: {control_shares:.3?}"
    );
    assert!(!agent.log().contains(REBALANCED), "rebalancing is off:\n{}", agent.log());
    drop(agent);

    // Rebalancing every second.
    let agent = Agent::start_with(&lab, &["--rebalance-interval", "1"]);
    lab.add_server_addrs().expect("server addresses");
    let before = tx_buckets(agent.master());
    assert_eq!(before, buckets, "a new agent deals the buckets as before");
    // The neighbour entries went with the first agent's master.
    neighbours(&lab, &dests, &c1_mac);
    let started = Instant::now();
    let load = UdpLoad::start(&lab, vec![dests.clone()], Duration::MAX, SIZE, EVERY);
    agent
        .wait_log(0, REBALANCED, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("no rebalancing under an imbalanced load: {e:#}"));
    let first_move = started.elapsed();
    // One more full interval after the move, then the window.
    thread::sleep(Duration::from_millis(1500));
    let moves_before = agent.log().matches(REBALANCED).count();
    let balanced = measure(&lab);
    let moves_after = agent.log().matches(REBALANCED).count();
    let sent = load.stop();
    let after = tx_buckets(agent.master());
    let balanced_shares = shares(&balanced);
    let log = agent.log();
    let moved: BTreeSet<usize> = (0..before.len()).filter(|&b| before[b] != after[b]).collect();
    let loaded: BTreeSet<usize> = dests.iter().map(|&d| bucket_of(d)).collect();
    println!(
        "rebalance: rebalancing every 1 s: first move {:.1} s after the load began; log: {:?}; \
         buckets moved {moved:?} of the loaded {loaded:?}; then tx bytes per slave {balanced:?}, \
         shares {balanced_shares:.3?}; {sent} datagrams sent",
        first_move.as_secs_f64(),
        log.lines().filter(|l| l.contains(REBALANCED)).collect::<Vec<_>>()
    );
    assert!(!moved.is_empty(), "buckets moved:\n{log}");
    assert!(moved.is_subset(&loaded), "only buckets that carried load move: {moved:?}\n{log}");
    assert!(
        moved.iter().all(|&b| after[b] == 1),
        "they moved to veth19: {:?}",
        moved.iter().map(|&b| (b, after[b])).collect::<Vec<_>>()
    );
    for (slave, share) in lab.slaves().iter().zip(&balanced_shares) {
        assert!(
            EVEN.contains(share),
            "{} carries {:.1}% of the transmit bytes once rebalanced, outside {:.0}-{:.0}%: \
             {balanced:?}\n{log}",
            slave.name,
            share * 100.0,
            EVEN.start() * 100.0,
            EVEN.end() * 100.0
        );
    }
    assert_eq!(
        moves_after, moves_before,
        "once even, the next rounds move nothing (no flapping):\n{log}"
    );
}
