//! Whether a device already runs another alb master's receive program,
//! asked without CAP_SYS_ADMIN (the agent has dropped it by the time
//! `alb slave add` asks): the IDs of the programs attached to the device
//! (BPF_PROG_QUERY, CAP_NET_ADMIN) against the programs of every master's
//! pinned receive links (opened by path, read with the link's own info).
//! aya's `query_tcx` opens each attached program by ID instead, which only
//! CAP_SYS_ADMIN may.

use std::{collections::HashSet, fs, io};

use aya::programs::links::{FdLink, PinnedLink};

use super::layout::{self, Record};

/// `BPF_PROG_QUERY` (`enum bpf_cmd`).
const BPF_PROG_QUERY: libc::c_long = 16;
/// `BPF_TCX_INGRESS` (`enum bpf_attach_type`).
const BPF_TCX_INGRESS: u32 = 46;
/// Programs read per query; a device runs a handful.
const MAX_PROGRAMS: usize = 64;

/// `union bpf_attr` as BPF_PROG_QUERY reads it (`query`), up to `revision`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// Whether a program of another master's pinned receive link runs on the
/// TCX ingress of `ifindex`.
pub(super) fn tcx_runs_alb_rx(ifindex: u32) -> bool {
    let Ok(attached) = tcx_ingress_programs(ifindex) else { return false };
    !attached.is_empty() && pinned_rx_programs().iter().any(|id| attached.contains(id))
}

/// The IDs of the programs on the TCX ingress of `ifindex` (none on a
/// kernel without TCX: the query fails).
fn tcx_ingress_programs(ifindex: u32) -> io::Result<HashSet<u32>> {
    let mut ids = [0u32; MAX_PROGRAMS];
    let mut attr = QueryAttr {
        target_ifindex: ifindex,
        attach_type: BPF_TCX_INGRESS,
        prog_ids: ids.as_mut_ptr() as u64,
        count: MAX_PROGRAMS as u32,
        ..QueryAttr::default()
    };
    // SAFETY: bpf(2) with a query attribute whose prog_ids points at a live
    // buffer of `count` IDs; the kernel writes at most `count` of them.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            std::ptr::from_mut(&mut attr),
            size_of::<QueryAttr>(),
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    let count = (attr.count as usize).min(MAX_PROGRAMS);
    Ok(ids[..count].iter().copied().collect())
}

/// The program IDs of every master's receive records that are pinned TCX
/// links (the clsact records are directories and hold no program).
fn pinned_rx_programs() -> Vec<u32> {
    let mut ids = Vec::new();
    for links in layout::every_link_dir() {
        let Ok(links) = fs::read_dir(links) else { continue };
        for link in links.filter_map(Result::ok) {
            let path = link.path();
            let rx = matches!(layout::record(&path), Some(Record::Rx { .. }));
            if !rx || path.is_dir() {
                continue;
            }
            let info = PinnedLink::from_pin(&path).map(FdLink::from).and_then(|l| l.info());
            match info {
                Ok(info) => ids.push(info.program_id()),
                Err(error) => log::debug!("cannot read {}: {error}", path.display()),
            }
        }
    }
    ids
}
