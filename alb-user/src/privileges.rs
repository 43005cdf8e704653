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

use anyhow::{Context as _, Result};
use caps::{CapSet, Capability, CapsHashSet};
use log::debug;

/// What the agent keeps after setup.
pub const KEPT: &[Capability] = &[
    // Netlink changes: slaves raised and lowered, the master's carrier, MAC
    // and MTU, the master deleted on stop; TC attach and detach (TCX links,
    // clsact filters) for `alb slave add|del`; BPF_PROG_QUERY.
    Capability::CAP_NET_ADMIN,
];

/// Keeps `keep` (what of it this thread has) and drops every other
/// capability of this thread. The bounding set is trimmed only when the
/// thread may (CAP_SETPCAP; a service's CapabilityBoundingSet may have
/// taken it already): it limits what an exec could regain, and the agent
/// never execs.
pub fn restrict(keep: &[Capability]) -> Result<()> {
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
    let mut names: Vec<String> = kept.iter().map(ToString::to_string).collect();
    names.sort();
    debug!(
        "capabilities kept: {} (bounding set {})",
        if names.is_empty() { "none".to_owned() } else { names.join(", ") },
        if bounding_trimmed { "trimmed too" } else { "left: no CAP_SETPCAP" }
    );
    Ok(())
}

/// Drops every capability of this thread.
pub fn drop_all() -> Result<()> {
    restrict(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

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
