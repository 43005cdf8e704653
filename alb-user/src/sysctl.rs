//! Per-device sysctls that keep slaves silent, restored on shutdown.
//!
//! Slaves and the master's hidden peer must never answer ARP or send
//! neighbour discovery with their own identity, or they undo the balancing.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result};

/// One sysctl changed by the agent, with the value to put back.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub path: PathBuf,
    pub old: String,
}

fn path(family: &str, device: &str, key: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/{family}/conf/{device}/{key}"))
}

/// Sets `net.<family>.conf.<device>.<key>`, handing what to restore to
/// `record` first: a crash between the two leaves a record, never an
/// unrecorded change.
fn set(
    family: &str,
    device: &str,
    key: &str,
    value: &str,
    record: &mut impl FnMut(Saved) -> Result<()>,
) -> Result<()> {
    let path = path(family, device, key);
    let old = fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_owned();
    record(Saved { path: path.clone(), old })?;
    fs::write(&path, value).with_context(|| format!("cannot write {}", path.display()))
}

/// Makes a device silent: no ARP replies for any address (`arp_ignore=8`),
/// no IPv6 (which also stops DAD and router solicitations).
pub fn silence(device: &str, mut record: impl FnMut(Saved) -> Result<()>) -> Result<()> {
    set("ipv4", device, "arp_ignore", "8", &mut record)?;
    // IPv6 may be compiled out or disabled on the command line.
    if path("ipv6", device, "disable_ipv6").exists() {
        set("ipv6", device, "disable_ipv6", "1", &mut record)?;
    }
    Ok(())
}

/// Puts the old values back, best effort (a removed device has no sysctls).
pub fn restore(saved: Vec<Saved>) {
    for Saved { path, old } in saved.into_iter().rev() {
        if path.exists() {
            if let Err(error) = fs::write(&path, &old) {
                log::warn!("cannot restore {}: {error}", path.display());
            }
        }
    }
}
