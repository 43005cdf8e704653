//! `cargo xtask vm-test`: alb's integration test binaries inside QEMU
//! (TCG) guests running Debian's own packaged kernels (5.10 and 6.1: no
//! TCX, clsact; 6.12: TCX). Each guest boots a busybox initramfs with the
//! binaries, runs them (suite.rs) and prints their output between markers
//! on the serial console; the host parses it, keeps the console log in
//! target/vm-logs/ and fails unless every listed test passed. `--compare`
//! boots guest.sh instead (the kernel's balance-alb against alb, figures
//! for docs/kernels.md). `--systemd` (systemd.rs) boots a Debian 12 root
//! filesystem with systemd as PID 1 instead, installs the package and
//! runs the test binaries there (tests/tests/system.rs: alb as the
//! packaged service).

mod initramfs;
mod kernel;
pub(crate) mod nics;
mod rootfs;
pub(crate) mod suite;
mod systemd;

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{bootstrap, cargo};

/// How a guest boots: its memory, the kernel's command line and how long
/// it may run before it is stopped (TCG is slow).
pub(super) struct Guest {
    memory_mib: u32,
    append: &'static str,
    timeout: Duration,
}

/// The busybox guest of `--compare`: /init is guest.sh.
const BUSYBOX: Guest = Guest {
    memory_mib: 1024,
    append: "console=ttyS0 quiet loglevel=1 panic=-1 tsc=reliable",
    timeout: Duration::from_secs(900),
};

/// The busybox guest of `--tests` with `binaries` test binaries: /init is
/// guest-tests.sh; room for them in its initramfs (RAM), and 10 minutes
/// each under TCG (seed, the longest of the named list, took 5 on a
/// loaded machine).
fn busybox_tests(binaries: usize) -> Guest {
    let binaries = u64::try_from(binaries).unwrap_or(u64::MAX);
    Guest {
        memory_mib: 3072,
        append: "console=ttyS0 quiet loglevel=1 panic=-1 tsc=reliable",
        timeout: Duration::from_secs(300 + 600 * binaries),
    }
}

/// One line the guest printed between the markers.
#[derive(Debug, PartialEq)]
enum Line {
    Result { pass: bool, name: String, detail: String },
    Metric(String),
    Info(String),
}

fn parse(line: &str) -> Option<Line> {
    let rest = line.trim_end_matches('\r').split_once("@@ALB-")?.1;
    let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    match kind {
        "RESULT" => {
            let mut parts = rest.splitn(3, ' ');
            let pass = parts.next()? == "PASS";
            let name = parts.next()?.to_owned();
            let detail = parts.next().unwrap_or("").to_owned();
            Some(Line::Result { pass, name, detail })
        }
        "METRIC" => Some(Line::Metric(rest.to_owned())),
        "INFO" | "LOG" => Some(Line::Info(rest.to_owned())),
        _ => None,
    }
}

/// What one guest reported.
#[derive(Default)]
struct Report {
    begun: bool,
    ended: bool,
    passed: Vec<String>,
    failed: Vec<String>,
    /// `--compare`: (implementation, scenario, client) -> lost time in ms
    /// per round.
    losses: BTreeMap<(String, String, String), Vec<f64>>,
    /// `--tests`: what the test binaries printed.
    suite: suite::Collector,
}

/// "compare IMPL SCENARIO CLIENT lost=N sent=M time=Tms": the time lost,
/// as lost pings times the interval ping really kept (TCG stretches it).
fn parse_loss(metric: &str) -> Option<((String, String, String), f64)> {
    let mut words = metric.split_whitespace();
    if words.next()? != "compare" {
        return None;
    }
    let key = (words.next()?.to_owned(), words.next()?.to_owned(), words.next()?.to_owned());
    let mut field = |name: &str| -> Option<f64> {
        words.next()?.strip_prefix(name)?.trim_end_matches("ms").parse().ok()
    };
    let (lost, sent, time) = (field("lost=")?, field("sent=")?, field("time=")?);
    let interval = if sent > 1.0 { time / (sent - 1.0) } else { 20.0 };
    Some((key, lost * interval))
}

