//! The systemd guest's side of the network tools' tests: what a test needs
//! there (systemd as PID 1, the package, the tool), alb@alb0 with its
//! config file, a boot in boot order, and what the master, the slaves and
//! the clients look like afterwards.
//!
//! The guest's root filesystem is a tmpfs unpacked from an initramfs, so
//! the guest cannot boot a second time with the same files. [`Guest::boot`]
//! does what a boot does instead: everything of the network stopped and
//! gone (the tool, alb@alb0, the network targets, the master and its pins,
//! the slaves, the tool's and alb's state in /run, which is a tmpfs), then
//! the slaves made again (the NICs appear), then alb@alb0 and the tool's
//! units started in one transaction, as the boot's transaction starts them:
//! the order between them is only what their units say.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use alb_tests::{BRIDGE, Lab, LabConfig, Proc, SERVER_IP4, Status, cmd, wait_until};

use super::tools::Tool;

/// The package's agent and the unit's instance.
pub(crate) const ALB: &str = "/usr/sbin/alb";
pub(crate) const UNIT: &str = "alb@alb0.service";
const CONFIG: &str = "/etc/alb/alb0.toml";
const EXAMPLE: &str = "/usr/share/doc/alb/examples/alb.toml";
const DROP_IN: &str = "/etc/systemd/system/alb@alb0.service.d/slaves.conf";
/// The slaves' devices ordered before the unit, as the unit's comments
/// tell users to.
const DROP_IN_TEXT: &str = "\
[Unit]
Requires=sys-subsystem-net-devices-veth17.device sys-subsystem-net-devices-veth19.device
After=sys-subsystem-net-devices-veth17.device sys-subsystem-net-devices-veth19.device
";
/// What a boot starts with: nothing of the network is up yet.
const TARGETS: [&str; 3] = ["network-online.target", "network.target", "network-pre.target"];
/// The lab's prefix (namespaces nt-sw, nt-c1, nt-c2; nt-srv is the root).
const PREFIX: &str = "nt";

/// Runs `program args`, which must succeed; its standard output.
pub(crate) fn run(program: &str, args: &[&str]) -> String {
    cmd::run(&mut cmd::command(program, args))
        .unwrap_or_else(|e| panic!("{program} {}: {e:#}", args.join(" ")))
}

/// `systemctl args`, which must succeed within `timeout` (start jobs
/// wait for readiness).
pub(crate) fn systemctl(args: &[&str], timeout: Duration) {
    let out = cmd::output_within(Command::new("systemctl").args(args), timeout)
        .unwrap_or_else(|e| panic!("systemctl {}: {e:#}", args.join(" ")));
    assert!(
        out.status.success(),
        "systemctl {} failed ({}): {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        journal_tail(args.last().copied().unwrap_or(UNIT))
    );
}

/// A property of `unit` (`systemctl show -P`).
pub(crate) fn prop(unit: &str, name: &str) -> String {
    run("systemctl", &["show", "-P", name, unit]).trim().to_owned()
}

/// A monotonic timestamp property of `unit`, in microseconds.
fn monotonic(unit: &str, name: &str) -> u64 {
    let value = prop(unit, name);
    value.parse().unwrap_or_else(|e| panic!("{unit} {name}={value:?}: {e}"))
}

fn journal_tail(unit: &str) -> String {
    cmd::run(&mut cmd::command("journalctl", &["-u", unit, "--no-pager", "-n", "30"]))
        .unwrap_or_default()
}

/// What a test of a network tool needs, checked first: systemd as PID 1,
/// the package with its unit, and the tool's program.
fn require(tool: &Tool) {
    let init = fs::read_to_string("/proc/1/comm").unwrap_or_default();
    assert_eq!(
        init.trim(),
        "systemd",
        "PID 1 is {:?}, not systemd: this test runs in the systemd guest (cargo xtask vm-test --systemd)",
        init.trim()
    );
    install_package();
    assert_eq!(
        prop(UNIT, "LoadState"),
        "loaded",
        "{UNIT} is not loaded: is the package installed?"
    );
    assert!(
        Path::new(tool.program).is_file(),
        "{} is missing: the systemd guest's root filesystem (xtask/src/vm/rootfs.rs) installs {}",
        tool.program,
        tool.name
    );
}

