//! Figures 2 and 3: iperf3 through alb against the same namespaces with the
//! server address directly on one veth and no BPF.

use std::{thread, time::Duration};

use alb_tests::{Lab, Proc, SERVER_IP4};
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::{Ctx, learn_clients, median, paired, start_agent, stop_agent};

/// One iperf3 test: `up` is client -> server (the server receives through
/// alb_rx), down is server -> client (alb_tx, `-R`).
pub(crate) struct Test {
    pub(crate) id: &'static str,
    pub(crate) what: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) args: &'static [&'static str],
}

impl Test {
    /// Seconds of warm-up: TCP's slow start; UDP at `-b 0` has none.
    pub(crate) fn omit(&self, omit: u32) -> u32 {
        if self.unit == "kpps" { 0 } else { omit }
    }
}

pub(crate) const TESTS: &[Test] = &[
    Test { id: "tcp1_up", what: "TCP, 1 stream, client -> server", unit: "Gbit/s", args: &[] },
    Test {
        id: "tcp1_down",
        what: "TCP, 1 stream, server -> client",
        unit: "Gbit/s",
        args: &["-R"],
    },
    Test {
        id: "tcp4_up",
        what: "TCP, 4 streams, client -> server",
        unit: "Gbit/s",
        args: &["-P", "4"],
    },
    Test {
        id: "tcp4_down",
        what: "TCP, 4 streams, server -> client",
        unit: "Gbit/s",
        args: &["-P", "4", "-R"],
    },
    Test {
        id: "udp64_up",
        what: "UDP 64-byte payload, client -> server, received",
        unit: "kpps",
        args: &["-u", "-l", "64", "-b", "0"],
    },
    Test {
        id: "udp64_down",
        what: "UDP 64-byte payload, server -> client, received",
        unit: "kpps",
        args: &["-u", "-l", "64", "-b", "0", "-R"],
    },
];

pub(crate) const PORT: u16 = 5201;

/// Both iperf3 ends are pinned alike in every arm: clients on CPU 0,
/// servers on the last CPU (the same CPU with one vCPU).
fn client_cpu() -> String {
    "0".to_owned()
}

fn server_cpu() -> String {
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1);
    (cpus - 1).to_string()
}

/// iperf3 servers on `PORT..PORT+n` in the server namespace, pinned.
pub(crate) fn servers(lab: &Lab, n: usize) -> Result<Vec<Proc>> {
    let cpu = server_cpu();
    let procs = (0..n)
        .map(|i| {
            let port = (PORT + i as u16).to_string();
            lab.spawn(
                lab.srv(),
                &["taskset", "-c", &cpu, "iperf3", "-s", "-p", &port, "--forceflush"],
            )
        })
        .collect::<Result<Vec<_>>>()?;
    // iperf3 prints "Server listening" once its socket is bound.
    alb_tests::wait_until(Duration::from_secs(5), "iperf3 servers to listen", || {
        Ok(procs.iter().all(|p| p.log().contains("Server listening")))
    })?;
    Ok(procs)
}

/// Runs `iperf3 -c` (pinned) in client `n`'s namespace; the figure in the
/// test's unit, taken on the receiving side. TCP runs warm up for
/// `omit` seconds first, not counted.
pub(crate) fn client(
    lab: &Lab,
    n: usize,
    port: u16,
    secs: u32,
    omit: u32,
    test: &Test,
) -> Result<f64> {
    let c = lab.client(n);
    let (port, secs, cpu) = (port.to_string(), secs.to_string(), client_cpu());
    let omit = test.omit(omit).to_string();
    let mut argv = vec![
        "taskset", "-c", &cpu, "iperf3", "-c", SERVER_IP4, "-p", &port, "-t", &secs, "-O", &omit,
        "-J",
    ];
    argv.extend_from_slice(test.args);
    let out = lab.exec(&c.ns, &argv)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("iperf3 in {} printed no JSON: {}", c.ns, text.trim()))?;
    if let Some(error) = v["error"].as_str() {
        bail!("iperf3 in {}: {error}", c.ns);
    }
    if test.unit == "kpps" {
        // UDP: the receiver's count (the server reports it back).
        let sum = &v["end"]["sum"];
        let packets = sum["packets"].as_f64().context("no end.sum.packets")?;
        let lost = sum["lost_packets"].as_f64().unwrap_or(0.0);
        let seconds = sum["seconds"].as_f64().context("no end.sum.seconds")?;
        Ok((packets - lost) / seconds / 1e3)
    } else {
        let bps = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .context("no end.sum_received.bits_per_second")?;
        Ok(bps / 1e9)
    }
}

