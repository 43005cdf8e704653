//! What the running kernel offers, probed rather than read from its
//! version: TCX (Linux >= 6.6), clsact with cls_bpf (the fallback), BTF
//! and the BPF ring buffer. [`check`] refuses a kernel alb cannot use with
//! one line naming its release and the missing feature.
//!
//! The hook is TCX where the kernel has it, else clsact; the developer
//! switch [`HOOK_VAR`] (`ALB_HOOK=clsact`) picks clsact where TCX exists,
//! so the suite runs the hook of kernels before 6.6 on any host.

use std::{os::fd::FromRawFd as _, path::Path, sync::OnceLock};

use anyhow::{Result, bail};
use aya::maps::MapType;

/// The environment variable that picks the hook (`tcx` or `clsact`;
/// unset or empty: TCX where the kernel has it). A developer switch, not an
/// option: it is read once, by every `alb` command alike, and no config
/// file or reload can change it.
pub const HOOK_VAR: &str = "ALB_HOOK";

/// How the programs are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// BPF links (Linux >= 6.6).
    Tcx,
    /// `cls_bpf` filters on a clsact qdisc.
    Clsact,
}

impl Hook {
    /// `tcx` or `clsact`, as [`HOOK_VAR`] and `alb status` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        }
    }

    /// The hook a [`HOOK_VAR`] value names; `None` for no choice.
    fn parse(value: &str) -> Result<Option<Self>, String> {
        match value {
            "" => Ok(None),
            "tcx" => Ok(Some(Self::Tcx)),
            "clsact" => Ok(Some(Self::Clsact)),
            other => Err(other.to_owned()),
        }
    }
}

/// What [`probe`] found.
#[derive(Clone, Debug)]
pub struct Features {
    /// `uname -r`.
    pub release: String,
    pub tcx: bool,
    /// Whether clsact with cls_bpf is there; `None` when it was not
    /// probed: the kernel has TCX (the probe may read /proc/kallsyms,
    /// which takes a few hundred ms).
    pub clsact: Option<bool>,
    pub btf: bool,
    pub ring_buffer: bool,
    /// The hook [`HOOK_VAR`] asks for: none, one, or a value that names
    /// none (refused by [`check`]).
    pub requested: Result<Option<Hook>, String>,
}

impl Features {
    /// The hook the programs are attached with: the one asked for, else
    /// TCX where the kernel has it.
    pub fn hook(&self) -> Hook {
        match self.requested {
            Ok(Some(hook)) => hook,
            _ if self.tcx => Hook::Tcx,
            _ => Hook::Clsact,
        }
    }
}

/// Probes the kernel (once; later calls return the same answer).
pub fn probe() -> &'static Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    FEATURES.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "(unknown)".to_owned(), |r| r.trim().to_owned());
        let tcx = probe_tcx();
        let requested = Hook::parse(&std::env::var(HOOK_VAR).unwrap_or_default());
        // Where TCX exists, clsact is used only by the developer switch;
        // an attach that cannot add the qdisc then says so itself.
        let clsact = (!tcx).then(|| clsact_available(&release));
        Features {
            tcx,
            clsact,
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            ring_buffer: aya::sys::is_map_supported(MapType::RingBuf).unwrap_or(false),
            requested,
            release,
        }
    })
}

/// The hook new attachments use (see [`Features::hook`]).
pub(super) fn hook() -> Hook {
    probe().hook()
}

