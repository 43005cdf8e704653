//! What the agent changed on the system, and how to put it back.
//!
//! Every change is recorded before it is made and the record is kept in
//! `/run/alb/<master>.state`, so a clean exit, a failed start, a later agent
//! that adopts the data path of one that died, and `alb down` all undo the
//! same things, with the values from before the first agent touched them.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use log::warn;
use serde::{Deserialize, Serialize};

use crate::{RUN_DIR, datapath, filters, links::Netlink, sysctl};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Undo {
    /// Sysctls changed, with the values they had before.
    pub sysctls: Vec<sysctl::Saved>,
    /// Devices that were down and were raised.
    pub raised: Vec<u32>,
    /// The master, when the agent created it.
    pub created_master: Option<u32>,
    /// The pin directory (maps and links).
    pub pins: Option<PathBuf>,
    /// Receive filter entries added to slaves (absent from older records).
    #[serde(default)]
    pub filters: Vec<filters::Entry>,
    /// Slaves' MTUs from before they took the master's (ifindex, MTU).
    #[serde(default)]
    pub mtus: Vec<(u32, u32)>,
    /// The network namespace the record was made in (the inode of
    /// /proc/self/ns/net): its ifindexes name other devices, or none, in
    /// another namespace. Absent from older records.
    #[serde(default)]
    pub netns: Option<u64>,
}

/// This thread's network namespace, as `ip netns identify` and
/// `/proc/PID/ns/net` name it (`net:[INODE]`).
pub fn current_netns() -> Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let path = "/proc/self/ns/net";
    Ok(fs::metadata(path).with_context(|| format!("cannot read {path}"))?.ino())
}

impl Undo {
    /// Where the record of master `master` is kept.
    pub fn path(master: &str) -> PathBuf {
        Path::new(RUN_DIR).join(format!("{master}.state"))
    }

    /// The record an earlier agent for `master` left, if any.
    pub fn load(master: &str) -> Result<Option<Self>> {
        let path = Self::path(master);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{} is not an alb state record", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Refuses a record made in another network namespace, before anything
    /// is changed: its ifindexes are not this namespace's devices. A record
    /// without one is taken as this namespace's from now on.
    pub fn claim_netns(&mut self, master: &str) -> Result<()> {
        let here = current_netns()?;
        match self.netns {
            Some(there) if there != here => anyhow::bail!(
                "master {master} was set up in another network namespace (net:[{there}]; this \
                 is net:[{here}]): run alb there, e.g. nsenter --net=/proc/PID/ns/net alb down \
                 --master {master}"
            ),
            _ => {
                self.netns = Some(here);
                Ok(())
            }
        }
    }

    /// Writes the record (before every change), atomically: a crash while
    /// writing leaves the previous record, never half of one.
    pub fn save(&self, master: &str) -> Result<()> {
        fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))?;
        let path = Self::path(master);
        let partial = path.with_extension("state.partial");
        let text = serde_json::to_string_pretty(self)?;
        fs::write(&partial, text).with_context(|| format!("cannot write {}", partial.display()))?;
        fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Records a sysctl about to change (unless an earlier agent recorded
    /// it: its old value is older) and saves the record.
    pub fn record_sysctl(&mut self, master: &str, saved: sysctl::Saved) -> Result<()> {
        if self.has_sysctl(&saved) {
            return Ok(());
        }
        self.sysctls.push(saved);
        self.save(master)
    }

    /// Records a device about to be raised and saves the record.
    pub fn record_raised(&mut self, master: &str, index: u32) -> Result<()> {
        self.raised.push(index);
        self.save(master)
    }

    /// Records a slave's MTU about to change (unless an earlier agent
    /// recorded it: its old value is older) and saves the record.
    pub fn record_mtu(&mut self, master: &str, index: u32, mtu: u32) -> Result<()> {
        if self.mtus.iter().any(|&(i, _)| i == index) {
            return Ok(());
        }
        self.mtus.push((index, mtu));
        self.save(master)
    }

    /// Takes back the MTU recorded for one device (a removed slave).
    pub fn release_mtu(&mut self, index: u32) -> Option<u32> {
        let position = self.mtus.iter().position(|&(i, _)| i == index)?;
        Some(self.mtus.remove(position).1)
    }

    /// Takes back what was recorded for one device (a removed slave).
    pub fn release_device(&mut self, name: &str, index: u32) -> (Vec<sysctl::Saved>, bool) {
        let marker = format!("/conf/{name}/");
        let (mine, rest) = std::mem::take(&mut self.sysctls)
            .into_iter()
            .partition(|saved| saved.path.to_string_lossy().contains(&marker));
        self.sysctls = rest;
        let raised = self.raised.contains(&index);
        self.raised.retain(|&i| i != index);
        (mine, raised)
    }

    /// Whether a sysctl is already recorded (its old value is older).
    pub fn has_sysctl(&self, saved: &sysctl::Saved) -> bool {
        self.sysctls.iter().any(|s| s.path == saved.path)
    }

    /// Puts everything back and forgets the record: filter entries, pins
    /// (which detaches the programs), the master, slaves' MTUs, raised
    /// devices, sysctls.
    pub async fn run(self, netlink: &Netlink, master: &str) {
        for entry in &self.filters {
            if let Err(error) = filters::remove(netlink, entry).await {
                warn!("{error:#}");
            }
        }
        if let Some(dir) = &self.pins {
            if let Err(error) = datapath::remove_pins(dir) {
                warn!("{error:#}");
            }
        }
        if let Some(index) = self.created_master {
            if let Err(error) = netlink.delete(index).await {
                warn!("cannot remove the master: {error:#}");
            }
        }
        for (index, mtu) in self.mtus {
            if let Err(error) = netlink.set_mtu_if_present(index, mtu).await {
                warn!("{error:#}");
            }
        }
        for index in self.raised {
            if let Err(error) = netlink.set_down_if_present(index).await {
                warn!("cannot take ifindex {index} down again: {error:#}");
            }
        }
        sysctl::restore(self.sysctls);
        let socket = crate::control::socket_path(master);
        if let Err(error) = crate::remove_file_if_present(&socket) {
            warn!("cannot remove {}: {error}", socket.display());
        }
        let path = Self::path(master);
        if let Err(error) = fs::remove_file(&path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                warn!("cannot remove {}: {error}", path.display());
            }
        }
    }
}