/// The switch side's DHCP server (dnsmasq in the switch's namespace, at
/// 198.18.0.2 on its bridge): the master's MAC (veth17's) gets
/// 198.18.0.1/24 and a route to 198.19.7.0/24 through 198.18.0.2; no other
/// MAC gets an address. It logs every request it sees.
const DHCP_SERVER: &[&str] = &[
    "dnsmasq",
    "--no-daemon",
    "--log-facility=-",
    "--log-dhcp",
    "--conf-file=/dev/null",
    "--port=0",
    "--no-resolv",
    "--no-hosts",
    "--user=root",
    "--pid-file=",
    "--bind-interfaces",
    "--interface=br0",
    "--dhcp-authoritative",
    "--dhcp-range=198.18.0.0,static,255.255.255.0,10m",
    "--dhcp-host=02:a1:b0:00:00:17,198.18.0.1",
    "--dhcp-option=121,198.19.7.0/24,198.18.0.2",
    "--dhcp-leasefile=/run/alb-nettools-dnsmasq.leases",
];
const SWITCH_ADDR: &str = "198.18.0.2/24";

/// The package's path in the guest (system.rs installs it from there too).
const DEB_ENV: &str = "ALB_TEST_DEB";

/// Installs the package once (`dpkg -i` of `ALB_TEST_DEB`), unless it is:
/// another test binary may have installed it.
fn install_package() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if Path::new(ALB).is_file() && prop(UNIT, "LoadState") == "loaded" {
            return;
        }
        let deb = std::env::var(DEB_ENV).unwrap_or_else(|_| {
            panic!("{ALB} is not installed and {DEB_ENV} names no package: the guest gives it")
        });
        run("dpkg", &["-i", &deb]);
    });
}

