//! The Debian package (issue 12, item 7): `cargo xtask package` builds it
//! (`cargo xtask test` does so before the tests run); here it is installed
//! with dpkg into a root of its own, its files are checked where the unit
//! expects them, the unit is verified, the installed binary runs a lab,
//! and a purge removes it all. An upgrade from the package of an earlier
//! commit whose pins have another format is refused before anything
//! stops (issue 20, item 4; that package is built once and cached, see
//! `alb_tests::package`). Needs root, dpkg, systemd-analyze, man, bpftool
//! and ping.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use alb_common::maps::{PIN_FORMAT, names};
use alb_tests::{
    agent::pin_dir,
    package::{PREVIOUS_FORMAT, PREVIOUS_FORMAT_COMMIT, package_at},
    root::TempRoot,
};
use common::{
    Agent, alb_bin, leftovers,
    pings::{self, unix_now},
    resolve_all,
};

const SLAVES: [&str; 2] = ["veth17", "veth19"];

/// The target directory: the `alb` binary's profile directory's parent.
fn target_dir() -> PathBuf {
    alb_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/alb has a target directory")
        .to_owned()
}

/// `target/package/alb_*.deb`, next to the `alb` binary's profile directory.
fn the_package() -> PathBuf {
    let target = target_dir().join("package");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&target)
        .unwrap_or_else(|e| panic!("{}: {e}: run cargo xtask package first", target.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    debs.sort();
    debs.pop().unwrap_or_else(|| panic!("no .deb in {}: run cargo xtask package", target.display()))
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The program and `--config` path of the unit's `ExecStart=`, for master
/// `alb0`.
fn exec_start(unit: &str) -> (String, String) {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart= in the unit:\n{unit}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let config = words
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1].replace("%i", "alb0"))
        .unwrap_or_else(|| panic!("ExecStart= names its config file: {line}"));
    (words[0].to_owned(), config)
}

