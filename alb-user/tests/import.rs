//! `alb import` on fixtures written as each tool's documentation shows
//! them (tests/fixtures/import/): the settings it prints, the notes on
//! stderr with their lines, the refusal of another mode and of a source
//! with no bond, `--address-config`, and that `alb config check` accepts
//! what it prints. Runs the real binary, from the crate's directory (the
//! notes' paths are relative to it); needs no root.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicUsize, Ordering},
};

use alb::config::{PrimaryReselect, Settings};

const FIXTURES: &str = "tests/fixtures/import";

fn alb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alb"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run alb {args:?}: {e}"))
}

/// A directory of its own, removed on drop (also when a test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        // Tests run in parallel: each scratch directory is new.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("alb-import-{name}-{}-{n}", std::process::id()));
        drop(fs::remove_dir_all(&dir));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop(fs::remove_dir_all(&self.0));
    }
}

/// What an import printed.
struct Imported {
    settings: Settings,
    /// `PATH:LINE: option` of each stderr line (the why left out), PATH
    /// under the fixtures.
    notes: Vec<String>,
    stderr: String,
}

/// `alb import FORMAT PATH EXTRA...`, which must succeed; its config must
/// pass `alb config check` (the real binary).
fn import(format: &str, path: &str, extra: &[&str]) -> Imported {
    // sysfs takes a bond's name, the others a fixture.
    let path = if format == "sysfs" { path.to_owned() } else { format!("{FIXTURES}/{path}") };
    let mut args = vec!["import", format, &path];
    args.extend_from_slice(extra);
    let out = alb(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "alb {args:?}: {stderr}");
    let settings: Settings = toml::from_str(&stdout)
        .unwrap_or_else(|e| panic!("alb {args:?} printed no config ({e}):\n{stdout}"));
    let scratch = Scratch::new(&format!("check-{format}"));
    let config = scratch.0.join("imported.toml");
    fs::write(&config, &stdout).expect("write the imported config");
    let check = alb(&["config", "check", config.to_str().expect("UTF-8 path")]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "alb config check refuses what alb {args:?} printed:\n{stdout}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let notes = stderr
        .lines()
        .filter(|line| !line.starts_with("alb: "))
        .map(|line| {
            let line = line.strip_prefix(&format!("{FIXTURES}/")).unwrap_or(line);
            // PATH:LINE: option: why -> PATH:LINE: option
            let mut parts = line.splitn(4, ": ");
            let place = parts.next().unwrap_or_default();
            format!("{place}: {}", parts.next().unwrap_or_default())
        })
        .collect();
    Imported { settings, notes, stderr }
}

/// `alb import ...` that must be refused: its one stderr line.
fn refused(args: &[&str]) -> String {
    let out = alb(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "alb {args:?} is refused: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "a refusal prints no config: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("alb: "), "{stderr}");
    stderr.trim_end().to_owned()
}

fn names(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|name| (*name).to_owned()).collect())
}

fn settings(master: &str, slaves: &[&str]) -> Settings {
    Settings { master: Some(master.to_owned()), slaves: names(slaves), ..Settings::default() }
}

#[test]
fn netplan_bond_translates_with_each_unmapped_parameter_on_its_line() {
    let imported = import("netplan", "netplan/bond-alb.yaml", &[]);
    assert_eq!(
        imported.settings,
        Settings {
            updelay: Some(200),
            downdelay: Some(200),
            primary: Some("enp4s0".to_owned()),
            primary_reselect: Some(PrimaryReselect::Better),
            lp_interval: Some(3),
            ..settings("bond0", &["enp3s0", "enp4s0"])
        }
    );
    assert_eq!(
        imported.notes,
        [
            "netplan/bond-alb.yaml:13: dhcp4",
            "netplan/bond-alb.yaml:14: addresses",
            "netplan/bond-alb.yaml:16: routes",
            "netplan/bond-alb.yaml:19: mtu",
            "netplan/bond-alb.yaml:25: mii-monitor-interval",
            "netplan/bond-alb.yaml:26: up-delay",
            "netplan/bond-alb.yaml:31: arp-interval",
            "netplan/bond-alb.yaml:32: arp-ip-targets",
            "netplan/bond-alb.yaml:34: transmit-hash-policy",
            "netplan/bond-alb.yaml:35: fail-over-mac-policy",
        ]
    );
    assert!(
        imported.stderr.contains(
            "up-delay: 250 ms is not a multiple of miimon (100 ms): bonding rounds it down to 200 ms"
        ),
        "{}",
        imported.stderr
    );
    assert!(imported.stderr.contains("arp-interval: ARP monitoring, which bonding itself refuses"));
}

