//! Figure 1: the per-packet cost of `alb_tx` and `alb_rx` through
//! `BPF_PROG_TEST_RUN`, as the kernel reports it (mean ns per run), for each
//! traffic type, next to the floor of the method.
//!
//! Test-run runs the program `repeat` times on one skb, so a program that
//! rewrites the frame sees its own output from the second run on (a frame
//! whose source MAC is already the slave's is no longer "from the master"
//! and takes another path). Cases are therefore of two kinds:
//!
//! - *hot* (repeat >= 1e6): frames the program leaves unchanged, so every
//!   run takes the same path; checked by comparing the reason counters of
//!   the whole run with `repeat` times those of one run;
//! - *single-shot* (repeat 1, many calls, each on a fresh copy of the
//!   frame): every case, the rewriting ones included, and the empty
//!   program; this adds the timer's own cost and colder caches to each run,
//!   so it is compared only with itself. A rewriting case's hot cost is
//!   estimated as its unchanged counterpart's hot cost plus the
//!   single-shot difference between the two.

use alb::datapath::{Datapath, Maps};
use alb_common::{
    maps::{CLIENT_MAC_KNOWN, ClientEntry, ClientKey},
    reason::Reason,
};
use anyhow::{Context as _, Result, ensure};
use aya::{
    maps::{MapData, RingBuf},
    programs::{TestRun as _, TestRunOptions},
};
use serde_json::{Value, json};

use crate::{frames::*, raw::Empty};

/// `TC_ACT_*` as test-run reports them.
pub(crate) const TC_ACT_OK: u32 = 0;
pub(crate) const TC_ACT_REDIRECT: u32 = 7;

/// `sizeof(struct __sk_buff)`, and the offset of `ifindex` in it.
const SK_BUFF_LEN: usize = 192;
const SK_BUFF_IFINDEX: usize = 40;

/// The `__sk_buff` test-run starts from: `ifindex` names the receiving
/// device (0: none, as on egress).
pub(crate) fn ctx(ifindex: u32) -> [u8; SK_BUFF_LEN] {
    let mut ctx = [0u8; SK_BUFF_LEN];
    ctx[SK_BUFF_IFINDEX..SK_BUFF_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// One test-run: the return code, the kernel's mean ns per run, the frame
/// after the (last) run.
pub(crate) struct Run {
    pub(crate) action: u32,
    pub(crate) ns: u32,
    pub(crate) out: Vec<u8>,
}

/// A loaded object with published state and its maps.
pub(crate) struct Object {
    pub(crate) ebpf: Datapath,
    pub(crate) maps: Maps,
    pub(crate) events: RingBuf<MapData>,
}

impl Object {
    /// A fresh object (maps not pinned) with two up slaves on these
    /// ifindexes and the clients c1 (slave 0) and c2 (slave 1).
    pub(crate) fn new(s0_ifindex: u32, s1_ifindex: u32) -> Result<Self> {
        let mut ebpf = Datapath::load(None, 1024)
            .context("cannot load the BPF object (root and BPF needed)")?;
        let state = state(s0_ifindex, s1_ifindex);
        ebpf.publish(&state, alb_common::assign::Slots::new(&state.usable()).slaves())?;
        let mut object = Self::from_loaded(ebpf)?;
        object.add_client(ClientKey::new(SERVER, C1, 0), C1_MAC, 0)?;
        object.add_client(ClientKey::new(SERVER, C2, 0), C2_MAC, 1)?;
        Ok(object)
    }

    pub(crate) fn from_loaded(mut ebpf: Datapath) -> Result<Self> {
        let events = ebpf.take_ring()?;
        let maps = ebpf.take_maps()?;
        Ok(Self { ebpf, maps, events })
    }

    /// `slot`: the new-slot deal points slot 0 at slave 0 and slot 1 at slave 1.
    fn add_client(&mut self, key: ClientKey, mac: [u8; 6], slot: u32) -> Result<()> {
        let entry = ClientEntry { mac, slot, flags: CLIENT_MAC_KNOWN, ..ClientEntry::default() };
        self.maps.clients.insert(key, entry, 0)?;
        Ok(())
    }

    /// Runs `frame` `repeat` times.
    pub(crate) fn run(
        &mut self,
        program: &str,
        frame: &[u8],
        ctx: &[u8],
        repeat: u32,
    ) -> Result<Run> {
        let mut out = vec![0u8; frame.len() + 256];
        let classifier = self.ebpf.program(program)?;
        let result = classifier
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(ctx),
                repeat,
                ..TestRunOptions::default()
            })
            .with_context(|| format!("test-run of {program}"))?;
        out.truncate(result.data_size_out as usize);
        let ns = u32::try_from(result.duration.as_nanos()).unwrap_or(u32::MAX);
        Ok(Run { action: result.return_value, ns, out })
    }

    /// Empties the event ring (nobody else reads it here).
    pub(crate) fn drain_events(&mut self) {
        while self.events.next().is_some() {}
    }

    fn counters(&self) -> Result<Vec<u64>> {
        Ok(self.maps.counters()?.into_iter().map(|(_, v)| v).collect())
    }
}

