//! A kernel bond over the server's slaves, for the guests where the
//! bonding module exists (`alb takeover` replaces it), and a sysfs of the
//! server namespace: `nsenter --net` keeps the root namespace's /sys,
//! whose /sys/class/net shows the root namespace's devices only.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, ensure};

use super::{Lab, PREFIX_LEN4, SERVER_IP4, SERVER_IP6};
use crate::cmd;

/// Where bonding's module appears once it is loaded.
pub const BONDING_MODULE: &str = "/sys/module/bonding";

/// Fails unless the bonding module is loaded (the guests load it).
pub fn require_bonding() -> Result<()> {
    ensure!(
        Path::new(BONDING_MODULE).exists(),
        "the bonding module is not loaded ({BONDING_MODULE} is missing): this test runs in the \
         vm-test guests"
    );
    Ok(())
}

/// A sysfs mounted from inside the server namespace, at a directory of the
/// lab's log directory; unmounted when dropped.
#[derive(Debug)]
pub struct SrvSysfs {
    path: PathBuf,
}

impl SrvSysfs {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SrvSysfs {
    fn drop(&mut self) {
        let path = self.path.to_string_lossy().into_owned();
        if let Err(error) = cmd::run(std::process::Command::new("umount").arg(&path)) {
            eprintln!("cannot unmount {path}: {error:#}");
        }
    }
}

impl Lab {
    /// Builds the kernel bond `<master>` in `mode` over every slave, in
    /// order, with ip-link's bond `options` (`["miimon", "100"]`), up, with
    /// the server's addresses (2001:2::1 without DAD, as
    /// [`Lab::add_server_addrs`] gives them).
    pub fn add_kernel_bond(&self, mode: &str, options: &[&str]) -> Result<()> {
        require_bonding()?;
        let bond = self.master().to_owned();
        let mut add = vec!["link", "add", bond.as_str(), "type", "bond", "mode", mode];
        add.extend_from_slice(options);
        self.ip(self.srv(), &add)?;
        for slave in self.slaves() {
            self.ip(self.srv(), &["link", "set", &slave.name, "down"])?;
            self.ip(self.srv(), &["link", "set", &slave.name, "master", &bond])?;
        }
        self.ip(self.srv(), &["link", "set", &bond, "up"])?;
        let ip4 = format!("{SERVER_IP4}/{PREFIX_LEN4}");
        self.ip(self.srv(), &["addr", "add", &ip4, "dev", &bond])?;
        let ip6 = format!("{SERVER_IP6}/64");
        self.ip(self.srv(), &["addr", "add", &ip6, "dev", &bond, "nodad"])?;
        Ok(())
    }

    /// Mounts a sysfs of the server namespace (its /sys/class/net shows the
    /// server's devices and bonding's files of its bonds).
    pub fn srv_sysfs(&self) -> Result<SrvSysfs> {
        let path = self.log_dir().join("srv-sysfs");
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let target = path.to_string_lossy().into_owned();
        self.run(self.srv(), &["mount", "-t", "sysfs", "sysfs", &target])?;
        Ok(SrvSysfs { path })
    }
}
