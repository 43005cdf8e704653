//! What every test of the systemd guest stands on: the check that it runs
//! there, the package installed once with dpkg, the master's config file
//! and the slaves' drop-in, the unit's properties and journal, and a
//! running `alb@alb0.service` with its lab ([`Service`]), stopped and
//! taken down (`alb down`) when dropped.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
    time::Duration,
};

use alb_tests::{Lab, LabConfig, cmd, wait_until};

/// The instance under test and its master.
pub(crate) const UNIT: &str = "alb@alb0.service";
pub(crate) const MASTER: &str = "alb0";
/// The master's config file, as the unit reads it.
pub(crate) const CONF: &str = "/etc/alb/alb0.toml";
/// The packaged agent.
pub(crate) const ALB: &str = "/usr/sbin/alb";
/// The package's example file, the config file is made from.
const EXAMPLE: &str = "/usr/share/doc/alb/examples/alb.toml";
/// The drop-in that orders the unit after its slaves' devices (as the
/// unit's comments tell users to).
const DROP_IN: &str = "/etc/systemd/system/alb@alb0.service.d/slaves.conf";
const SLAVES_DROP_IN: &str = "[Unit]\n\
    Requires=sys-subsystem-net-devices-veth17.device sys-subsystem-net-devices-veth19.device\n\
    After=sys-subsystem-net-devices-veth17.device sys-subsystem-net-devices-veth19.device\n";
/// The variable the guest's unit sets to the package's path (the guest's
/// marker too: these tests change the root namespace, which only a guest
/// of their own may have them do).
pub(crate) const DEB_ENV: &str = "ALB_TEST_DEB";

/// Panics unless this runs where these tests belong: under systemd as
/// PID 1, in the guest that gives the package's path. Returns that path.
pub(crate) fn require_guest() -> PathBuf {
    let init = fs::read_to_string("/proc/1/comm").unwrap_or_default();
    assert!(
        init.trim() == "systemd" && Path::new("/run/systemd/system").is_dir(),
        "this test needs systemd as PID 1 (PID 1 is {:?}): it runs in the guest of \
         `cargo xtask vm-test --systemd`",
        init.trim()
    );
    let deb = std::env::var_os(DEB_ENV).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{DEB_ENV} is not set: this test installs the package and puts the lab's slaves in \
             the root namespace, so it runs only in the guest of `cargo xtask vm-test --systemd`, \
             which sets it to the .deb"
        )
    });
    assert!(deb.is_file(), "{DEB_ENV}={} is no file", deb.display());
    deb
}