#[test]
fn netplan_refuses_another_mode_and_a_file_with_no_bond() {
    let path = format!("{FIXTURES}/netplan/active-backup.yaml");
    assert_eq!(
        refused(&["import", "netplan", &path]),
        format!(
            "alb: {path}:12: bond bond0 is in mode active-backup (1): alb runs balance-alb (mode 6) only"
        )
    );
    let path = format!("{FIXTURES}/netplan/no-bond.yaml");
    assert_eq!(refused(&["import", "netplan", &path]), format!("alb: {path}: no bond defined"));
}

#[test]
fn bond_picks_one_of_several_and_alb_checks_refuse_what_cannot_run() {
    let path = format!("{FIXTURES}/netplan/two-bonds.yaml");
    assert_eq!(
        refused(&["import", "netplan", &path]),
        format!(
            "alb: {path}: several bonds (bond0, bond-with-a-long-name): choose one with --bond NAME"
        )
    );
    let imported = import("netplan", "netplan/two-bonds.yaml", &["--bond", "bond0"]);
    assert_eq!(imported.settings, settings("bond0", &["enp3s0", "enp4s0"]));
    assert_eq!(
        refused(&["import", "netplan", &path, "--bond", "bond9"]),
        format!("alb: {path}: no bond bond9 (bonds: bond0, bond-with-a-long-name)")
    );
    let error = refused(&["import", "netplan", &path, "--bond", "bond-with-a-long-name"]);
    assert!(
        error.starts_with(&format!("alb: {path}:11: bond bond-with-a-long-name: master name")),
        "{error}"
    );
}

#[test]
fn a_syntax_error_is_one_line_with_its_line() {
    let scratch = Scratch::new("syntax");
    let yaml = scratch.0.join("broken.yaml");
    fs::write(
        &yaml,
        "network:\n  bonds:\n    bond0:\n      interfaces: [a, b\n      parameters:\n",
    )
    .expect("write");
    let error = refused(&["import", "netplan", yaml.to_str().expect("UTF-8 path")]);
    assert_eq!(error, format!("alb: {}:5: illegal placement of ':' indicator", yaml.display()));
    let netdev = scratch.0.join("25-bond0.netdev");
    fs::write(&netdev, "[NetDev]\nName=bond0\nKind=bond\n\n[Bond\nMode=balance-alb\n")
        .expect("write");
    let error = refused(&["import", "networkd", scratch.0.to_str().expect("UTF-8 path")]);
    assert_eq!(error, format!("alb: {}:5: \"[Bond\" is not a section header", netdev.display()));
}

#[test]
fn ifupdown_follows_source_and_reads_ifupdown2_names() {
    let imported = import("ifupdown", "ifupdown/debian/interfaces", &[]);
    assert_eq!(
        imported.settings,
        Settings {
            updelay: Some(200),
            downdelay: Some(200),
            primary: Some("eth1".to_owned()),
            lp_interval: Some(2),
            ..settings("bond0", &["eth0", "eth1"])
        }
    );
    let file = "ifupdown/debian/interfaces.d/bond0.cfg";
    let expected: Vec<String> = [
        "3: address",
        "4: gateway",
        "5: dns-nameservers",
        "8: bond-miimon",
        "10: bond-updelay",
        "13: bond-xmit-hash-policy",
        "14: bond-arp-interval",
        "15: mtu",
        "18: address",
    ]
    .iter()
    .map(|note| format!("{file}:{note}"))
    .collect();
    assert_eq!(imported.notes, expected);
}

#[test]
fn ifupdown_takes_ifenslave_bond_master_slaves_from_a_source_directory() {
    let imported = import("ifupdown", "ifupdown/ifenslave/interfaces", &[]);
    // In the order of their stanzas; tlb_dynamic_lb 0 is no rebalancing.
    assert_eq!(
        imported.settings,
        Settings { rebalance_interval: Some(0), ..settings("bond0", &["eth1", "eth0"]) }
    );
    assert_eq!(
        imported.notes,
        [
            "ifupdown/ifenslave/interfaces.d/bond0:13: bond_miimon",
            // Continued on the next line: the note is at its first.
            "ifupdown/ifenslave/interfaces.d/bond0:15: bond-lacp-rate",
            "ifupdown/ifenslave/interfaces.d/bond0:17: bond-arp-ip-target",
        ]
    );
}

