//! The Rust integration test binaries inside a guest (`vm-test --tests`):
//! built once on the host ([`build`]), put into the guest's initramfs at
//! their host paths with the `alb` binary next to them and the repository
//! files they read ([`add_to_tree`]), run there one by one by the guest's
//! runner (guest-tests.sh), whose console output [`Collector`] parses. A
//! guest passes only when every test a binary lists on the host ran and
//! passed and every binary exited 0 ([`Collector::verdict`]).

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use alb_tests::cmd;
use anyhow::{Context as _, Result, bail};

use super::initramfs::Tree;
use crate::cargo;

/// The binaries `vm-test` runs when `--tests` is not given (issue 21's
/// named list: the whole suite is too slow under TCG).
pub(crate) const DEFAULT_TESTS: &[&str] = &[
    "seed",
    "failover",
    "runtime",
    "cli",
    "config",
    "privileges",
    "faults",
    "vlan",
    "ipv6",
    "vms",
    "events",
    "counters",
];

/// The factor `ALB_TEST_TIME_SCALE` gets in the guests: TCG runs the
/// agent and the tools several times slower than the host.
pub(crate) const TCG_TIME_SCALE: &str = "4";

/// The guest's runner (its /init with `--tests`).
pub(crate) const RUNNER: &str = include_str!("guest-tests.sh");

/// One test binary of the `alb-tests` package, built for the guest.
#[derive(Clone, Debug)]
pub(crate) struct TestBinary {
    /// Its name (`seed` for tests/tests/seed.rs).
    pub(crate) name: String,
    /// Where cargo put it (target/debug/deps/seed-<hash>): the path it has
    /// in the guest too.
    pub(crate) path: PathBuf,
    /// The tests it lists on the host (`--list`): what the guest must run.
    pub(crate) expected: Vec<String>,
}

