//! Packet fixtures through `BPF_PROG_TEST_RUN`, in the manner of Katran's:
//! the fixture table (`alb_tests::fixtures::table`) holds, per traffic type
//! of docs/bonding.md §3.2 (TX) and §2.3 (host ARP), of the receive rules of §2.9
//! plus failover acceptance (RX), of IPv6 and Neighbor Discovery and of
//! bridged VMs, rows naming the frame, the action (TC_ACT_REDIRECT, _SHOT
//! or _OK), the frame that must come out, the reason counters it bumps
//! (exactly), the slave whose counter counts it, the events and the client
//! entries. Each test here runs one suite of rows in a freshly loaded
//! object; the cost benchmark measures some of the same rows hot.
//!
//! Test-run does not perform redirects, so the chosen slave shows in the
//! rewritten source MAC (each slave sends with its own MAC; frames on slave
//! 0, whose MAC the master carries, keep it) and in the per-slave counters.
//!
//! Needs root and BPF: `cargo test -p alb-tests --test fixtures -- --test-threads=1`.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

use alb_tests::fixtures::{Lab, table};

/// One test per suite of the table, and the list of them.
macro_rules! suites {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                Lab::run_suite(&table::suite(stringify!($name)));
            }
        )*
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

suites!(
    tx_announcements,
    tx_host_arp,
    tx_ipv4,
    tx_non_ip_and_truncated,
    tx_no_slave,
    tx_fallback_to_active,
    tx_link_down_before_redeal,
    tx_after_failover,
    rx_on_non_active_slave,
    arp_round_trip,
    rx_on_active_slave,
    rx_failover_on_active,
    rx_failover_on_other,
    rx_unknown_slave,
    tx_host_neighbour_discovery,
    tx_ipv6,
    tx_hostile_neighbour_discovery,
    rx_neighbour_discovery,
    rx_ipv6_on_non_active_slave,
    tx_vms_pinned_by_source_mac,
    tx_vm_of_a_failed_slave,
    rx_vm_on_non_active_slave,
    rx_vm_on_active_slave,
    tx_tagged_host_arp_deals_one_client_per_vlan,
    tx_tagged_ipv4_to_known_clients,
    rx_tagged_arp_and_ipv4_count_for_the_client_of_their_vlan,
    tx_tagged_host_advertisement_is_rewritten_behind_the_tag,
);

/// A suite added to the table but not to the list above would never run.
#[test]
fn every_suite_of_the_table_has_its_test() {
    let names: Vec<&str> = table::all().iter().map(|s| s.name).collect();
    let untested: Vec<&&str> = names.iter().filter(|n| !TESTED.contains(n)).collect();
    assert!(untested.is_empty(), "suites without a test in tests/tests/fixtures.rs: {untested:?}");
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "two suites share a name: {names:?}");
}

/// `albbench cost --case ID` names a benchmark row by its id.
#[test]
fn benchmark_ids_are_unique() {
    let mut ids: Vec<&str> =
        table::all().iter().flat_map(|s| s.rows.iter().filter_map(|(_, c)| c.bench)).collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "two rows share a benchmark id");
}