#[test]
fn ifupdown_refuses_proxmox_lacp_bond() {
    let path = format!("{FIXTURES}/ifupdown/proxmox/interfaces");
    assert_eq!(
        refused(&["import", "ifupdown", &path]),
        format!(
            "alb: {path}:13: bond bond0 is in mode 802.3ad (4): alb runs balance-alb (mode 6) only"
        )
    );
}

#[test]
fn networkd_reads_the_netdev_and_the_slaves_networks() {
    let imported = import("networkd", "networkd/alb", &[]);
    assert_eq!(
        imported.settings,
        Settings {
            updelay: Some(200),
            downdelay: Some(200),
            primary: Some("eth1".to_owned()),
            primary_reselect: Some(PrimaryReselect::Failure),
            lp_interval: Some(2),
            rebalance_interval: Some(0),
            ..settings("bond0", &["eth0", "eth1"])
        }
    );
    assert_eq!(
        imported.notes,
        [
            "networkd/alb/25-bond0.netdev:5: MTUBytes",
            "networkd/alb/25-bond0.netdev:9: MIIMonitorSec",
            "networkd/alb/25-bond0.netdev:10: UpDelaySec",
            "networkd/alb/25-bond0.netdev:16: GratuitousARP",
        ]
    );
}

#[test]
fn networkd_refuses_the_manual_page_lacp_bond() {
    let path = format!("{FIXTURES}/networkd/lacp");
    assert_eq!(
        refused(&["import", "networkd", &path]),
        format!(
            "alb: {path}/25-bond.netdev:7: bond bond1 is in mode 802.3ad (4): alb runs balance-alb (mode 6) only"
        )
    );
}

#[test]
fn nm_reads_the_bond_keyfile_and_its_ports_by_name_and_by_uuid() {
    let expected = Settings {
        updelay: Some(300),
        downdelay: Some(100),
        primary: Some("eth1".to_owned()),
        lp_interval: Some(5),
        rebalance_interval: Some(0),
        ..settings("bond0", &["eth0", "eth1"])
    };
    let notes = [
        "nm/alb/bond0.nmconnection:9: ethernet.mtu",
        "nm/alb/bond0.nmconnection:13: miimon",
        "nm/alb/bond0.nmconnection:15: downdelay",
        "nm/alb/bond0.nmconnection:19: arp_ip_target",
        "nm/alb/bond0.nmconnection:21: [ipv4]",
        "nm/alb/bond0.nmconnection:26: [ipv6]",
    ];
    for path in ["nm/alb", "nm/alb/bond0.nmconnection"] {
        let imported = import("nm", path, &[]);
        assert_eq!(imported.settings, expected, "{path}");
        assert_eq!(imported.notes, notes, "{path}");
    }
    let path = format!("{FIXTURES}/nm/lacp");
    assert!(
        refused(&["import", "nm", &path])
            .ends_with("bond bond1 is in mode 802.3ad (4): alb runs balance-alb (mode 6) only")
    );
}

#[test]
fn sysfs_reads_a_running_bond_and_leaves_out_what_is_at_its_default() {
    let root = format!("{FIXTURES}/sysfs");
    let imported = import("sysfs", "bond0", &["--sysfs-root", &root]);
    assert_eq!(
        imported.settings,
        Settings {
            updelay: Some(200),
            primary: Some("eth1".to_owned()),
            primary_reselect: Some(PrimaryReselect::Always),
            lp_interval: Some(1),
            rebalance_interval: Some(0),
            ..settings("bond0", &["eth0", "eth1"])
        }
    );
    let dir = "sysfs/class/net/bond0/bonding";
    assert_eq!(
        imported.notes,
        [format!("{dir}/miimon:1: miimon"), format!("{dir}/num_grat_arp:1: num_grat_arp")]
    );
    assert!(
        refused(&["import", "sysfs", "bond1", "--sysfs-root", &root])
            .ends_with("bond bond1 is in mode 802.3ad (4): alb runs balance-alb (mode 6) only")
    );
    assert!(
        refused(&["import", "sysfs", "eth0", "--sysfs-root", &root])
            .starts_with("alb: eth0 is not a kernel bond")
    );
}

