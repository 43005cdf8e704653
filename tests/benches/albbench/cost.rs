//! Figure 1: the per-packet cost of `alb_tx` and `alb_rx` through
//! `BPF_PROG_TEST_RUN`, as the kernel reports it (mean ns per run), for the
//! rows of the fixture table marked as benchmark cases
//! (`alb_tests::fixtures::table`, `Case::bench`), next to the floor of the
//! method and the size of every program.
//!
//! Each case runs in a freshly loaded object set up as its suite says,
//! after the suite's rows before it (each checked as the fixture test
//! checks it), and its own row is checked once more. Then it runs *hot*:
//! `repeat` runs per test-run call, checked by comparing the reason
//! counters of the whole call with `repeat` times those of the row.
//!
//! Test-run runs the program `repeat` times on one skb and never restores
//! it, so a program that rewrites the frame would see its own output from
//! the second run on. Such rows run through [`Restore`]: a program that
//! writes the row's original bytes back and tail-calls the program under
//! test, so every run takes the row's path; the same restore tail-calling
//! an empty program is measured in the same round, and the difference,
//! plus the floor, is the row's hot figure.

use std::os::fd::{AsFd as _, BorrowedFd};

use alb_common::{reason::Reason, sampling::DEFAULT_CLIENT_SAMPLING};
use alb_tests::fixtures::{
    Case, Lab, Out, Program, Suite,
    lab::{LINEAR_MAX, ctx as row_ctx},
    sizes::program_sizes,
    table,
};
use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

// The scale figure drives objects by hand with these.
pub(crate) use crate::object::{Object, TC_ACT_REDIRECT, ctx};
use crate::raw::{Empty, Restore};

/// Known-client rows measured a second time with every frame counted in
/// the client's counters (`client_sampling` 1), under their own id: what
/// the default sampling saves.
const EXACT: [(&str, &str); 2] =
    [("tx_tcp_client", "exact_tx_tcp_client"), ("rx_tcp_client", "exact_rx_tcp_client")];