/// Runs `argv` to completion (within a minute, times the time scale), whatever its exit
/// status.
pub(crate) fn run(argv: &[&str]) -> Output {
    let mut command = Command::new(argv[0]);
    command.args(&argv[1..]);
    cmd::output_within(&mut command, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{}: {e:#}", argv.join(" ")))
}

/// Standard output and error of `output`, for messages.
pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `argv`; panics unless it exits 0. Returns its standard output.
pub(crate) fn run_ok(argv: &[&str]) -> String {
    let out = run(argv);
    assert!(out.status.success(), "`{}` failed ({}): {}", argv.join(" "), out.status, text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Property `name` of the unit (`systemctl show -P`).
pub(crate) fn prop(name: &str) -> String {
    run_ok(&["systemctl", "show", "-P", name, UNIT]).trim().to_owned()
}

/// Every property of the unit at once (each systemctl call takes a while
/// under TCG).
pub(crate) fn props() -> BTreeMap<String, String> {
    run_ok(&["systemctl", "show", UNIT])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Timestamp property `name` of the unit, in seconds since the epoch.
pub(crate) fn stamp(name: &str) -> f64 {
    let value = run_ok(&["systemctl", "show", "-P", name, "--timestamp=us+utc", UNIT]);
    let secs = run_ok(&["date", "-d", value.trim(), "+%s.%N"]);
    secs.trim().parse().unwrap_or_else(|e| panic!("{name}={value:?} read as {secs:?}: {e}"))
}

/// When `path` last changed (its ctime), in seconds since the epoch.
pub(crate) fn ctime(path: &str) -> f64 {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    #[expect(clippy::cast_precision_loss, reason = "seconds since the epoch fit an f64's 52 bits")]
    let secs = meta.ctime() as f64 + meta.ctime_nsec() as f64 * 1e-9;
    secs
}

/// What the first `dpkg -i` of the package in this guest did.
#[derive(Debug)]
pub(crate) struct Install {
    /// The unit's LoadState before and after.
    pub(crate) before: String,
    pub(crate) after: String,
    pub(crate) need_daemon_reload: String,
    pub(crate) dpkg: Output,
}

/// Installs the package the first time it is called (whichever test comes
/// first), and returns what that install did.
pub(crate) fn installed() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let deb = require_guest();
        let before = prop("LoadState");
        let dpkg = run(&["dpkg", "-i", deb.to_str().expect("a UTF-8 path")]);
        println!("dpkg -i ({}):\n{}", dpkg.status, text(&dpkg));
        let after = prop("LoadState");
        let need_daemon_reload = prop("NeedDaemonReload");
        println!("{UNIT} LoadState before the package: {before}, after: {after}");
        Install { before, after, need_daemon_reload, dpkg }
    })
}

/// Panics unless the package is installed (the first call installs it).
pub(crate) fn require_package() {
    let install = installed();
    assert!(
        install.dpkg.status.success(),
        "the package did not install ({}): {}",
        install.dpkg.status,
        text(&install.dpkg)
    );
}

/// Writes the master's config file from the package's example with the
/// lab's slaves, `edit` applied to it, and the slaves' drop-in; reloads
/// systemd's units.
pub(crate) fn configure(edit: impl FnOnce(String) -> String) {
    require_package();
    let example = fs::read_to_string(EXAMPLE).unwrap_or_else(|e| panic!("{EXAMPLE}: {e}"));
    let file: String = example
        .lines()
        .map(|l| if l.starts_with("slaves = ") { r#"slaves = ["veth17", "veth19"]"# } else { l })
        .map(|l| format!("{l}\n"))
        .collect();
    write(CONF, &edit(file));
    write(DROP_IN, SLAVES_DROP_IN);
    run_ok(&["systemctl", "daemon-reload"]);
}

/// The example's commented `# primary = ...` line made `primary = "veth19"`.
pub(crate) fn primary_veth19(file: String) -> String {
    assert!(file.contains("\n# primary = "), "no `# primary =` line in the example:\n{file}");
    file.lines()
        .map(|l| if l.starts_with("# primary = ") { r#"primary = "veth19""# } else { l })
        .map(|l| format!("{l}\n"))
        .collect()
}

pub(crate) fn write(path: &str, contents: &str) {
    if let Some(dir) = Path::new(path).parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// The seed lab with its server namespace the root one (where the unit
/// runs the agent): veth17 and veth19 there, the switch and the clients
/// c1 and c2 in namespaces of their own.
pub(crate) fn lab() -> Lab {
    let mut config = LabConfig::unique();
    MASTER.clone_into(&mut config.master);
    Lab::up_with_server_in_root_ns(config).unwrap_or_else(|e| panic!("lab up: {e:#}"))
}

/// One journal entry.
pub(crate) struct Entry {
    pub(crate) message: String,
    /// syslog's priority (3 err, 4 warning, 6 info).
    pub(crate) priority: u8,
    /// Seconds since boot (the journal's monotonic clock, as /proc/uptime).
    pub(crate) uptime: f64,
}

/// The systemd journal from a point in time on. Entries are read whole
/// (`-o json`) and told apart by their time and priority here, not by
/// journalctl's cursor and priority options.
pub(crate) struct Journal {
    since_us: u64,
}

impl Journal {
    /// From now on.
    pub(crate) fn mark() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970");
        Self { since_us: u64::try_from(now.as_micros()).expect("microseconds fit") }
    }

    /// The entries since the mark that match journalctl `matches`
    /// (`-u UNIT`, `_PID=1`).
    pub(crate) fn entries(&self, matches: &[&str]) -> Vec<Entry> {
        let mut argv = vec!["journalctl", "--no-pager", "-o", "json"];
        argv.extend_from_slice(matches);
        let field = |entry: &serde_json::Value, name: &str| -> Option<u64> {
            entry[name].as_str()?.parse().ok()
        };
        run_ok(&argv)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|entry| {
                field(entry, "__REALTIME_TIMESTAMP").is_some_and(|t| t >= self.since_us)
            })
            .map(|entry| Entry {
                message: entry["MESSAGE"].as_str().unwrap_or("").to_owned(),
                priority: field(&entry, "PRIORITY").and_then(|p| u8::try_from(p).ok()).unwrap_or(6),
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "microseconds since boot fit an f64"
                )]
                uptime: field(&entry, "__MONOTONIC_TIMESTAMP").unwrap_or(0) as f64 * 1e-6,
            })
            .collect()
    }

    /// The unit's lines since the mark at `max` priority or more urgent
    /// (the agent's, and systemd's about the unit), one a line.
    pub(crate) fn unit_at(&self, max: u8) -> String {
        self.entries(&["-u", UNIT])
            .into_iter()
            .filter(|e| e.priority <= max)
            .map(|e| format!("{}\n", e.message))
            .collect()
    }

    /// The unit's lines since the mark, whatever their priority.
    pub(crate) fn unit(&self) -> String {
        self.unit_at(7)
    }

    /// The lines since the mark that match journalctl `filter` (`_PID=1`).
    pub(crate) fn matching(&self, filter: &str) -> String {
        self.entries(&[filter]).into_iter().map(|e| format!("{}\n", e.message)).collect()
    }

    /// Waits (8 s, times the time scale) for a line of the unit containing
    /// `needle`.
    pub(crate) fn wait_unit(&self, needle: &str) {
        let waited =
            wait_until(Duration::from_secs(8), needle, || Ok(self.unit().contains(needle)));
        if let Err(e) = waited {
            panic!("{e:#}; the unit's journal:\n{}", self.unit());
        }
    }
}

/// syslog's priorities.
pub(crate) const WARNING: u8 = 4;
pub(crate) const INFO: u8 = 6;

/// Waits until the unit is active (25 s times the time scale; the agent's start is
/// BPF loading under TCG), failing at once if it failed.
pub(crate) fn wait_active(journal: &Journal) {
    let waited = wait_until(Duration::from_secs(25), "alb@alb0 active", || {
        let state = prop("ActiveState");
        anyhow::ensure!(state != "failed", "{UNIT} failed");
        Ok(state == "active")
    });
    if let Err(e) = waited {
        panic!("{e:#}; the unit's journal:\n{}", journal.unit());
    }
}

/// Stops the unit and removes what the agent left (`alb down`) when
/// dropped, also when a test fails.
pub(crate) struct UnitGuard;

impl Drop for UnitGuard {
    fn drop(&mut self) {
        for argv in [
            &["systemctl", "stop", UNIT][..],
            &["systemctl", "reset-failed", UNIT],
            &[ALB, "down", "--master", MASTER],
        ] {
            let mut command = Command::new(argv[0]);
            command.args(&argv[1..]);
            match cmd::output_within(&mut command, Duration::from_secs(60)) {
                Ok(out) if !out.status.success() && argv[0] != ALB => {
                    eprintln!("cleanup: `{}`: {}", argv.join(" "), text(&out));
                }
                Ok(_) => {}
                Err(e) => eprintln!("cleanup: {e:#}"),
            }
        }
    }
}

/// `alb@alb0.service` running over the lab's slaves, the server's
/// addresses on the master. Dropping it stops the unit, runs `alb down`,
/// then takes the lab down.
pub(crate) struct Service {
    _guard: UnitGuard,
    pub(crate) lab: Lab,
    /// The journal from before the start.
    pub(crate) journal: Journal,
}

impl Service {
    /// Configures the unit (`edit` applied to the file), builds the lab,
    /// starts the unit and waits until it is active.
    pub(crate) fn start_with(edit: impl FnOnce(String) -> String) -> Self {
        configure(edit);
        let guard = UnitGuard;
        let lab = lab();
        let journal = Journal::mark();
        run_ok(&["systemctl", "start", UNIT]);
        wait_active(&journal);
        Self::running(guard, lab, journal)
    }

    /// [`Service::start_with`] the example's file.
    pub(crate) fn start() -> Self {
        Self::start_with(|file| file)
    }

    /// A unit already active over `lab`'s slaves.
    pub(crate) fn running(guard: UnitGuard, lab: Lab, journal: Journal) -> Self {
        lab.add_server_addrs().unwrap_or_else(|e| panic!("server addresses: {e:#}"));
        Self { _guard: guard, lab, journal }
    }

    /// The agent's PID as systemd knows it.
    pub(crate) fn main_pid() -> u32 {
        prop("MainPID").parse().expect("MainPID is a number")
    }
}

/// The active slave, as `alb status --json` gives it.
pub(crate) fn active_slave() -> Option<String> {
    let out = run_ok(&[ALB, "status", "--master", MASTER, "--json"]);
    alb_tests::Status::parse(out.as_bytes())
        .unwrap_or_else(|e| panic!("alb status: {e:#}"))
        .active_slave
}

/// CAP_NET_ADMIN alone, as /proc/PID/status writes a capability set.
const NET_ADMIN: &str = "0000000000001000";
const NONE: &str = "0000000000000000";

/// Asserts that the agent `pid` keeps only CAP_NET_ADMIN (the set
/// docs/architecture.md documents) in its effective and bounding sets,
/// and that no thread holds more in its effective or permitted set.
pub(crate) fn assert_only_cap_net_admin(pid: u32) {
    let status = |path: &str| fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let field = |status: &str, name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in\n{status}"))
            .trim()
            .to_owned()
    };
    let main = status(&format!("/proc/{pid}/status"));
    let caps: Vec<&str> = main.lines().filter(|l| l.starts_with("Cap")).collect();
    println!("capabilities of the agent: {}", caps.join("; "));
    let mut wider = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).expect("the agent's tasks") {
        let task = task.expect("a task").path();
        let task_status = status(&format!("{}/status", task.display()));
        let comm = fs::read_to_string(task.join("comm")).unwrap_or_default();
        for set in ["CapEff", "CapPrm"] {
            let mask = field(&task_status, set);
            if mask != NET_ADMIN && mask != NONE {
                wider.push(format!("{}/{set}={mask}", comm.trim()));
            }
        }
    }
    assert_eq!(field(&main, "CapEff"), NET_ADMIN, "the agent's effective set:\n{main}");
    assert_eq!(field(&main, "CapBnd"), NET_ADMIN, "the agent's bounding set:\n{main}");
    assert!(wider.is_empty(), "threads holding more than CAP_NET_ADMIN: {wider:?}");
}
