//! alb as a service (issue 12, items 1-2): a stop with `--keep-datapath`
//! followed by a restart or by an upgrade to another binary loses no ping;
//! readiness, watchdog and stopping reach the service manager over
//! `NOTIFY_SOCKET`; log lines carry syslog priorities when standard error
//! is the journal; pins of another format are refused and left untouched;
//! the unit file passes `systemd-analyze verify`.
//!
//! Each test builds its own lab and runs its own agent under a master name
//! of its own. Needs root, the `alb` binary (`cargo build -p alb-user`),
//! ping, bpftool and systemd-analyze; run one test at a time
//! (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    os::unix::{fs::PermissionsExt as _, net::UnixDatagram},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use alb_common::maps::{Config, PIN_FORMAT, names};
use alb_tests::{
    Lab,
    agent::{lock_held, pin_dir, socket_path, state_path},
    root::TempRoot,
    wait_until,
};
use aya::maps::{Array, Map, MapData};
use common::{
    Agent, alb_bin,
    datapath::assert_attached,
    leftovers,
    pings::{self, PingRun},
    resolve_all, run_alb,
};

/// Between two echo requests of a measuring ping.
const INTERVAL: Duration = Duration::from_millis(10);

const SLAVES: [&str; 2] = ["veth17", "veth19"];

fn report<'a>(what: &str, runs: impl IntoIterator<Item = &'a PingRun>) {
    pings::report("service", what, runs);
}

/// A copy of the `alb` binary under another path: an "upgrade" replaces the
/// file the service runs.
fn copy_of_alb(lab: &Lab, name: &str) -> PathBuf {
    let copy = lab.log_dir().join(name);
    std::fs::copy(alb_bin(), &copy)
        .unwrap_or_else(|e| panic!("copy alb to {}: {e}", copy.display()));
    copy
}

/// Asserts that a stopped agent of `master` left the data path forwarding
/// for the next one: programs attached, record kept, no lock, no socket.
fn assert_handed_over(lab: &Lab, agent: &Agent, master: &str) {
    assert_attached(lab, master, &SLAVES);
    assert!(state_path(master).exists(), "the undo record stays for the next agent");
    assert!(!lock_held(master), "the stopped agent holds no lock");
    assert!(!socket_path(master).exists(), "nobody answers the control socket: it goes");
    let log = agent.log();
    assert!(log.contains("keeps forwarding"), "the agent says what it left running:\n{log}");
    assert!(!log.contains(" removed"), "nothing is removed on a kept stop:\n{log}");
}