/// `cargo xtask vm-test --kernel K [--compare | --systemd] [--tests A,B]`.
pub(crate) fn run(
    kernels: &[String],
    compare: Option<u32>,
    with_systemd: bool,
    tests: &[String],
) -> Result<bool> {
    bootstrap::run()?;
    let root = cargo::target_dir()?;
    let cache = root.join("vm-cache");
    let logs = root.join("vm-logs");
    fs::create_dir_all(&cache)?;
    fs::create_dir_all(&logs)?;
    let series: Vec<&str> = if kernels.iter().any(|k| k == "all") {
        // The systemd guest's root filesystem is Debian 12's: its own
        // kernels (5.10 under it was never run).
        kernel::SERIES.iter().copied().filter(|&k| !with_systemd || k != "5.10").collect()
    } else if kernels.is_empty() {
        // One systemd guest takes about as long as both busybox guests.
        if with_systemd { vec![systemd::DEFAULT_SERIES] } else { kernel::SERIES.to_vec() }
    } else {
        kernels.iter().map(String::as_str).collect()
    };
    if with_systemd {
        return systemd::run(&series, &cache, &logs, tests);
    }
    if !tests.is_empty() {
        return run_tests(&series, &cache, &logs, tests);
    }
    let Some(repeats) = compare else {
        bail!("vm-test: name the test binaries (--tests) or --compare");
    };
    let expected = compare_checks(repeats);
    // Release: a smaller initramfs, and what users run.
    let alb = cargo::build_agent(cargo::Profile::Release)?;
    let mut all_ok = true;
    let mut summary = Vec::new();
    let mut tables = Vec::new();
    for series in series {
        let kernel = kernel::prepare(series, &cache)?;
        let work = cache.join(format!("work-{series}"));
        fs::create_dir_all(&work)?;
        let initrd = work.join("initrd.gz");
        initramfs::build(&kernel, &alb, "compare", &repeats.to_string(), &work, &initrd)?;
        let log = logs.join(format!("{series}-compare.log"));
        eprintln!(
            "vm-test: booting {} under QEMU TCG (a few minutes); console log in {}",
            kernel.package,
            log.display()
        );
        let started = Instant::now();
        let report = boot(&kernel.vmlinuz, &initrd, &log, &BUSYBOX)?;
        let secs = started.elapsed().as_secs();
        let (ok, line) = report.summary_of(series, &kernel.package, secs, &expected);
        all_ok &= ok;
        summary.push(line);
        tables.push((kernel.package.clone(), report.losses));
    }
    let path = cargo::root().join("docs").join("kernels.md");
    let text = fs::read_to_string(&path).unwrap_or_default();
    fs::write(&path, with_comparison(&text, &comparison(&tables, repeats)))?;
    eprintln!("vm-test: wrote the comparison into {}", path.display());
    print_summary(&summary);
    Ok(all_ok)
}

/// `--tests`: the named test binaries in a busybox guest per kernel.
fn run_tests(series: &[&str], cache: &Path, logs: &Path, tests: &[String]) -> Result<bool> {
    let (binaries, alb) = suite::build(tests)?;
    let mut all_ok = true;
    let mut summary = Vec::new();
    for &series in series {
        let kernel = kernel::prepare(series, cache)?;
        let work = cache.join(format!("work-{series}"));
        fs::create_dir_all(&work)?;
        let initrd = work.join("initrd-tests.gz");
        let mut tree = initramfs::base(&kernel, &alb, &work)?;
        tree.file("init", 0o755, suite::RUNNER.as_bytes().to_vec());
        suite::add_to_tree(&mut tree, &binaries, &alb, &work)?;
        initramfs::write(&tree, &initrd)?;
        let log = logs.join(format!("{series}-tests.log"));
        eprintln!(
            "vm-test: booting {} under QEMU TCG with {}; console log in {}",
            kernel.package,
            tests.join(","),
            log.display()
        );
        let started = Instant::now();
        let report = boot(&kernel.vmlinuz, &initrd, &log, &busybox_tests(binaries.len()))?;
        let secs = started.elapsed().as_secs();
        let (ok, line) = tests_summary(series, &kernel.package, secs, &report, &binaries);
        all_ok &= ok;
        summary.push(line);
    }
    print_summary(&summary);
    Ok(all_ok)
}

/// Whether a guest of `--tests` (busybox or systemd) passed: it finished
/// and every test each of `binaries` lists ran and passed; and its line in
/// the summary.
fn tests_summary(
    series: &str,
    package: &str,
    secs: u64,
    report: &Report,
    binaries: &[suite::TestBinary],
) -> (bool, String) {
    let verdict = report.suite.verdict(binaries);
    let ok = report.ended && verdict.ok();
    let mut line = format!(
        "{series:<6} {package}: {} passed, {} failed ({secs} s)",
        verdict.passed,
        verdict.failed.len()
    );
    if !report.ended {
        line.push_str(" [the guest did not finish: see the log]");
    }
    for problem in verdict.failed.iter().chain(&verdict.problems) {
        line.push_str(&format!("\n         {problem}"));
    }
    (ok, line)
}

/// The rounds `--compare` must report as done: each implementation's, per
/// round (guest.sh's `run_compare`).
fn compare_checks(repeats: u32) -> Vec<String> {
    (1..=repeats)
        .flat_map(|r| {
            ["bond", "alb"].map(|implementation| format!("compare.{implementation}.round{r}"))
        })
        .collect()
}

