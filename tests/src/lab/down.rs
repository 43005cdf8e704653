//! Taking labs down: a [`Lab`] dropped stops what it started and deletes its
//! namespaces; [`Lab::down`] removes what a lab left behind by prefix,
//! [`Lab::list`] finds the labs that are up, and [`Lab::prune_logs`] removes
//! the kept logs of labs that are gone.

use std::{path::Path, sync::PoisonError, thread, time::Duration};

use anyhow::{Context as _, Result};

use super::{
    Lab,
    names::{is_lab_ns, log_dir, log_root},
    require_root, sw_ns,
};
use crate::{netns, proc};

impl Lab {
    /// Removes what a lab with prefix `prefix` left behind: stops the
    /// processes still inside its namespaces (SIGTERM, SIGKILL after 5 s) and
    /// deletes the namespaces. Returns the namespaces it deleted.
    pub fn down(prefix: &str) -> Result<Vec<String>> {
        require_root()?;
        let names: Vec<String> =
            netns::list()?.into_iter().filter(|name| is_lab_ns(prefix, name)).collect();
        // Processes first: a namespace with a process inside outlives
        // `ip netns delete` (and so do its devices).
        for name in &names {
            for pid in netns::pids(name).unwrap_or_default() {
                let Ok(pid) = u32::try_from(pid) else {
                    continue;
                };
                eprintln!("lab: stopping process {pid} left in namespace {name}");
                proc::terminate(pid, Duration::from_secs(5));
            }
        }
        for name in &names {
            netns::delete(name)?;
        }
        crate::tidy::remove(&log_dir(prefix));
        Ok(names)
    }

    /// Removes the kept logs (see [`Lab::log_dir`]) of labs whose namespaces
    /// are all gone; returns their prefixes.
    pub fn prune_logs() -> Result<Vec<String>> {
        prune_logs_in(&log_root(), &netns::list()?)
    }

    /// The prefixes of the labs whose server and switch namespaces exist.
    pub fn list() -> Result<Vec<String>> {
        let names = netns::list()?;
        Ok(names
            .iter()
            .filter_map(|n| n.strip_suffix("-srv"))
            .filter(|p| names.contains(&sw_ns(p)))
            .map(str::to_owned)
            .collect())
    }

    /// Leaves the namespaces in place when the lab is dropped
    /// (`cargo xtask lab up`). Processes it started are still stopped.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let leftovers =
            std::mem::take(&mut *self.registry.lock().unwrap_or_else(PoisonError::into_inner));
        for pid in leftovers {
            proc::terminate_group(pid, proc::STOP_TIMEOUT);
        }
        if self.keep {
            return;
        }
        for ns in self.created.iter().rev() {
            if let Err(e) = netns::delete(ns) {
                eprintln!("lab: {e:#}");
            }
        }
        // ALB_KEEP_LOGS=1 keeps them after a success too (reading what the
        // agent did in a benchmark run).
        if thread::panicking() || std::env::var_os("ALB_KEEP_LOGS").is_some_and(|v| v == "1") {
            eprintln!("lab: logs kept in {}", self.log_dir.display());
        } else {
            crate::tidy::remove(&self.log_dir);
        }
    }
}

/// [`Lab::prune_logs`] over log directory `root`, given the namespaces that
/// exist.
fn prune_logs_in(root: &Path, names: &[String]) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(format!("cannot read {}", root.display())),
    };
    let mut pruned = Vec::new();
    for entry in entries {
        let prefix = entry?.file_name().to_string_lossy().into_owned();
        if names.iter().any(|n| is_lab_ns(&prefix, n)) {
            continue;
        }
        std::fs::remove_dir_all(root.join(&prefix))
            .with_context(|| format!("cannot remove {}", root.join(&prefix).display()))?;
        pruned.push(prefix);
    }
    pruned.sort();
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_logs_are_pruned_only_for_labs_that_are_gone() {
        let root = std::env::temp_dir().join(format!("alb-lab-prune-{}", std::process::id()));
        for prefix in ["gone", "alive"] {
            std::fs::create_dir_all(root.join(prefix)).expect("mkdir");
            std::fs::write(root.join(prefix).join("00-alb.log"), "x").expect("write");
        }
        let names = vec!["alive-srv".to_owned(), "alive-sw".to_owned(), "other-srv".to_owned()];
        assert_eq!(prune_logs_in(&root, &names).expect("prune"), ["gone"]);
        assert!(root.join("alive").exists() && !root.join("gone").exists());
        std::fs::remove_dir_all(&root).expect("cleanup");
        assert!(prune_logs_in(&root, &names).expect("no root").is_empty());
    }
}