/// `reason+n` for every counter that moved from `before` to `after`.
fn moved(before: &[u64], after: &[u64]) -> Vec<String> {
    Reason::ALL
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| a != b)
        .map(|(reason, (b, a))| format!("{}+{}", reason.name(), a - b))
        .collect()
}

/// Which loaded object a case runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    /// Slave 0 on `lo` (RX frames arrive on the active slave).
    Slave0,
    /// Slave 1 on `lo` (RX frames arrive on the non-active slave).
    Slave1,
    /// No slave on `lo`: `alb_rx` runs on a device that is no slave.
    Stranger,
}

/// One benchmarked traffic type.
struct Case {
    id: &'static str,
    program: &'static str,
    what: &'static str,
    frame: Vec<u8>,
    on: On,
    action: u32,
    /// Runs the ring-buffer event path: the ring fills after a few
    /// thousand runs and the rest measure a full ring (nobody reads it).
    events: bool,
    /// The unchanged case this rewriting case is estimated from.
    counterpart: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let case = |id, program, what, frame, on| Case {
        id,
        program,
        what,
        frame,
        on,
        action: TC_ACT_REDIRECT,
        events: false,
        counterpart: None,
    };
    let tx = |id, what, frame| case(id, "alb_tx", what, frame, On::Slave0);
    let rx = |id, what, frame| case(id, "alb_rx", what, frame, On::Slave0);
    let (stranger0, stranger1) = (stranger_on(0), stranger_on(1));
    vec![
        tx(
            "tx_arp_reply",
            "host ARP reply to a known client on slave 0",
            arp(C1_MAC, MASTER_MAC, ARP_REPLY, MASTER_MAC, SERVER, C1_MAC, C1),
        ),
        Case {
            counterpart: Some("tx_arp_reply"),
            ..tx(
                "tx_arp_reply_s1",
                "host ARP reply to a known client on slave 1 (Ethernet source and ARP sender \
                 rewritten)",
                arp(C2_MAC, MASTER_MAC, ARP_REPLY, MASTER_MAC, SERVER, C2_MAC, C2),
            )
        },
        tx(
            "tx_tcp_client",
            "IPv4 TCP to a known client on slave 0",
            tcp4(C1_MAC, MASTER_MAC, SERVER, C1, 64),
        ),
        Case {
            counterpart: Some("tx_tcp_client"),
            ..tx(
                "tx_tcp_client_s1",
                "IPv4 TCP to a known client on slave 1 (source MAC rewritten)",
                tcp4(C2_MAC, MASTER_MAC, SERVER, C2, 64),
            )
        },
        tx(
            "tx_tcp_unknown",
            "IPv4 TCP to an unknown destination (by bucket, slave 0)",
            tcp4(STRANGER_MAC, MASTER_MAC, SERVER, stranger0, 64),
        ),
        Case {
            counterpart: Some("tx_tcp_unknown"),
            ..tx(
                "tx_tcp_unknown_s1",
                "IPv4 TCP to an unknown destination (by bucket, slave 1: source MAC rewritten)",
                tcp4(STRANGER_MAC, MASTER_MAC, SERVER, stranger1, 64),
            )
        },
        tx(
            "tx_broadcast",
            "IPv4 UDP broadcast (active slave)",
            udp4(BROADCAST, MASTER_MAC, SERVER, [198, 18, 0, 255], 64),
        ),
        tx(
            "tx_ipv6",
            "IPv6 TCP (by bucket, slave 0)",
            tcp6(STRANGER_MAC, MASTER_MAC, SERVER6, peer6_on(0), 64),
        ),
        Case {
            events: true,
            ..rx(
                "rx_arp_request",
                "client ARP request (broadcast, on the active slave; event ring full after \
                 ~8k runs)",
                arp(BROADCAST, C1_MAC, ARP_REQUEST, C1_MAC, C1, [0; 6], SERVER),
            )
        },
        rx(
            "rx_tcp_client",
            "IPv4 TCP from a known client, on slave 0",
            tcp4(S0_MAC, C1_MAC, C1, SERVER, 64),
        ),
        Case {
            counterpart: Some("rx_tcp_client"),
            on: On::Slave1,
            ..rx(
                "rx_tcp_client_s1",
                "IPv4 TCP from a known client, on slave 1 (destination MAC rewritten)",
                tcp4(S1_MAC, C2_MAC, C2, SERVER, 64),
            )
        },
        rx(
            "rx_broadcast",
            "IPv4 UDP broadcast on the active slave",
            udp4(BROADCAST, C1_MAC, C1, [198, 18, 0, 255], 64),
        ),
        rx(
            "rx_ipv6",
            "IPv6 TCP to the master's MAC",
            tcp6(S0_MAC, C1_MAC, peer6_on(0), SERVER6, 64),
        ),
        Case {
            action: TC_ACT_OK,
            on: On::Stranger,
            ..rx(
                "rx_not_a_slave",
                "any frame on a device that is no slave (floor of alb_rx: one hash miss, one \
                 counter)",
                tcp4(S0_MAC, C1_MAC, C1, SERVER, 64),
            )
        },
    ]
}

