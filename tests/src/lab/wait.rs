//! Waiting for a condition: [`wait_until`] polls any check; the lab waits
//! for a device to appear and for the master to come up.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::Lab;

/// Polls `check` every 10 ms until it returns true or `timeout` (times
/// `ALB_TEST_TIME_SCALE`, [`crate::scaled`]) passes; `what` names the
/// awaited condition in the error.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let timeout = crate::scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

impl Lab {
    /// Waits up to `timeout` for device `dev` to appear in namespace `ns`.
    pub fn wait_for_link(&self, ns: &str, dev: &str, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("{dev} in {ns}"), || self.link_exists(ns, dev))
    }

    /// Waits up to `timeout` for the master to exist in the server
    /// namespace and be administratively up.
    pub fn wait_for_master(&self, timeout: Duration) -> Result<()> {
        let (srv, master) = (&self.srv, &self.config.master);
        wait_until(timeout, &format!("{master} up in {srv}"), || {
            Ok(self.link_exists(srv, master)? && self.link(srv, master)?.admin_up())
        })
    }
}
