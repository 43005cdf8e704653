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

/// Sets `net.<family>.conf.<device>.<key>` and returns what to restore.
pub fn set(family: &str, device: &str, key: &str, value: &str) -> Result<Saved> {
    let path = path(family, device, key);
    let old = fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_owned();
    fs::write(&path, value).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Saved { path, old })
}

/// Makes a device silent: no ARP replies for any address (`arp_ignore=8`),
/// no IPv6 (which also stops DAD and router solicitations).
pub fn silence(device: &str) -> Result<Vec<Saved>> {
    let mut saved = vec![set("ipv4", device, "arp_ignore", "8")?];
    // IPv6 may be compiled out or disabled on the command line.
    if path("ipv6", device, "disable_ipv6").exists() {
        saved.push(set("ipv6", device, "disable_ipv6", "1")?);
    }
    Ok(saved)
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
