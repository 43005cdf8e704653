//! `cargo xtask demo`: the seed scenario end to end. Builds a lab, starts the
//! agent on its slaves, has every client ping the server (one client at a
//! time, so each one's path can be read off the switch ports) and, with
//! iperf3, push TCP both ways (all clients at once); prints what each client
//! learned, where the traffic went and `alb status`; checks the seed's
//! observations; tears everything down. `--ipv6` does all of it over IPv6
//! too (the kernel's mode 6 balances IPv4 only), with the same checks.

use std::{path::Path, thread, time::Duration};

use alb_tests::{
    Agent, AgentCommand, Client, Lab, LabConfig, LinkStats, SERVER_IP4, SERVER_IP6, wait_until,
};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{bootstrap::which, cargo, signals};

const PINGS: u32 = 200;
const PING_INTERVAL: Duration = Duration::from_millis(10);
/// Payload bytes per ping: large enough that background frames (ARP, ND)
/// are a rounding error in the byte counts.
const PING_SIZE: u32 = 1000;
const IPERF_SECONDS: u32 = 3;
const IPERF_PORT: u16 = 5201;

/// The address family a phase of the demo runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }

    fn server(self) -> &'static str {
        match self {
            Self::V4 => SERVER_IP4,
            Self::V6 => SERVER_IP6,
        }
    }

    fn client_ip(self, client: &Client) -> &str {
        match self {
            Self::V4 => &client.ip4,
            Self::V6 => &client.ip6,
        }
    }
}

pub(crate) fn run(clients: usize, slaves: usize, ipv6: bool, vms: usize) -> Result<()> {
    let alb = cargo::build_agent(cargo::Profile::Debug)?;
    signals::catch()?;
    let config = LabConfig {
        prefix: format!("alb-demo{}", std::process::id()),
        clients,
        slaves,
        ..LabConfig::default()
    };
    println!(
        "== lab {}: {slaves} slaves, {clients} clients, in private network namespaces",
        config.prefix
    );
    let mut lab = Lab::up(config)?;
    let families: &[Family] = if ipv6 { &[Family::V4, Family::V6] } else { &[Family::V4] };
    let result = drive(&mut lab, &alb, families, vms);
    println!("\n== tearing down lab {}", lab.prefix());
    drop(lab);
    result
}

/// One client's ping run over one family and what it showed.
struct ClientRun {
    learned: Option<String>,
    slave: Option<usize>,
    ping: alb_tests::PingStats,
    per_slave: Vec<LinkStats>,
}

fn drive(lab: &mut Lab, alb: &Path, families: &[Family], vms: usize) -> Result<()> {
    let srv = lab.srv().to_owned();
    let srv = srv.as_str();
    let master = lab.master().to_owned();
    let master = master.as_str();
    let alb = alb.to_str().context("agent path is not UTF-8")?;
    let command = AgentCommand::new(lab, alb)
        .env("RUST_LOG", "info")
        .ready_timeout(Duration::from_secs(30))
        .interrupt(signals::check);
    println!("== starting the agent in {srv}: alb {}", command.arguments().join(" "));
    let mut agent = command.start(lab)?;
    lab.add_server_addrs()?;
    let master_mac = lab.link_mac(srv, master)?;
    println!("   {master} is up with MAC {master_mac}; added {SERVER_IP4}/24 and 2001:2::1/64");
    // The MACs the slaves really carry (the agent may change them).
    let slave_macs =
        lab.slaves().iter().map(|s| lab.link_mac(srv, &s.name)).collect::<Result<Vec<_>>>()?;
    for (s, mac) in lab.slaves().iter().zip(&slave_macs) {
        println!("   slave {} has MAC {mac} (switch port {})", s.name, s.port);
    }

    let mut runs = Vec::new();
    for &family in families {
        runs.push((family, ping_clients(lab, family, &slave_macs)?));
    }
    let vm_failures =
        if vms > 0 { crate::demo_vms::run(lab, vms, families.contains(&Family::V6))? } else { 0 };
    let lab = &*lab;

    if which("iperf3").is_some() {
        for &family in families {
            iperf(lab, &mut agent, family)?;
        }
    } else {
        println!("\n== iperf3 is not installed: skipping the TCP test");
    }

    signals::check()?;
    println!("\n== alb status (in {srv})");
    let status = lab.run(srv, &[alb, "status"])?;
    println!("{}", status.trim_end());
    let agent_view = agent_clients(&agent);

    println!("\n== stopping the agent (SIGTERM)");
    let clean_exit = match agent.stop() {
        Ok(exit) => exit.success(),
        Err(e) => {
            println!("   {e:#}");
            false
        }
    };
    println!("\n== checks");
    let mut failures = vm_failures;
    for (family, family_runs) in &runs {
        failures += check(lab, *family, family_runs, agent_view.as_ref());
    }
    println!("   [{}] the agent exited 0 on SIGTERM", if clean_exit { " ok " } else { "FAIL" });
    if !clean_exit {
        failures += 1;
        println!("   agent log:\n{}", agent.log());
    }
    if failures > 0 {
        bail!("{failures} demo check(s) failed (see above)");
    }
    Ok(())
}