/// The rows of the table that are benchmark cases: (id, suite, row index,
/// `client_sampling`). Every row runs hot with the agent's default
/// sampling; [`EXACT`]'s rows once more with every frame counted.
fn cases(only: Option<&str>) -> Vec<(&'static str, Suite, usize, u32)> {
    let mut cases = Vec::new();
    for suite in table::all() {
        for (i, (_, case)) in suite.rows.iter().enumerate() {
            let Some(id) = case.bench else { continue };
            if only.is_none_or(|only| only == id) {
                cases.push((id, suite.clone(), i, DEFAULT_CLIENT_SAMPLING));
            }
            for (_, exact) in EXACT.iter().filter(|(of, _)| *of == id) {
                if only.is_none_or(|only| only == *exact) {
                    cases.push((exact, suite.clone(), i, 1));
                }
            }
        }
    }
    // alb_tx's rows first, then alb_rx's, each in table order.
    cases.sort_by_key(|(_, suite, i, _)| suite.rows[*i].0 != Program::Tx);
    cases
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

/// The reason counters a row moves, `times` over.
fn path(case: &Case, times: u64) -> Vec<String> {
    let zero = vec![0u64; Reason::ALL.len()];
    let mut after = zero.clone();
    for reason in &case.reasons {
        after[*reason as usize] += times;
    }
    moved(&zero, &after)
}

/// A case ready to run: its object in the state its row starts from.
struct Prepared {
    id: &'static str,
    suite: &'static str,
    program: Program,
    case: Case,
    frame: Vec<u8>,
    ctx: Vec<u8>,
    lab: Lab,
    /// For a row that rewrites the frame: what writes its bytes back.
    restore: Option<Restore>,
    /// For a row of [`CHECKED`]: a restore of bytes it leaves alone, to
    /// compare the two methods on one path.
    check: Option<Restore>,
    /// Its `client_sampling` when hot.
    sampling: u32,
}

/// Unchanged rows also measured through a restore (of their Ethernet
/// source, TX, or destination, RX: a write of the bytes already there):
/// the method check, one per program.
const CHECKED: [&str; 2] = ["tx_tcp_client", "rx_tcp_client"];

impl Prepared {
    fn new(id: &'static str, suite: &Suite, row: usize, sampling: u32) -> Result<Self> {
        let (program, case) = suite.rows[row].clone();
        // Replays the rows before it, then checks the row itself once
        // (every frame counted, as the fixture tests check them); it runs
        // hot with `sampling`.
        let mut lab = Lab::replay(suite, row);
        lab.check(program, &case);
        lab.set_client_sampling(sampling);
        let frame = if case.jumbo { case.frame[..LINEAR_MAX].to_vec() } else { case.frame.clone() };
        let restore = match &case.out {
            Out::Unchanged => None,
            Out::Patched(patches) => {
                let start = patches.iter().map(|(at, _)| *at).min().unwrap_or(0);
                let end = patches.iter().map(|(at, b)| at + b.len()).max().unwrap_or(0);
                Some(Restore::load(start, &frame[start..end]).context(id)?)
            }
        };
        let check = if restore.is_none() && CHECKED.contains(&id) {
            let at = if program == Program::Tx { 6 } else { 0 };
            Some(Restore::load(at, &frame[at..at + 6]).context(id)?)
        } else {
            None
        };
        lab.drain_events();
        Ok(Self {
            sampling,
            check,
            id,
            suite: suite.name,
            program,
            frame,
            ctx: row_ctx(program, false).to_vec(),
            lab,
            restore,
            case,
        })
    }

    /// One hot call: mean ns per run and the counters the call moved.
    fn hot(&mut self, repeat: u32) -> Result<(u32, Vec<String>)> {
        let before = self.lab.counters();
        let run = self
            .lab
            .run_repeated(self.program.name(), &self.frame, &self.ctx, repeat)
            .with_context(|| format!("test-run of {}", self.id))?;
        ensure!(run.action == self.case.action, "{}: action {}", self.id, run.action);
        ensure!(run.out == self.frame, "{}: the frame changed, its row says unchanged", self.id);
        let path = moved(&before, &self.lab.counters());
        self.lab.drain_events();
        Ok((run.ns, path))
    }

    /// One hot call through [`Restore`] into the program, then one into
    /// `empty`: (program, empty) mean ns per run, and the counters moved.
    fn restored(
        &mut self,
        repeat: u32,
        empty: BorrowedFd<'_>,
        check: bool,
    ) -> Result<(u32, u32, Vec<String>)> {
        let restore = if check { &self.check } else { &self.restore };
        let restore = restore.as_ref().context("no restore")?;
        let program = self.lab.ebpf.program(self.program.name())?.fd()?.as_fd();
        restore.enter(program)?;
        let before = self.lab.counters();
        let (action, ns, out) = restore.run(&self.frame, &self.ctx, repeat)?;
        ensure!(action == self.case.action, "{} (restored): action {action}", self.id);
        // The last run, like the first, made the row's output frame.
        let expected = self.case.out.applied_to(&self.frame);
        ensure!(out == expected, "{} (restored): not the row's output frame", self.id);
        let path = moved(&before, &self.lab.counters());
        self.lab.drain_events();
        restore.enter(empty)?;
        let (action, empty_ns, _) = restore.run(&self.frame, &self.ctx, repeat)?;
        ensure!(action == 0, "{}: the restore into the empty program returned {action}", self.id);
        Ok((ns, empty_ns, path))
    }
}

fn summary(samples: &[i64]) -> Value {
    let mut samples = samples.to_vec();
    samples.sort_unstable();
    json!({
        "median_ns": samples[samples.len() / 2],
        "min_ns": samples[0],
        "max_ns": samples[samples.len() - 1],
        "samples_ns": samples,
    })
}

fn median(samples: &[i64]) -> i64 {
    let mut samples = samples.to_vec();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Figure 1. Samples are interleaved case by case, round by round, so
/// drift on a shared machine hits all cases alike.
pub(crate) fn run(repeat: u32, runs: usize, only: Option<&str>) -> Result<Value> {
    let empty = Empty::load()?;
    let mut prepared = cases(only)
        .iter()
        .map(|(id, suite, row, sampling)| Prepared::new(id, suite, *row, *sampling))
        .collect::<Result<Vec<_>>>()?;
    ensure!(!prepared.is_empty(), "no case {only:?}");
    let programs = program_sizes(&mut prepared[0].lab.ebpf)?;

    let floor_frame = prepared[0].frame.clone();
    let floor_ctx = row_ctx(Program::RX, false);
    let mut floor = Vec::new();
    let mut hot: Vec<Vec<i64>> = vec![Vec::new(); prepared.len()];
    let mut raw: Vec<(Vec<i64>, Vec<i64>)> = vec![(Vec::new(), Vec::new()); prepared.len()];
    let mut paths: Vec<Vec<String>> = vec![Vec::new(); prepared.len()];
    let mut checks: Vec<Vec<i64>> = vec![Vec::new(); prepared.len()];
    for _ in 0..runs {
        let floor_ns = i64::from(empty.run(&floor_frame, &floor_ctx, repeat)?);
        floor.push(floor_ns);
        for (i, case) in prepared.iter_mut().enumerate() {
            if case.restore.is_some() {
                let (ns, empty_ns, path) = case.restored(repeat, empty.fd(), false)?;
                raw[i].0.push(i64::from(ns));
                raw[i].1.push(i64::from(empty_ns));
                hot[i].push(i64::from(ns) - i64::from(empty_ns) + floor_ns);
                paths[i] = path;
            } else {
                let (ns, path) = case.hot(repeat)?;
                hot[i].push(i64::from(ns));
                paths[i] = path;
                if case.check.is_some() {
                    let (ns, empty_ns, _) = case.restored(repeat, empty.fd(), true)?;
                    raw[i].0.push(i64::from(ns));
                    raw[i].1.push(i64::from(empty_ns));
                    checks[i].push(i64::from(ns) - i64::from(empty_ns) + floor_ns);
                }
            }
        }
    }

    let out: Vec<Value> = prepared
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let expected = path(&c.case, u64::from(repeat));
            let mut v = summary(&hot[i]);
            v["path_over_all_runs"] = json!(paths[i]);
            v["stable"] = json!(paths[i] == expected);
            let restored = (!raw[i].0.is_empty()).then(|| {
                json!({
                    "through_restore_median_ns": median(&raw[i].0),
                    "restore_into_empty_median_ns": median(&raw[i].1),
                })
            });
            let check = (!checks[i].is_empty()).then(|| summary(&checks[i]));
            json!({
                "id": c.id,
                "suite": c.suite,
                "program": c.program.name(),
                "what": c.case.name,
                "frame_bytes": c.frame.len(),
                "client_sampling": c.sampling,
                "path": path(&c.case, 1),
                "rewrites_frame": c.restore.is_some(),
                "events": !c.case.events.is_empty(),
                "method": if c.restore.is_some() { "restore" } else { "direct" },
                "restore": restored,
                "hot_through_restore": check,
                "hot": v,
            })
        })
        .collect();
    Ok(json!({
        "repeat": repeat,
        "runs": runs,
        "floor": {
            "what": "an empty TC program (r0 = 0; exit) loaded with bpf(2): test-run's loop, timer and skb alone",
            "hot": summary(&floor),
        },
        "programs": programs,
        "cases": out,
    }))
}