fn summary(samples: &mut [u32]) -> Value {
    samples.sort_unstable();
    json!({
        "median_ns": samples[samples.len() / 2],
        "min_ns": samples[0],
        "max_ns": samples[samples.len() - 1],
        "samples_ns": samples,
    })
}

fn mean(values: &[u32]) -> f64 {
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len().max(1) as f64
}

/// Figure 1. Samples are interleaved case by case, round by round, so
/// drift on a shared machine hits all cases alike.
pub(crate) fn run(repeat: u32, runs: usize, only: Option<&str>) -> Result<Value> {
    let mut objects =
        [Object::new(LO, VETH19)?, Object::new(VETH17, LO)?, Object::new(VETH17, VETH19)?];
    let index = |on: On| match on {
        On::Slave0 => 0,
        On::Slave1 => 1,
        On::Stranger => 2,
    };
    let empty = Empty::load()?;
    // `--case ID`: one case alone (for profiling it with perf).
    let cases: Vec<Case> =
        cases().into_iter().filter(|c| only.is_none_or(|id| c.id == id)).collect();
    ensure!(!cases.is_empty(), "no case {only:?}");

    // One run each: the path, and whether the program rewrites the frame
    // (then test-run's later runs would see the rewritten frame).
    let mut paths = Vec::new();
    let mut rewrites = Vec::new();
    for case in &cases {
        let object = &mut objects[index(case.on)];
        let ifindex = if case.program == "alb_rx" { LO } else { 0 };
        let before = object.counters()?;
        let run = object.run(case.program, &case.frame, &ctx(ifindex), 1)?;
        ensure!(
            run.action == case.action,
            "{}: action {}, expected {}",
            case.id,
            run.action,
            case.action
        );
        paths.push(moved(&before, &object.counters()?));
        rewrites.push(run.out != case.frame);
    }

    let single_calls = (repeat / 50).clamp(200, 20_000);
    let mut hot: Vec<Vec<u32>> = vec![Vec::new(); cases.len()];
    let mut hot_paths: Vec<Vec<String>> = vec![Vec::new(); cases.len()];
    let mut single: Vec<Vec<u32>> = vec![Vec::new(); cases.len()];
    let (mut empty_hot, mut empty_single) = (Vec::new(), Vec::new());
    let floor_frame = tcp4(S0_MAC, C1_MAC, C1, SERVER, 64);
    for _ in 0..runs {
        empty_hot.push(empty.run(&floor_frame, &ctx(LO), repeat)?);
        for (i, case) in cases.iter().enumerate() {
            let object = &mut objects[index(case.on)];
            let ifindex = if case.program == "alb_rx" { LO } else { 0 };
            if !rewrites[i] {
                object.drain_events();
                let before = object.counters()?;
                hot[i].push(object.run(case.program, &case.frame, &ctx(ifindex), repeat)?.ns);
                hot_paths[i] = moved(&before, &object.counters()?);
            }
        }
        // Single-shot: the calls of every case and of the empty program in
        // turn, `single_calls / runs` each per round.
        for _ in 0..(single_calls as usize / runs).max(1) {
            empty_single.push(empty.run(&floor_frame, &ctx(LO), 1)?);
            for (i, case) in cases.iter().enumerate() {
                let object = &mut objects[index(case.on)];
                let ifindex = if case.program == "alb_rx" { LO } else { 0 };
                single[i].push(object.run(case.program, &case.frame, &ctx(ifindex), 1)?.ns);
            }
            objects.iter_mut().for_each(Object::drain_events);
        }
    }

    let single_mean: Vec<f64> = single.iter().map(|s| mean(s)).collect();
    let empty_single_mean = mean(&empty_single);
    let hot_median: Vec<Option<u32>> = hot
        .iter()
        .map(|h| {
            let mut h = h.clone();
            h.sort_unstable();
            h.get(h.len() / 2).copied()
        })
        .collect();
    let mut out = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        // The whole run must have taken one run's path `repeat` times.
        let stable = !rewrites[i]
            && hot_paths[i]
                == paths[i]
                    .iter()
                    .map(|p| {
                        let (name, n) = p.rsplit_once('+').unwrap_or((p, "1"));
                        format!("{name}+{}", n.parse::<u64>().unwrap_or(1) * u64::from(repeat))
                    })
                    .collect::<Vec<_>>();
        let estimate = case.counterpart.and_then(|id| {
            let j = cases.iter().position(|c| c.id == id)?;
            Some(f64::from(hot_median[j]?) + single_mean[i] - single_mean[j])
        });
        let mut hot_samples = hot[i].clone();
        out.push(json!({
            "id": case.id,
            "program": case.program,
            "what": case.what,
            "frame_bytes": case.frame.len(),
            "path": paths[i],
            "rewrites_frame": rewrites[i],
            "events": case.events,
            "hot": if hot_samples.is_empty() {
                Value::Null
            } else {
                let mut v = summary(&mut hot_samples);
                v["path_over_all_runs"] = json!(hot_paths[i]);
                v["stable"] = json!(stable);
                v
            },
            "single_shot_mean_ns": single_mean[i],
            "estimated_hot_ns": estimate,
            "counterpart": case.counterpart,
        }));
    }
    Ok(json!({
        "repeat": repeat,
        "runs": runs,
        "single_shot_calls": single.first().map_or(0, Vec::len),
        "floor": {
            "what": "an empty TC program (r0 = 0; exit) loaded with bpf(2): test-run's loop, timer and skb alone",
            "hot": summary(&mut empty_hot),
            "single_shot_mean_ns": empty_single_mean,
        },
        "cases": out,
    }))
}
