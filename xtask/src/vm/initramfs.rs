//! The guest's initramfs: busybox-static, the host programs of
//! [`HOST_PROGRAMS`] and the `alb` binary with the shared libraries `ldd`
//! lists, the kernel modules the scenarios need, and `/init` (guest.sh, or
//! the test runner of suite.rs), written as a cpio "newc" archive and
//! gzipped.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, Stdio},
};

use alb_tests::cmd;
use anyhow::{Context as _, Result, bail};

use super::kernel::{self, Kernel};

/// The guest's /init.
const INIT: &str = include_str!("guest.sh");
/// `vm-test --nics`: the guest's half, sourced by /init.
const NICS: &str = include_str!("nics/guest.sh");

/// Modules the tests need (dependencies are added); `8021q` for the VLAN
/// devices of tests/tests/vlan.rs, `macvlan` for the VMs of
/// tests/tests/vms.rs; the last three drive the emulated
/// NICs of `vm-test --nics` (virtio_pci is built into 6.12).
const MODULES: &[&str] = &[
    "veth",
    "bridge",
    "8021q",
    "macvlan",
    "sch_ingress",
    "cls_bpf",
    "act_bpf",
    "bonding",
    "virtio_pci",
    "virtio_net",
    "e1000e",
];

/// Host programs copied in, with the libraries they link.
const HOST_PROGRAMS: &[&str] = &[
    "ip", "tc", "bridge", "ss", "ping", "bpftool", "ethtool", "tcpdump", "iperf3", "nsenter",
    "sysctl", "setpriv",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// The archive's contents: path in the guest -> (mode, contents).
#[derive(Default)]
pub(crate) struct Tree {
    entries: BTreeMap<String, (u32, Vec<u8>)>,
}

impl Tree {
    pub(crate) fn dir(&mut self, path: &str) {
        let mut at = String::new();
        for part in path.trim_matches('/').split('/') {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            self.entries.entry(at.clone()).or_insert((0o040_755, Vec::new()));
        }
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, contents: Vec<u8>) {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.insert(path.to_owned(), (0o100_000 | mode, contents));
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.insert(path.to_owned(), (0o120_777, target.as_bytes().to_vec()));
    }

    /// Drops `path` and everything under it.
    pub(crate) fn remove(&mut self, path: &str) {
        let under = format!("{path}/");
        self.entries.retain(|entry, _| entry != path && !entry.starts_with(&under));
    }

    /// A host binary and every library `ldd` lists for it.
    pub(crate) fn binary(&mut self, host: &Path, guest: &str) -> Result<()> {
        let bytes = fs::read(host).with_context(|| format!("cannot read {}", host.display()))?;
        self.file(guest, 0o755, bytes);
        let out = cmd::output(Command::new("ldd").arg(host))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)".
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next(),
                None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
            };
            let Some(path) = path.filter(|p| p.starts_with('/')) else { continue };
            if self.entries.contains_key(path.trim_start_matches('/')) {
                continue;
            }
            let real = fs::canonicalize(path)?;
            self.file(path, 0o755, fs::read(&real)?);
        }
        Ok(())
    }

    /// The cpio newc archive.
    fn cpio(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ino = 1u32;
        let mut put = |out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]| {
            let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
            let header = format!(
                "070701{ino:08X}{mode:08X}{:08X}{:08X}{nlink:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
                0,
                0,
                0,
                data.len(),
                0,
                0,
                0,
                0,
                name.len() + 1,
                0
            );
            ino += 1;
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
            out.extend_from_slice(data);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        };
        for (name, (mode, data)) in &self.entries {
            put(&mut out, name, *mode, data);
        }
        put(&mut out, "TRAILER!!!", 0, &[]);
        out
    }
}

/// Builds the gzipped initramfs for `kernel` at `out`; `mode` goes to
/// /etc/alb-vm-mode (which scenarios /init runs).
pub(crate) fn build(
    kernel: &Kernel,
    alb: &Path,
    mode: &str,
    repeats: &str,
    work: &Path,
    out: &Path,
) -> Result<()> {
    let mut tree = base(kernel, alb, work)?;
    tree.file("init", 0o755, INIT.as_bytes().to_vec());
    tree.file("nics.sh", 0o644, NICS.as_bytes().to_vec());
    tree.file("etc/alb-vm-mode", 0o644, mode.as_bytes().to_vec());
    tree.file("etc/alb-vm-repeats", 0o644, repeats.as_bytes().to_vec());
    write(&tree, out)
}

/// What every busybox guest has, without /init: busybox and its applets,
/// [`HOST_PROGRAMS`] and `alb` in /usr/bin with their libraries, and the
/// modules of `kernel` in /modules (loaded in /modules/order).
pub(crate) fn base(kernel: &Kernel, alb: &Path, work: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    for dir in ["proc", "sys", "dev", "run", "tmp", "etc", "root", "modules"] {
        tree.dir(dir);
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        bail!("no /bin/busybox: install busybox-static (cargo xtask bootstrap)");
    }
    tree.file("bin/busybox", 0o755, fs::read(busybox)?);
    let applets = cmd::run(Command::new(busybox).arg("--list"))?;
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        tree.symlink(&format!("bin/{applet}"), "busybox");
    }
    for program in HOST_PROGRAMS {
        let host = crate::bootstrap::which(program)
            .with_context(|| format!("no {program} on this host (cargo xtask bootstrap)"))?;
        tree.binary(&host, &format!("usr/bin/{program}"))?;
    }
    tree.binary(alb, "usr/bin/alb")?;
    // Users the tools look up: tcpdump -Z root, setpriv --reuid=nobody.
    tree.file("etc/passwd", 0o644, PASSWD.as_bytes().to_vec());
    tree.file("etc/group", 0o644, GROUP.as_bytes().to_vec());
    let modules = work.join("modules");
    if modules.exists() {
        fs::remove_dir_all(&modules)?;
    }
    fs::create_dir_all(&modules)?;
    let order = kernel::modules(kernel, MODULES, &modules)?;
    for name in &order {
        tree.file(
            &format!("modules/{name}.ko"),
            0o644,
            fs::read(modules.join(format!("{name}.ko")))?,
        );
    }
    tree.file("modules/order", 0o644, format!("{}\n", order.join("\n")).into_bytes());
    Ok(tree)
}

/// Writes `tree` gzipped to `out`.
pub(crate) fn write(tree: &Tree, out: &Path) -> Result<()> {
    let mut gzip = Command::new("gzip")
        .arg("-4")
        .stdin(Stdio::piped())
        .stdout(fs::File::create(out)?)
        .spawn()
        .context("cannot run gzip")?;
    gzip.stdin.take().context("gzip stdin")?.write_all(&tree.cpio())?;
    let status = gzip.wait()?;
    if !status.success() {
        bail!("gzip failed: {status}");
    }
    fs::set_permissions(out, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Tree;

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut tree = Tree::default();
        tree.file("bin/x", 0o755, b"abc".to_vec());
        let cpio = tree.cpio();
        assert!(cpio.starts_with(b"070701"));
        assert_eq!(cpio.len() % 4, 0);
        let text = String::from_utf8_lossy(&cpio);
        assert!(text.contains("bin\0") && text.contains("bin/x\0") && text.contains("TRAILER!!!"));
    }
}