fn print_summary(lines: &[String]) {
    println!("\nvm-test summary:");
    for line in lines {
        println!("  {line}");
    }
}

impl Report {
    /// Whether the guest passed (every check of `expected` passed, none
    /// failed, the guest finished), and its line in the summary.
    fn summary_of(
        &self,
        series: &str,
        package: &str,
        secs: u64,
        expected: &[String],
    ) -> (bool, String) {
        let missing: Vec<&String> = expected.iter().filter(|e| !self.passed.contains(e)).collect();
        let ok = self.begun
            && self.ended
            && self.failed.is_empty()
            && missing.is_empty()
            && !expected.is_empty();
        let mut line = format!(
            "{series:<6} {package}: {} passed, {} failed ({secs} s)",
            self.passed.len(),
            self.failed.len()
        );
        if !missing.is_empty() {
            let missing: Vec<&str> = missing.iter().map(|m| m.as_str()).collect();
            line.push_str(&format!(" [did not pass: {}]", missing.join(", ")));
        }
        if !self.ended {
            line.push_str(" [the guest did not finish: see the log]");
        }
        if !self.failed.is_empty() {
            line.push_str(&format!(" [{}]", self.failed.join(", ")));
        }
        (ok, line)
    }
}

/// Boots one guest, echoes its results as they come, writes the whole
/// console to `log`.
fn boot(vmlinuz: &Path, initrd: &Path, log: &Path, guest: &Guest) -> Result<Report> {
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m"])
        .arg(guest.memory_mib.to_string())
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio"])
        .arg("-no-reboot")
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", guest.append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start qemu-system-x86_64 (cargo xtask bootstrap installs it)")?;
    let pid = qemu.id();
    // A watchdog: the guest is stopped (by its PID) if it runs too long.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let timeout = guest.timeout;
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
            eprintln!("vm-test: the guest ran over {} s; stopping it", timeout.as_secs());
            if let Ok(pid) = i32::try_from(pid) {
                if let Err(error) = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                ) {
                    eprintln!("vm-test: cannot stop QEMU (pid {pid}): {error}");
                }
            }
        }
    });
    let stdout = qemu.stdout.take().context("qemu stdout")?;
    let mut file =
        fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut report = Report::default();
    for line in BufReader::new(stdout).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        use std::io::Write as _;
        writeln!(file, "{}", line.trim_end_matches('\r'))?;
        report.suite.line(&line);
        if line.starts_with("test ") || line.contains("@@ALB-TEST-") {
            println!("  {}", line.trim_end_matches('\r'));
        }
        if line.contains("@@ALB-BEGIN") {
            report.begun = true;
        } else if line.contains("@@ALB-END") {
            report.ended = true;
        }
        match parse(&line) {
            Some(Line::Result { pass, name, detail }) => {
                println!("  [{}] {name} {detail}", if pass { " ok " } else { "FAIL" });
                if pass {
                    report.passed.push(name);
                } else {
                    report.failed.push(name);
                }
            }
            Some(Line::Metric(text)) => {
                println!("         {text}");
                if let Some((key, ms)) = parse_loss(&text) {
                    report.losses.entry(key).or_default().push(ms);
                }
            }
            Some(Line::Info(text)) => println!("         {text}"),
            None => {}
        }
    }
    let status = qemu.wait()?;
    drop(done_tx);
    if watchdog.join().is_err() {
        eprintln!("vm-test: the watchdog thread panicked");
    }
    if !report.begun {
        bail!("the guest never started its tests ({status}); see {}", log.display());
    }
    Ok(report)
}

/// Where the generated table goes in docs/kernels.md.
const BEGIN_TABLE: &str = "<!-- vm-test --compare: begin -->";
const END_TABLE: &str = "<!-- vm-test --compare: end -->";

type Losses = BTreeMap<(String, String, String), Vec<f64>>;

/// The comparison table: median and range of the time lost per kernel,
/// scenario and client, the kernel's bond next to alb.
fn comparison(tables: &[(String, Losses)], repeats: u32) -> String {
    let mut out = format!(
        "Written by `cargo xtask vm-test --compare --repeats {repeats}`: median [min-max] \
         of {repeats} rounds. c1 is on veth17 (active), c2 on veth19. *non-active*, \
         *active*: that slave taken down 2 s into pings every 20 ms from both clients; ms \
         of lost replies (lost pings x the interval ping kept). *host-arp*: the server \
         forgets c1 and asks for it by broadcast ARP while c2 pings every 20 ms; ms of \
         c2's requests that arrive through veth17's switch port instead of its own \
         (misdirected, not lost: counted on the switch, less the request and c1's answer).\n\n\
         | kernel | scenario | client | kernel balance-alb | alb |\n|---|---|---|---|---|\n"
    );
    for (kernel, losses) in tables {
        for scenario in ["non-active", "active", "host-arp"] {
            for client in ["c1", "c2"] {
                let cell = |implementation: &str| {
                    let key = (implementation.to_owned(), scenario.to_owned(), client.to_owned());
                    losses.get(&key).map_or_else(|| "-".to_owned(), |v| summarize(v))
                };
                if cell("bond") == "-" && cell("alb") == "-" {
                    continue;
                }
                out.push_str(&format!(
                    "| {kernel} | {scenario} | {client} | {} | {} |\n",
                    cell("bond"),
                    cell("alb")
                ));
            }
        }
    }
    out
}

