//! The metrics endpoint (`--metrics-listen`, issue 12 item 4): the agent
//! serves Prometheus text at /metrics inside its namespace, with per-slave
//! series for every slave that follow traffic, client assignment and a
//! failover; OpenMetrics when asked for it; 404 elsewhere. A non-loopback
//! address is refused unless `--metrics-allow-remote` names the choice,
//! and a taken port refuses the start; refused starts leave nothing.
//!
//! Every scrape is parsed strictly ([`Exposition::parse`]). Needs root and
//! the `alb` binary; run one test at a time (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    collections::BTreeSet,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use alb_common::reason::Reason;
use alb_tests::{
    Lab, SERVER_IP4,
    metrics::{self, Exposition},
};
use common::{Agent, leftovers, port_of, resolve_all, run_alb, set_port};

/// Where the agent serves, in the lab's server namespace.
const LISTEN: &str = "127.0.0.1:9464";

/// The per-slave families, with their types (Prometheus text names).
const PER_SLAVE: [(&str, &str); 8] = [
    ("alb_slave_link_up", "gauge"),
    ("alb_slave_usable", "gauge"),
    ("alb_slave_active", "gauge"),
    ("alb_slave_clients", "gauge"),
    ("alb_slave_rx_packets_total", "counter"),
    ("alb_slave_rx_bytes_total", "counter"),
    ("alb_slave_tx_packets_total", "counter"),
    ("alb_slave_tx_bytes_total", "counter"),
];

/// The agent-wide families.
const AGENT_WIDE: [(&str, &str); 12] = [
    ("alb_datapath_reasons_total", "counter"),
    ("alb_failovers_total", "counter"),
    ("alb_failover_duration_seconds", "histogram"),
    ("alb_failbacks_total", "counter"),
    ("alb_failback_duration_seconds", "histogram"),
    ("alb_client_updates_sent_total", "counter"),
    ("alb_client_updates_failed_total", "counter"),
    ("alb_map_write_failures_total", "counter"),
    ("alb_map_writes_pending", "gauge"),
    ("alb_client_table_entries", "gauge"),
    ("alb_client_table_capacity", "gauge"),
    ("alb_agent_resident_memory_bytes", "gauge"),
];

fn listen() -> SocketAddr {
    LISTEN.parse().expect("an address")
}

/// `GET /metrics` in the server namespace, parsed as Prometheus text.
fn scrape(lab: &Lab) -> Exposition {
    let response = metrics::get(lab.srv(), listen(), "/metrics", None)
        .unwrap_or_else(|e| panic!("GET /metrics: {e:#}"));
    assert_eq!(response.status, 200, "GET /metrics: {}", response.body);
    assert_eq!(
        response.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{:?}",
        response.headers
    );
    Exposition::parse(&response.body, false)
        .unwrap_or_else(|e| panic!("not Prometheus text: {e:#}\n{}", response.body))
}