/// `systemctl restart` of the unit (which runs `--keep-datapath`) and an
/// upgrade of the binary, while four clients ping every 10 ms: the first
/// agent (an older binary file) stops, the data path keeps forwarding with
/// no agent, the new binary adopts it; then a plain restart. No ping is
/// lost, every client keeps its slave, and `alb down` removes it all.
#[test]
fn a_restart_and_an_upgrade_with_keep_datapath_lose_no_ping() {
    let lab = common::lab(4, 2);
    let master = lab.master().to_owned();
    let old = Agent::command(&lab, &SLAVES)
        .args(&["--keep-datapath"])
        .with_bin(copy_of_alb(&lab, "alb-old"));
    let mut first = Agent::start_command(&lab, &old);
    resolve_all(&lab);
    let before = first.status();
    assert_eq!(before.clients.len(), 4, "four clients dealt: {before}");

    let pings = pings::start_pings(&lab, &[1, 2, 3, 4], Duration::from_secs(6), INTERVAL);
    thread::sleep(Duration::from_millis(500));
    let exit = first.stop();
    assert!(exit.success(), "a kept stop exits 0: {exit}\n{}", first.log());
    assert_handed_over(&lab, &first, &master);
    thread::sleep(Duration::from_millis(500));

    // The upgrade: the unit's binary is another file now.
    let new = Agent::command(&lab, &SLAVES).args(&["--keep-datapath"]);
    let mut second = Agent::start_command(&lab, &new);
    let adopted = "adopted the data path of an earlier agent: 4 clients kept";
    second
        .wait_log(0, adopted, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("the upgraded agent says {adopted:?}: {e:#}"));
    thread::sleep(Duration::from_millis(800));
    let exit = second.stop();
    assert!(exit.success(), "a kept stop exits 0: {exit}\n{}", second.log());
    assert_handed_over(&lab, &second, &master);

    // A plain restart of the same binary.
    let mut third = second.start_again(&lab);
    third
        .wait_log(0, adopted, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("the restarted agent says {adopted:?}: {e:#}"));
    let runs = pings.finish();
    report("stop, upgrade, stop, restart", &runs);
    for run in &runs {
        pings::assert_none_lost("restart and upgrade with --keep-datapath", run, &third.log());
    }
    let after = third.status();
    let slaves = |s: &alb_tests::Status| {
        let mut all: Vec<_> =
            s.clients.iter().map(|c| (c.client_ip.clone(), c.slave.clone())).collect();
        all.sort();
        all
    };
    assert_eq!(slaves(&after), slaves(&before), "every client keeps its slave");

    // The explicit command removes everything.
    let exit = third.stop();
    assert!(exit.success(), "{exit}\n{}", third.log());
    let out = third.down().expect("alb down");
    assert!(out.status.success(), "alb down: {}", String::from_utf8_lossy(&out.stderr));
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "after alb down: {left:?}");
}

/// What a service manager received on its notification socket.
struct Manager {
    path: PathBuf,
    /// Each datagram with when it arrived and whether the control socket
    /// existed at that moment.
    received: Arc<Mutex<Vec<(Instant, String, bool)>>>,
    done: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Manager {
    fn listen(path: PathBuf, master: &str) -> Self {
        let socket =
            UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        let received = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let control = socket_path(master);
        let thread = {
            let (received, done) = (Arc::clone(&received), Arc::clone(&done));
            thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while !done.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buffer) {
                        let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                        let entry = (Instant::now(), text, control.exists());
                        received.lock().expect("lock").push(entry);
                    }
                }
            })
        };
        Self { path, received, done, thread: Some(thread) }
    }

    fn received(&self) -> Vec<(Instant, String, bool)> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                eprintln!("the notification reader panicked");
            }
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("remove {}: {e}", self.path.display());
        }
    }
}

