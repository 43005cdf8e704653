//! A directory standing in for a system's root (`/`): where the unit file is
//! verified and the package installed (`dpkg --root`), so no test writes
//! into the machine's own `/usr` or `/lib`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context as _, Result, bail};

use crate::tidy;

/// A temporary root, removed when dropped.
#[derive(Debug)]
pub struct TempRoot(PathBuf);

impl TempRoot {
    /// An empty root under the temporary directory, named after `what`.
    pub fn new(what: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("alb-{what}-root-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove an old {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `path` (absolute, as on a system) under the root.
    pub fn join(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }

    /// Copies `from` to `path` under the root (a hard link when it can).
    pub fn place(&self, from: &Path, path: &str) -> Result<()> {
        let to = self.join(path);
        let dir = to.parent().context("a path with a parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to)
                .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        }
        Ok(())
    }

    /// An empty dpkg database, so `dpkg --root` can install into the root.
    pub fn init_dpkg(&self) -> Result<()> {
        let db = self.join("var/lib/dpkg");
        for dir in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(db.join(dir))?;
        }
        for file in ["status", "available"] {
            std::fs::write(db.join(file), "")?;
        }
        Ok(())
    }

    /// `dpkg --root <root> args...` (maintainer scripts run outside the
    /// root: it has no shell of its own).
    pub fn dpkg(&self, args: &[&str]) -> Result<Output> {
        let out = Command::new("dpkg")
            .arg(format!("--root={}", self.0.display()))
            .args(["--force-script-chrootless", "--force-depends"])
            .args(args)
            .output()
            .context("cannot run dpkg")?;
        if !out.status.success() {
            bail!(
                "dpkg {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    /// `systemd-analyze verify --root <root> unit`: what it said (empty when
    /// the unit is clean; it warns about unknown keys and bad values but
    /// still exits 0).
    pub fn verify_unit(&self, unit: &str) -> Result<String> {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", self.0.display()))
            .arg(unit)
            .output()
            .context("cannot run systemd-analyze (cargo xtask bootstrap installs systemd)")?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("systemd-analyze verify {unit} failed ({}): {said}", out.status);
        }
        Ok(said.trim().to_owned())
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        tidy::remove(&self.0);
    }
}
