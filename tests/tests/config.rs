//! The config file (issue 12, item 3): `alb config check` prints every
//! error as `PATH:LINE: message`; `alb run --config PATH` (and the default
//! `/etc/alb/<master>.toml`) takes its options from the file with the
//! command line winning; a bad file refuses a start; SIGHUP applies a new
//! file (slaves, primary, delays, intervals) without a ping lost by the
//! clients it does not move, and keeps the running options when the new
//! file is bad or changes what needs a restart.
//!
//! Config files are written in the lab's log directory (kept with the
//! logs when a test fails). Needs root and the `alb` binary; run one test
//! at a time (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::Duration,
};

use alb_tests::{Lab, Status, agent::pin_dir, tidy};
use common::{
    Agent, alb_bin, assert_all_clients_work, leftovers,
    pings::{self, start_pings},
    resolve_all, run_alb, slave_of,
};
use nix::sys::signal::Signal;

/// Between two echo requests of a measuring ping.
const INTERVAL: Duration = Duration::from_millis(10);

/// How long the agent may take to log a reload.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes `text` to `<lab logs>/<name>` and returns the path.
fn write_config(lab: &Lab, name: &str, text: &str) -> PathBuf {
    let path = lab.log_dir().join(name);
    fs::create_dir_all(lab.log_dir()).expect("log dir");
    fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// `alb config check PATH`, run here (it needs no namespace and no root):
/// exit code and the lines it printed (stderr after stdout).
fn config_check(path: &Path) -> (Option<i32>, Vec<String>) {
    let out = Command::new(alb_bin())
        .args(["config", "check", path.to_str().expect("UTF-8 path")])
        .output()
        .expect("run alb config check");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text.lines().map(str::to_owned).collect())
}

