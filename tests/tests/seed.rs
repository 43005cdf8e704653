//! The seed scenario, end to end: alb on the lab's slaves (veth17, veth19,
//! ...) behind a bridge, clients in namespaces of their own. Each test
//! builds its own lab and runs its own agent under a master name of its
//! own (pins and locks are global). References are to docs/bonding.md
//! (§2.3 host ARP, §2.4 ARP heard, §2.9 delivery, §5 cases).
//!
//! Needs root, the `alb` binary (`cargo build -p alb-user`), iperf3 and
//! tcpdump; run one test at a time (`--test-threads=1`), as
//! `cargo xtask test` does.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use alb_tests::{BRIDGE, Lab, LinkStats, SERVER_IP4, wait_until};
use common::{
    Agent,
    capture::{ARP_REPLY, ARP_REQUEST, Capture, arps, describe},
    datapath::tx_buckets,
    load::{UdpLoad, bucket_of, destinations_on, neighbours},
    resolve,
};
use serde_json::Value;

/// Frames a quiet slave may still carry during a measurement: IPv6
/// neighbour discovery and MLD of the master, ARP. Far below the hundreds
/// of frames each measurement sends.
const NOISE: u64 = 10;

const BROADCAST_MAC: &str = "ff:ff:ff:ff:ff:ff";

/// A lab and an agent on all its slaves, the master addressed
/// 198.18.0.1/24. Fields drop in order: the agent stops before the lab
/// goes.
struct Seed {
    agent: Agent,
    lab: Lab,
}

fn seed(clients: usize, slaves: usize) -> Seed {
    let lab = common::lab(clients, slaves);
    let agent = Agent::start(&lab);
    Seed { agent, lab }
}

/// The slave index the i-th client to ARP (1-based) is dealt, round-robin.
fn dealt(number: usize, slaves: usize) -> usize {
    (number - 1) % slaves
}

/// What crossed each slave between two snapshots.
fn delta(after: &[LinkStats], before: &[LinkStats]) -> Vec<LinkStats> {
    after.iter().zip(before).map(|(a, b)| *a - *b).collect()
}