/// `Type=notify` and `WatchdogSec=`: READY=1 (with a status line) comes
/// once, when the control socket already exists; WATCHDOG=1 comes from then
/// on at half the watchdog timeout; STOPPING=1 on SIGTERM.
#[test]
fn readiness_watchdog_and_stopping_reach_the_service_manager() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    let manager = Manager::listen(lab.log_dir().join("notify.sock"), &master);
    let notify = manager.path.to_str().expect("UTF-8 path").to_owned();
    // 400 ms: fed every 200 ms.
    let command =
        Agent::command(&lab, &SLAVES).env("NOTIFY_SOCKET", &notify).env("WATCHDOG_USEC", "400000");
    let mut agent = Agent::start_command(&lab, &command);
    // Two seconds of feeds, with a client pinging meanwhile: its silences
    // measure how long the machine itself stalled (the feeds' allowance).
    let runs = pings::start_pings(&lab, &[1], Duration::from_secs(2), INTERVAL).finish();
    let running = manager.received();
    let exit = agent.stop();
    assert!(exit.success(), "{exit}");
    wait_until(Duration::from_secs(2), "STOPPING=1 to arrive", || {
        Ok(manager.received().iter().any(|(_, t, _)| t.contains("STOPPING=1")))
    })
    .unwrap_or_else(|e| panic!("STOPPING=1 on SIGTERM: {e:#}: {:?}", manager.received()));
    let all = manager.received();
    let texts: Vec<&str> = all.iter().map(|(_, t, _)| t.as_str()).collect();

    let ready: Vec<_> = running.iter().filter(|(_, t, _)| t.contains("READY=1")).collect();
    assert_eq!(ready.len(), 1, "READY=1 once: {texts:?}");
    let (ready_at, ready_text, socket_existed) = ready[0];
    assert!(*socket_existed, "READY=1 only once the control socket exists");
    assert!(
        ready_text.contains(&format!("STATUS=serving {master} over veth17, veth19")),
        "a status line with READY=1: {ready_text:?}"
    );
    let feeds: Vec<Instant> =
        running.iter().filter(|(_, t, _)| t.contains("WATCHDOG=1")).map(|(at, _, _)| *at).collect();
    assert!(feeds.iter().all(|at| at >= ready_at), "no WATCHDOG=1 before READY=1: {texts:?}");
    // Fed every 200 ms: 16-18 before the stop. No gap reaches the 400 ms
    // timeout but by a stall of the whole machine, which the client saw.
    assert!(feeds.len() >= 2, "the watchdog is fed again and again: {texts:?}");
    let allowed = Duration::from_millis(400) + pings::machine_stall(&[&runs[0]]);
    let longest = feeds.windows(2).map(|pair| pair[1] - pair[0]).max().unwrap_or_default();
    println!(
        "service: {} watchdog feeds before the stop, the longest gap {longest:?}",
        feeds.len()
    );
    assert!(longest < allowed, "a feed gap of {longest:?} would trip the watchdog: {texts:?}");
    let stopping = all.iter().position(|(_, t, _)| t.contains("STOPPING=1"));
    let last_feed = all.iter().rposition(|(_, t, _)| t.contains("WATCHDOG=1"));
    assert!(stopping > last_feed, "STOPPING=1 comes after the last feed: {texts:?}");
}

/// Under systemd, standard error is the journal stream named in
/// `JOURNAL_STREAM`: each line starts with its syslog priority (`<6>` for
/// info, `<4>` for a warning) and carries no timestamp of its own.
#[test]
fn log_lines_carry_journal_priorities_under_systemd() {
    let lab = common::lab(1, 2);
    // What systemd does: JOURNAL_STREAM is the device:inode of stderr.
    let wrapper = lab.log_dir().join("alb-under-journal");
    let script = format!(
        "#!/bin/sh\nJOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec {} \"$@\"\n",
        alb_bin().display()
    );
    std::fs::write(&wrapper, script).expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let command = Agent::command(&lab, &SLAVES).with_bin(wrapper);
    let agent = Agent::start_command(&lab, &command);
    let from = agent.log().len();
    let refused = run_alb(lab.srv(), &["slave", "del", "nosuchif0", "--master", lab.master()]);
    assert!(!refused.status.success(), "deleting an unknown slave is refused");
    agent
        .wait_log(from, "nosuchif0", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("the agent logs the refused request: {e:#}"));
    let log = agent.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("<6>ready: master")), "info at priority 6:\n{log}");
    assert!(
        lines.iter().any(|l| l.starts_with("<4>") && l.contains("nosuchif0")),
        "a warning at priority 4:\n{log}"
    );
    for line in &lines {
        assert!(
            line.len() > 3 && line.starts_with('<') && line.as_bytes()[2] == b'>',
            "every line has a priority prefix: {line:?}\n{log}"
        );
        assert!(!line.contains("[20"), "no timestamp of its own under the journal: {line:?}");
    }
}

