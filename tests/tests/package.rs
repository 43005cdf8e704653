//! The Debian package (issue 12, item 7): `cargo xtask package` builds it
//! (`cargo xtask test` does so before the tests run); here it is installed
//! with dpkg into a root of its own, its files are checked where the unit
//! expects them, the unit is verified, the installed binary runs a lab,
//! and a purge removes it all. Needs root, dpkg, systemd-analyze and man.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use alb_tests::root::TempRoot;
use common::{Agent, alb_bin, leftovers, resolve_all};

/// `target/package/alb_*.deb`, next to the `alb` binary's profile directory.
fn the_package() -> PathBuf {
    let target = alb_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/alb has a target directory")
        .join("package");
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
    for path in [program.as_str(), "lib/systemd/system/alb@.service", "usr/share/man/man8/alb.8.gz"]
    {
        assert!(!root.join(path).exists(), "{path} is gone after a purge");
    }
}
