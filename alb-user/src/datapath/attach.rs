//! Attaching the programs: the transmit program to the master's egress, the
//! receive program to each slave's ingress (TCX), each link pinned so the
//! data path outlives the agent.

use std::{fs, path::Path};

use alb_common::maps::programs;
use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    programs::{
        SchedClassifier, TcAttachType,
        links::{FdLink, LinkError, PinnedLink},
        tc::SchedClassifierLink,
    },
    sys::SyscallError,
};

use super::program;

/// The agent's own handles on its links. While it holds them, removing
/// the pins (by mistake) does not detach the programs; dropping them after
/// the pins are gone does.
#[derive(Default)]
pub(super) struct Links {
    held: std::collections::HashMap<String, FdLink>,
}

/// Attaches the transmit program to the master's egress and the receive
/// program to each slave's ingress (TCX). With `dir`, each link is pinned
/// there, so the programs stay attached when the agent dies, and a link an
/// earlier agent pinned is taken over by atomically replacing its program:
/// traffic never meets a moment without a program.
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
    let tx = attach_one(ebpf, programs::TX, master, TcAttachType::Egress, dir, "tx")?;
    links.held.extend(tx.map(|link| ("tx".to_owned(), link)));
    if let Some(dir) = dir {
        // Receive links of devices that are no longer slaves: unpinning
        // detaches them.
        for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !links.held.contains_key(&name) {
                fs::remove_file(entry.path())?;
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
    let pin = format!("rx-{slave}");
    if let Some(link) = attach_one(ebpf, programs::RX, slave, TcAttachType::Ingress, dir, &pin)? {
        links.held.insert(pin, link);
    }
    Ok(())
}

/// Detaches the receive program from a removed slave: its pin goes, then
/// the agent's handle.
pub(super) fn detach_slave(slave: &str, dir: &Path, links: &mut Links) -> Result<()> {
    let pin = format!("rx-{slave}");
    let path = dir.join(&pin);
    let removed = match fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    };
    drop(links.held.remove(&pin));
    removed
}

/// Whether an alb receive program is already attached to `device` (by
/// another master): one device cannot be the slave of two masters.
pub fn used_by_alb(device: &str) -> bool {
    SchedClassifier::query_tcx(device, TcAttachType::Ingress)
        .is_ok_and(|(_, programs)| programs.iter().any(|p| p.name_as_str() == Some(programs::RX)))
}

/// Attaches one program, pinned in `dir` (taking over an existing pin);
/// returns the agent's handle on the link when pinned.
fn attach_one(
    ebpf: &mut Ebpf,
    name: &str,
    device: &str,
    direction: TcAttachType,
    dir: Option<&Path>,
    pin: &str,
) -> Result<Option<FdLink>> {
    let program = program(ebpf, name)?;
    let context = || format!("cannot attach {name} to {device} {direction:?}");
    let Some(dir) = dir else {
        program.attach(device, direction).with_context(context)?;
        return Ok(None);
    };
    let path = dir.join(pin);
    let link = match PinnedLink::from_pin(&path) {
        Ok(old) => {
            let link: SchedClassifierLink = FdLink::from(old)
                .try_into()
                .with_context(|| format!("{} is not a TC link", path.display()))?;
            let id = program.attach_to_link(link).with_context(context)?;
            program.take_link(id)?.try_into()?
        }
        Err(LinkError::SyscallError(SyscallError { io_error, .. }))
            if io_error.kind() == std::io::ErrorKind::NotFound =>
        {
            let id = program.attach(device, direction).with_context(context)?;
            let link: FdLink = program.take_link(id)?.try_into().context(
                "TCX links are needed to keep the data path across agent restarts (Linux >= 6.6)",
            )?;
            FdLink::from(link.pin(&path).with_context(|| format!("cannot pin {}", path.display()))?)
        }
        Err(error) => return Err(error).with_context(|| format!("cannot open {}", path.display())),
    };
    Ok(Some(link))
}
