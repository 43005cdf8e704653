//! Attaching the programs: the transmit program to the master's egress, the
//! receive program to each slave's ingress, each attachment recorded under
//! the pin directory so the data path outlives the agent.
//!
//! Two hooks, chosen by a probe of the running kernel (not its version),
//! or by the developer switch `ALB_HOOK` ([`probe::HOOK_VAR`]):
//! - **TCX** (Linux >= 6.6): BPF links, pinned as `links/<name>`; a new
//!   agent takes one over by replacing its program atomically.
//! - **clsact** (older kernels, or `ALB_HOOK=clsact`): a `cls_bpf` filter, direct action, at a
//!   fixed priority and handle ([`PRIORITY`], [`HANDLE`]) on a clsact qdisc
//!   (added if missing and then removed with alb's last filter, kept if it
//!   was there: [`qdisc`]). bpffs holds only BPF objects
//!   and directories, so the record is an empty directory `links/<name>`; a
//!   new agent replaces the filter in place (same priority and handle: the
//!   kernel swaps the program under a live filter), and removing the
//!   record ([`remove_records`], [`detach_slave`]) deletes the filter.
//!
//! The records say which hook each attachment uses, so an adopting agent,
//! `alb down` and `alb status` follow them whatever the switch says: a
//! record is taken over with its own hook; only new attachments use the
//! hook of this agent.

use std::{
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
};

use alb_common::maps::programs;
use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType,
        links::{FdLink, Link as _, LinkError, PinnedLink},
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
    },
    sys::SyscallError,
};
use log::info;

use super::{
    layout::{self, Record},
    probe::{self, Hook},
    program, qdisc, query,
};

/// The tc priority of alb's filters on kernels without TCX (lower runs
/// first; `tc` numbers its own filters from 49152 down).
pub(super) const PRIORITY: u16 = 0x0a1b;
/// The tc handle of alb's filters.
pub(super) const HANDLE: TcHandle = TcHandle::new(0, 0x0a1b);

/// The agent's own hold on its attachments, by record name. While it
/// holds them, removing the pins (by mistake) does not detach the
/// programs; letting go of them after the pins are gone does, on either
/// hook.
#[derive(Default)]
pub(super) struct Links {
    held: std::collections::HashMap<String, Held>,
}

/// The agent's hold on one attachment.
enum Held {
    /// A TCX link: the kernel detaches it when its pin and its last
    /// handle are gone.
    Tcx(#[expect(dead_code, reason = "held for its drop")] FdLink),
    /// A clsact filter, which nothing in the kernel holds.
    Clsact(#[expect(dead_code, reason = "held for its drop")] ClsactFilter),
}

/// A clsact filter this agent attached or took over. Dropped once its
/// record is gone (the pins removed under a running agent), it deletes
/// the filter, as the kernel detaches a TCX link whose pin and handle are
/// gone; with its record there (a stop that keeps the data path, or one
/// whose undo already deleted it) it does nothing.
struct ClsactFilter {
    record: PathBuf,
    device: String,
    direction: TcAttachType,
}

impl Drop for ClsactFilter {
    fn drop(&mut self) {
        if fs::symlink_metadata(&self.record).is_ok() {
            return;
        }
        if let Err(error) = delete_filter(&self.device, self.direction) {
            log::warn!("{error:#}");
        }
    }
}

/// Attaches the transmit program to the master's egress and the receive
/// program to each slave's ingress. With `dir`, each attachment is recorded
/// there, so the programs stay attached when the agent dies, and one an
/// earlier agent left is taken over by replacing its program: traffic never
/// meets a moment without a program.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    master: &str,
    slaves: &[String],
    dir: Option<&Path>,
) -> Result<Links> {
    let mut links = Links::default();
    for slave in slaves {
        attach_slave(ebpf, slave, dir, &mut links)?;
    }
    if let Some(held) =
        attach_one(ebpf, programs::TX, master, TcAttachType::Egress, dir, layout::TX_RECORD)?
    {
        links.held.insert(layout::TX_RECORD.to_owned(), held);
    }
    info!("programs attached through {}", hook_used(&links));
    finish(links, dir)
}

/// The hook the attachments use, as the log says it: this agent's, unless
/// it took over an earlier agent's records of the other.
fn hook_used(links: &Links) -> &'static str {
    let features = probe::probe();
    let clsact = links.held.values().filter(|held| matches!(held, Held::Clsact(_))).count();
    let used = match (clsact, links.held.len()) {
        (_, 0) => features.hook(),
        (0, _) => Hook::Tcx,
        (c, n) if c == n => Hook::Clsact,
        _ => return "tcx and clsact (as an earlier agent's records say)",
    };
    match (used, features.hook()) {
        (Hook::Tcx, Hook::Tcx) => "tcx",
        (Hook::Clsact, Hook::Clsact) if features.tcx => "clsact (ALB_HOOK=clsact)",
        (Hook::Clsact, Hook::Clsact) => "clsact (no TCX on this kernel)",
        (Hook::Tcx, Hook::Clsact) => "tcx (as an earlier agent's records say)",
        (Hook::Clsact, Hook::Tcx) => "clsact (as an earlier agent's records say)",
    }
}

