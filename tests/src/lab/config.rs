//! [`LabConfig`]: what a lab is built from (prefix, clients, slaves, master),
//! and the checks it passes before anything is built.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, ensure};

use super::{DEFAULT_MASTER, DEFAULT_PREFIX, MAX_CLIENTS, MAX_SLAVES};

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabConfig {
    /// Namespaces are `<prefix>-srv`, `<prefix>-sw`, `<prefix>-c<i>`.
    pub prefix: String,
    /// Number of client namespaces (1 ..= [`MAX_CLIENTS`]).
    pub clients: usize,
    /// Number of server slaves (1 ..= [`MAX_SLAVES`]).
    pub slaves: usize,
    /// The master device the agent creates in the server namespace.
    pub master: String,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            clients: 2,
            slaves: 2,
            master: DEFAULT_MASTER.to_owned(),
        }
    }
}

impl LabConfig {
    /// The seed lab (2 slaves, 2 clients) under a prefix unique to this
    /// process and call, `albt<pid>x<n>`, for tests.
    pub fn unique() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self { prefix: format!("albt{}x{n}", std::process::id()), ..Self::default() }
    }

    /// With `n` clients.
    #[must_use]
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n;
        self
    }

    /// With `k` slaves.
    #[must_use]
    pub fn slaves(mut self, k: usize) -> Self {
        self.slaves = k;
        self
    }

    /// Under prefix `prefix`.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        ensure!(
            !self.prefix.is_empty()
                && self
                    .prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
            "lab prefix {:?} must be non-empty ASCII letters, digits, '-', '_' or '.'",
            self.prefix
        );
        ensure!(
            (1..=MAX_CLIENTS).contains(&self.clients),
            "clients must be 1..={MAX_CLIENTS}, not {}",
            self.clients
        );
        ensure!(
            (1..=MAX_SLAVES).contains(&self.slaves),
            "slaves must be 1..={MAX_SLAVES}, not {}",
            self.slaves
        );
        ensure!(
            !self.master.is_empty() && self.master.len() <= 15,
            "master name {:?} must be 1..=15 bytes",
            self.master
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        assert!(LabConfig::default().validate().is_ok());
        assert!(LabConfig::default().clients(0).validate().is_err());
        assert!(LabConfig::default().slaves(MAX_SLAVES + 1).validate().is_err());
        assert!(LabConfig::default().prefix("a b").validate().is_err());
        assert_ne!(LabConfig::unique().prefix, LabConfig::unique().prefix);
    }
}