/// Figure 2. Two labs built alike: `plain` has the server address
/// directly on veth17 (no agent, no BPF), `lab` runs alb. Each test takes
/// paired rounds of three arms (plain c1, alb c1 on slave 0, alb c2 on
/// slave 1; [`paired`]), and each alb path gets its ratio to the plain
/// veth of the same round.
pub(crate) fn throughput(ctx: &Ctx, lab: &Lab, plain: &Lab) -> Result<Value> {
    let s = &ctx.sizes;
    let _servers = (servers(lab, 1)?, servers(plain, 1)?);
    let agent = start_agent(ctx, lab, 2, &[])?;
    learn_clients(lab, &[1, 2])?;
    learn_clients(plain, &[1])?;
    let placement = agent.status()?.client_slaves();
    let mut tests = Vec::new();
    for test in TESTS {
        eprintln!("bench: throughput {} ({} rounds)", test.id, s.rounds);
        let arm = |name, lab, n| paired::Arm {
            name,
            run: Box::new(move || client(lab, n, PORT, s.iperf_secs, s.omit_secs, test)),
        };
        let arms = [arm("plain", plain, 1), arm("alb_slave0", lab, 1), arm("alb_slave1", lab, 2)];
        let budget =
            paired::budget(s.rounds, arms.len(), f64::from(s.iperf_secs + test.omit(s.omit_secs)));
        let rounds = paired::run(test.id, &arms, s.rounds, s.max_rounds, budget, ctx.busy_share)?;
        let mut row = rounds.json();
        row["id"] = json!(test.id);
        row["what"] = json!(test.what);
        row["unit"] = json!(test.unit);
        row["ratio_slave0"] = rounds.compare(test.id, 1, 0);
        row["ratio_slave1"] = rounds.compare(test.id, 2, 0);
        row["target"] = json!(test.unit != "kpps");
        tests.push(row);
    }
    stop_agent(agent)?;
    Ok(json!({
        "secs": s.iperf_secs,
        "omit_secs": s.omit_secs,
        "rounds": s.rounds,
        "max_rounds": s.max_rounds,
        "busy_share": ctx.busy_share,
        "pinning": format!("iperf3 clients on CPU {}, servers on CPU {} (taskset), in every arm", client_cpu(), server_cpu()),
        "baseline": "a twin lab with 198.18.0.1/24 directly on veth17 (veth19 down), no agent, no BPF; client c1",
        "alb": "alb over veth17 + veth19; c1 is on slave 0 (veth17, the master's MAC), c2 on slave 1 (veth19)",
        "placement": placement,
        "target_ratio": 0.98,
        "tests": tests,
    }))
}

/// `tc qdisc replace dev <dev> root tbf rate 1gbit ...` in `ns`.
fn shape(lab: &Lab, ns: &str, dev: &str) -> Result<()> {
    lab.run(
        ns,
        &[
            "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", "1gbit", "burst", "256kb",
            "latency", "20ms",
        ],
    )
    .map(drop)
}

fn unshape(lab: &Lab, ns: &str, dev: &str) {
    // The lab goes with its namespaces anyway; a shaper left would only
    // slow the next figure, so say so.
    if let Err(error) = lab.exec(ns, &["tc", "qdisc", "del", "dev", dev, "root"]) {
        eprintln!("bench: cannot remove the shaper on {dev} in {ns}: {error:#}");
    }
}

/// All four clients at once, one iperf3 each; the sum in Gbit/s.
fn together(lab: &Lab, secs: u32, test: &Test) -> Result<(f64, Vec<f64>)> {
    let results: Vec<Result<f64>> = thread::scope(|scope| {
        let handles: Vec<_> = (1..=4)
            .map(|n| scope.spawn(move || client(lab, n, PORT + (n as u16 - 1), secs, 0, test)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("panicked"))))
            .collect()
    });
    let each = results.into_iter().collect::<Result<Vec<f64>>>()?;
    Ok((each.iter().sum(), each))
}

/// Figure 3: every slave (both ends) shaped to 1 Gbit/s; four clients at
/// once through one plain veth (the twin lab), then through alb over two
/// slaves, alternating.
pub(crate) fn aggregation(ctx: &Ctx, lab: &Lab, plain: &Lab) -> Result<Value> {
    let s = &ctx.sizes;
    let result = (|| {
        for l in [lab, plain] {
            for slave in l.slaves() {
                shape(l, l.srv(), &slave.name)?;
                shape(l, l.sw(), &slave.port)?;
            }
        }
        let _servers = (servers(lab, 4)?, servers(plain, 4)?);
        let agent = start_agent(ctx, lab, 2, &[])?;
        learn_clients(lab, &[1, 2, 3, 4])?;
        learn_clients(plain, &[1, 2, 3, 4])?;
        let placement = agent.status()?.client_slaves();
        let tests = [&TESTS[0], &TESTS[1]];
        let mut rows = Vec::new();
        for test in tests {
            let (mut base, mut alb) = (Vec::new(), Vec::new());
            for _ in 0..s.agg_rounds {
                super::signals_check()?;
                base.push(together(plain, s.agg_secs, test)?);
                alb.push(together(lab, s.agg_secs, test)?);
            }
            let sums = |v: &[(f64, Vec<f64>)]| v.iter().map(|x| x.0).collect::<Vec<f64>>();
            let (b, a) = (median(&sums(&base)), median(&sums(&alb)));
            rows.push(json!({
                "id": test.id.replace("tcp1", "agg4"),
                "what": test.what.replace("TCP, 1 stream", "4 clients x 1 TCP stream"),
                "unit": "Gbit/s",
                "baseline": { "sum": b, "rounds": base },
                "alb": { "sum": a, "rounds": alb, "each": alb.last().map(|x| x.1.clone()) },
                "ratio": a / b,
            }));
        }
        stop_agent(agent)?;
        Ok(json!({
            "secs": s.agg_secs,
            "rounds": s.agg_rounds,
            "shaping": "tbf rate 1gbit burst 256kb latency 20ms on every slave and on its switch port (both directions)",
            "baseline": "one link: a twin lab with 198.18.0.1/24 on veth17 (veth19 down), no BPF",
            "alb": "alb over veth17 + veth19",
            "placement": placement,
            "target_ratio": 1.95,
            "tests": rows,
        }))
    })();
    for l in [lab, plain] {
        for slave in l.slaves() {
            unshape(l, l.srv(), &slave.name);
            unshape(l, l.sw(), &slave.port);
        }
    }
    result
}
