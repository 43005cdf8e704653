//! `cargo xtask package`: a Debian package of alb, built from the release
//! agent (the BPF object is embedded in it) with `dpkg-deb`: the binary,
//! the systemd unit, a udev rule for NetworkManager, an example config, the man page and shell completions
//! generated from the command line's own definition.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use alb_common::maps::PIN_FORMAT;
use alb_tests::cmd;
use anyhow::{Context as _, Result, bail};

use crate::cargo::{self, Profile};

/// Where every installed file goes, relative to `/`.
pub(crate) const BINARY: &str = "usr/sbin/alb";
pub(crate) const UNIT: &str = "lib/systemd/system/alb@.service";
/// Lets NetworkManager manage a master that has a config file (it leaves
/// veth devices unmanaged): packaging/udev/86-alb-master.rules.
pub(crate) const UDEV_RULES: &str = "lib/udev/rules.d/86-alb-master.rules";
pub(crate) const MAN_PAGE: &str = "usr/share/man/man8/alb.8.gz";
pub(crate) const EXAMPLE_CONFIG: &str = "usr/share/doc/alb/examples/alb.toml";
const COPYRIGHT: &str = "usr/share/doc/alb/copyright";
/// Prometheus alert rules and a Grafana dashboard for the agent's metrics.
const MONITORING: [(&str, &str); 2] = [
    ("prometheus/alb-rules.yml", "usr/share/doc/alb/examples/prometheus/alb-rules.yml"),
    ("grafana/alb-dashboard.json", "usr/share/doc/alb/examples/grafana/alb-dashboard.json"),
];
const CONFIG_DIR: &str = "etc/alb";
/// Each shell and where its completion script goes.
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "usr/share/bash-completion/completions/alb"),
    ("zsh", "usr/share/zsh/vendor-completions/_alb"),
    ("fish", "usr/share/fish/vendor_completions.d/alb.fish"),
];

/// What `packaging/debian/preinst` holds in place of the agent's pin format.
const PIN_FORMAT_PLACEHOLDER: &str = "@PIN_FORMAT@";

/// Builds `target/package/alb_<version>_<arch>.deb` and returns its path.
pub(crate) fn run() -> Result<PathBuf> {
    let alb = cargo::build_agent(Profile::Release)?;
    let root = cargo::root();
    let version = agent_version(&alb)?;
    let arch = cmd::run(Command::new("dpkg").arg("--print-architecture"))?.trim().to_owned();
    let out_dir = cargo::target_dir()?.join("package");
    let stage = out_dir.join(format!("alb_{version}_{arch}"));
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("cannot clear {}", stage.display()))?;
    }
    let packaging = root.join("packaging");
    install(&alb, &stage.join(BINARY), 0o755)?;
    install(&packaging.join("systemd/alb@.service"), &stage.join(UNIT), 0o644)?;
    install(&packaging.join("udev/86-alb-master.rules"), &stage.join(UDEV_RULES), 0o644)?;
    install(&packaging.join("alb.toml"), &stage.join(EXAMPLE_CONFIG), 0o644)?;
    install(&packaging.join("debian/copyright"), &stage.join(COPYRIGHT), 0o644)?;
    for (from, to) in MONITORING {
        install(&packaging.join(from), &stage.join(to), 0o644)?;
    }
    fs::create_dir_all(stage.join(CONFIG_DIR))?;
    let man = cmd::run(Command::new(&alb).arg("man"))?;
    write_gzip(&stage.join(MAN_PAGE), man.as_bytes())?;
    for (shell, path) in COMPLETIONS {
        let script = cmd::run(Command::new(&alb).args(["completions", shell]))?;
        write(&stage.join(path), script.as_bytes(), 0o644)?;
    }
    let debian = stage.join("DEBIAN");
    for script in ["postinst", "postrm"] {
        install(&packaging.join("debian").join(script), &debian.join(script), 0o755)?;
    }
    // The preinst refuses an upgrade over pins of another format than the
    // one this agent was built with.
    let preinst = fs::read_to_string(packaging.join("debian/preinst"))?;
    anyhow::ensure!(preinst.contains(PIN_FORMAT_PLACEHOLDER), "preinst lacks its placeholder");
    let preinst = preinst.replace(PIN_FORMAT_PLACEHOLDER, &PIN_FORMAT.to_string());
    write(&debian.join("preinst"), preinst.as_bytes(), 0o755)?;
    let control = control(&version, &arch, &glibc_needed(&alb)?, installed_kib(&stage)?);
    write(&debian.join("control"), control.as_bytes(), 0o644)?;

    let deb = out_dir.join(format!("alb_{version}_{arch}.deb"));
    let mut build = Command::new("dpkg-deb");
    build.args(["--root-owner-group", "-Zxz", "--build"]).arg(&stage).arg(&deb);
    cmd::run(&mut build).context("dpkg-deb --build")?;
    eprintln!("xtask: built {}", deb.display());
    Ok(deb)
}

/// `alb --version`'s number.
fn agent_version(alb: &Path) -> Result<String> {
    let out = cmd::run(Command::new(alb).arg("--version"))?;
    match out.split_whitespace().collect::<Vec<_>>()[..] {
        ["alb", version] => Ok(version.to_owned()),
        _ => bail!("unexpected `alb --version`: {out:?}"),
    }
}

/// The newest glibc symbol version the binary links against (`objdump -T`),
/// for the package's dependency.
fn glibc_needed(alb: &Path) -> Result<String> {
    let symbols = cmd::run(Command::new("objdump").arg("-T").arg(alb))?;
    symbols
        .split_whitespace()
        .filter_map(|word| word.trim_matches(['(', ')']).strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let parts: Option<Vec<u32>> = v.split('.').map(|p| p.parse().ok()).collect();
            parts.map(|p| (p, v.to_owned()))
        })
        .max()
        .map(|(_, v)| v)
        .context("the binary names no GLIBC_ symbol version")
}

fn control(version: &str, arch: &str, glibc: &str, size_kib: u64) -> String {
    format!(
        "Package: alb\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: alb developers <alb@localhost>\n\
         Installed-Size: {size_kib}\n\
         Depends: libc6 (>= {glibc})\n\
         Section: net\n\
         Priority: optional\n\
         Description: adaptive load balancing (bonding mode 6) on eBPF\n \
         alb spreads a host's traffic over several network interfaces with no\n \
         help from the switch, as the kernel's bonding mode 6 (balance-alb)\n \
         does, with TC BPF programs and a small agent. Runs as a systemd\n \
         service per master: alb@alb0.service reads /etc/alb/alb0.toml.\n"
    )
}

/// The staged files' size, for `Installed-Size`.
fn installed_kib(dir: &Path) -> Result<u64> {
    let mut bytes = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            bytes += installed_kib(&entry.path())? * 1024;
        } else {
            bytes += entry.metadata()?.len();
        }
    }
    Ok(bytes.div_ceil(1024))
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let bytes = fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write(to, &bytes, mode)
}

fn write(to: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(to, bytes).with_context(|| format!("cannot write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", to.display()))
}

/// `gzip -9n` (no name or time stamp: the same input gives the same bytes).
fn write_gzip(to: &Path, bytes: &[u8]) -> Result<()> {
    let mut gzip = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("gzip")?;
    gzip.stdin.take().context("gzip stdin")?.write_all(bytes)?;
    let out = gzip.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed: {}", out.status);
    }
    write(to, &out.stdout, 0o644)
}