/// A tool's configuration in the guest, removed again on drop (with
/// everything the test started): alb@alb0's file and drop-in, the tool's
/// files.
pub(crate) struct Guest {
    tool: Tool,
    /// Fields drop in order: the DHCP server leaves the switch's namespace
    /// before the lab deletes it (a process in it would keep it, and the
    /// slaves, alive).
    dhcp: Option<Proc>,
    lab: Option<Lab>,
    /// What the DHCP server logged over every boot so far.
    dhcp_log: String,
    /// What each file the test wrote held before (None: it did not exist).
    saved: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Guest {
    /// Checks what `tool` needs and writes the configuration: alb@alb0
    /// with the slaves veth17 and veth19, and the tool's files. Nothing
    /// runs yet.
    pub(crate) fn configure(tool: Tool) -> Self {
        require(&tool);
        let mut guest =
            Self { tool, dhcp: None, lab: None, dhcp_log: String::new(), saved: Vec::new() };
        // Whatever ran before: the guest's boot started none of the tools.
        guest.stop_everything(true);
        let example = fs::read_to_string(EXAMPLE).unwrap_or_else(|e| panic!("{EXAMPLE}: {e}"));
        let config: String = example
            .lines()
            .map(
                |l| if l.starts_with("slaves = ") { r#"slaves = ["veth17", "veth19"]"# } else { l },
            )
            .map(|l| format!("{l}\n"))
            .collect();
        guest.write(Path::new(CONFIG), &config, 0o644);
        guest.write(Path::new(DROP_IN), DROP_IN_TEXT, 0o644);
        for (path, text, mode) in guest.tool.files.clone() {
            guest.write(Path::new(path), &text, mode);
        }
        run("systemctl", &["daemon-reload"]);
        for path in guest.tool.generated {
            assert!(Path::new(path).is_file(), "{} made no {path}", guest.tool.name);
        }
        guest
    }

    fn write(&mut self, path: &Path, text: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        if !self.saved.iter().any(|(p, _)| p == path) {
            self.saved.push((path.to_owned(), fs::read(path).ok()));
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub(crate) fn tool(&self) -> &Tool {
        &self.tool
    }

    pub(crate) fn lab(&self) -> &Lab {
        self.lab.as_ref().expect("the guest has booted")
    }

    /// Stops the tool, alb@alb0 and the network targets, removes the master
    /// with its data path (`alb down`), the tool's devices and the lab
    /// (the slaves go with it), and the state a reboot clears (/run).
    /// `strict`: a step that fails panics (otherwise, on drop, it is
    /// skipped).
    fn stop_everything(&mut self, strict: bool) {
        let check = |what: &str, result: anyhow::Result<()>| {
            if let Err(e) = result {
                assert!(!strict, "{what}: {e:#}");
            }
        };
        let mut args: Vec<&str> = vec!["stop"];
        args.extend(self.tool.units);
        args.push(UNIT);
        args.extend(TARGETS);
        check(
            "systemctl stop",
            cmd::output_within(Command::new("systemctl").args(&args), Duration::from_secs(60))
                .and_then(|o| {
                    anyhow::ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                    Ok(())
                }),
        );
        if Path::new("/sys/class/net/alb0").exists() || Path::new("/sys/fs/bpf/alb/alb0").exists() {
            check(
                "alb down",
                cmd::run(&mut cmd::command(ALB, &["down", "--master", "alb0"])).map(drop),
            );
        }
        for dev in self.tool.devices {
            if Path::new("/sys/class/net").join(dev).exists() {
                check(dev, cmd::ip(&["link", "del", dev]).map(drop));
            }
        }
        if let Some(mut dhcp) = self.dhcp.take() {
            let _stopped = dhcp.stop();
            self.dhcp_log.push_str(&dhcp.log());
        }
        // Dropping the lab removes its namespaces, and the slaves with the
        // switch's.
        self.lab = None;
        // Until systemd has seen them go, the slaves' device units are
        // active and alb@alb0's start would not wait for the new ones (at a
        // boot there are none yet).
        check(
            "the slaves' device units to go",
            wait_until(Duration::from_secs(30), "the slaves' device units to go", || {
                Ok(["veth17", "veth19"].iter().all(|s| {
                    prop(&format!("sys-subsystem-net-devices-{s}.device"), "ActiveState")
                        != "active"
                }))
            }),
        );
        for dir in self.tool.runtime.iter().chain(&["/run/alb"]) {
            if Path::new(dir).exists() {
                check(dir, fs::remove_dir_all(dir).map_err(Into::into));
            }
        }
    }

    /// A boot of the configuration (see the module's comment): everything
    /// stopped and gone; alb@alb0 and the tool's units queued in one
    /// transaction, alb@alb0's start job waiting for the slaves' devices;
    /// then the slaves appear (with the switch side and its DHCP server), as
    /// NICs do while a boot's jobs wait. Checks that the tool's services
    /// started only once alb@alb0 was ready, and that the slaves were left
    /// alone.
    pub(crate) fn boot(&mut self) {
        self.stop_everything(true);
        let mut args = vec!["start", "--no-block", UNIT];
        args.extend(self.tool.units);
        systemctl(&args, Duration::from_secs(60));
        let lab = Lab::up_with_server_in_root_ns(LabConfig::default().prefix(PREFIX))
            .unwrap_or_else(|e| panic!("lab up: {e:#}"));
        self.lab = Some(lab);
        // Read at once: the tools wait for alb@alb0's readiness, which the
        // agent reaches seconds later.
        let marks = self.slave_marks();
        let lab = self.lab();
        lab.ip(lab.sw(), &["addr", "add", SWITCH_ADDR, "dev", BRIDGE])
            .unwrap_or_else(|e| panic!("{e:#}"));
        let dhcp = lab.spawn(lab.sw(), DHCP_SERVER).unwrap_or_else(|e| panic!("dnsmasq: {e:#}"));
        self.dhcp = Some(dhcp);
        let units: Vec<&str> =
            std::iter::once(UNIT).chain(self.tool.units.iter().copied()).collect();
        wait_until(Duration::from_secs(120), "the boot's units to be active", || {
            let states: Vec<String> = units.iter().map(|u| prop(u, "ActiveState")).collect();
            if let Some((unit, _)) = units.iter().zip(&states).find(|(_, s)| *s == "failed") {
                anyhow::bail!("{unit} failed:\n{}", journal_tail(unit));
            }
            Ok(states.iter().all(|s| s == "active"))
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        let ready = monotonic(UNIT, "ActiveEnterTimestampMonotonic");
        for unit in self.tool.units.iter().filter(|u| u.ends_with(".service")) {
            let started = monotonic(unit, "InactiveExitTimestampMonotonic");
            assert!(
                started >= ready,
                "{unit} started at {started} us, before {UNIT} was ready at {ready} us"
            );
        }
        self.wait_configured();
        self.assert_slaves_left_alone(&marks);
    }

    /// Waits until the tool's device holds its addresses and routes.
    pub(crate) fn wait_configured(&self) {
        let dev = self.tool.host_dev;
        let what = format!("{}'s configuration of {dev}", self.tool.name);
        wait_until(Duration::from_secs(60), &what, || {
            let addrs = addresses(dev);
            let routes = run("ip", &["-4", "route", "show", "dev", dev]);
            Ok(self.tool.addrs.iter().all(|a| addrs.iter().any(|have| have == a))
                && self.tool.routes.iter().all(|r| routes.lines().any(|l| l.starts_with(r))))
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}: {dev} has {:?}; routes:\n{}the tool's journal:\n{}",
                addresses(dev),
                run("ip", &["route"]),
                journal_tail(self.tool.units[0])
            )
        });
    }

    /// Both clients reach the host address, and they are spread: each on a
    /// slave of its own (the agent's table), each having learned its own
    /// slave's MAC for the host.
    pub(crate) fn assert_clients_spread(&self) {
        let lab = self.lab();
        for client in lab.clients() {
            let ping = lab
                .ping(&client.ns, SERVER_IP4, 3, Duration::from_millis(50))
                .unwrap_or_else(|e| panic!("ping from {}: {e:#}", client.ns));
            assert_eq!(ping.lost(), 0, "{} -> {SERVER_IP4}: {ping}", client.ns);
        }
        let status = status();
        let mut slaves: Vec<String> = lab
            .clients()
            .iter()
            .map(|c| {
                status.client(&c.ip4).and_then(|entry| entry.slave).unwrap_or_else(|| {
                    panic!("no slave for {} in the agent's table: {status}", c.ip4)
                })
            })
            .collect();
        slaves.sort();
        assert_eq!(slaves, ["veth17", "veth19"], "the clients' slaves: {status}");
        let mut macs: Vec<String> = lab
            .clients()
            .iter()
            .map(|c| {
                lab.neigh_mac(&c.ns, SERVER_IP4)
                    .unwrap_or_else(|e| panic!("{e:#}"))
                    .unwrap_or_else(|| panic!("{} has no neighbour entry for {SERVER_IP4}", c.ns))
            })
            .collect();
        macs.sort();
        let slave_macs: Vec<String> = lab.slaves().iter().map(|s| s.mac.clone()).collect();
        assert_eq!(macs, slave_macs, "the MACs the clients learned for {SERVER_IP4}");
    }

    /// What would show that someone took a slave: see [`SlaveMarks`].
    pub(crate) fn slave_marks(&self) -> SlaveMarks {
        SlaveMarks::read(self.lab())
    }

    /// The slaves were left alone since `before`: never down (their
    /// carrier-down count), not made again (their index), up now, no
    /// address but an IPv6 link-local one, the tool's own view of them
    /// ("unmanaged"), and no DHCP request from any but the master's
    /// configuration.
    pub(crate) fn assert_slaves_left_alone(&self, before: &SlaveMarks) {
        let now = self.slave_marks();
        assert_eq!(&now, before, "the slaves' carrier-down counts and indexes changed");
        for slave in self.lab().slaves() {
            let flags = fs::read_to_string(format!("/sys/class/net/{}/flags", slave.name))
                .unwrap_or_else(|e| panic!("{}: {e}", slave.name));
            let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
                .unwrap_or_else(|e| panic!("{} flags {flags:?}: {e}", slave.name));
            assert_eq!(flags & 1, 1, "slave {} is down", slave.name);
            let addrs = addresses(&slave.name);
            assert!(
                addrs.iter().all(|a| a.starts_with("fe80:")),
                "slave {} has addresses {addrs:?}: a network tool configured it",
                slave.name
            );
        }
        // The master's hidden peer is no device of the tool's either.
        let peer = format!("{}p", "alb0");
        let peer_addrs = addresses(&peer);
        assert!(
            peer_addrs.iter().all(|a| a.starts_with("fe80:")),
            "{peer} has addresses {peer_addrs:?}: a network tool configured it"
        );
        for dev in self.lab().slaves().iter().map(|s| s.name.as_str()).chain([peer.as_str()]) {
            let view = (self.tool.slave_state)(dev);
            assert_eq!(view, "unmanaged", "what {} says of {dev}", self.tool.name);
        }
        let log = self.dhcp_log();
        let requests: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("DHCPDISCOVER") || l.contains("DHCPREQUEST"))
            .collect();
        if self.tool.dhcp {
            assert!(
                requests.iter().all(|l| l.contains("02:a1:b0:00:00:17")),
                "DHCP requests from another MAC than the master's: {requests:#?}"
            );
        } else {
            assert!(
                requests.is_empty(),
                "DHCP requests with a static configuration: {requests:#?}"
            );
        }
    }

    /// What the DHCP server logged, over every boot.
    pub(crate) fn dhcp_log(&self) -> String {
        let mut log = self.dhcp_log.clone();
        if let Some(dhcp) = &self.dhcp {
            log.push_str(&dhcp.log());
        }
        log
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop_everything(false);
        let _gone = fs::remove_file("/run/alb-nettools-dnsmasq.leases");
        for (path, before) in self.saved.drain(..) {
            let _restored = match before {
                Some(bytes) => fs::write(&path, bytes),
                None => fs::remove_file(&path),
            };
        }
        let _reloaded = cmd::run(&mut cmd::command("systemctl", &["daemon-reload"]));
    }
}

/// `dev`'s addresses, as `198.18.0.1/24`.
pub(crate) fn addresses(dev: &str) -> Vec<String> {
    run("ip", &["-o", "addr", "show", "dev", dev])
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next().map(str::to_owned)
        })
        .collect()
}

/// The agent's status (`alb status --json` of the package's binary).
pub(crate) fn status() -> Status {
    let out = cmd::output(Command::new(ALB).args(["status", "--master", "alb0", "--json"]))
        .unwrap_or_else(|e| panic!("alb status: {e:#}"));
    assert!(out.status.success(), "alb status: {}", String::from_utf8_lossy(&out.stderr));
    Status::parse(&out.stdout).unwrap_or_else(|e| panic!("{e:#}"))
}

/// What a tool that took a slave would change: how often its carrier went
/// down (a down/up, an `ifdown`) and its index (deleted and made again).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SlaveMarks(Vec<(String, String, String)>);

impl SlaveMarks {
    fn read(lab: &Lab) -> Self {
        Self(
            lab.slaves()
                .iter()
                .map(|s| {
                    let read = |f: &str| {
                        let path = format!("/sys/class/net/{}/{f}", s.name);
                        fs::read_to_string(&path)
                            .unwrap_or_else(|e| panic!("{path}: {e}"))
                            .trim()
                            .to_owned()
                    };
                    (s.name.clone(), read("carrier_down_count"), read("ifindex"))
                })
                .collect(),
        )
    }
}