fn show(traffic: &[LinkStats]) -> String {
    traffic
        .iter()
        .enumerate()
        .map(|(i, t)| format!("slave {i}: {t}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Asserts that `traffic` (per slave) carried at least `min` packets each
/// way on slave `own` and no more than [`NOISE`] on any other.
fn assert_only_on(traffic: &[LinkStats], own: usize, min: u64, what: &str) {
    let t = traffic[own];
    assert!(
        t.rx_packets >= min && t.tx_packets >= min,
        "{what}: slave {own} should carry >= {min} packets each way; {}",
        show(traffic)
    );
    for (i, other) in traffic.iter().enumerate().filter(|(i, _)| *i != own) {
        assert!(
            other.rx_packets <= NOISE && other.tx_packets <= NOISE,
            "{what}: slave {i} should stay quiet (<= {NOISE} packets); {}",
            show(traffic)
        );
    }
}

/// Pings the server from client `number`: `count` requests `interval`
/// apart, none lost.
fn ping_server(lab: &Lab, number: usize, count: u32, interval: Duration) {
    let ns = &lab.client(number).ns;
    let stats = lab
        .ping(ns, SERVER_IP4, count, interval)
        .unwrap_or_else(|e| panic!("ping from c{number}: {e:#}"));
    assert_eq!(stats.lost(), 0, "c{number} -> {SERVER_IP4}: {stats}");
}

/// Resolves clients 1..=n in order and checks each got its round-robin
/// slave's MAC.
fn resolve_in_order(lab: &Lab, n: usize) {
    let slaves = lab.slaves().len();
    for number in 1..=n {
        let mac = resolve(lab, number);
        let want = lab.slave(dealt(number, slaves));
        assert_eq!(
            mac, want.mac,
            "client {number} should learn {}'s MAC (round-robin in enslave order)",
            want.name
        );
    }
}

/// docs/bonding.md §3.6 / issue: the master carries the active slave's MAC (veth17,
/// the first usable slave) and every slave keeps its own.
#[test]
fn master_mac_is_the_active_slaves_and_slaves_keep_theirs() {
    let Seed { agent, lab } = seed(2, 2);
    let master = lab.link(lab.srv(), agent.master()).expect("master link");
    assert_eq!(master.mac, lab.slave(0).mac, "master MAC = veth17's MAC");
    for slave in lab.slaves() {
        let link = lab.link(lab.srv(), &slave.name).expect("slave link");
        assert_eq!(link.mac, slave.mac, "{} keeps its own MAC", slave.name);
    }
    let status = agent.status();
    assert_eq!(status.master_mac, lab.slave(0).mac, "status master_mac");
    assert_eq!(status.active_slave.as_deref(), Some("veth17"), "status active_slave");
    let slaves = status.slaves;
    let names: Vec<_> = slaves.iter().map(|s| (s.name.as_str(), s.mac.as_str())).collect();
    let want: Vec<_> = lab.slaves().iter().map(|s| (s.name.as_str(), s.mac.as_str())).collect();
    assert_eq!(names, want, "status lists the slaves in enslave order with their MACs");
    assert!(slaves.iter().all(|s| s.usable), "all slaves usable: {slaves:?}");
    assert_eq!(
        slaves.iter().filter(|s| s.active).map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["veth17"]
    );
    // The master is the only holder of 198.18.0.1; its hidden peer is up
    // but silent, with a MAC of its own.
    let peer = lab.link(lab.srv(), &format!("{}p", agent.master())).expect("peer link");
    assert!(lab.slave_by_mac(&peer.mac).is_none(), "peer MAC {} is no slave's", peer.mac);
}

/// Seed observation 2: client 1 resolves the server to veth17's MAC,
/// client 2 to veth19's.
#[test]
fn clients_resolve_the_server_to_their_own_slave() {
    let Seed { agent, lab } = seed(2, 2);
    assert_eq!(resolve(&lab, 1), lab.slave(0).mac, "c1 -> veth17's MAC");
    assert_eq!(resolve(&lab, 2), lab.slave(1).mac, "c2 -> veth19's MAC");
    let status = agent.status();
    for (number, slave) in [(1, "veth17"), (2, "veth19")] {
        let client = lab.client(number);
        let entry = status
            .client(&client.ip4)
            .unwrap_or_else(|| panic!("no client entry for {} in {status}", client.ip4));
        assert_eq!(entry.slave.as_deref(), Some(slave), "c{number}'s entry: {entry:?}");
        assert_eq!(entry.mac.as_deref(), Some(client.mac.as_str()), "c{number}'s MAC");
    }
}

/// Seed observation 3: traffic to and from client 1 crosses only veth17's
/// switch port, client 2's only veth19's, and frames leave with each
/// slave's own MAC as source (what the switch learned).
#[test]
fn each_clients_traffic_crosses_only_its_slave_with_ordinary_macs() {
    let Seed { agent, lab } = seed(2, 2);
    resolve_in_order(&lab, 2);
    for number in [1, 2] {
        let before = lab.traffic_snapshot().expect("snapshot");
        ping_server(&lab, number, 200, Duration::from_millis(5));
        let traffic = delta(&lab.traffic_snapshot().expect("snapshot"), &before);
        assert_only_on(&traffic, dealt(number, 2), 200, &format!("200 pings from c{number}"));
    }

    // The switch learned each slave's MAC on that slave's port only, and
    // nothing else (no master or peer MAC) on the slave ports.
    let fdb = lab.run(lab.sw(), &["bridge", "-j", "fdb", "show", "br", BRIDGE]).expect("fdb");
    let fdb: Vec<Value> = serde_json::from_str(&fdb).expect("fdb JSON");
    let learned: Vec<(String, String)> = fdb
        .iter()
        .filter(|e| e["state"].as_str() != Some("permanent"))
        .filter(|e| !e["flags"].as_array().is_some_and(|f| f.iter().any(|v| v == "self")))
        .filter_map(|e| Some((e["mac"].as_str()?.to_owned(), e["ifname"].as_str()?.to_owned())))
        .collect();
    for slave in lab.slaves() {
        let ports: Vec<_> =
            learned.iter().filter(|(m, _)| *m == slave.mac).map(|(_, p)| p).collect();
        assert_eq!(
            ports,
            [&slave.port],
            "{} learned on {} only: {learned:?}",
            slave.mac,
            slave.port
        );
        let on_port: Vec<_> =
            learned.iter().filter(|(_, p)| *p == slave.port).map(|(m, _)| m).collect();
        assert_eq!(
            on_port,
            [&slave.mac],
            "only {} learned on {}: {learned:?}",
            slave.mac,
            slave.port
        );
    }
    let status = agent.status();
    assert_eq!(status.counter("tx_fallback_active"), 0, "no fallback: {:?}", status.counters);
}

/// Seed observation 4, across transmit rebalancing: one TCP connection
/// (iperf3, both directions at once, 6 s) from client 2 stays on veth19 the
/// whole time, while the agent, rebalancing every second, keeps moving
/// transmit buckets off veth19 (the busiest slave: it carries the
/// connection). Each second the server starts sending UDP to fresh
/// destinations that are no client's and whose buckets are on veth19, so
/// every round has load to move. Client traffic follows the client, not the
/// buckets (the kernel's mode 6 rehashes transmit by destination at every
/// rebalance): not one of the connection's packets crosses veth17.
#[test]
fn a_tcp_connection_never_changes_its_path() {
    const SECONDS: u32 = 6;
    const REBALANCED: &str = "rebalanced transmit load";
    let lab = common::lab(2, 2);
    let agent = Agent::start_with(&lab, &["--rebalance-interval", "1"]);
    resolve_in_order(&lab, 2);
    lab.add_server_addrs().expect("server addresses");
    let srv = lab.srv();
    let mut server = lab
        .spawn(srv, &["iperf3", "-s", "-1", "-B", SERVER_IP4, "-p", "5201"])
        .expect("iperf3 server");
    wait_until(Duration::from_secs(5), "iperf3 listening", || {
        Ok(!lab.run(srv, &["ss", "-Hltn", "sport = :5201"])?.trim().is_empty())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", server.log()));

    // Load to move: a phase a second, 4 fresh destinations each, all in
    // buckets of veth19, sent to c1's MAC (c1 drops them).
    let buckets = tx_buckets(agent.master());
    let dests = destinations_on(&buckets, 1, 0, 4 * SECONDS as usize);
    neighbours(&lab, &dests, &lab.client(1).mac);
    let phases: Vec<Vec<_>> = dests.chunks(4).map(<[_]>::to_vec).collect();
    let (veth17, veth19, c2) = (lab.slave(0), lab.slave(1), lab.client(2));
    let connection = format!("tcp and host {}", c2.ip4);
    let on17 = Capture::start(&lab, lab.sw(), &veth17.port, &connection);
    // The control: the same filter sees the connections open on veth19
    // (their SYNs only: a full capture would not keep up).
    let syns = format!("{connection} and tcp[tcpflags] & tcp-syn != 0");
    let on19 = Capture::start(&lab, lab.sw(), &veth19.port, &syns);

    let before = lab.traffic_snapshot().expect("snapshot");
    let c2_before = agent.status().client(&c2.ip4).expect("c2 entry");
    let c1_before = agent.status().client(&lab.client(1).ip4).expect("c1 entry");
    let log_before = agent.log().len();
    let load = UdpLoad::start(&lab, phases, Duration::from_secs(1), 1000, Duration::from_millis(2));
    let seconds = SECONDS.to_string();
    let out = lab
        .run(
            &c2.ns,
            &[
                "iperf3", "-c", SERVER_IP4, "-p", "5201", "-t", &seconds, "--bidir", "-b", "300M",
                "-J",
            ],
        )
        .unwrap_or_else(|e| panic!("iperf3 from c2: {e:#}\n{}", server.log()));
    let log = agent.log()[log_before..].to_owned();
    load.stop();
    let traffic = delta(&lab.traffic_snapshot().expect("snapshot"), &before);
    let crossed17 = on17.finish();
    let syns19 = on19.finish();
    // The server ends after one test; its numbers are the client's anyway.
    if let Err(error) = server.wait_timeout(Duration::from_secs(5)) {
        eprintln!("iperf3 server: {error:#}");
    }

    // Payload bytes each way, as the receiving ends counted them.
    let report: Value = serde_json::from_str(&out).expect("iperf3 JSON");
    let bytes = |sum: &str| {
        report["end"][sum]["bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no end.{sum}.bytes in iperf3's report: {}", report["end"]))
    };
    let (upload, download) = (bytes("sum_received"), bytes("sum_received_bidir_reverse"));
    let rounds: Vec<&str> = log.lines().filter(|l| l.contains(REBALANCED)).collect();
    let after = tx_buckets(agent.master());
    let moved = dests.iter().filter(|&&d| after[bucket_of(d)] == 0).count();
    println!(
        "seed: iperf3 --bidir from c2 for {SECONDS} s: {upload} B up, {download} B down; \
         {} rounds moved buckets meanwhile ({rounds:?}); {moved} of the {} loaded buckets \
         ended on veth17; {} of the connection's frames on veth17 ({} SYNs on veth19); {}",
        rounds.len(),
        dests.len(),
        crossed17.len(),
        syns19.len(),
        show(&traffic)
    );
    assert!(
        upload > 1_000_000 && download > 1_000_000,
        "iperf3 moved data: {upload} / {download} B"
    );
    // The claim is about rebalancing: buckets really moved, again and again,
    // while the connection ran.
    assert!(
        rounds.len() >= 3,
        "at least 3 rounds moved buckets during the {SECONDS} s connection: {rounds:?}\n{}",
        agent.log()
    );
    // iperf3's control connection and one per direction, both ways.
    assert!(syns19.len() >= 6, "control: the capture sees the connections open on veth19");
    assert!(
        crossed17.is_empty(),
        "not one packet of the connection crossed veth17, yet {} did",
        crossed17.len()
    );
    assert!(
        traffic[1].rx_bytes >= upload && traffic[1].tx_bytes >= download,
        "veth19 carried the whole stream, {upload} B up and {download} B down: {}",
        show(&traffic)
    );
    let c2_after = agent.status().client(&c2.ip4).expect("c2 entry");
    let c1 = agent.status().client(&lab.client(1).ip4).expect("c1 entry");
    assert_eq!(c2_after.slave.as_deref(), Some("veth19"), "c2 still on veth19");
    assert!(c2_after.rx_packets - c2_before.rx_packets >= 1000, "c2 rx counted: {c2_after:?}");
    assert!(c2_after.tx_packets - c2_before.tx_packets >= 1000, "c2 tx counted: {c2_after:?}");
    assert!(
        c1.rx_packets - c1_before.rx_packets <= NOISE
            && c1.tx_packets - c1_before.tx_packets <= NOISE,
        "c1 idle: {c1:?}"
    );
}

/// Seed observation 5: receive spreading is per client. Four clients on
/// two slaves alternate veth17, veth19, veth17, veth19 in the order they
/// first ARP, and equal traffic from each splits evenly over the slaves'
/// receive counters.
#[test]
fn receive_spreading_is_per_client() {
    let Seed { agent, lab } = seed(4, 2);
    resolve_in_order(&lab, 4);
    let before = agent.status().slaves;
    std::thread::scope(|s| {
        for number in 1..=4 {
            let lab = &lab;
            s.spawn(move || ping_server(lab, number, 100, Duration::from_millis(5)));
        }
    });
    let after = agent.status().slaves;
    let rx: Vec<u64> =
        after.iter().zip(&before).map(|(a, b)| a.rx_packets - b.rx_packets).collect();
    let total: u64 = rx.iter().sum();
    assert!(total >= 400, "400 echo requests received in all: {rx:?}");
    for (slave, n) in after.iter().zip(&rx) {
        let share = *n as f64 / total as f64;
        assert!(
            (0.35..=0.65).contains(&share),
            "{} received {n} of {total} packets ({:.0}%), outside 35-65%: {rx:?}",
            slave.name,
            share * 100.0
        );
        assert_eq!(slave.clients, 2, "{} has two clients: {after:?}", slave.name);
    }
}

/// docs/bonding.md §2.3 / §5 case 2: the server's ARP reply to client 2, captured on
/// veth19's switch port: Eth src = SHA = veth19's MAC, Eth dst = THA =
/// client 2's MAC, SPA = 198.18.0.1, TPA = 198.18.0.12; and it does not
/// leave by veth17.
#[test]
fn the_arp_reply_leaves_by_the_clients_slave_with_its_mac() {
    let Seed { agent: _agent, lab } = seed(2, 2);
    assert_eq!(resolve(&lab, 1), lab.slave(0).mac);
    let (veth17, veth19) = (lab.slave(0), lab.slave(1));
    let on17 = Capture::start(&lab, lab.sw(), &veth17.port, "arp");
    let on19 = Capture::start(&lab, lab.sw(), &veth19.port, "arp");
    assert_eq!(resolve(&lab, 2), veth19.mac);
    let on17 = arps(&on17.finish());
    let on19 = arps(&on19.finish());

    let c2 = lab.client(2);
    let c2_ip: Ipv4Addr = c2.ip4.parse().expect("ip");
    let server: Ipv4Addr = SERVER_IP4.parse().expect("ip");
    let is_reply_to_c2 =
        |a: &common::capture::Arp| a.op == ARP_REPLY && a.spa == server && a.tpa == c2_ip;
    let replies: Vec<_> = on19.iter().filter(|(_, a)| is_reply_to_c2(a)).collect();
    let (_, reply) = replies
        .first()
        .unwrap_or_else(|| panic!("no ARP reply to c2 on {}:\n{}", veth19.port, describe(&on19)));
    assert_eq!(reply.eth_src, veth19.mac, "Eth src: {reply}");
    assert_eq!(reply.sha, veth19.mac, "ARP SHA: {reply}");
    assert_eq!(reply.eth_dst, c2.mac, "Eth dst: {reply}");
    assert_eq!(reply.tha, c2.mac, "ARP THA: {reply}");
    assert_eq!(reply.spa, server, "ARP SPA: {reply}");
    assert_eq!(reply.tpa, c2_ip, "ARP TPA: {reply}");
    // c2's request was flooded to both slaves; the answer left by one.
    let requests = on17.iter().filter(|(_, a)| a.op == ARP_REQUEST && a.spa == c2_ip).count();
    assert!(requests >= 1, "c2's request flooded to {} too:\n{}", veth17.port, describe(&on17));
    let stray: Vec<_> =
        on17.iter().filter(|(_, a)| a.op == ARP_REPLY && a.tpa == c2_ip).cloned().collect();
    assert!(stray.is_empty(), "replies to c2 on {}:\n{}", veth17.port, describe(&stray));
}

/// `InEchos` of the server namespace's ICMP statistics.
fn in_echos(lab: &Lab) -> u64 {
    let snmp = lab.run(lab.srv(), &["cat", "/proc/net/snmp"]).expect("snmp");
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().expect("Icmp header"), icmp.next().expect("Icmp values"));
    let index = names.split_whitespace().position(|n| n == "InEchos").expect("InEchos");
    values.split_whitespace().nth(index).and_then(|v| v.parse().ok()).expect("InEchos value")
}

/// docs/bonding.md §2.9 / §5 case 8: a client's broadcast, flooded by the switch to
/// every slave, reaches the server's stack once: 3 broadcast pings give 3
/// replies (no DUP!) and 3 echo requests in the server's ICMP counters; the
/// copy on the inactive slave is dropped and counted.
#[test]
fn a_client_broadcast_reaches_the_server_once() {
    let Seed { agent, lab } = seed(2, 2);
    lab.sysctl(lab.srv(), "net.ipv4.icmp_echo_ignore_broadcasts", "0").expect("sysctl");
    resolve_in_order(&lab, 1);
    let echos = in_echos(&lab);
    let counters = agent.status();
    let out = lab
        .exec(
            &lab.client(1).ns,
            &["ping", "-n", "-b", "-c", "3", "-i", "0.2", "-W", "1", "198.18.0.255"],
        )
        .expect("ping -b");
    let text = String::from_utf8_lossy(&out.stdout);
    let replies = text.lines().filter(|l| l.contains("bytes from")).collect::<Vec<_>>();
    assert_eq!(replies.len(), 3, "3 replies, one per broadcast:\n{text}");
    assert!(replies.iter().all(|l| l.contains(&format!("from {SERVER_IP4}:"))), "{text}");
    assert!(!text.contains("DUP!"), "no duplicate replies:\n{text}");
    assert_eq!(in_echos(&lab) - echos, 3, "the server's stack saw 3 echo requests");
    let after = agent.status();
    let grew = |name: &str| after.counter(name) - counters.counter(name);
    assert!(grew("rx_broadcast") >= 3, "rx_broadcast grew by {}", grew("rx_broadcast"));
    assert!(
        grew("rx_broadcast_inactive") >= 3,
        "the copy flooded to veth19 is dropped: rx_broadcast_inactive grew by {}",
        grew("rx_broadcast_inactive")
    );
}

/// Issue "done when": three slaves and many clients. 12 clients on 3
/// slaves: every client gets replies, clients are dealt round-robin (4 per
/// slave), and each client's traffic crosses only its slave.
#[test]
fn three_slaves_and_twelve_clients() {
    let Seed { agent, lab } = seed(12, 3);
    resolve_in_order(&lab, 12);
    let slaves = agent.status().slaves;
    assert!(slaves.iter().all(|s| s.clients == 4), "4 clients per slave: {slaves:?}");
    for number in 1..=12 {
        let before = lab.traffic_snapshot().expect("snapshot");
        ping_server(&lab, number, 30, Duration::from_millis(3));
        let traffic = delta(&lab.traffic_snapshot().expect("snapshot"), &before);
        assert_only_on(&traffic, dealt(number, 3), 30, &format!("30 pings from c{number}"));
    }
}

/// docs/bonding.md §5 case 4: stickiness. Client 2 flushes its neighbour table and
/// re-ARPs five times: the same slave MAC every time, and no other
/// client's assignment moves.
#[test]
fn a_client_keeps_its_slave_when_it_re_arps() {
    let Seed { agent, lab } = seed(3, 2);
    resolve_in_order(&lab, 3);
    let assignments = |agent: &Agent| -> BTreeMap<String, Option<String>> {
        agent.status().clients.into_iter().map(|c| (c.client_ip, c.slave)).collect()
    };
    let before = assignments(&agent);
    assert_eq!(before.len(), 3, "{before:?}");
    let c2 = lab.client(2);
    for round in 1..=5 {
        lab.flush_neigh(&c2.ns).expect("flush");
        assert_eq!(lab.neigh_mac(&c2.ns, SERVER_IP4).expect("neigh"), None);
        assert_eq!(resolve(&lab, 2), lab.slave(1).mac, "round {round}: c2 back on veth19");
    }
    assert_eq!(assignments(&agent), before, "no assignment moved");
    for number in [1, 3] {
        let mac = lab.neigh_mac(&lab.client(number).ns, SERVER_IP4).expect("neigh");
        assert_eq!(mac.as_deref(), Some(lab.slave(0).mac.as_str()), "c{number} still on veth17");
    }
    assert_eq!(agent.status().counter("tx_new_client"), 3, "no client was dealt twice");
}

/// The server ARPs for `target` (a broadcast request). Every client that
/// hears it points 198.18.0.1 at the request's sender MAC (docs/bonding.md §2.12);
/// the agent must put every client back on its own slave within
/// `BUDGET` (the kernel takes ~2 s). `moved` are the clients whose slave
/// differs from the request's: their captures must show the request and,
/// after it, a correction carrying their own slave's MAC.
fn server_arp_round(seed: &Seed, target: &str, moved: &[usize]) {
    const BUDGET: Duration = Duration::from_millis(500);
    let Seed { agent, lab } = seed;
    let slaves = lab.slaves().len();
    let clients = lab.clients().len();
    let captures: Vec<Capture> =
        (1..=clients).map(|n| Capture::start(lab, &lab.client(n).ns, "eth0", "arp")).collect();
    let log_before = agent.log().len();
    let start = Instant::now();
    let mut ping =
        lab.spawn(lab.srv(), &["ping", "-n", "-c", "1", "-W", "1", target]).expect("ping");
    // The agent logs once it has re-told the moved clients.
    let told = format!("host ARP request for {target}: re-told {} clients", moved.len());
    wait_until(BUDGET, &told, || Ok(agent.log()[log_before..].contains(&told)))
        .unwrap_or_else(|e| panic!("{e:#}; agent log:\n{}", &agent.log()[log_before..]));
    let wrong = || -> Vec<String> {
        (1..=clients)
            .filter_map(|n| {
                let mac = lab.neigh_mac(&lab.client(n).ns, SERVER_IP4).expect("neigh");
                let want = &lab.slave(dealt(n, slaves)).mac;
                (mac.as_deref() != Some(want.as_str())).then(|| format!("c{n}: {mac:?} != {want}"))
            })
            .collect()
    };
    let mut left = wrong();
    while !left.is_empty() && start.elapsed() < alb_tests::scaled(BUDGET) {
        std::thread::sleep(Duration::from_millis(5));
        left = wrong();
    }
    let settled = start.elapsed();
    if let Err(error) = ping.stop() {
        eprintln!("background ping: {error:#}");
    }
    let frames: Vec<_> = captures.into_iter().map(|c| arps(&c.finish())).collect();
    assert!(left.is_empty(), "not back on their slaves {settled:?} after the request: {left:?}");

    let target: Ipv4Addr = target.parse().expect("target");
    for &n in moved {
        let seen = &frames[n - 1];
        let own = &lab.slave(dealt(n, slaves)).mac;
        let client = lab.client(n);
        let (t_request, request) = seen
            .iter()
            .find(|(_, a)| a.op == ARP_REQUEST && a.tpa == target && a.eth_dst == BROADCAST_MAC)
            .unwrap_or_else(|| {
                panic!("c{n} did not hear the request for {target}:\n{}", describe(seen))
            });
        assert_ne!(&request.sha, own, "c{n} is one the request moves: {request}");
        let (t_fix, fix) = seen
            .iter()
            .find(|(t, a)| {
                t >= t_request && a.op == ARP_REPLY && a.sha == *own && a.eth_dst == client.mac
            })
            .unwrap_or_else(|| {
                panic!("no correction for c{n} after the request:\n{}", describe(seen))
            });
        let lag = *t_fix - *t_request;
        assert!(
            lag <= alb_tests::scaled(BUDGET),
            "c{n} corrected {lag:?} after the request: {fix}"
        );
        eprintln!("c{n}: request {request}; corrected after {lag:?} by {fix}");
    }
    eprintln!("all clients back on their slaves {settled:?} after the ping started");
}

/// docs/bonding.md §5 cases 6-7, improved: a broadcast ARP request from the server
/// moves every listening client to its sender MAC; alb corrects them at
/// once, not ~2 s later. First for an address no client has (198.18.0.99,
/// dealt veth17: clients 2 and 4 move), then for client 4 itself after the
/// server forgets it (sent from veth19 with veth19's MAC: clients 1 and 3
/// move, client 4 learns its own slave directly).
#[test]
fn server_arp_requests_do_not_move_clients_off_their_slaves() {
    let seed = seed(4, 2);
    let lab = &seed.lab;
    resolve_in_order(lab, 4);
    // A client applies an ARP that changes its entry only after locktime
    // (1 s); wait it out so that the request really moves them.
    std::thread::sleep(Duration::from_millis(1100));
    server_arp_round(&seed, "198.18.0.99", &[2, 4]);

    std::thread::sleep(Duration::from_millis(1100));
    lab.ip(lab.srv(), &["neigh", "flush", "to", &lab.client(4).ip4]).expect("flush c4 on srv");
    server_arp_round(&seed, &lab.client(4).ip4.clone(), &[1, 3]);
    let c4 = seed.agent.status().client(&lab.client(4).ip4).expect("c4 entry");
    assert_eq!(c4.slave.as_deref(), Some("veth19"), "c4 keeps veth19: {c4:?}");
}