/// `alb import FORMAT PATH --address-config DIR`: the one file it wrote,
/// its text and mode, and the stderr line naming it.
fn address_config(format: &str, path: &str, name: &str) -> (String, u32) {
    let scratch = Scratch::new(&format!("address-{format}"));
    let dir = scratch.0.to_str().expect("UTF-8 path");
    let imported = import(format, path, &["--address-config", dir]);
    let written = scratch.0.join(name);
    assert!(
        imported
            .stderr
            .contains(&format!("alb: wrote the master's addressing to {}", written.display())),
        "{}",
        imported.stderr
    );
    let files: Vec<_> = fs::read_dir(&scratch.0).expect("read the dir").collect();
    assert_eq!(files.len(), 1, "one file written");
    let text =
        fs::read_to_string(&written).unwrap_or_else(|e| panic!("read {}: {e}", written.display()));
    let mode = fs::metadata(&written).expect("stat").permissions().mode() & 0o777;
    (text, mode)
}

/// The lines of `text` that are not comments.
fn body(text: &str) -> Vec<&str> {
    text.lines().filter(|line| !line.starts_with('#')).collect()
}

#[test]
fn address_config_is_written_in_each_tool_own_format() {
    let (text, mode) = address_config("netplan", "netplan/bond-alb.yaml", "60-alb-bond0.yaml");
    assert_eq!(mode, 0o600, "netplan wants its files private");
    assert_eq!(
        body(&text),
        [
            "---",
            "network:",
            "  version: 2",
            "  renderer: networkd",
            "  ethernets:",
            "    bond0:",
            "      dhcp4: false",
            "      addresses:",
            "        - 198.18.10.2/24",
            "      routes:",
            "        - to: default",
            "          via: 198.18.10.1",
            "      mtu: 9000",
        ]
    );
    let (text, _) = address_config("ifupdown", "ifupdown/debian/interfaces", "bond0");
    assert_eq!(
        body(&text),
        [
            "auto bond0",
            "iface bond0 inet static",
            "    address 198.18.20.2/24",
            "    gateway 198.18.20.1",
            "    dns-nameservers 198.18.20.1",
            "    mtu 9000",
            "iface bond0 inet6 static",
            "    address 2001:2::2/64",
        ]
    );
    let (text, _) = address_config("networkd", "networkd/alb", "30-bond0.network");
    assert_eq!(
        body(&text),
        [
            "[Match]",
            "Name=bond0",
            "",
            "[Network]",
            "DHCP=no",
            "Gateway=198.18.30.1",
            "",
            "[Address]",
            "Address=198.18.30.2/24",
            "",
            "[Address]",
            "Address=2001:2::30:2/64",
        ]
    );
    let (text, mode) = address_config("nm", "nm/alb", "bond0.nmconnection");
    assert_eq!(mode, 0o600, "NetworkManager ignores a keyfile others can read");
    assert_eq!(
        body(&text),
        [
            "[connection]",
            "id=bond0",
            "type=ethernet",
            "interface-name=bond0",
            "",
            "[ethernet]",
            "",
            "[ipv4]",
            "address1=198.18.50.2/24,198.18.50.1",
            "dns=198.18.50.1;",
            "method=manual",
            "",
            "[ipv6]",
            "method=ignore",
        ]
    );
}

#[test]
fn address_config_refuses_sysfs_and_an_existing_file() {
    let root = format!("{FIXTURES}/sysfs");
    let scratch = Scratch::new("address-refused");
    let dir = scratch.0.to_str().expect("UTF-8 path");
    let error =
        refused(&["import", "sysfs", "bond0", "--sysfs-root", &root, "--address-config", dir]);
    assert!(error.starts_with("alb: --address-config: sysfs holds no addresses"), "{error}");
    let existing = Path::new(dir).join("bond0");
    fs::write(&existing, "mine\n").expect("write");
    let path = format!("{FIXTURES}/ifupdown/debian/interfaces");
    let error = refused(&["import", "ifupdown", &path, "--address-config", dir]);
    assert!(
        error.starts_with(&format!("alb: --address-config: cannot create {}", existing.display())),
        "{error}"
    );
    assert_eq!(
        fs::read_to_string(&existing).expect("read"),
        "mine\n",
        "an existing file is left alone"
    );
}