/// Builds the integration test binaries of `alb-tests` (once, all of them)
/// and the debug agent they exec, and returns the binaries named in
/// `names` (in that order) with their expected tests, and the agent's path.
pub(crate) fn build(names: &[String]) -> Result<(Vec<TestBinary>, PathBuf)> {
    let alb = cargo::build_agent(cargo::Profile::Debug)?;
    // The package selection of `cargo xtask test` (suite.rs), so that the
    // guest runs the binaries the host's passes built and ran, not a second
    // build with other features (`-p alb-tests` alone resolves others).
    let mut build = cargo::cargo();
    build.args([
        "test",
        "--workspace",
        "--exclude",
        "alb-ebpf",
        "--no-run",
        "--message-format=json",
    ]);
    eprintln!("vm-test: building the test binaries ({})", cmd::describe(&build));
    let out = cmd::output(build.stderr(std::process::Stdio::inherit()))?;
    if !out.status.success() {
        bail!("building the test binaries failed ({})", out.status);
    }
    let manifest = cargo::root().join("tests").join("Cargo.toml");
    let built = test_executables(&String::from_utf8_lossy(&out.stdout), &manifest);
    let mut binaries = Vec::new();
    for name in names {
        let path = built.get(name.as_str()).with_context(|| {
            format!(
                "no test binary {name:?} in alb-tests (there are: {})",
                built.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let expected = list(path)?;
        if expected.is_empty() {
            bail!("{} lists no test", path.display());
        }
        binaries.push(TestBinary { name: name.clone(), path: path.clone(), expected });
    }
    Ok((binaries, alb))
}

/// The integration test executables of the package of `manifest` in
/// cargo's JSON messages, by name.
fn test_executables(messages: &str, manifest: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact"
            || message["target"]["kind"][0] != "test"
            || message["manifest_path"].as_str().map(Path::new) != Some(manifest)
        {
            continue;
        }
        let (Some(name), Some(exe)) =
            (message["target"]["name"].as_str(), message["executable"].as_str())
        else {
            continue;
        };
        found.insert(name.to_owned(), PathBuf::from(exe));
    }
    found
}

/// The tests `binary` lists on the host, ignored ones included.
fn list(binary: &Path) -> Result<Vec<String>> {
    let out = cmd::run(Command::new(binary).arg("--list"))?;
    Ok(out.lines().filter_map(|l| l.strip_suffix(": test")).map(str::to_owned).collect())
}

/// A copy of `binary` without debug information in `dir` (the guest's
/// RAM holds the initramfs).
fn stripped(binary: &Path, dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let name = binary.file_name().context("a binary without a file name")?;
    let out = dir.join(name);
    cmd::run(Command::new("objcopy").arg("--strip-debug").arg(binary).arg(&out))?;
    Ok(out)
}

/// The repository files the test binaries read through
/// `env!("CARGO_MANIFEST_DIR")` (tests/): the packaging directory and the
/// instruction baseline, at their host paths.
fn manifest_files() -> Result<Vec<PathBuf>> {
    let root = cargo::root();
    let mut files = vec![root.join("tests").join("insn-baseline.json")];
    let mut dirs = vec![root.join("packaging")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    Ok(files)
}

/// Adds the binaries (stripped copies made in `work`, each at its host
/// path), the agent `alb` where `alb_bin()` of tests/tests/common finds it
/// (target/debug/alb, next to deps/) and the manifest files to `tree`; and
/// /etc/alb-vm-tests, the runner's list ("NAME PATH" a line).
pub(crate) fn add_to_tree(
    tree: &mut Tree,
    binaries: &[TestBinary],
    alb: &Path,
    work: &Path,
) -> Result<()> {
    let strip_dir = work.join("stripped");
    let mut list = String::new();
    for binary in binaries {
        let host = binary.path.to_str().context("a test binary's path is not UTF-8")?;
        tree.binary(&stripped(&binary.path, &strip_dir)?, host)?;
        list.push_str(&format!("{} {host}\n", binary.name));
        // The agent next to deps/ (target/debug/alb).
        let next_to = binary.path.parent().and_then(Path::parent).map(|dir| dir.join("alb"));
        let next_to = next_to.context("a test binary outside target/<profile>/deps")?;
        anyhow::ensure!(
            next_to == alb,
            "the agent is at {}, but the tests look for it at {}",
            alb.display(),
            next_to.display()
        );
    }
    let guest_alb = alb.to_str().context("the agent's path is not UTF-8")?;
    tree.binary(&stripped(alb, &strip_dir)?, guest_alb)?;
    for file in manifest_files()? {
        let guest = file.to_str().context("a repository path is not UTF-8")?;
        let mode =
            if fs::metadata(&file)?.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
        tree.file(guest, mode, fs::read(&file)?);
    }
    tree.file("etc/alb-vm-tests", 0o644, list.into_bytes());
    tree.file("etc/alb-vm-time-scale", 0o644, TCG_TIME_SCALE.as_bytes().to_vec());
    Ok(())
}

/// How one test ended, as libtest printed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Failed,
    Ignored,
}

/// What one binary did in the guest.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BinaryRun {
    /// Each test's outcome, in the order they ran.
    pub(crate) tests: Vec<(String, Outcome)>,
    /// The test that began (`test NAME ... `) and has no outcome yet: the
    /// one running when the binary died.
    pub(crate) running: Option<String>,
    /// The binary's exit code (from the runner's end marker), `None` if
    /// the marker never came.
    pub(crate) exit: Option<i32>,
}

/// Parses the runner's console output line by line: its markers
/// (`@@ALB-TEST-BEGIN NAME`, `@@ALB-TEST-END NAME CODE`) and, between
/// them, libtest's `test NAME ... ok|FAILED|ignored` lines (the outcome
/// may come on a later line when something else wrote to the console
/// while the test ran).
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) runs: BTreeMap<String, BinaryRun>,
    current: Option<String>,
}

/// libtest's outcome word at the end of a result line.
fn outcome_word(text: &str) -> Option<Outcome> {
    match text.trim() {
        "ok" => Some(Outcome::Ok),
        "FAILED" => Some(Outcome::Failed),
        t if t == "ignored" || t.starts_with("ignored,") => Some(Outcome::Ignored),
        _ => None,
    }
}