/// Sample `name` of slave `slave`.
fn of_slave(exposition: &Exposition, name: &str, slave: &str) -> f64 {
    exposition.value(name, &[("slave", slave)]).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Sample `name` (no labels but `master`).
fn value(exposition: &Exposition, name: &str) -> f64 {
    exposition.value(name, &[]).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Scrapes until `check` accepts a scrape; panics with the last after 3 s.
fn scrape_until(lab: &Lab, what: &str, check: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + alb_tests::scaled(Duration::from_secs(3));
    loop {
        let exposition = scrape(lab);
        if check(&exposition) {
            return exposition;
        }
        assert!(Instant::now() < deadline, "no scrape showed {what} within 3 s: {exposition:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pings the server from every client, 20 requests each, none lost.
fn ping_all(lab: &Lab) {
    for number in 1..=2 {
        let ns = &lab.client(number).ns;
        let stats = lab
            .ping(ns, SERVER_IP4, 20, Duration::from_millis(10))
            .unwrap_or_else(|e| panic!("ping from c{number}: {e:#}"));
        assert_eq!(stats.lost(), 0, "c{number} lost pings: {stats:?}");
    }
}

#[test]
fn metrics_follow_traffic_clients_and_a_failover() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let agent = Agent::start_with(&lab, &["--metrics-listen", LISTEN]);
    resolve_all(&lab);
    let status = agent.status();
    let first = scrape(&lab);
    println!("metrics: {} families, {} samples", first.families.len(), first.samples.len());

    for (family, kind) in PER_SLAVE.iter().chain(&AGENT_WIDE) {
        let declared = first.families.get(*family).map(|f| f.kind.as_str());
        assert_eq!(declared, Some(*kind), "family {family}");
    }
    for sample in &first.samples {
        let node_bonding = sample.name.starts_with("node_bonding_");
        assert!(sample.name.starts_with("alb_") || node_bonding, "{sample:?}");
        assert_eq!(sample.labels.get("master"), Some(&master), "{sample:?}");
    }
    for slave in &status.slaves {
        for (name, _) in PER_SLAVE {
            assert_eq!(first.series(name, &[("slave", &slave.name)]).len(), 1, "{name} {slave:?}");
        }
        assert_eq!(of_slave(&first, "alb_slave_link_up", &slave.name), 1.0);
        assert_eq!(of_slave(&first, "alb_slave_usable", &slave.name), 1.0);
        let active = of_slave(&first, "alb_slave_active", &slave.name);
        assert_eq!(active, f64::from(u8::from(slave.active)), "{slave:?}");
        let clients = of_slave(&first, "alb_slave_clients", &slave.name);
        assert_eq!(clients, slave.clients as f64, "clients of {}: status {slave:?}", slave.name);
    }
    let per_slave: f64 = first.series("alb_slave_clients", &[]).iter().map(|s| s.value).sum();
    assert_eq!(per_slave, 2.0, "each client on one slave");
    assert_eq!(value(&first, "alb_client_table_entries"), 2.0);
    assert_eq!(value(&first, "alb_client_table_capacity"), 65536.0);
    let resident = value(&first, "alb_agent_resident_memory_bytes");
    assert!((1e6..1e9).contains(&resident), "resident memory {resident} bytes");
    for reason in Reason::ALL {
        let found = first.series("alb_datapath_reasons_total", &[("reason", reason.name())]);
        assert_eq!(found.len(), 1, "reason {}", reason.name());
    }
    assert_eq!(value(&first, "alb_failovers_total"), 0.0);
    assert_eq!(value(&first, "node_bonding_slaves"), 2.0, "node_exporter's series");
    assert_eq!(value(&first, "node_bonding_active"), 2.0, "both MII Status up");

    ping_all(&lab);
    let second = scrape(&lab);
    for slave in ["veth17", "veth19"] {
        for name in ["alb_slave_rx_packets_total", "alb_slave_tx_packets_total"] {
            let grew = of_slave(&second, name, slave) - of_slave(&first, name, slave);
            assert!(grew >= 20.0, "{name} of {slave} grew by {grew} over 20 pings");
        }
        for name in ["alb_slave_rx_bytes_total", "alb_slave_tx_bytes_total"] {
            let grew = of_slave(&second, name, slave) - of_slave(&first, name, slave);
            assert!(grew >= 20.0 * 98.0, "{name} of {slave} grew by {grew} over 20 pings");
        }
    }
    let reason = |e: &Exposition, r: Reason| {
        e.value("alb_datapath_reasons_total", &[("reason", r.name())]).expect("a reason")
    };
    assert!(reason(&second, Reason::TxClient) - reason(&first, Reason::TxClient) >= 40.0);
    assert!(reason(&second, Reason::RxUnicast) - reason(&first, Reason::RxUnicast) >= 40.0);

    // veth17 fails: its client moves to veth19 and is told.
    set_port(&lab, &port_of(&lab, "veth17"), false);
    let sent_before = value(&second, "alb_client_updates_sent_total");
    let third = scrape_until(&lab, "the failover and its client told", |e| {
        value(e, "alb_failovers_total") == 1.0
            && value(e, "alb_client_updates_sent_total") > sent_before
    });
    assert_eq!(value(&third, "alb_failover_duration_seconds_count"), 1.0);
    assert!(value(&third, "alb_failover_duration_seconds_sum") > 0.0);
    assert_eq!(of_slave(&third, "alb_slave_link_up", "veth17"), 0.0);
    assert_eq!(of_slave(&third, "alb_slave_usable", "veth17"), 0.0);
    assert_eq!(of_slave(&third, "alb_slave_active", "veth19"), 1.0);
    assert_eq!(of_slave(&third, "alb_slave_clients", "veth17"), 0.0);
    assert_eq!(of_slave(&third, "alb_slave_clients", "veth19"), 2.0);
    assert_eq!(value(&third, "alb_failbacks_total"), 0.0);
    assert_eq!(value(&third, "node_bonding_slaves"), 2.0);
    assert_eq!(value(&third, "node_bonding_active"), 1.0, "veth17's MII Status is down");

    // It comes back: a failback, and its client returns.
    set_port(&lab, &port_of(&lab, "veth17"), true);
    let fourth = scrape_until(&lab, "the failback", |e| value(e, "alb_failbacks_total") == 1.0);
    assert_eq!(value(&fourth, "alb_failovers_total"), 1.0);
    assert_eq!(of_slave(&fourth, "alb_slave_link_up", "veth17"), 1.0);
    assert_eq!(of_slave(&fourth, "alb_slave_clients", "veth17"), 1.0);
    assert_eq!(value(&fourth, "node_bonding_active"), 2.0);
    println!(
        "metrics: failover took {:.1} ms in the agent; {} client updates sent",
        value(&third, "alb_failover_duration_seconds_sum") * 1e3,
        value(&fourth, "alb_client_updates_sent_total")
    );

    // OpenMetrics for a scraper that asks for it; nothing but /metrics.
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let open = metrics::get(lab.srv(), listen(), "/metrics", Some(accept)).expect("GET");
    assert_eq!(open.status, 200);
    assert!(open.headers["content-type"].starts_with("application/openmetrics-text"));
    let parsed = Exposition::parse(&open.body, true)
        .unwrap_or_else(|e| panic!("not OpenMetrics text: {e:#}\n{}", open.body));
    assert_eq!(parsed.families["alb_failovers"].kind, "counter");
    assert_eq!(parsed.value("alb_failovers_total", &[]).expect("failovers"), 1.0);
    let elsewhere = metrics::get(lab.srv(), listen(), "/", None).expect("GET /");
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.body);
    let post = metrics::request(lab.srv(), listen(), "POST", "/metrics", None).expect("POST");
    assert_eq!(post.status, 405, "{}", post.body);
}

/// With `--metrics-allow-remote`, an address other hosts reach serves
/// them: a client scrapes the server's address.
#[test]
fn an_allowed_remote_address_serves_other_hosts() {
    let lab = common::lab(1, 2);
    let _agent =
        Agent::start_with(&lab, &["--metrics-listen", "0.0.0.0:9464", "--metrics-allow-remote"]);
    resolve_all(&lab);
    let remote: SocketAddr = format!("{SERVER_IP4}:9464").parse().expect("an address");
    let response = metrics::get(&lab.client(1).ns, remote, "/metrics", None).expect("GET");
    assert_eq!(response.status, 200, "{}", response.body);
    let exposition = Exposition::parse(&response.body, false).expect("Prometheus text");
    assert_eq!(exposition.series("alb_slave_link_up", &[]).len(), 2);
}

/// Runs `alb --master <lab master> args...`, expects a one-line refusal
/// containing `expect` and nothing left behind.
fn assert_refused(lab: &Lab, args: &[&str], expect: &str) {
    let master = lab.master();
    let mut argv = vec!["--master", master];
    argv.extend_from_slice(args);
    let out = run_alb(lab.srv(), &argv);
    let message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let command = argv.join(" ");
    assert_eq!(out.status.code(), Some(1), "`alb {command}` should fail: {message}");
    assert_eq!(message.lines().count(), 1, "`alb {command}`: one line, not:\n{message}");
    assert!(message.starts_with("alb: "), "{message}");
    assert!(message.contains(expect), "`alb {command}` should mention {expect:?}: {message}");
    let left = leftovers(lab, master);
    assert!(left.is_empty(), "`alb {command}` left {left:?} behind");
    common::remove_lock_file(master);
}

#[test]
fn a_non_loopback_metrics_address_is_refused_unless_allowed() {
    let lab = common::lab(1, 2);
    for addr in ["0.0.0.0:9464", "[::]:9464", "198.18.0.1:9464", "[2001:2::1]:9464"] {
        let args = ["--iface", "veth17", "--iface", "veth19", "--metrics-listen", addr];
        assert_refused(&lab, &args, "--metrics-allow-remote");
    }
    assert_refused(
        &lab,
        &["--iface", "veth17", "--metrics-allow-remote"],
        "needs metrics_listen (--metrics-listen)",
    );
}

#[test]
fn a_taken_metrics_port_refuses_the_start() {
    let lab = common::lab(1, 2);
    let taken: TcpListener =
        metrics::bind_in(lab.srv(), listen()).unwrap_or_else(|e| panic!("{e:#}"));
    let args = ["--iface", "veth17", "--iface", "veth19", "--metrics-listen", LISTEN];
    assert_refused(&lab, &args, "cannot listen for metrics on 127.0.0.1:9464");
    drop(taken);
}

/// The alert rules and the dashboard the package ships (packaging/).
fn packaging(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging").join(path)
}

/// Every series name (`alb_...`, `node_...`) in `text`.
fn series_named(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for prefix in ["alb_", "node_"] {
        for (at, _) in text.match_indices(prefix) {
            if at > 0 && word(bytes[at - 1]) {
                continue;
            }
            let end = text[at..].bytes().position(|b| !word(b)).map_or(text.len(), |n| at + n);
            names.insert(text[at..end].to_owned());
        }
    }
    names
}

/// `promtool ARGS` in packaging/prometheus; panics with its output unless
/// it succeeds.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(packaging("prometheus"))
        .output()
        .unwrap_or_else(|e| panic!("promtool (Debian's prometheus; cargo xtask bootstrap): {e}"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

/// The shipped alert rules pass promtool (their syntax, and their unit
/// tests: each alert fires on the series that should raise it and not on
/// healthy ones), and every series they or the dashboard name is one a
/// running agent serves.
#[test]
fn the_alert_rules_and_dashboard_name_only_served_series() {
    let checked = promtool(&["check", "rules", "alb-rules.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "alb-rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");

    let rules = std::fs::read_to_string(packaging("prometheus/alb-rules.yml")).expect("rules");
    let dashboard =
        std::fs::read_to_string(packaging("grafana/alb-dashboard.json")).expect("dashboard");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let queries: Vec<String> = parsed["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().expect("a target's expr").to_owned())
        .collect();
    assert!(queries.len() >= 10, "the dashboard's queries: {queries:?}");

    let lab = common::lab(2, 2);
    let _agent = Agent::start_with(&lab, &["--metrics-listen", LISTEN]);
    resolve_all(&lab);
    let served: BTreeSet<String> = scrape(&lab).samples.into_iter().map(|s| s.name).collect();
    let named: BTreeSet<String> = series_named(&rules)
        .into_iter()
        .chain(queries.iter().flat_map(|q| series_named(q)))
        .collect();
    assert!(
        named.contains("node_bonding_active") && named.contains("alb_slave_usable"),
        "{named:?}"
    );
    let missing: Vec<&String> = named.difference(&served).collect();
    assert!(missing.is_empty(), "named but not served: {missing:?}\nserved: {served:?}");
}
