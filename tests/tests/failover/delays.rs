//! Link state delays and flaps: bonding's updelay and downdelay, and a
//! link that flaps under traffic.

use std::{
    thread,
    time::{Duration, Instant},
};

use super::rig::{
    Rig, assert_outages_below_threshold, client_count, even, rig, slave_status, start_pings, usable,
};
use crate::common::{assert_all_clients_work, counts, mac_of, neigh, set_port, slave_of};

/// How long `a_flap_inside_updelay_is_ignored` waits a returning slave:
/// long enough that the status shows it "going back" before it is used,
/// even across a stall of the machine (100-400 ms on a shared host).
const UPDELAY: Duration = Duration::from_millis(2000);

/// docs/bonding.md §5 case 20: with `--updelay 2000`, a port that comes
/// back and goes down again within 150 ms never makes its slave usable and
/// gets no clients; one that stays up is first "going back", then used,
/// and not before the updelay has passed since its carrier returned.
#[test]
fn a_flap_inside_updelay_is_ignored() {
    let updelay_ms = UPDELAY.as_millis().to_string();
    let Rig { agent, lab } = rig(4, 2, &["--updelay", &updelay_ms]);
    let veth19 = lab.slave(1).clone();
    set_port(&lab, &veth19.port, false);
    agent.wait_status(Duration::from_secs(2), "veth19 given up at once (no downdelay)", |s| {
        !usable(s, "veth19") && client_count(s, "veth19") == 0
    });

    set_port(&lab, &veth19.port, true);
    thread::sleep(Duration::from_millis(150));
    set_port(&lab, &veth19.port, false);
    // Watch past the moment the updelay would have ended.
    let watch = Instant::now();
    while watch.elapsed() < UPDELAY + Duration::from_millis(400) {
        let status = agent.status();
        assert!(
            !usable(&status, "veth19") && client_count(&status, "veth19") == 0,
            "veth19 was used after a 150 ms flap inside a {UPDELAY:?} updelay:\n{status}\nagent log:\n{}",
            agent.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!agent.log().contains("veth19 up"), "the agent committed veth19 up:\n{}", agent.log());

    // The carrier returns at `up` at the earliest: a status read that
    // ended before `up` + UPDELAY must not show veth19 usable, and the
    // status shows it going back before it shows it usable.
    let up = Instant::now();
    set_port(&lab, &veth19.port, true);
    let mut states = Vec::new();
    let status = loop {
        let status = agent.status();
        let read_by = up.elapsed();
        let state = slave_status(&status, "veth19").mii_status.clone().unwrap_or_default();
        if states.last() != Some(&state) {
            states.push(state);
        }
        if usable(&status, "veth19") {
            assert!(
                read_by >= UPDELAY,
                "veth19 usable {read_by:?} after its carrier returned, inside {UPDELAY:?}:\n{status}"
            );
            break status;
        }
        assert!(read_by < UPDELAY * 3, "veth19 never usable: states {states:?}\n{status}");
        thread::sleep(Duration::from_millis(20));
    };
    let took = up.elapsed();
    println!(
        "failover: updelay {} ms: veth19 usable {:.0} ms after carrier; states {states:?}",
        UPDELAY.as_millis(),
        took.as_secs_f64() * 1000.0
    );
    // Until the agent has read the carrier's return it still says "down".
    let after_down = states.iter().find(|state| *state != "down").map(String::as_str);
    assert_eq!(after_down, Some("going back"), "going back before used: {states:?}");
    let status = if even(&status) {
        status
    } else {
        agent.wait_status(Duration::from_secs(1), "counts even", even)
    };
    assert_eq!(client_count(&status, "veth19"), 2, "veth19 got its share: {:?}", counts(&status));
}

/// Bonding's downdelay: with `--downdelay 300` (times
/// `ALB_TEST_TIME_SCALE`: under TCG the two `ip link` commands of a
/// 100 ms blip take longer than 300 ms between them), a port down for
/// 100 ms does not make its slave unusable nor move its clients; one that
/// stays down is given up after the downdelay, not before.
#[test]
fn a_blip_inside_downdelay_is_ignored() {
    let downdelay = alb_tests::scaled(Duration::from_millis(300));
    let downdelay_ms = downdelay.as_millis().to_string();
    let Rig { agent, lab } = rig(4, 2, &["--downdelay", &downdelay_ms]);
    let veth19 = lab.slave(1).clone();
    set_port(&lab, &veth19.port, false);
    thread::sleep(Duration::from_millis(100));
    set_port(&lab, &veth19.port, true);
    let watch = Instant::now();
    while watch.elapsed() < downdelay * 2 {
        let status = agent.status();
        assert!(
            usable(&status, "veth19") && client_count(&status, "veth19") == 2,
            "veth19 given up after a 100 ms blip inside a {downdelay:?} downdelay:\n{status}\nagent log:\n{}",
            agent.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !agent.log().contains("veth19 down"),
        "the agent committed veth19 down:\n{}",
        agent.log()
    );

    let down = Instant::now();
    set_port(&lab, &veth19.port, false);
    agent.wait_status(Duration::from_secs(3), "veth19 given up after downdelay", |s| {
        !usable(s, "veth19")
    });
    let took = down.elapsed();
    println!(
        "failover: downdelay {downdelay:?}: veth19 given up {:.0} ms after carrier loss",
        took.as_secs_f64() * 1000.0
    );
    assert!(took >= downdelay, "downdelay honoured: given up after {took:?}");
    let status = agent.wait_status(Duration::from_secs(1), "veth19's clients moved", |s| {
        client_count(s, "veth19") == 0
    });
    assert_eq!(client_count(&status, "veth17"), 4, "all on veth17: {:?}", counts(&status));
}

/// A flapping link: the active slave's port goes down and up ten times,
/// 100 ms each way, while every client pings. The agent survives, no
/// client loses a second, and afterwards every client works, the counts
/// are even and each client points at the slave it is dealt to.
#[test]
fn a_flapping_link_settles() {
    let Rig { mut agent, lab } = rig(4, 2, &[]);
    let veth17 = lab.slave(0).clone();
    let pings = start_pings(&lab, &[1, 2, 3, 4], Duration::from_secs(3));
    thread::sleep(Duration::from_millis(300));
    for _ in 0..10 {
        set_port(&lab, &veth17.port, false);
        thread::sleep(Duration::from_millis(100));
        set_port(&lab, &veth17.port, true);
        thread::sleep(Duration::from_millis(100));
    }
    let runs = pings.finish();
    assert!(agent.running(), "the agent died while the link flapped:\n{}", agent.log());
    assert_outages_below_threshold("flapping active slave", &runs, &agent);

    // The last updates go out 1.1 s after the last change.
    thread::sleep(Duration::from_millis(1200));
    let status = agent.wait_status(Duration::from_secs(2), "both usable, counts even", |s| {
        s.slaves.iter().all(|s| s.usable) && even(s)
    });
    assert_eq!(status.active_slave.as_deref(), Some("veth17"), "veth17 active again");
    for number in 1..=4 {
        let slave = slave_of(&lab, &status, number);
        assert_eq!(
            neigh(&lab, number),
            Some(mac_of(&lab, &slave)),
            "c{number} points at its slave {slave}"
        );
    }
    assert_all_clients_work(&lab, 50);
    assert!(agent.running(), "the agent is still running:\n{}", agent.log());
}