/// Every client in turn pings the server over `family`; what each learned
/// and where its traffic went, counted on the switch ports.
fn ping_clients(lab: &Lab, family: Family, slave_macs: &[String]) -> Result<Vec<ClientRun>> {
    let server = family.server();
    println!(
        "\n== ping ({}): each client in turn, {PINGS} pings of {PING_SIZE} bytes at \
         {PING_INTERVAL:?} to {server}",
        family.name()
    );
    let mut runs = Vec::new();
    for client in lab.clients() {
        signals::check()?;
        let before = lab.traffic_snapshot()?;
        let ping = lab.ping_sized(&client.ns, server, PINGS, PING_INTERVAL, PING_SIZE)?;
        let after = lab.traffic_snapshot()?;
        let learned = lab.neigh_mac(&client.ns, server)?;
        let slave = learned
            .as_ref()
            .and_then(|mac| slave_macs.iter().position(|m| m.eq_ignore_ascii_case(mac)));
        runs.push(ClientRun {
            learned,
            slave,
            ping,
            per_slave: after.iter().zip(&before).map(|(a, b)| *a - *b).collect(),
        });
    }
    print_ping_table(lab, family, &runs);
    Ok(runs)
}

fn print_ping_table(lab: &Lab, family: Family, runs: &[ClientRun]) {
    let mut header = format!(
        "   {:<8} {:<13} {:<19} {:<9} {:<34}",
        "client", "ip", "learned MAC", "slave", "ping"
    );
    for s in lab.slaves() {
        header.push_str(&format!(" {:>17}", format!("{} rx/tx", s.name)));
    }
    println!("{header}");
    for (client, run) in lab.clients().iter().zip(runs) {
        let slave = run.slave.map_or_else(|| "(none)".to_owned(), |i| lab.slave(i).name.clone());
        let mut line = format!(
            "   c{:<7} {:<13} {:<19} {:<9} {:<34}",
            client.number,
            family.client_ip(client),
            run.learned.as_deref().unwrap_or("(none)"),
            slave,
            run.ping.to_string()
        );
        for d in &run.per_slave {
            line.push_str(&format!(" {:>17}", format!("{}/{}", d.rx_packets, d.tx_packets)));
        }
        println!("{line}");
    }
    println!(
        "   (rx/tx: packets the server received / sent on that slave while the client pinged, \
         counted on its switch port)"
    );
}

/// Runs one iperf3 server per client in the server namespace, then all
/// clients at once over `family`, uploading and then downloading; prints
/// the throughput and the per-slave byte split.
fn iperf(lab: &Lab, agent: &mut Agent, family: Family) -> Result<()> {
    let srv = lab.srv();
    let ports: Vec<String> =
        (0..lab.clients().len()).map(|i| (usize::from(IPERF_PORT) + i).to_string()).collect();
    let _servers = ports
        .iter()
        .map(|p| lab.spawn(srv, &["iperf3", "-s", "-p", p]))
        .collect::<Result<Vec<_>>>()?;
    wait_until(Duration::from_secs(10), "the iperf3 servers", || {
        let listening = lab.run(srv, &["ss", "-Hltn"])?;
        Ok(ports.iter().all(|p| listening.contains(&format!(":{p} "))))
    })?;
    for (label, reverse) in [("clients -> server", false), ("server -> clients", true)] {
        signals::check()?;
        if let Some(status) = agent.exited()? {
            bail!("the agent exited ({status}):\n{}", agent.log());
        }
        println!(
            "\n== iperf3 TCP over {}, {label}, all {} clients at once for {IPERF_SECONDS} s",
            family.name(),
            lab.clients().len()
        );
        let before = lab.traffic_snapshot()?;
        let results: Vec<Result<f64>> = thread::scope(|scope| {
            let handles: Vec<_> = lab
                .clients()
                .iter()
                .zip(&ports)
                .map(|(client, port)| {
                    scope.spawn(move || {
                        iperf_client(lab, &client.ns, family.server(), port, reverse)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("iperf3 thread panicked")))
                .collect()
        });
        let after = lab.traffic_snapshot()?;
        for (client, result) in lab.clients().iter().zip(results) {
            let bps = result.with_context(|| format!("iperf3 from c{}", client.number))?;
            println!("   c{:<3} {:>7.2} Gbit/s", client.number, bps / 1e9);
        }
        let deltas: Vec<LinkStats> = after.iter().zip(&before).map(|(a, b)| *a - *b).collect();
        let total_rx: u64 = deltas.iter().map(|d| d.rx_bytes).sum();
        let total_tx: u64 = deltas.iter().map(|d| d.tx_bytes).sum();
        for (s, d) in lab.slaves().iter().zip(&deltas) {
            println!(
                "   {:<7} server rx {:>6.1}% ({} MB)   server tx {:>6.1}% ({} MB)",
                s.name,
                percent(d.rx_bytes, total_rx),
                d.rx_bytes / 1_000_000,
                percent(d.tx_bytes, total_tx),
                d.tx_bytes / 1_000_000
            );
        }
    }
    Ok(())
}

fn iperf_client(lab: &Lab, ns: &str, server: &str, port: &str, reverse: bool) -> Result<f64> {
    let seconds = IPERF_SECONDS.to_string();
    let mut argv = vec!["iperf3", "-c", server, "-p", port, "-t", &seconds, "-J"];
    if reverse {
        argv.push("-R");
    }
    let out = lab.exec(ns, &argv)?;
    let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "iperf3 printed no JSON report ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(error) = report["error"].as_str() {
        bail!("iperf3: {error}");
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second in iperf3's report")
}

fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        #[expect(clippy::cast_precision_loss, reason = "a percentage for display")]
        let p = part as f64 * 100.0 / total as f64;
        p
    }
}