impl Collector {
    /// Takes one console line.
    pub(crate) fn line(&mut self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(rest) = line.split_once("@@ALB-TEST-BEGIN ").map(|(_, r)| r) {
            let name = rest.trim().to_owned();
            self.runs.insert(name.clone(), BinaryRun::default());
            self.current = Some(name);
            return;
        }
        if let Some(rest) = line.split_once("@@ALB-TEST-END ").map(|(_, r)| r) {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(code)) = (words.next(), words.next()) {
                let run = self.runs.entry(name.to_owned()).or_default();
                run.exit = Some(code.parse().unwrap_or(-1));
            }
            self.current = None;
            return;
        }
        let Some(run) = self.current.as_ref().and_then(|name| self.runs.get_mut(name)) else {
            return;
        };
        if let Some(rest) = line.strip_prefix("test ") {
            if let Some((name, result)) = rest.split_once(" ... ") {
                match outcome_word(result) {
                    Some(outcome) => {
                        run.tests.push((name.to_owned(), outcome));
                        run.running = None;
                    }
                    None => run.running = Some(name.to_owned()),
                }
                return;
            }
        }
        // The outcome of the running test on a line of its own.
        if let Some(outcome) = outcome_word(line) {
            if let Some(name) = run.running.take() {
                run.tests.push((name, outcome));
            }
        }
    }

    /// Whether every binary ran every test it lists and all passed: the
    /// problems found, one line each (empty: the guest passed), and the
    /// tests passed and failed.
    pub(crate) fn verdict(&self, binaries: &[TestBinary]) -> Verdict {
        let mut verdict = Verdict::default();
        for binary in binaries {
            let Some(run) = self.runs.get(&binary.name) else {
                verdict.problems.push(format!("{}: never started", binary.name));
                continue;
            };
            let outcomes: BTreeMap<&str, Outcome> =
                run.tests.iter().map(|(n, o)| (n.as_str(), *o)).collect();
            for test in &binary.expected {
                match outcomes.get(test.as_str()) {
                    Some(Outcome::Ok) => verdict.passed += 1,
                    Some(Outcome::Failed) => {
                        verdict.failed.push(format!("{}::{test}", binary.name));
                    }
                    Some(Outcome::Ignored) => {
                        verdict.problems.push(format!("{}::{test}: ignored", binary.name));
                    }
                    None => verdict.problems.push(format!("{}::{test}: did not run", binary.name)),
                }
            }
            for (test, _) in &run.tests {
                if !binary.expected.contains(test) {
                    verdict
                        .problems
                        .push(format!("{}::{test}: not in the host's list", binary.name));
                }
            }
            if let Some(test) = &run.running {
                verdict.problems.push(format!("{}::{test}: began and never ended", binary.name));
            }
            match run.exit {
                Some(0) => {}
                Some(code) => verdict.problems.push(format!("{}: exit code {code}", binary.name)),
                None => verdict.problems.push(format!("{}: never ended", binary.name)),
            }
        }
        verdict
    }
}

/// A guest's result over its binaries.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) passed: usize,
    /// `binary::test` of each test that failed.
    pub(crate) failed: Vec<String>,
    /// Anything else that fails the guest (a test missing, a binary that
    /// died or exited non-zero).
    pub(crate) problems: Vec<String>,
}

impl Verdict {
    pub(crate) fn ok(&self) -> bool {
        self.failed.is_empty() && self.problems.is_empty() && self.passed > 0
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Collector, Outcome, TestBinary, test_executables};

