//! The Debian 12 root filesystem of `vm-test --systemd`: made once with
//! debootstrap (minbase plus systemd, udev, dbus and the lab's tools),
//! slimmed, and packed as an uncompressed cpio archive the kernel unpacks
//! into a tmpfs root. Both are cached in `target/vm-cache/` and rebuilt only
//! when missing. Whatever a run adds (units, the package, the kernel's
//! modules) goes into a second archive appended to this one.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::bootstrap::status;

/// The release and mirror debootstrap installs from.
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";

/// What the guest needs beyond minbase: systemd as PID 1 and its helpers
/// (systemd-networkd among them), the lab's tools (`ip`, `tc`, `ping`,
/// `nsenter` comes with util-linux), `ps`, `modprobe`, bpftool to see that
/// nothing of alb is left, and the network tools that configure the master
/// in tests/tests/network_tools.rs: ifupdown with bridge-utils (its
/// `bridge_ports`), NetworkManager, netplan (its generator writes
/// networkd's files), and dnsmasq's binary as the switch side's DHCP server. libpam-systemd is logind, which NetworkManager's
/// polkitd depends on through a virtual package (default-logind) that
/// debootstrap does not resolve.
const INCLUDE: &str = "systemd,systemd-sysv,udev,dbus,iproute2,iputils-ping,procps,kmod,bpftool,\
                       ifupdown,bridge-utils,libpam-systemd,network-manager,dnsmasq-base,netplan.io";

/// Units the packages above enable that must not run at boot: a network
/// tool would take the lab's slaves as they appear (NetworkManager gives
/// every new Ethernet device a DHCP profile). The tests that want a tool
/// start it themselves. Relative to the root; removed after debootstrap.
const DISABLED: &[&str] = &[
    "etc/systemd/system/multi-user.target.wants/NetworkManager.service",
    "etc/systemd/system/network-online.target.wants/NetworkManager-wait-online.service",
    "etc/systemd/system/dbus-org.freedesktop.nm-dispatcher.service",
    "etc/systemd/system/multi-user.target.wants/networking.service",
    "etc/systemd/system/network-online.target.wants/networking.service",
    "etc/systemd/system/multi-user.target.wants/wpa_supplicant.service",
    "etc/systemd/system/dbus-fi.w1.wpa_supplicant1.service",
];

/// Written into the root filesystem's directory once it is complete: a
/// cached root made from another package list is made again.
const STAMP: &str = ".alb-include";

/// What the guest never reads (package lists, documentation, translations,
/// the hardware database), relative to the root. Removing it halves the
/// archive, and the kernel unpacks it at every boot.
const SLIM: &[&str] = &[
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/lib/udev/hwdb.bin",
    "usr/lib/udev/hwdb.d",
];

/// The cached root filesystem's archive (`rootfs-bookworm.cpio`), made
/// (debootstrap, about a minute) and packed if missing.
pub(crate) fn prepare(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(format!("rootfs-{SUITE}"));
    let archive = cache.join(format!("rootfs-{SUITE}.cpio"));
    let stamp = dir.join(STAMP);
    if dir.exists() && fs::read_to_string(&stamp).ok().as_deref() != Some(INCLUDE) {
        eprintln!("vm-test: {} has another package list: made again", dir.display());
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    if !dir.exists() {
        let partial = cache.join(format!("rootfs-{SUITE}.partial"));
        if partial.exists() {
            fs::remove_dir_all(&partial)
                .with_context(|| format!("cannot clear {}", partial.display()))?;
        }
        eprintln!(
            "vm-test: debootstrap of Debian {SUITE} (minbase + {INCLUDE}) into {} \
             (about a minute, cached)",
            dir.display()
        );
        let mut debootstrap = Command::new("debootstrap");
        debootstrap
            .args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
            .arg(&partial)
            .arg(MIRROR)
            .stdout(Stdio::null());
        status(&mut debootstrap).context("debootstrap (cargo xtask bootstrap installs it)")?;
        slim(&partial)?;
        disable(&partial)?;
        fs::write(partial.join(STAMP), INCLUDE)?;
        // Complete only now: an interrupted run leaves a .partial to redo.
        fs::rename(&partial, &dir)?;
        if archive.exists() {
            fs::remove_file(&archive)?;
        }
    }
    if !archive.exists() {
        let partial = archive.with_extension("cpio.partial");
        pack(&dir, &partial, false)?;
        fs::rename(&partial, &archive)?;
    }
    Ok(archive)
}

/// Removes what the guest never reads.
fn slim(root: &Path) -> Result<()> {
    for path in SLIM {
        let path = root.join(path);
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            // Keep the directory itself: packages expect it.
            for entry in fs::read_dir(&path)? {
                let entry = entry?.path();
                if entry.is_dir() && !entry.is_symlink() {
                    fs::remove_dir_all(&entry)?;
                } else {
                    fs::remove_file(&entry)?;
                }
            }
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Disables what must not run at boot ([`DISABLED`]).
fn disable(root: &Path) -> Result<()> {
    for link in DISABLED {
        let link = root.join(link);
        if fs::symlink_metadata(&link).is_ok() {
            fs::remove_file(&link).with_context(|| format!("cannot remove {}", link.display()))?;
        }
    }
    Ok(())
}

/// Packs `dir` into a cpio "newc" archive at `out` (the format the kernel
/// unpacks), entries sorted so that every directory comes before what it
/// holds. `as_root`: every entry owned by root (a staging directory's
/// files may belong to anybody); otherwise owners are kept.
pub(crate) fn pack(dir: &Path, out: &Path, as_root: bool) -> Result<()> {
    let list = Command::new("find")
        .args([".", "-mindepth", "1"])
        .current_dir(dir)
        .output()
        .context("find")?;
    if !list.status.success() {
        bail!("find in {} failed: {}", dir.display(), list.status);
    }
    let mut paths: Vec<&[u8]> =
        list.stdout.split(|&b| b == b'\n').filter(|p| !p.is_empty()).collect();
    paths.sort_unstable();
    let mut cpio = Command::new("cpio");
    cpio.args(["-o", "-H", "newc", "--quiet"]);
    if as_root {
        cpio.args(["-R", "0:0"]);
    }
    let mut child = cpio
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?)
        .spawn()
        .context("cannot run cpio (cargo xtask bootstrap installs it)")?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("cpio stdin")?;
        for path in paths {
            stdin.write_all(path)?;
            stdin.write_all(b"\n")?;
        }
    }
    let exit = child.wait()?;
    if !exit.success() {
        bail!("cpio of {} failed: {exit}", dir.display());
    }
    Ok(())
}