#[test]
fn the_package_installs_where_the_unit_expects_and_runs_in_a_lab() {
    let deb = the_package();
    let root = TempRoot::new("package").expect("temp root");
    root.init_dpkg().expect("dpkg database");
    root.dpkg(&["-i", deb.to_str().expect("UTF-8 path")]).unwrap_or_else(|e| panic!("{e:#}"));

    // The files, where the unit expects them.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/alb@.service"))
        .expect("the unit is installed");
    let (program, config) = exec_start(&unit);
    let binary = root.join(&program);
    let mode = std::fs::metadata(&binary)
        .unwrap_or_else(|e| panic!("the unit's {program} is installed: {e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "{program} is executable: {mode:o}");
    let config_dir = Path::new(&config).parent().expect("a config directory");
    assert!(root.join(config_dir.to_str().expect("UTF-8")).is_dir(), "{config_dir:?} exists");
    let example = root.join("usr/share/doc/alb/examples/alb.toml");
    let checked = run(Command::new(&binary).arg("config").arg("check").arg(&example));
    assert!(checked.contains("OK"), "the example config passes alb config check: {checked}");
    let version = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"));
    let said = run(Command::new(&binary).arg("--version"));
    assert_eq!(said.trim(), format!("alb {}", version.trim()), "the package's version runs");
    let man = run(Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(root.join("usr/share/man/man8/alb.8.gz")));
    assert!(man.contains("keep-datapath"), "the man page documents the options:\n{man}");
    for (path, needle) in [
        ("usr/share/bash-completion/completions/alb", "complete -F _alb"),
        ("usr/share/zsh/vendor-completions/_alb", "#compdef alb"),
        ("usr/share/fish/vendor_completions.d/alb.fish", "complete -c alb"),
    ] {
        let script = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|e| panic!("completion {path}: {e}"));
        assert!(script.contains(needle), "{path} is a completion script");
    }

    // The udev rule that lets NetworkManager manage the master
    // (network_tools.rs runs it with NetworkManager).
    let rule = std::fs::read_to_string(root.join("lib/udev/rules.d/86-alb-master.rules"))
        .expect("the udev rule is installed");
    assert!(rule.contains(r#"TEST=="/etc/alb/%k.toml", ENV{NM_UNMANAGED}="0""#), "{rule}");

    // The unit, verified in that root.
    root.place(Path::new("/bin/kill"), "bin/kill").expect("kill for ExecReload=");
    let said = root.verify_unit("alb@alb0.service").unwrap_or_else(|e| panic!("{e:#}"));
    assert!(said.is_empty(), "systemd-analyze verify: {said}");

    // The installed binary runs the seed lab.
    let lab = common::lab(2, 2);
    let command = Agent::command(&lab, &["veth17", "veth19"]).with_bin(&binary);
    let mut agent = Agent::start_command(&lab, &command);
    resolve_all(&lab);
    let status = agent.status();
    let mut slaves: Vec<_> = status.clients.iter().filter_map(|c| c.slave.clone()).collect();
    slaves.sort();
    assert_eq!(slaves, ["veth17", "veth19"], "one client per slave: {status}");
    let exit = agent.stop();
    assert!(exit.success(), "{exit}\n{}", agent.log());
    let left = leftovers(&lab, lab.master());
    assert!(left.is_empty(), "the installed agent cleans up: {left:?}");

    // A purge takes it all away.
    root.dpkg(&["--purge", "alb"]).unwrap_or_else(|e| panic!("{e:#}"));
    for path in [
        program.as_str(),
        "lib/systemd/system/alb@.service",
        "lib/udev/rules.d/86-alb-master.rules",
        "usr/share/man/man8/alb.8.gz",
    ] {
        assert!(!root.join(path).exists(), "{path} is gone after a purge");
    }
}

/// `Config::format` of the maps pinned for `master`, as bpftool reads it
/// with the map's BTF (by field name, whatever the struct's layout).
fn pinned_format(master: &str) -> u64 {
    let path = pin_dir(master).join(names::CONFIG);
    let dump = run(Command::new("bpftool").args(["-j", "map", "dump", "pinned"]).arg(&path));
    let entries: serde_json::Value =
        serde_json::from_str(&dump).unwrap_or_else(|e| panic!("bpftool's JSON: {e}: {dump}"));
    entries[0]["formatted"]["value"]["format"]
        .as_u64()
        .unwrap_or_else(|| panic!("no format field in {}: {dump}", path.display()))
}

/// What dpkg says of the package in `root`: version and status.
fn installed(root: &TempRoot) -> String {
    let query = run(Command::new("dpkg-query")
        .arg(format!("--root={}", root.path().display()))
        .args(["-W", "-f", "${Version} ${Status}", "alb"]));
    query.trim().to_owned()
}

/// An upgrade across a pin format (issue 20, item 4): the package of
/// [`PREVIOUS_FORMAT_COMMIT`] (pin format 5) is installed and its agent
/// runs a lab with `--keep-datapath`, as the unit runs it; `dpkg -i` of
/// this tree's package is refused by its preinst, which names `alb down`,
/// before anything is unpacked or stopped: the old package stays
/// installed, its agent keeps running and no ping is lost. After a stop and
/// `alb down` the upgrade goes through and the new agent runs the lab; a
/// second upgrade over the new agent's own pins (the same format) goes
/// through too, so the refusal is the format's.
#[test]
fn an_upgrade_over_pins_of_another_format_is_refused_until_alb_down() {
    let new_deb = the_package();
    let old_deb = package_at(&target_dir(), PREVIOUS_FORMAT_COMMIT)
        .unwrap_or_else(|e| panic!("the package of {PREVIOUS_FORMAT_COMMIT}: {e:#}"));
    let root = TempRoot::new("upgrade").expect("temp root");
    root.init_dpkg().expect("dpkg database");
    root.dpkg(&["-i", old_deb.to_str().expect("UTF-8 path")])
        .unwrap_or_else(|e| panic!("install the old package: {e:#}"));
    let binary = root.join("usr/sbin/alb");
    let old_binary = std::fs::read(&binary).expect("the old package's binary");
    let old_installed = installed(&root);

    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    // The preinst reads $DPKG_ROOT/sys/fs/bpf/alb/*: there, the pins of
    // this lab's master in the running kernel's bpffs, as a chroot with
    // /sys mounted would show them, and no other master's (other tests'
    // agents on this machine). The root's removal unlinks the link, never
    // what it points to.
    std::fs::create_dir_all(root.join("sys/fs/bpf/alb")).expect("sys/fs/bpf/alb in the root");
    std::os::unix::fs::symlink(pin_dir(&master), root.join("sys/fs/bpf/alb").join(&master))
        .expect("link the master's pins");
    // As the unit runs it: the installed binary, --keep-datapath.
    let command = Agent::command(&lab, &SLAVES).args(&["--keep-datapath"]).with_bin(&binary);
    let mut agent = Agent::start_command(&lab, &command);
    resolve_all(&lab);
    let found = pinned_format(&master);
    assert_eq!(found, u64::from(PREVIOUS_FORMAT), "the old agent pins its own format");
    assert_ne!(found, u64::from(PIN_FORMAT), "the case needs pins of another format");

    // The refused upgrade, under pings every 10 ms.
    let pings =
        pings::start_pings(&lab, &[1, 2], Duration::from_secs(8), Duration::from_millis(10));
    let refused = root.dpkg(&["-i", new_deb.to_str().expect("UTF-8 path")]);
    let refused_at = unix_now();
    let said = format!("{:#}", refused.expect_err("the upgrade over format-5 pins is refused"));
    let expected = format!(
        "alb: cannot upgrade: the data path of master {master} (/sys/fs/bpf/alb/{master}) has \
         pin format {PREVIOUS_FORMAT}, this package's agent uses format {PIN_FORMAT}"
    );
    assert!(said.contains(&expected), "the preinst says why:\n{said}");
    assert!(
        said.contains(&format!("`alb down --master {master}`")),
        "the refusal names alb down:\n{said}"
    );
    assert!(said.contains("pre-installation script"), "the preinst refused it:\n{said}");
    assert_eq!(installed(&root), old_installed, "the old package stays installed");
    assert_eq!(std::fs::read(&binary).expect("binary"), old_binary, "nothing was unpacked");
    assert!(agent.running(), "the old agent runs on:\n{}", agent.log());
    assert_eq!(pinned_format(&master), found, "its pins are untouched");
    let runs = pings.finish();
    pings::report("package", "a refused upgrade", &runs);
    for run in &runs {
        assert!(
            run.first_reply_after(refused_at).is_some(),
            "c{} was answered after the refusal too: {run}",
            run.number
        );
        pings::assert_none_lost("a refused upgrade", run, &agent.log());
    }

    // The way out the message names: stop the agent, `alb down`, upgrade.
    let exit = agent.stop();
    assert!(exit.success(), "{exit}\n{}", agent.log());
    let out = agent.down().expect("alb down");
    assert!(out.status.success(), "alb down: {}", String::from_utf8_lossy(&out.stderr));
    assert!(leftovers(&lab, &master).is_empty(), "alb down removed the old data path");
    drop(agent);
    root.dpkg(&["-i", new_deb.to_str().expect("UTF-8 path")])
        .unwrap_or_else(|e| panic!("the upgrade after alb down: {e:#}"));
    assert_ne!(std::fs::read(&binary).expect("binary"), old_binary, "the new binary is in place");
    let preinst =
        std::fs::read_to_string(root.join("var/lib/dpkg/info/alb.preinst")).expect("preinst");
    assert!(preinst.contains(&format!("format={PIN_FORMAT}\n")), "its format baked in:\n{preinst}");

    // The new agent runs the lab, and an upgrade over its pins goes through.
    let mut agent = Agent::start_command(&lab, &command);
    resolve_all(&lab);
    assert_eq!(pinned_format(&master), u64::from(PIN_FORMAT), "the new agent's pins");
    root.dpkg(&["-i", new_deb.to_str().expect("UTF-8 path")])
        .unwrap_or_else(|e| panic!("an upgrade over pins of its own format: {e:#}"));
    assert!(agent.running(), "the agent runs on:\n{}", agent.log());
    let exit = agent.stop();
    assert!(exit.success(), "{exit}\n{}", agent.log());
    let out = agent.down().expect("alb down");
    assert!(out.status.success(), "alb down: {}", String::from_utf8_lossy(&out.stderr));
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "after alb down: {left:?}");
}

/// The preinst's two other cases, in a root whose `sys/fs/bpf` is a plain
/// directory holding a master's `ALB_CONFIG` that is not a pinned map (no
/// format to read): a first install is not refused (nothing restarts
/// then), an upgrade is ("pin format unknown"); it goes through over an
/// `ALB_CONFIG` in bpffs's form with this package's format (raw MAC bytes
/// that are not UTF-8 included), and once the pins are gone.
#[test]
fn the_preinst_refuses_pins_it_cannot_read_only_on_an_upgrade() {
    let deb = the_package();
    let deb = deb.to_str().expect("UTF-8 path");
    let root = TempRoot::new("preinst").expect("temp root");
    root.init_dpkg().expect("dpkg database");
    let pins = root.join("sys/fs/bpf/alb/albx0");
    std::fs::create_dir_all(&pins).expect("a pin directory");
    std::fs::write(pins.join(names::CONFIG), "not a map\n").expect("an unreadable ALB_CONFIG");

    root.dpkg(&["-i", deb]).unwrap_or_else(|e| panic!("a first install is not refused: {e:#}"));
    let said = format!("{:#}", root.dpkg(&["-i", deb]).expect_err("an upgrade is refused"));
    assert!(
        said.contains(
            "the data path of master albx0 (/sys/fs/bpf/alb/albx0) has pin format unknown"
        ) && said.contains("`alb down --master albx0`"),
        "the preinst names the master and alb down:\n{said}"
    );
    // The form bpffs prints an ALB_CONFIG in, with this package's format:
    // the MAC's bytes come raw (0xa1, 0xb0: not UTF-8), which a sed in a
    // UTF-8 locale cannot match past; the preinst reads it in the C locale.
    let mut config =
        format!("# WARNING!! The output is for debug purpose only\n0: {{7,0,2,{PIN_FORMAT},[2,")
            .into_bytes();
    config.extend_from_slice(b"\xa1,\xb0,0,0,23,],[],[],16,0,}\n");
    std::fs::write(pins.join(names::CONFIG), config).expect("ALB_CONFIG as bpffs prints it");
    root.dpkg(&["-i", deb]).unwrap_or_else(|e| panic!("an upgrade over its own format: {e:#}"));
    std::fs::remove_dir_all(&pins).expect("remove the pins");
    root.dpkg(&["-i", deb]).unwrap_or_else(|e| panic!("the upgrade without pins: {e:#}"));
}