    fn binary(name: &str, tests: &[&str]) -> TestBinary {
        TestBinary {
            name: name.into(),
            path: PathBuf::from(format!("/t/debug/deps/{name}-0")),
            expected: tests.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn collect(console: &str) -> Collector {
        let mut collector = Collector::default();
        for line in console.lines() {
            collector.line(line);
        }
        collector
    }

    const GOOD: &str = "@@ALB-TEST-BEGIN seed\r\n\
        running 2 tests\r\n\
        test a ... ok\r\n\
        test b::c ... ok\r\n\
        \r\n\
        test result: ok. 2 passed; 0 failed; 0 ignored\r\n\
        @@ALB-TEST-END seed 0\r\n";

    #[test]
    fn a_binary_that_ran_every_listed_test_passes() {
        let collector = collect(GOOD);
        let run = &collector.runs["seed"];
        assert_eq!(run.tests, [("a".into(), Outcome::Ok), ("b::c".into(), Outcome::Ok)]);
        assert_eq!(run.exit, Some(0));
        let verdict = collector.verdict(&[binary("seed", &["a", "b::c"])]);
        assert!(verdict.ok(), "{verdict:?}");
        assert_eq!(verdict.passed, 2);
    }

    #[test]
    fn an_outcome_after_other_output_is_the_running_tests() {
        let collector = collect(
            "@@ALB-TEST-BEGIN x\ntest slow ... [  5.1] some kernel line\nok\n@@ALB-TEST-END x 0\n",
        );
        assert_eq!(collector.runs["x"].tests, [("slow".into(), Outcome::Ok)]);
        assert!(collector.verdict(&[binary("x", &["slow"])]).ok());
    }

    #[test]
    fn a_missing_test_fails_the_guest() {
        let verdict = collect(GOOD).verdict(&[binary("seed", &["a", "b::c", "d"])]);
        assert!(!verdict.ok());
        assert_eq!(verdict.problems, ["seed::d: did not run"]);
    }

    #[test]
    fn a_failed_test_fails_the_guest() {
        let console =
            GOOD.replace("test a ... ok", "test a ... FAILED").replace("seed 0", "seed 101");
        let verdict = collect(&console).verdict(&[binary("seed", &["a", "b::c"])]);
        assert!(!verdict.ok());
        assert_eq!(verdict.failed, ["seed::a"]);
        assert_eq!(verdict.problems, ["seed: exit code 101"]);
        assert_eq!(verdict.passed, 1);
    }

    #[test]
    fn a_binary_that_died_mid_way_fails_the_guest() {
        // Killed while running b: no outcome, no summary; the runner's end
        // marker gives the signal's exit code.
        let died =
            collect("@@ALB-TEST-BEGIN seed\ntest a ... ok\ntest b ... \n@@ALB-TEST-END seed 137\n");
        let verdict = died.verdict(&[binary("seed", &["a", "b", "c"])]);
        assert!(!verdict.ok());
        assert_eq!(
            verdict.problems,
            [
                "seed::b: did not run",
                "seed::c: did not run",
                "seed::b: began and never ended",
                "seed: exit code 137"
            ]
        );
        // The guest itself stopped: no end marker at all.
        let cut = collect("@@ALB-TEST-BEGIN seed\ntest a ... ok\n");
        let verdict = cut.verdict(&[binary("seed", &["a"])]);
        assert_eq!(verdict.problems, ["seed: never ended"]);
    }

    #[test]
    fn a_binary_never_started_or_an_ignored_test_fails_the_guest() {
        let verdict =
            collect(GOOD).verdict(&[binary("seed", &["a", "b::c"]), binary("vlan", &["v"])]);
        assert_eq!(verdict.problems, ["vlan: never started"]);
        let ignored = GOOD.replace("test a ... ok", "test a ... ignored, guest: needs bonding");
        let verdict = collect(&ignored).verdict(&[binary("seed", &["a", "b::c"])]);
        assert_eq!(verdict.problems, ["seed::a: ignored"]);
    }

    #[test]
    fn a_guest_with_no_test_does_not_pass() {
        let verdict =
            collect("@@ALB-TEST-BEGIN e\n@@ALB-TEST-END e 0\n").verdict(&[binary("e", &[])]);
        assert!(!verdict.ok());
    }

    #[test]
    fn test_executables_come_from_cargos_messages() {
        let messages = r#"{"reason":"compiler-artifact","manifest_path":"/r/tests/Cargo.toml","target":{"kind":["lib"],"name":"alb_tests"},"executable":null}
{"reason":"compiler-artifact","manifest_path":"/r/tests/Cargo.toml","target":{"kind":["test"],"name":"seed"},"executable":"/t/debug/deps/seed-1"}
{"reason":"compiler-artifact","manifest_path":"/r/xtask/Cargo.toml","target":{"kind":["test"],"name":"other"},"executable":"/t/debug/deps/other-3"}
{"reason":"compiler-artifact","manifest_path":"/r/tests/Cargo.toml","target":{"kind":["lib"],"name":"alb_tests"},"executable":"/t/debug/deps/alb_tests-2"}
{"reason":"build-finished","success":true}"#;
        let found = test_executables(messages, std::path::Path::new("/r/tests/Cargo.toml"));
        assert_eq!(found.len(), 1);
        assert_eq!(found["seed"], PathBuf::from("/t/debug/deps/seed-1"));
    }
}