/// Refuses a kernel that lacks what alb needs, in one line.
pub fn check() -> Result<&'static Features> {
    let features = probe();
    let clsact = features.clsact == Some(true);
    let missing = if !features.tcx && !clsact {
        Some("TCX links (Linux >= 6.6) or the clsact qdisc with cls_bpf (sch_ingress, cls_bpf)")
    } else if !features.ring_buffer {
        Some("the BPF ring buffer (Linux >= 5.8)")
    } else if !features.btf {
        Some("BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)")
    } else {
        None
    };
    if let Some(missing) = missing {
        bail!("this kernel (Linux {}) lacks {missing}, which alb needs", features.release);
    }
    match &features.requested {
        Err(value) => {
            bail!("{HOOK_VAR}={value:?} names no hook: set it to tcx or clsact, or unset it")
        }
        Ok(Some(Hook::Tcx)) if !features.tcx => bail!(
            "{HOOK_VAR}=tcx, but this kernel (Linux {}) has no TCX links (Linux >= 6.6)",
            features.release
        ),
        Ok(Some(Hook::Clsact)) if features.clsact == Some(false) => bail!(
            "{HOOK_VAR}=clsact, but this kernel (Linux {}) lacks the clsact qdisc with cls_bpf \
             (sch_ingress, cls_bpf)",
            features.release
        ),
        Ok(_) => Ok(features),
    }
}

/// Whether the clsact qdisc and cls_bpf are built in, loaded or
/// loadable. A kernel with no `/lib/modules/<release>` (one built for its
/// machine, as this project's development host's) has no list of its
/// built-in code there: then /proc/kallsyms, read once, must name one
/// function of each (it lists built-in and loaded code alike).
fn clsact_available(release: &str) -> bool {
    if has_module(release, "sch_ingress") && has_module(release, "cls_bpf") {
        return true;
    }
    if Path::new("/lib/modules").join(release).exists() {
        return false;
    }
    std::fs::read_to_string("/proc/kallsyms").is_ok_and(|symbols| {
        ["clsact_find", "cls_bpf_classify"].iter().all(|name| {
            symbols.contains(&format!(" {name}\n")) || symbols.contains(&format!(" {name}\t"))
        })
    })
}

/// A kernel feature that is built in, loaded, or loadable.
fn has_module(release: &str, name: &str) -> bool {
    if Path::new("/sys/module").join(name).exists() {
        return true;
    }
    let modules = Path::new("/lib/modules").join(release);
    let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    if builtin
        .lines()
        .any(|line| line.rsplit('/').next().is_some_and(|f| f == format!("{name}.ko")))
    {
        return true;
    }
    std::fs::read_to_string(modules.join("modules.dep")).is_ok_and(|dep| {
        dep.lines().any(|line| {
            line.split(':')
                .next()
                .and_then(|p| p.rsplit('/').next())
                .is_some_and(|f| f.strip_prefix(name).is_some_and(|rest| rest.starts_with(".ko")))
        })
    })
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;

fn bpf(cmd: libc::c_long, attr: &mut [u8; 64]) -> Result<i32, i32> {
    // SAFETY: bpf(2) with an attribute buffer of the size passed.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if ret < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(i32::try_from(ret).unwrap_or(-1))
    }
}

/// Loads `r0 = 0; exit` as a classifier and asks for a TCX link on
/// ifindex 0: a kernel with TCX looks the device up and answers ENODEV,
/// one without refuses the attach type (EINVAL). Nothing is attached.
fn probe_tcx() -> bool {
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = b"GPL\0";
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_SCHED_CLS.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let Ok(prog) = bpf(BPF_PROG_LOAD, &mut attr) else { return false };
    // SAFETY: a descriptor the kernel just gave us; closed on drop.
    let prog = unsafe { std::os::fd::OwnedFd::from_raw_fd(prog) };
    let mut attr = [0u8; 64];
    let fd = std::os::fd::AsRawFd::as_raw_fd(&prog);
    attr[0..4].copy_from_slice(&fd.to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_TCX_INGRESS.to_ne_bytes());
    match bpf(BPF_LINK_CREATE, &mut attr) {
        Ok(link) => {
            // SAFETY: an unexpected link descriptor: closing it detaches it.
            drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(link) });
            true
        }
        Err(errno) => errno == libc::ENODEV || errno == libc::ENXIO,
    }
}