/// Starts the agent with `--master <lab master> --config PATH` and `extra`.
fn start_with_config(lab: &Lab, path: &Path, extra: &[&str]) -> Agent {
    let mut args = vec!["--config", path.to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    Agent::start_on(lab, &[], &args)
}

/// Sends SIGHUP and waits for the agent to log `needle` after it.
fn reload(agent: &mut Agent, needle: &str) -> String {
    let from = agent.log().len();
    agent.signal(Signal::SIGHUP);
    agent
        .wait_log(from, needle, RELOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("after SIGHUP the agent logs {needle:?}: {e:#}"));
    agent.log()[from..].to_owned()
}

fn names(status: &Status) -> Vec<String> {
    status.slaves.iter().map(|s| s.name.clone()).collect()
}

#[test]
fn config_check_prints_each_error_with_its_line() {
    let dir = std::env::temp_dir().join(format!("alb-config-check-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.toml");
    fs::write(
        &bad,
        "slaves = [\"eth0\", \"eth1\"]\nlp_interval = 0\nprimary_reselect = \"sometimes\"\n\
         colour = \"blue\"\n",
    )
    .expect("write");
    let good = dir.join("good.toml");
    fs::write(&good, "master = \"bond3\"\nslaves = [\"eth0\", \"eth1\"]\nprimary = \"eth1\"\n")
        .expect("write");
    let (bad_code, bad_lines) = config_check(&bad);
    let (good_code, good_lines) = config_check(&good);
    tidy::remove(&dir);

    println!("config: `alb config check` of a file with three errors:");
    for line in &bad_lines {
        println!("config:   {line}");
    }
    assert_eq!(bad_code, Some(1), "errors exit 1: {bad_lines:#?}");
    assert_eq!(bad_lines.len(), 3, "three errors, three lines: {bad_lines:#?}");
    let bad_path = bad.display().to_string();
    for (line, (number, what)) in
        bad_lines.iter().zip([(2, "lp_interval 0"), (3, "sometimes"), (4, "colour")])
    {
        let prefix = format!("{bad_path}:{number}: ");
        assert!(line.starts_with(&prefix), "{line:?} starts with {prefix:?}");
        assert!(line.contains(what), "{line:?} is about {what}");
    }
    assert_eq!(good_code, Some(0), "a good file exits 0: {good_lines:#?}");
    assert_eq!(good_lines.len(), 1, "one line: {good_lines:#?}");
    assert!(
        good_lines[0].contains("OK") && good_lines[0].contains("bond3"),
        "says what it runs: {good_lines:?}"
    );
}

#[test]
fn an_agent_takes_its_options_from_the_file_and_the_command_line_wins() {
    let lab = common::lab(2, 2);
    let path = write_config(
        &lab,
        "alb.toml",
        "slaves = [\"veth17\", \"veth19\"]\nprimary = \"veth19\"\nupdelay = 300\n\
         downdelay = 40\nlp_interval = 2\nrebalance_interval = 7\n",
    );
    let agent = start_with_config(&lab, &path, &["--updelay", "100"]);
    resolve_all(&lab);
    let status = agent.status();
    assert_eq!(names(&status), ["veth17", "veth19"], "slaves from the file: {status}");
    assert_eq!(status.primary_slave.as_deref(), Some("veth19"), "primary from the file");
    assert_eq!(status.active_slave.as_deref(), Some("veth19"), "the primary is active");
    assert_eq!(status.updelay_ms, Some(100), "--updelay wins over the file");
    assert_eq!(status.downdelay_ms, Some(40), "downdelay from the file");
    assert_eq!(status.lp_interval_s, Some(2), "lp_interval from the file");
    assert_eq!(status.rebalance_interval_s, Some(7), "rebalance_interval from the file");
    assert_eq!(status.config_file.as_deref(), Some(path.to_str().expect("UTF-8")));
    assert_all_clients_work(&lab, 10);
}

#[test]
fn the_default_file_of_the_master_is_read() {
    let lab = common::lab(1, 2);
    let path = Path::new("/etc/alb").join(format!("{}.toml", lab.master()));
    let created_dir = !Path::new("/etc/alb").exists();
    fs::create_dir_all("/etc/alb").expect("/etc/alb");
    fs::write(&path, "slaves = [\"veth19\"]\nupdelay = 25\n").expect("write the default file");
    let started = std::panic::catch_unwind(|| {
        let agent = Agent::start_on(&lab, &[], &[]);
        agent.status()
    });
    tidy::remove(&path);
    if created_dir {
        tidy::remove_empty_dir(Path::new("/etc/alb"));
    }
    let status = started.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert_eq!(names(&status), ["veth19"], "slaves from {}: {status}", path.display());
    assert_eq!(status.updelay_ms, Some(25));
    assert_eq!(status.config_file.as_deref(), Some(path.to_str().expect("UTF-8")));
}

#[test]
fn a_bad_file_refuses_the_start_and_leaves_nothing() {
    let lab = common::lab(1, 2);
    let path = write_config(&lab, "bad.toml", "slaves = [\"veth17\"]\nlp_interval = 0\nx = 1\n");
    let master = lab.master().to_owned();
    let out = run_alb(lab.srv(), &["--master", &master, "--config", path.to_str().expect("UTF-8")]);
    let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    println!("config: a start with a bad file -> {text}");
    assert_eq!(out.status.code(), Some(1), "refused: {text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one line per error: {text}");
    let at = |line: usize| format!("alb: {}:{line}: ", path.display());
    assert!(lines[0].starts_with(&at(2)) && lines[0].contains("lp_interval"), "{text}");
    assert!(lines[1].starts_with(&at(3)) && lines[1].contains("`x`"), "{text}");
    let left = leftovers(&lab, &master);
    common::remove_lock_file(&master);
    assert!(left.is_empty(), "a refused start left {left:?}");
    assert!(!pin_dir(&master).exists());
}

/// The reload the issue asks for: pings every 10 ms from four clients
/// while SIGHUP adds a slave, names a primary and changes the delays and
/// intervals. Clients the new slave does not take lose no ping.
#[test]
fn sighup_applies_a_new_file_without_loss() {
    let lab = common::lab(4, 3);
    lab.sysctl(lab.srv(), "net.ipv4.conf.veth21.arp_ignore", "1").expect("quiet veth21");
    let path = write_config(&lab, "alb.toml", "slaves = [\"veth17\", \"veth19\"]\n");
    let mut agent = start_with_config(&lab, &path, &[]);
    resolve_all(&lab);
    let before = agent.status();
    assert_eq!(before.active_slave.as_deref(), Some("veth17"));

    let pings = start_pings(&lab, &[1, 2, 3, 4], Duration::from_secs(4), INTERVAL);
    thread::sleep(Duration::from_millis(700));
    fs::write(
        &path,
        "slaves = [\"veth17\", \"veth19\", \"veth21\"]\nprimary = \"veth19\"\n\
         primary_reselect = \"failure\"\nupdelay = 200\ndowndelay = 100\nlp_interval = 2\n\
         rebalance_interval = 5\n",
    )
    .expect("rewrite");
    let logged = reload(&mut agent, "reloaded:");
    println!("config: SIGHUP -> {}", logged.trim());
    let after = agent.status();
    let runs = pings.finish();

    assert_eq!(names(&after), ["veth17", "veth19", "veth21"], "veth21 added: {after}");
    assert_eq!(after.primary_slave.as_deref(), Some("veth19"));
    assert_eq!(after.active_slave.as_deref(), Some("veth19"), "a new primary is made active");
    assert_eq!(after.primary_reselect.as_deref(), Some("failure"));
    assert_eq!((after.updelay_ms, after.downdelay_ms), (Some(200), Some(100)));
    assert_eq!((after.lp_interval_s, after.rebalance_interval_s), (Some(2), Some(5)));
    let stayed: Vec<usize> =
        (1..=4).filter(|&n| slave_of(&lab, &after, n) == slave_of(&lab, &before, n)).collect();
    assert!(!stayed.is_empty(), "some clients stay on their slave: {after}");
    pings::report("config", "SIGHUP reload", &runs);
    for run in runs.iter().filter(|run| stayed.contains(&run.number)) {
        pings::assert_none_lost("a client the reload does not move", run, &agent.log());
    }
    for run in runs.iter().filter(|run| !stayed.contains(&run.number)) {
        pings::assert_few_lost("a client moved to veth21", run, 5, &agent.log());
    }
    assert_all_clients_work(&lab, 10);
}

/// A file with errors changes nothing (each error logged with its line);
/// a file that changes the master or the table size is applied except for
/// those, which are logged as needing a restart.
#[test]
fn a_bad_file_on_sighup_keeps_the_running_options() {
    let lab = common::lab(2, 2);
    let good = "slaves = [\"veth17\", \"veth19\"]\nupdelay = 50\n";
    let path = write_config(&lab, "alb.toml", good);
    let mut agent = start_with_config(&lab, &path, &[]);
    resolve_all(&lab);
    let before = agent.status();

    fs::write(&path, "slaves = [\"veth17\"]\nupdelay = 999\nlp_interval = 0\ncolour = 1\n")
        .expect("rewrite");
    let from = agent.log().len();
    reload(&mut agent, "not reloaded");
    // The errors follow the warning.
    thread::sleep(Duration::from_millis(200));
    println!("config: SIGHUP with a bad file ->\n{}", agent.log()[from..].trim());
    for line in [3, 4] {
        let at = format!("{}:{line}: ", path.display());
        assert!(agent.log().contains(&at), "the agent logs {at:?}:\n{}", agent.log());
    }
    assert!(agent.running(), "a bad file does not stop the agent:\n{}", agent.log());
    let kept = agent.status();
    assert_eq!(names(&kept), names(&before), "slaves kept");
    assert_eq!(kept.updelay_ms, Some(50), "updelay kept");

    let other_master = format!("z{}", &lab.master()[1..]);
    fs::write(
        &path,
        format!("master = \"{other_master}\"\nmax_clients = 99\n{good}downdelay = 20\n"),
    )
    .expect("rewrite");
    reload(&mut agent, "reloaded:");
    let log = agent.log();
    assert!(log.contains("master") && log.contains("needs a restart"), "{log}");
    assert!(log.contains("max_clients 99 needs a restart"), "{log}");
    let applied = agent.status();
    assert_eq!(applied.master, lab.master(), "the master stays");
    assert_eq!(applied.downdelay_ms, Some(20), "the rest applies");
    assert!(agent.running());
    assert_all_clients_work(&lab, 10);
}

/// The typo of issue 20: three slaves replaced by one that does not exist.
/// The file is checked against the live system first, so nothing changes:
/// no slave is removed, no client moves, no ping is lost.
#[test]
fn a_reload_naming_a_missing_slave_changes_nothing() {
    let lab = common::lab(6, 3);
    let path = write_config(&lab, "alb.toml", "slaves = [\"veth17\", \"veth19\", \"veth21\"]\n");
    let mut agent = start_with_config(&lab, &path, &[]);
    resolve_all(&lab);
    let before = agent.status();
    let clients: Vec<usize> = (1..=6).collect();
    let pings = start_pings(&lab, &clients, Duration::from_secs(3), INTERVAL);
    thread::sleep(Duration::from_millis(700));
    fs::write(&path, "slaves = [\"sx\"]\n").expect("rewrite");
    let from = agent.log().len();
    reload(&mut agent, "not reloaded");
    let reason = format!("{}: slave sx: no network device named sx", path.display());
    agent
        .wait_log(from, &reason, RELOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("the agent logs {reason:?}: {e:#}"));
    let runs = pings.finish();
    let logged = agent.log()[from..].to_owned();
    println!("config: SIGHUP with slaves = [\"sx\"] ->\n{}", logged.trim());
    assert!(!logged.contains("removed from"), "no slave is removed:\n{logged}");
    assert!(!logged.contains("reloaded:"), "the file is not applied:\n{logged}");
    let after = agent.status();
    assert_eq!(names(&after), names(&before), "slaves kept: {after}");
    for n in &clients {
        assert_eq!(slave_of(&lab, &after, *n), slave_of(&lab, &before, *n), "c{n} stays: {after}");
    }
    pings::report("config", "SIGHUP naming a missing slave", &runs);
    for run in &runs {
        pings::assert_none_lost("a client of a refused reload", run, &agent.log());
    }

    // `alb reload` (the unit's ExecReload) answers with the outcome: the
    // same refusal fails it, with the reason, in one line.
    let master = lab.master().to_owned();
    let out = run_alb(lab.srv(), &["reload", "--master", &master]);
    let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(out.status.code(), Some(1), "a refused reload fails alb reload: {said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    assert!(said.starts_with("alb: ") && said.contains("not reloaded"), "{said}");
    assert!(said.contains(&reason), "the reason {reason:?}: {said}");
    assert_eq!(names(&agent.status()), names(&before), "slaves kept");
    fs::write(&path, "slaves = [\"veth17\", \"veth19\", \"veth21\"]\nupdelay = 30\n")
        .expect("rewrite");
    let out = run_alb(lab.srv(), &["reload", "--master", &master]);
    let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(out.status.success(), "a good file: {said}");
    assert!(said.contains("reloaded: updelay 30 ms"), "{said}");
    assert_eq!(agent.status().updelay_ms, Some(30));
}

/// A reload that drops one of three slaves: its clients move to the
/// others, and the clients of the two that stay lose nothing.
#[test]
fn a_reload_dropping_one_slave_loses_nothing_elsewhere() {
    let lab = common::lab(6, 3);
    let path = write_config(&lab, "alb.toml", "slaves = [\"veth17\", \"veth19\", \"veth21\"]\n");
    let mut agent = start_with_config(&lab, &path, &[]);
    resolve_all(&lab);
    let before = agent.status();
    let clients: Vec<usize> = (1..=6).collect();
    let moved: Vec<usize> =
        clients.iter().copied().filter(|&n| slave_of(&lab, &before, n) == "veth21").collect();
    assert!(!moved.is_empty(), "some client is dealt veth21: {before}");
    let pings = start_pings(&lab, &clients, Duration::from_secs(4), INTERVAL);
    thread::sleep(Duration::from_millis(700));
    fs::write(&path, "slaves = [\"veth17\", \"veth19\"]\n").expect("rewrite");
    let logged = reload(&mut agent, "reloaded:");
    println!("config: SIGHUP dropping veth21 -> {}", logged.trim());
    assert!(logged.contains("veth21 removed from"), "{logged}");
    let runs = pings.finish();
    let after = agent.status();
    assert_eq!(names(&after), ["veth17", "veth19"], "veth21 removed: {after}");
    pings::report("config", "SIGHUP dropping a slave", &runs);
    for run in &runs {
        if moved.contains(&run.number) {
            pings::assert_few_lost("a client of the dropped slave", run, 5, &agent.log());
        } else {
            pings::assert_none_lost("a client of a slave that stays", run, &agent.log());
        }
    }
    assert_all_clients_work(&lab, 10);
}

/// A reload may not take the master off the network: a file without
/// slaves is an error, and one that keeps only a slave without carrier is
/// refused against the live system; both change nothing. `alb slave del`
/// of the last usable slave is refused too, and `--force` does it.
#[test]
fn neither_a_reload_nor_slave_del_removes_the_last_usable_slave() {
    let lab = common::lab(2, 2);
    let path = write_config(&lab, "alb.toml", "slaves = [\"veth17\", \"veth19\"]\n");
    let mut agent = start_with_config(&lab, &path, &[]);
    resolve_all(&lab);
    common::set_port(&lab, &lab.slaves()[1].port, false);
    agent.wait_status(RELOAD_TIMEOUT, "veth19 unusable once its port is down", |s| {
        s.slaves.iter().any(|x| x.name == "veth19" && !x.usable)
    });

    fs::write(&path, "slaves = []\n").expect("rewrite");
    let from = agent.log().len();
    reload(&mut agent, "not reloaded");
    agent
        .wait_log(from, "no slaves: name at least one", RELOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("an empty slave list is an error: {e:#}"));

    fs::write(&path, "slaves = [\"veth19\"]\n").expect("rewrite");
    let from = agent.log().len();
    reload(&mut agent, "not reloaded");
    agent
        .wait_log(from, "would leave no usable slave", RELOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("keeping only veth19, which is down, is refused: {e:#}"));
    assert_eq!(names(&agent.status()), ["veth17", "veth19"], "both slaves kept");
    assert_all_clients_work(&lab, 5);

    let master = lab.master().to_owned();
    let out = run_alb(lab.srv(), &["slave", "del", "veth17", "--master", &master]);
    let message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(out.status.code(), Some(1), "the last usable slave is kept: {message}");
    assert!(message.starts_with("alb: ") && message.lines().count() == 1, "{message}");
    assert!(message.contains("no usable slave") && message.contains("--force"), "{message}");
    assert_eq!(names(&agent.status()), ["veth17", "veth19"], "both slaves kept");
    assert_all_clients_work(&lab, 5);

    let out = run_alb(lab.srv(), &["slave", "del", "veth17", "--force", "--master", &master]);
    assert!(out.status.success(), "--force removes it: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(names(&agent.status()), ["veth19"], "veth17 removed on purpose");
    let out = run_alb(lab.srv(), &["slave", "del", "veth19", "--master", &master]);
    let message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(out.status.code(), Some(1), "the last slave is kept: {message}");
    assert!(message.contains("would leave no slave"), "{message}");
    assert!(agent.running(), "{}", agent.log());
}

/// SIGHUP opens, moves and closes the metrics endpoint as the file says; a
/// remote address without `metrics_allow_remote` keeps the running one.
#[test]
fn sighup_moves_the_metrics_endpoint() {
    let lab = common::lab(1, 2);
    let base = "slaves = [\"veth17\", \"veth19\"]\n";
    let path = write_config(&lab, "alb.toml", base);
    let mut agent = start_with_config(&lab, &path, &[]);
    let first: std::net::SocketAddr = "127.0.0.1:19464".parse().expect("address");
    let second: std::net::SocketAddr = "127.0.0.1:19465".parse().expect("address");
    let scrape = |addr| alb_tests::metrics::get(lab.srv(), addr, "/metrics", None);

    fs::write(&path, format!("{base}metrics_listen = \"{first}\"\n")).expect("rewrite");
    reload(&mut agent, "reloaded");
    let response = scrape(first).unwrap_or_else(|e| panic!("metrics after the reload: {e:#}"));
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.body.contains("alb_"), "alb's series: {}", response.body);

    fs::write(&path, format!("{base}metrics_listen = \"{second}\"\n")).expect("rewrite");
    reload(&mut agent, "reloaded");
    assert_eq!(scrape(second).map(|r| r.status).ok(), Some(200), "served at the new address");
    assert!(scrape(first).is_err(), "the old address is closed");

    fs::write(&path, format!("{base}metrics_listen = \"198.18.0.1:19466\"\n")).expect("rewrite");
    reload(&mut agent, "not reloaded");
    assert!(agent.log().contains("not a loopback address"), "refused:\n{}", agent.log());
    assert_eq!(scrape(second).map(|r| r.status).ok(), Some(200), "the running endpoint stays");

    fs::write(&path, base).expect("rewrite");
    reload(&mut agent, "metrics endpoint closed");
    assert!(scrape(second).is_err(), "no endpoint without metrics_listen");
}