/// Removes the records of devices that are no longer slaves, then hands
/// the agent its hold on the attachments.
fn finish(links: Links, dir: Option<&Path>) -> Result<Links> {
    if let Some(dir) = dir {
        // Receive links of devices that are no longer slaves: unpinning
        // detaches them.
        for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !links.held.contains_key(&name) {
                remove_record(&entry.path())?;
            }
        }
    }
    Ok(links)
}

/// Attaches the receive program to one slave (also for `alb slave add`).
pub(super) fn attach_slave(
    ebpf: &mut Ebpf,
    slave: &str,
    dir: Option<&Path>,
    links: &mut Links,
) -> Result<()> {
    let pin = layout::rx_record(slave);
    if let Some(held) = attach_one(ebpf, programs::RX, slave, TcAttachType::Ingress, dir, &pin)? {
        links.held.insert(pin, held);
    }
    Ok(())
}

/// Detaches the receive program from a removed slave: its record goes,
/// then the agent's handle.
pub(super) fn detach_slave(slave: &str, dir: &Path, links: &mut Links) -> Result<()> {
    let pin = layout::rx_record(slave);
    let removed = remove_record(&dir.join(&pin));
    drop(links.held.remove(&pin));
    removed
}

/// Removes every record in a links directory (before the pin directory
/// goes): clsact filters are deleted, TCX pins only unpinned.
pub(super) fn remove_records(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut first_error = None;
    for entry in entries {
        if let Err(error) = remove_record(&entry?.path()) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Removes one record: a TCX pin (unpinning detaches once no handle is
/// left), or a clsact record with its filter.
fn remove_record(path: &Path) -> Result<()> {
    if path.is_dir() {
        let device = match layout::record(path) {
            Some(Record::Rx { slave }) => {
                delete_filter(&slave, TcAttachType::Ingress)?;
                Some(slave)
            }
            Some(Record::Tx { master }) => {
                delete_filter(&master, TcAttachType::Egress)?;
                Some(master)
            }
            None => None,
        };
        let marker = path.join(layout::QDISC_ADDED);
        if marker.is_dir() {
            if let Some(device) = device {
                remove_qdisc_if_unused(&device)?;
            }
            remove_empty_dir(&marker)?;
        }
        return match fs::remove_dir(path) {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                Err(error).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    match fs::remove_file(path) {
        Err(error) if error.kind() != ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Records in a clsact record (`<record>/qdisc-added`, a directory: bpffs
/// holds no files) that alb added the device's clsact qdisc, so that
/// whoever removes the record removes the qdisc too; an adopting agent
/// inherits it with the record.
fn mark_qdisc_added(record: &Path) -> Result<()> {
    let marker = record.join(layout::QDISC_ADDED);
    match fs::create_dir(&marker) {
        Err(error) if error.kind() != ErrorKind::AlreadyExists => {
            Err(error).with_context(|| format!("cannot create {}", marker.display()))
        }
        _ => Ok(()),
    }
}

/// Deletes the clsact qdisc alb added to `device` once no filter is left
/// on it (someone may have attached theirs since); a device already gone
/// took its qdisc with it.
fn remove_qdisc_if_unused(device: &str) -> Result<()> {
    let Ok(ifindex) = nix::net::if_::if_nametoindex(device) else { return Ok(()) };
    if qdisc::filters_left(ifindex)? {
        info!("keeping the clsact qdisc alb added to {device}: it holds other filters");
        return Ok(());
    }
    qdisc::delete_clsact(ifindex)
}

fn remove_empty_dir(path: &Path) -> Result<()> {
    match fs::remove_dir(path) {
        Err(error) if error.kind() != ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Deletes alb's filter (fixed priority and handle) from a device; a
/// device or filter that is already gone is not an error. The qdisc is
/// the caller's ([`remove_qdisc_if_unused`]).
fn delete_filter(device: &str, direction: TcAttachType) -> Result<()> {
    let link = match SchedClassifierLink::attached(device, direction, PRIORITY, HANDLE, None) {
        Ok(link) => link,
        // No such device any more: its filters went with it.
        Err(_) => return Ok(()),
    };
    match link.detach() {
        Ok(()) => Ok(()),
        Err(error) => {
            let text = format!("{error:#}");
            if text.contains("No such file") || text.contains("No such device") {
                Ok(())
            } else {
                Err(error).with_context(|| format!("cannot remove alb's filter from {device}"))
            }
        }
    }
}

/// The hook of the transmit attachment recorded under a master's pin
/// directory (`links/tx`: a directory is a clsact filter, a pin a TCX
/// link); none if unrecorded.
pub fn recorded_hook(pins: &Path) -> Option<Hook> {
    let record = layout::link_dir(pins).join(layout::TX_RECORD);
    let meta = fs::symlink_metadata(&record).ok()?;
    Some(if meta.is_dir() { Hook::Clsact } else { Hook::Tcx })
}

/// The alb receive programs attached to `device` (by another master): one
/// device cannot be the slave of two masters. TCX is asked which programs
/// run there ([`query`], as the agent may after it dropped its
/// capabilities): whether one does. clsact filters are known by the
/// records of every master, whatever network namespace it runs in: the
/// masters that have a record for a device of that name (the caller tells
/// which of them live in its namespace).
pub fn alb_users(device: &str) -> (bool, Vec<String>) {
    let tcx = nix::net::if_::if_nametoindex(device).is_ok_and(query::tcx_runs_alb_rx);
    let clsact = clsact_records(device)
        .iter()
        .filter(|record| record.is_dir())
        .filter_map(|record| layout::master_of(record))
        .collect();
    (tcx, clsact)
}

/// The receive record of `device` in every master's links directory.
fn clsact_records(device: &str) -> Vec<PathBuf> {
    let record = layout::rx_record(device);
    layout::every_link_dir()
        .into_iter()
        .map(|links| links.join(&record))
        .filter(|p| p.exists())
        .collect()
}

/// Attaches one program, recorded in `dir` (taking over an existing
/// record); returns the agent's hold on it when it is recorded.
fn attach_one(
    ebpf: &mut Ebpf,
    name: &str,
    device: &str,
    direction: TcAttachType,
    dir: Option<&Path>,
    pin: &str,
) -> Result<Option<Held>> {
    let program = program(ebpf, name)?;
    let context = || format!("cannot attach {name} to {device} {direction:?}");
    let Some(dir) = dir else {
        // Unrecorded (tests): the object keeps the link and detaches it
        // when it is dropped.
        if probe::hook() == Hook::Tcx {
            let options = TcAttachOptions::TcxOrder(LinkOrder::default());
            program.attach_with_options(device, direction, options).with_context(context)?;
        } else {
            ensure_clsact(device)?;
            program.attach_with_options(device, direction, netlink()).with_context(context)?;
        }
        return Ok(None);
    };
    let path = dir.join(pin);
    let filter = |record: &Path| {
        Some(Held::Clsact(ClsactFilter {
            record: record.to_owned(),
            device: device.to_owned(),
            direction,
        }))
    };
    if path.is_dir() {
        // A clsact filter an earlier agent left: replace its program in place.
        if clsact_replace(program, device, direction).with_context(context)? {
            mark_qdisc_added(&path)?;
        }
        return Ok(filter(&path));
    }
    let link = match PinnedLink::from_pin(&path) {
        Ok(old) => {
            let link: SchedClassifierLink = FdLink::from(old)
                .try_into()
                .with_context(|| format!("{} is not a TC link", path.display()))?;
            let id = program.attach_to_link(link).with_context(context)?;
            program.take_link(id)?.try_into()?
        }
        Err(LinkError::SyscallError(SyscallError { io_error, .. }))
            if io_error.kind() == ErrorKind::NotFound =>
        {
            if probe::hook() == Hook::Clsact {
                // The record first: an undo after a crash in between still
                // finds the filter.
                fs::create_dir(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                match clsact_attach(program, device, direction) {
                    Ok(true) => mark_qdisc_added(&path)?,
                    Ok(false) => {}
                    Err(error) => {
                        if let Err(undo) = fs::remove_dir(&path) {
                            log::warn!("cannot remove {}: {undo}", path.display());
                        }
                        return Err(error).with_context(context);
                    }
                }
                return Ok(filter(&path));
            }
            let options = TcAttachOptions::TcxOrder(LinkOrder::default());
            let id =
                program.attach_with_options(device, direction, options).with_context(context)?;
            let link: FdLink = program.take_link(id)?.try_into().context("not a TCX link")?;
            FdLink::from(link.pin(&path).with_context(|| format!("cannot pin {}", path.display()))?)
        }
        Err(error) => return Err(error).with_context(|| format!("cannot open {}", path.display())),
    };
    Ok(Some(Held::Tcx(link)))
}

fn netlink() -> TcAttachOptions {
    TcAttachOptions::Netlink(NlOptions { priority: PRIORITY, handle: HANDLE, classid: None })
}

/// A new filter at alb's priority and handle (a clsact qdisc is added if
/// the device has none; whether it was). The filter must outlive this
/// agent: the link is taken from the program and forgotten (dropping it
/// would detach it).
fn clsact_attach(
    program: &mut SchedClassifier,
    device: &str,
    direction: TcAttachType,
) -> Result<bool> {
    let added = ensure_clsact(device)?;
    let id = program.attach_with_options(device, direction, netlink())?;
    std::mem::forget(program.take_link(id)?);
    Ok(added)
}

/// Adds a clsact qdisc to `device` unless it has one; whether it did.
fn ensure_clsact(device: &str) -> Result<bool> {
    match tc::qdisc_add_clsact(device) {
        Ok(()) => Ok(true),
        Err(error) if format!("{error:?}").contains("AlreadyExists") => Ok(false),
        Err(error) if format!("{error}").contains("exists") => Ok(false),
        Err(error) => Err(error).with_context(|| format!("cannot add a clsact qdisc to {device}")),
    }
}

/// Replaces the program of alb's filter in place; adds the filter if it
/// is gone (the device was recreated, say), and says whether that added a
/// clsact qdisc too.
fn clsact_replace(
    program: &mut SchedClassifier,
    device: &str,
    direction: TcAttachType,
) -> Result<bool> {
    let old = SchedClassifierLink::attached(device, direction, PRIORITY, HANDLE, None)
        .with_context(|| format!("no device {device}"))?;
    match program.attach_to_link(old) {
        Ok(id) => {
            std::mem::forget(program.take_link(id)?);
            Ok(false)
        }
        Err(error) => {
            let text = format!("{error:#}");
            if text.contains("No such file") || text.contains("Invalid argument") {
                clsact_attach(program, device, direction)
            } else {
                bail!(error)
            }
        }
    }
}