fn summarize(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median =
        if n % 2 == 1 { sorted[n / 2] } else { f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]) };
    format!("{median:.0} [{:.0}-{:.0}]", sorted[0], sorted[n - 1])
}

/// `text` with the table between the markers replaced (or appended). Rows
/// of kernels this run did not boot are kept, after the new ones (`--kernel
/// 5.10` alone leaves the 6.1 and 6.12 figures in place).
fn with_comparison(text: &str, table: &str) -> String {
    fn kernel_of(row: &str) -> Option<&str> {
        row.strip_prefix("| linux-image-").and_then(|r| r.split(' ').next())
    }
    let new_kernels: Vec<_> = table.lines().filter_map(kernel_of).collect();
    let old_rows: String = match (text.find(BEGIN_TABLE), text.find(END_TABLE)) {
        (Some(begin), Some(end)) if end > begin => text[begin..end]
            .lines()
            .filter(|row| kernel_of(row).is_some_and(|k| !new_kernels.contains(&k)))
            .map(|row| format!("{row}\n"))
            .collect(),
        _ => String::new(),
    };
    let block = format!("{BEGIN_TABLE}\n{table}{old_rows}{END_TABLE}\n");
    match (text.find(BEGIN_TABLE), text.find(END_TABLE)) {
        (Some(begin), Some(end)) if end > begin => {
            format!(
                "{}{block}{}",
                &text[..begin],
                text[end + END_TABLE.len()..].trim_start_matches('\n')
            )
        }
        _ => format!("{text}\n{block}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Line, parse, parse_loss, summarize, with_comparison};

    #[test]
    fn losses_are_scaled_by_the_interval_kept() {
        let (key, ms) = parse_loss("compare bond active c2 lost=10 sent=251 time=10000ms").unwrap();
        assert_eq!(key, ("bond".into(), "active".into(), "c2".into()));
        assert!((ms - 400.0).abs() < 1e-9);
        assert_eq!(summarize(&[3.0, 1.0, 2.0]), "2 [1-3]");
        let doc = with_comparison("# x\n", "T1\n");
        assert!(doc.contains("T1"));
        let again = with_comparison(&doc, "T2\n");
        assert!(again.contains("T2") && !again.contains("T1"));
        let two = with_comparison("", "H\n| linux-image-6.1 | a |\n| linux-image-6.12 | b |\n");
        let one = with_comparison(&two, "H\n| linux-image-5.10 | c |\n| linux-image-6.1 | d |\n");
        assert!(one.contains("| linux-image-5.10 | c |\n| linux-image-6.1 | d |\n"), "{one}");
        assert!(one.contains("| linux-image-6.12 | b |") && !one.contains("| a |"), "{one}");
    }

    #[test]
    fn a_compare_guest_passes_only_with_every_round() {
        let expected = super::compare_checks(2);
        assert_eq!(expected.len(), 4);
        let mut report = super::Report { begun: true, ended: true, ..Default::default() };
        report.passed = expected[..3].to_vec();
        let (ok, line) = report.summary_of("6.1", "k", 1, &expected);
        assert!(!ok && line.contains("compare.alb.round2"), "{line}");
        report.passed = expected.clone();
        assert!(report.summary_of("6.1", "k", 1, &expected).0);
        report.ended = false;
        assert!(!report.summary_of("6.1", "k", 1, &expected).0);
    }

    #[test]
    fn result_lines_are_parsed() {
        assert_eq!(
            parse("@@ALB-RESULT PASS seed.c1 learned it\r"),
            Some(Line::Result { pass: true, name: "seed.c1".into(), detail: "learned it".into() })
        );
        assert_eq!(
            parse("[ 3.1] x @@ALB-RESULT FAIL a.b"),
            Some(Line::Result { pass: false, name: "a.b".into(), detail: String::new() })
        );
        assert_eq!(parse("@@ALB-METRIC m=1"), Some(Line::Metric("m=1".into())));
        assert_eq!(parse("noise"), None);
    }
}
