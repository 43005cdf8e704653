//! The noise-free gate of the data path's size: every program's translated
//! instructions (after the verifier) and JIT-compiled bytes, as the kernel
//! reports them for a freshly loaded object, may not grow more than the
//! baseline's margin over tests/insn-baseline.json. Time is measured by
//! `cargo xtask bench`; this catches a fast path that grew without anyone
//! deciding it should, on any machine, however busy.
//!
//! A deliberate growth (a step that measures faster though bigger):
//! `ALB_UPDATE_INSN_BASELINE=1 cargo test -p alb-tests --test insns`, then
//! commit tests/insn-baseline.json saying why.
//!
//! Needs root and BPF.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

use std::path::PathBuf;

use alb::datapath::Datapath;
use alb_tests::fixtures::sizes::{ProgramSize, program_sizes};
use serde::{Deserialize, Serialize};

/// tests/insn-baseline.json.
#[derive(Debug, Serialize, Deserialize)]
struct Baseline {
    /// How much a program may grow, in percent of its baseline.
    margin_percent: u32,
    /// Where the figures were taken (jited bytes depend on the kernel's
    /// JIT, translated instructions a little on its verifier).
    kernel: String,
    /// The nightly compiler that built the object (bootstrap does not pin
    /// one, and its code generation moves a little between nightlies).
    #[serde(default)]
    compiler: String,
    programs: Vec<ProgramSize>,
}

const UPDATE: &str = "ALB_UPDATE_INSN_BASELINE";
const MARGIN_PERCENT: u32 = 10;

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("insn-baseline.json")
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()
}

/// `rustc --version` of the nightly that builds the BPF object.
fn compiler() -> String {
    std::process::Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `new` over `old`, in percent (100: unchanged).
fn percent(new: u32, old: u32) -> f64 {
    100.0 * f64::from(new) / f64::from(old.max(1))
}

#[test]
fn no_program_grew_past_its_baseline() {
    let mut datapath = Datapath::load(None, 1024)
        .unwrap_or_else(|e| panic!("cannot load the BPF object (root and BPF needed): {e:#}"));
    let sizes = program_sizes(&mut datapath).unwrap_or_else(|e| panic!("program sizes: {e:#}"));
    let path = baseline_path();

    if std::env::var_os(UPDATE).is_some() {
        let baseline = Baseline {
            margin_percent: MARGIN_PERCENT,
            kernel: kernel(),
            compiler: compiler(),
            programs: sizes,
        };
        let text = serde_json::to_string_pretty(&baseline).expect("JSON") + "\n";
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("wrote {}: {:#?}", path.display(), baseline.programs);
        return;
    }

    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with {UPDATE}=1 cargo test -p alb-tests --test insns",
            path.display()
        )
    });
    let baseline: Baseline = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not a baseline: {e}", path.display()));
    let limit = 100.0 + f64::from(baseline.margin_percent);
    let mut grown = Vec::new();
    eprintln!(
        "program   xlated insns (baseline → now)   jited bytes (baseline → now)   verified insns now \
         [baseline: Linux {}, {}; now: Linux {}, {}]",
        baseline.kernel,
        baseline.compiler,
        kernel(),
        compiler()
    );
    for now in &sizes {
        let Some(old) = baseline.programs.iter().find(|p| p.name == now.name) else {
            grown.push(format!("{}: not in the baseline", now.name));
            continue;
        };
        let (xlated, jited) = (
            percent(now.xlated_insns, old.xlated_insns),
            percent(now.jited_bytes, old.jited_bytes),
        );
        eprintln!(
            "{:8}  {:5} → {:5} ({xlated:5.1}%)            {:6} → {:6} ({jited:5.1}%)          {:?}",
            now.name,
            old.xlated_insns,
            now.xlated_insns,
            old.jited_bytes,
            now.jited_bytes,
            now.verified_insns
        );
        if xlated > limit {
            grown.push(format!(
                "{}: {} translated instructions, {xlated:.1}% of the baseline's {}",
                now.name, now.xlated_insns, old.xlated_insns
            ));
        }
        if jited > limit {
            grown.push(format!(
                "{}: {} JIT bytes, {jited:.1}% of the baseline's {}",
                now.name, now.jited_bytes, old.jited_bytes
            ));
        }
    }
    assert!(
        grown.is_empty(),
        "the data path grew by more than {}% over {}:\n  {}\n\
         If the growth is deliberate (measured faster with `cargo xtask bench --only cost`), \
         update the baseline with `{UPDATE}=1 cargo test -p alb-tests --test insns` and commit \
         tests/insn-baseline.json saying why.",
        baseline.margin_percent,
        path.display(),
        grown.join("\n  ")
    );
}
