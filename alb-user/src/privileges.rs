//! Least privilege: once the data path is set up, the agent keeps only the
//! capabilities its later work needs ([`KEPT`]; docs/architecture.md says
//! why each), and drops every other one from its effective, permitted,
//! inheritable, ambient and bounding sets.
//!
//! Capabilities belong to threads. The main thread (the event loop, the
//! control socket, the metrics) calls [`restrict`] before it logs
//! "ready"; the teller thread, which only sends on a socket it was given,
//! drops everything ([`drop_all`]) before it sends anything. Threads
//! started later inherit what their parent kept.
//!
//! What bpf() on the agent's own maps needs is probed ([`bpf_needs`]), not
//! read from the kernel's version: kernels before 5.19 with unprivileged
//! BPF disabled (kernel.unprivileged_bpf_disabled, Debian's default) check
//! CAP_BPF or CAP_SYS_ADMIN on every bpf() command, map lookups and updates
//! included, so there the agent keeps CAP_BPF too.

use anyhow::{Context as _, Result, bail};
use caps::{CapSet, Capability, CapsHashSet};
use log::{debug, info};

use crate::datapath::MapAccess;

/// What the agent keeps after setup.
pub const KEPT: &[Capability] = &[
    // Netlink changes: slaves raised and lowered, the master's carrier, MAC
    // and MTU, the master deleted on stop; TC attach and detach (TCX links,
    // clsact filters) for `alb slave add|del`; BPF_PROG_QUERY.
    Capability::CAP_NET_ADMIN,
];

/// Tried in this order, each added to [`KEPT`] alone, when bpf() on the
/// agent's maps is refused with [`KEPT`]: CAP_BPF where the kernel knows
/// it (Linux >= 5.8), CAP_SYS_ADMIN (what bpf_capable() accepted before).
pub const FOR_BPF: &[Capability] = &[Capability::CAP_BPF, Capability::CAP_SYS_ADMIN];

/// What a bpf() probe on one of the agent's maps found, with a given set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Works,
    /// EPERM: the set is not enough.
    Refused,
    /// Anything else: the probe cannot tell.
    Failed(String),
}

/// The capabilities to keep after setup and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    pub keep: Vec<Capability>,
    pub why: String,
}

/// Decides what to keep from `probe` (which runs bpf() on the agent's maps
/// holding only the set it is given): [`KEPT`] if that works, else
/// [`KEPT`] and the first of [`FOR_BPF`] with which it works (CAP_BPF only
/// if `cap_bpf_known`). Refuses, in one line, a kernel where neither works.
pub fn decide(mut probe: impl FnMut(&[Capability]) -> Probe, cap_bpf_known: bool) -> Result<Needs> {
    let candidates = FOR_BPF.iter().filter(|&&c| cap_bpf_known || c != Capability::CAP_BPF);
    let mut refused = Vec::new();
    for extra in std::iter::once(None).chain(candidates.map(Some)) {
        let keep: Vec<Capability> = KEPT.iter().chain(extra).copied().collect();
        match probe(&keep) {
            Probe::Works => {
                let why = match extra {
                    None => "bpf() on its maps works without CAP_BPF on this kernel".to_owned(),
                    Some(extra) => format!(
                        "this kernel refuses bpf() on the agent's own maps with {}; {extra} lets it",
                        refused.join(", then with ")
                    ),
                };
                return Ok(Needs { keep, why });
            }
            Probe::Refused => refused.push(names(&keep)),
            Probe::Failed(error) => {
                bail!("cannot tell what bpf() on alb's maps needs on this kernel: {error}")
            }
        }
    }
    bail!(
        "this kernel refuses bpf() on alb's own maps after setup even with {}; alb cannot \
         fail over here",
        refused.last().map_or("CAP_SYS_ADMIN", String::as_str)
    )
}

/// Probes, each time in a short-lived thread that drops to the set under
/// test, what bpf() on the agent's maps needs ([`decide`]), and logs what
/// is kept and why.
pub fn bpf_needs(access: &mut MapAccess) -> Result<Needs> {
    let cap_bpf_known = caps::runtime::thread_all_supported().contains(&Capability::CAP_BPF);
    let needs = decide(|keep| probe_with(keep, access), cap_bpf_known)?;
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map_or_else(|_| "unknown".to_owned(), |v| v.trim().to_owned());
    info!(
        "capabilities kept after setup: {} ({}; probed, kernel.unprivileged_bpf_disabled={sysctl})",
        names(&needs.keep),
        needs.why
    );
    Ok(needs)
}

/// bpf() on the agent's maps in a thread holding only `keep`.
fn probe_with(keep: &[Capability], access: &mut MapAccess) -> Probe {
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                apply(keep).map_err(|e| format!("{e:#}"))?;
                access.read_and_write_back().map_err(|e| {
                    if e.raw_os_error() == Some(nix::errno::Errno::EPERM as i32) {
                        String::new()
                    } else {
                        format!("bpf() on the config map: {e}")
                    }
                })
            })
            .join()
    });
    match result {
        Ok(Ok(())) => Probe::Works,
        Ok(Err(error)) if error.is_empty() => Probe::Refused,
        Ok(Err(error)) => Probe::Failed(error),
        Err(_) => Probe::Failed("the probe thread panicked".to_owned()),
    }
}