/// Opens the pinned config of `master`.
fn pinned_config(master: &str) -> Array<MapData, Config> {
    let path = pin_dir(master).join(names::CONFIG);
    let data = MapData::from_pin(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let map = Map::from_map_data(data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Array::try_from(map).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Pins left by an alb of another pin format (a doctored format field) are
/// refused with a clear message before anything changes: the programs stay
/// attached and keep forwarding, the pinned config is not rewritten; `alb
/// down` then removes them.
#[test]
fn pins_of_another_format_are_refused_and_left_untouched() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let mut agent = Agent::start_on(&lab, &SLAVES, &["--keep-datapath"]);
    resolve_all(&lab);
    let exit = agent.stop();
    assert!(exit.success(), "{exit}\n{}", agent.log());
    let mut config = pinned_config(&master);
    let mut doctored = config.get(&0, 0).expect("config");
    assert_eq!(doctored.format, PIN_FORMAT, "the agent wrote its own format");
    doctored.format = PIN_FORMAT + 1;
    config.set(0, doctored, 0).expect("doctor the format");
    let ids = assert_attached(&lab, &master, &SLAVES);

    let out =
        run_alb(lab.srv(), &["--master", &master, "--iface", SLAVES[0], "--iface", SLAVES[1]]);
    let message = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a start on pins of format {} is refused",
        PIN_FORMAT + 1
    );
    assert!(
        message.contains(&format!("have format {}", PIN_FORMAT + 1))
            && message.contains(&format!("this agent uses format {PIN_FORMAT}"))
            && message.contains("alb down"),
        "the refusal names both formats and the way out: {message}"
    );
    assert_eq!(assert_attached(&lab, &master, &SLAVES), ids, "the same programs stay attached");
    assert_eq!(pinned_config(&master).get(&0, 0).expect("config").format, PIN_FORMAT + 1);
    let stats = lab.ping(&lab.client(1).ns, alb_tests::SERVER_IP4, 5, Duration::from_millis(20));
    let stats = stats.unwrap_or_else(|e| panic!("ping: {e:#}"));
    assert_eq!(stats.received, 5, "the kept data path still forwards: {stats:?}");

    let out = agent.down().expect("alb down");
    assert!(out.status.success(), "alb down: {}", String::from_utf8_lossy(&out.stderr));
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "after alb down: {left:?}");
}

/// The unit file is one systemd accepts: `systemd-analyze verify` of an
/// instance, in a root holding the binary where the unit expects it,
/// reports nothing.
#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let root = TempRoot::new("unit").expect("temp root");
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd/alb@.service");
    for (from, to) in [
        (unit.as_path(), "lib/systemd/system/alb@.service"),
        (&alb_bin(), "usr/sbin/alb"),
        (Path::new("/bin/kill"), "bin/kill"),
    ] {
        root.place(from, to).unwrap_or_else(|e| panic!("{e:#}"));
    }
    let said = root.verify_unit("alb@alb0.service").unwrap_or_else(|e| panic!("{e:#}"));
    assert!(said.is_empty(), "systemd-analyze verify has something to say: {said}");
}

/// A master the agent creates carries its slave's MAC from its creation on
/// (the kernel's first link message for it has that MAC), so its
/// `addr_assign_type` is "set by user space" from the start, which udev's
/// `MACAddressPolicy=persistent` (99-default.link) leaves alone. Created
/// with a random MAC, the master got one of udev's under systemd, at times
/// after the agent had given it its slave's (`cargo xtask vm-test
/// --systemd`, docs/service.md).
#[test]
fn a_new_master_has_its_mac_from_creation() {
    let lab = common::lab(1, 2);
    let mut monitor = common::link_monitor(&lab);
    let mut agent = Agent::start(&lab);
    let master = format!(": {}@", lab.master());
    wait_until(Duration::from_secs(2), "the master's link message", || {
        Ok(monitor.log().contains(&master))
    })
    .unwrap_or_else(|e| panic!("{e:#}:\n{}", monitor.log()));
    monitor.stop().expect("stop ip monitor");
    let events = monitor.log();
    let first = events
        .lines()
        .find(|l| l.contains(&master))
        .unwrap_or_else(|| panic!("no link message for {}:\n{events}", lab.master()));
    assert!(
        first.contains("link/ether 02:a1:b0:00:00:17"),
        "the master's first link message has veth17's MAC: {first}\nall:\n{events}"
    );
    assert!(agent.stop().success(), "a clean stop");
}
