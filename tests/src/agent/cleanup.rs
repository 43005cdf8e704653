//! What an agent leaves behind, and removing it: a dropped [`Agent`] stops
//! the agent and cleans up after it ([`Agent::clean_up`], `alb down` first);
//! [`leftovers`] lists what is left, [`remove_lock_file`] the lock file and
//! a dead agent's undo record.

use std::{path::Path, process::Output};

use anyhow::Result;

use super::{Agent, PIN_ROOT, lock_held, lock_path, pin_dir, run_alb, socket_path, state_path};
use crate::{Lab, tidy};

/// Removes the lock file of `master` if nobody holds it (the agent leaves
/// the file; a master name is used once), and an undo record a dead agent
/// left.
pub fn remove_lock_file(master: &str) {
    if !lock_held(master) {
        tidy::remove(&state_path(master));
        tidy::remove(&lock_path(master));
    }
}

/// What a stopped or refused agent left behind for `master` in the lab's
/// server namespace and globally (empty when clean): the master and its
/// peer, the pin directory, a lock holder, the undo record.
pub fn leftovers(lab: &Lab, master: &str) -> Result<Vec<String>> {
    let mut left = Vec::new();
    for dev in [master.to_owned(), format!("{master}p")] {
        if lab.link_exists(lab.srv(), &dev)? {
            left.push(format!("device {dev} in {}", lab.srv()));
        }
    }
    let pins = pin_dir(master);
    if pins.exists() {
        left.push(format!("pin directory {}", pins.display()));
    }
    if lock_held(master) {
        left.push(format!("a holder of {}", lock_path(master).display()));
    }
    let record = state_path(master);
    if record.exists() {
        left.push(format!("undo record {}", record.display()));
    }
    Ok(left)
}

impl Agent {
    /// `alb down --master <master>` in its namespace (removes what a dead
    /// agent left; refused while an agent runs).
    pub fn down(&self) -> Result<Output> {
        run_alb(self.ns(), self.bin(), &["down", "--master", self.master()])
    }

    /// Removes what the (stopped) agent left, unless another agent of the
    /// same master holds the lock: `alb down` if pins or an undo record are
    /// left, then by hand the pins, the control socket, the undo record and
    /// the lock file. Returns a warning for each thing it had to remove.
    pub fn clean_up(&self) -> Vec<String> {
        let master = self.master();
        let mut warnings = Vec::new();
        if lock_held(master) {
            return warnings;
        }
        if pin_dir(master).exists() || state_path(master).exists() {
            match self.down() {
                Ok(out) if out.status.success() => warnings.push(format!(
                    "alb left pins or an undo record for {master}; `alb down` removed them: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Ok(out) => warnings.push(format!(
                    "`alb down --master {master}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => warnings.push(format!("`alb down --master {master}`: {e:#}")),
            }
        }
        let pins = pin_dir(master);
        if pins.exists() {
            warnings.push(format!("alb left {} behind; removing it", pins.display()));
            tidy::remove(&pins);
            // The parent goes only when no other master uses it.
            tidy::remove_empty_dir(Path::new(PIN_ROOT));
        }
        tidy::remove(&socket_path(master));
        remove_lock_file(master);
        warnings
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(e) = self.proc.stop() {
            eprintln!("stopping alb: {e:#}");
        }
        for warning in self.clean_up() {
            eprintln!("{warning}");
        }
    }
}
