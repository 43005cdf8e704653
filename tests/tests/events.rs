//! The event ring (issue 14, item 2's ring step): `alb_rx` reports a
//! client ARP only when its sender is a server address alb has clients for
//! (`ALB_SERVERS`), and events the agent need not act on at once (a new
//! client) are written without waking it and reach it on its drain timer.
//! The agent runs with `RUST_LOG=debug`, whose lines witness what reached
//! it: "ARP from <sender> reported", "client <ip> of <server> dealt slot".
//!
//! Each test builds its own lab under a prefix and master name of its own.
//! Needs root and the `alb` binary (`cargo build -p alb-user`); run one test
//! at a time (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use alb::datapath::DRAIN_PERIOD;
use alb_tests::{Lab, SERVER_IP4, wait_until};
use common::{
    Agent,
    raw::{self, RawSocket},
    resolve,
};

/// ARP request.
const REQUEST: u16 = 1;

/// A lab with `clients` clients and two slaves, and an agent logging at
/// debug level.
fn rig(clients: usize) -> (Agent, Lab) {
    let lab = common::lab(clients, 2);
    let ifaces: Vec<&str> = lab.slaves().iter().map(|s| s.name.as_str()).collect();
    let command = Agent::command(&lab, &ifaces).env("RUST_LOG", "debug");
    let agent = Agent::start_command(&lab, &command);
    (agent, lab)
}

fn server() -> Ipv4Addr {
    SERVER_IP4.parse().expect("server address")
}

/// Client ARPs (their own requests for the server, gratuitous ARPs) are
/// not reported to the agent; a gratuitous ARP from another host claiming
/// the server address is, and leads to the purge of its clients. The claim
/// is sent last and the ring keeps order: once the agent has logged the
/// purge, it has read every event written before it.
#[test]
fn only_arps_from_server_addresses_reach_the_agent() {
    let (agent, lab) = rig(3);
    // Each client ARPs for the server (a request from a client address)
    // and the host answers it: dealt, and 198.18.0.1 becomes a server.
    for number in 1..=3 {
        resolve(&lab, number);
    }
    let rx_arp = agent.status().counter("rx_arp");
    for number in [1, 2] {
        let client = lab.client(number);
        let ip: Ipv4Addr = client.ip4.parse().expect("client address");
        RawSocket::open(&client.ns, &client.dev)
            .send(&raw::gratuitous(raw::mac(&client.mac), ip, REQUEST))
            .unwrap_or_else(|e| panic!("gratuitous ARP from c{number}: {e}"));
    }
    // The claim goes out once alb_rx has seen both gratuitous ARPs (they
    // are in the ring, if reported, before the claim is).
    wait_until(Duration::from_secs(2), "alb_rx to see c1's and c2's gratuitous ARPs", || {
        Ok(agent.status().counter("rx_arp") >= rx_arp + 2)
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", agent.status().counters));
    let c3 = lab.client(3);
    RawSocket::open(&c3.ns, &c3.dev)
        .send(&raw::gratuitous(raw::mac(&c3.mac), server(), REQUEST))
        .expect("send the claim");
    let claim = format!("{SERVER_IP4} claimed by {}", c3.mac);
    wait_until(Duration::from_secs(2), "the agent to purge the claimed address", || {
        Ok(agent.log().contains(&claim))
    })
    .unwrap_or_else(|e| panic!("{e:#}; agent log:\n{}", agent.log()));
    let log = agent.log();
    assert!(
        log.contains(&format!("ARP from {SERVER_IP4} reported")),
        "the claim was reported as an ARP from the server address:\n{log}"
    );
    for client in lab.clients() {
        let line = format!("ARP from {} reported", client.ip4);
        assert!(!log.contains(&line), "c{}'s own ARPs reached the agent:\n{log}", client.number);
    }
    let status = agent.status();
    let left: Vec<_> = status.clients.iter().filter(|c| c.server_ip == SERVER_IP4).collect();
    assert!(left.is_empty(), "every client of {SERVER_IP4} forgotten: {left:?}");
}

/// A new client is written to the ring without a wake-up; the agent still
/// learns it, on its drain timer ([`DRAIN_PERIOD`]): nothing else wakes it
/// here (the host's ARP reply is unicast, the client's request came before
/// the client was known, and no status or link event comes meanwhile).
#[test]
fn a_new_client_reaches_the_agent_on_its_drain_timer() {
    let (agent, lab) = rig(2);
    for number in 1..=2 {
        let client = lab.client(number);
        let from = agent.log().len();
        let started = Instant::now();
        resolve(&lab, number);
        let line = format!("client {} of {SERVER_IP4} dealt slot", client.ip4);
        // Ten drain periods: an upper bound for a loaded machine, not a
        // measure (printed below).
        wait_until(DRAIN_PERIOD * 10, "the agent to learn the new client", || {
            Ok(agent.log()[from..].contains(&line))
        })
        .unwrap_or_else(|e| panic!("{e:#}; agent log:\n{}", agent.log()));
        println!(
            "ring: c{number} in the agent's model {} ms after its ping began (drain period {} ms)",
            started.elapsed().as_millis(),
            DRAIN_PERIOD.as_millis()
        );
    }
}