/// client IP (of either family) -> slave name, from `alb status --json`.
fn agent_clients(agent: &Agent) -> Option<Vec<(String, String)>> {
    match agent.status() {
        Ok(status) => {
            Some(status.clients.into_iter().filter_map(|c| Some((c.client_ip, c.slave?))).collect())
        }
        Err(e) => {
            println!("   (cannot read `alb status --json`: {e:#})");
            None
        }
    }
}

/// Prints the seed's observations over `family` as checks; returns how
/// many failed.
fn check(
    lab: &Lab,
    family: Family,
    runs: &[ClientRun],
    agent_view: Option<&Vec<(String, String)>>,
) -> usize {
    let (name, server) = (family.name(), family.server());
    let mut failures = 0;
    let mut verdict = |ok: bool, what: String| {
        println!("   [{}] {what}", if ok { " ok " } else { "FAIL" });
        if !ok {
            failures += 1;
        }
    };
    let mut used: Vec<usize> = runs.iter().filter_map(|r| r.slave).collect();
    used.sort_unstable();
    used.dedup();
    let expected = lab.clients().len().min(lab.slaves().len());
    verdict(
        used.len() == expected,
        format!(
            "{name}: clients learned {} different slave MAC(s) for {server} (expected {expected})",
            used.len()
        ),
    );
    for (client, run) in lab.clients().iter().zip(runs) {
        let c = format!("{name}: c{}", client.number);
        verdict(
            run.ping.lost() * 100 <= run.ping.transmitted,
            format!("{c}: {} (at most 1% lost)", run.ping),
        );
        let Some(own) = run.slave else {
            verdict(false, format!("{c}: learned a slave's MAC (got {:?})", run.learned));
            continue;
        };
        let name = &lab.slave(own).name;
        let replies = u64::from(run.ping.received);
        let d = run.per_slave[own];
        verdict(
            d.rx_packets >= replies && d.tx_packets >= replies,
            format!(
                "{c}: its {replies} requests came in and replies went out on {name} \
                 (rx {} / tx {} packets)",
                d.rx_packets, d.tx_packets
            ),
        );
        // A few frames of background (ARP, ND) are fine; the ping is not.
        let own_bytes = d.rx_bytes + d.tx_bytes;
        let stray: u64 = run
            .per_slave
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != own)
            .map(|(_, d)| d.rx_bytes + d.tx_bytes)
            .sum();
        verdict(
            stray <= own_bytes / 20,
            format!(
                "{c}: other slaves carried {stray} bytes meanwhile, {name} {own_bytes} \
                 (at most 5%)"
            ),
        );
        if let Some(view) = agent_view {
            let ip = family.client_ip(client);
            let agent_slave = view.iter().find(|(seen, _)| seen == ip).map(|(_, s)| s);
            verdict(
                agent_slave == Some(name),
                format!("{c}: `alb status` puts it on {name} (says {agent_slave:?})"),
            );
        }
    }
    failures
}