fn names(caps: &[Capability]) -> String {
    let mut names: Vec<String> = caps.iter().map(ToString::to_string).collect();
    names.sort();
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// Keeps `keep` (what of it this thread has) and drops every other
/// capability of this thread. The bounding set is trimmed only when the
/// thread may (CAP_SETPCAP; a service's CapabilityBoundingSet may have
/// taken it already): it limits what an exec could regain, and the agent
/// never execs.
pub fn restrict(keep: &[Capability]) -> Result<()> {
    let (kept, bounding_trimmed) = apply(keep)?;
    let kept: Vec<Capability> = kept.into_iter().collect();
    debug!(
        "capabilities kept: {} (bounding set {})",
        names(&kept),
        if bounding_trimmed { "trimmed too" } else { "left: no CAP_SETPCAP" }
    );
    Ok(())
}

/// [`restrict`] without its log line: what was kept, and whether the
/// bounding set was trimmed.
fn apply(keep: &[Capability]) -> Result<(CapsHashSet, bool)> {
    let keep: CapsHashSet = keep.iter().copied().collect();
    let permitted = caps::read(None, CapSet::Permitted).context("cannot read capabilities")?;
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    let bounding_trimmed = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)?;
    if bounding_trimmed {
        for cap in caps::runtime::thread_all_supported() {
            if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap)? {
                caps::drop(None, CapSet::Bounding, cap)
                    .with_context(|| format!("cannot drop {cap} from the bounding set"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).context("cannot clear the ambient capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("cannot clear the inheritable capabilities")?;
    // Effective first: it must stay within permitted.
    caps::set(None, CapSet::Effective, &kept).context("cannot drop capabilities")?;
    caps::set(None, CapSet::Permitted, &kept).context("cannot drop capabilities")?;
    Ok((kept, bounding_trimmed))
}

/// Drops every capability of this thread.
pub fn drop_all() -> Result<()> {
    restrict(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe answering from a table: `works` is the first set (by its
    /// extra capability, None for KEPT alone) with which bpf() works.
    fn probe_until(
        works: Option<Option<Capability>>,
        asked: &mut Vec<Vec<Capability>>,
    ) -> impl FnMut(&[Capability]) -> Probe + '_ {
        move |keep| {
            asked.push(keep.to_vec());
            let extra = keep.iter().copied().find(|c| !KEPT.contains(c));
            if works == Some(extra) { Probe::Works } else { Probe::Refused }
        }
    }

    #[test]
    fn net_admin_alone_when_bpf_works_with_it() {
        let mut asked = Vec::new();
        let needs = decide(probe_until(Some(None), &mut asked), true).unwrap();
        assert_eq!(needs.keep, KEPT);
        assert!(needs.why.contains("works without CAP_BPF"), "{}", needs.why);
        assert_eq!(asked, [KEPT.to_vec()], "one probe, with KEPT alone");
    }

    #[test]
    fn cap_bpf_is_kept_where_the_kernel_refuses_without_it() {
        let mut asked = Vec::new();
        let needs = decide(probe_until(Some(Some(Capability::CAP_BPF)), &mut asked), true).unwrap();
        assert_eq!(needs.keep, [Capability::CAP_NET_ADMIN, Capability::CAP_BPF]);
        assert!(needs.why.contains("refuses bpf()") && needs.why.contains("CAP_BPF"), "{needs:?}");
        assert_eq!(asked.len(), 2, "{asked:?}");
    }

    #[test]
    fn cap_sys_admin_where_cap_bpf_is_unknown_or_not_enough() {
        let mut asked = Vec::new();
        let sys_admin = Some(Some(Capability::CAP_SYS_ADMIN));
        let needs = decide(probe_until(sys_admin, &mut asked), false).unwrap();
        assert_eq!(needs.keep, [Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN]);
        assert!(asked.iter().all(|set| !set.contains(&Capability::CAP_BPF)), "{asked:?}");
        let mut asked = Vec::new();
        let needs = decide(probe_until(sys_admin, &mut asked), true).unwrap();
        assert_eq!(needs.keep, [Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN]);
        assert_eq!(asked.len(), 3, "KEPT, then CAP_BPF, then CAP_SYS_ADMIN: {asked:?}");
    }

    #[test]
    fn a_kernel_that_refuses_every_set_is_refused_in_one_line() {
        let mut asked = Vec::new();
        let error = decide(probe_until(None, &mut asked), true).unwrap_err().to_string();
        assert!(error.contains("refuses bpf()") && !error.contains('\n'), "{error}");
        let error = decide(|_| Probe::Failed("EINVAL".into()), true).unwrap_err().to_string();
        assert!(error.contains("cannot tell") && error.contains("EINVAL"), "{error}");
    }

    /// In a thread of its own: capabilities are per thread.
    #[test]
    fn restrict_keeps_only_what_it_is_told() {
        std::thread::spawn(|| {
            let before = caps::read(None, CapSet::Permitted).unwrap();
            restrict(KEPT).unwrap();
            let expected: CapsHashSet =
                KEPT.iter().copied().filter(|c| before.contains(c)).collect();
            assert_eq!(caps::read(None, CapSet::Effective).unwrap(), expected);
            assert_eq!(caps::read(None, CapSet::Permitted).unwrap(), expected);
            assert!(caps::read(None, CapSet::Inheritable).unwrap().is_empty());
            if before.contains(&Capability::CAP_SETPCAP) {
                let bounding = caps::read(None, CapSet::Bounding).unwrap();
                assert!(bounding.iter().all(|c| KEPT.contains(c)), "{bounding:?}");
            }
            drop_all().unwrap();
            assert!(caps::read(None, CapSet::Effective).unwrap().is_empty());
            assert!(caps::read(None, CapSet::Permitted).unwrap().is_empty());
        })
        .join()
        .expect("the restricted thread");
    }
}
