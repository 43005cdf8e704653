//! Map writes that fail after setup (failover, failback, slave add and
//! del, rebalancing, a reload, the active slave, purges) are never silent:
//! each is logged at error and counted ([`MapWrites::failed`], in the
//! metrics and `alb status`), the agent's model goes on as if it had
//! taken, and the model is published again, whole, every [`RETRY`] until
//! a write takes (`Datapath::republish`; purges keep their keys and are
//! retried with it).

use std::time::{Duration, Instant};

use alb_common::maps::{ClientKey, VmKey};
use anyhow::Result;
use log::{error, info};

use super::Agent;

/// Between two retries.
pub(super) const RETRY: Duration = Duration::from_secs(1);

/// Failed map writes and what is still to write.
#[derive(Debug, Default)]
pub(super) struct MapWrites {
    /// Map writes that failed since start, retries included.
    pub(super) failed: u64,
    /// The kernel's maps may differ from the model since the first failed
    /// write: what it was, with its error.
    pub(super) pending: Option<Pending>,
    /// Clients and VM MACs the model forgot but the kernel still holds.
    forget_clients: Vec<ClientKey>,
    forget_vms: Vec<VmKey>,
}

#[derive(Debug)]
pub(super) struct Pending {
    /// The first failed write and its error, as logged.
    pub(super) first: String,
    pub(super) since: Instant,
    retry_at: Instant,
}

impl MapWrites {
    /// When the next retry is due.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.retry_at)
    }

    /// One line for `alb status`: what has not taken yet, since when.
    pub(super) fn pending_text(&self) -> Option<String> {
        self.pending
            .as_ref()
            .map(|p| format!("{} (for {} s)", p.first, p.since.elapsed().as_secs()))
    }

    fn failed(&mut self, what: &str, error: &anyhow::Error) {
        self.failed += 1;
        error!(
            "map write failed: {what}: {error:#}; the agent's model stands and is written again \
             every {} s until it takes",
            RETRY.as_secs()
        );
        let now = Instant::now();
        self.pending.get_or_insert_with(|| Pending {
            first: format!("{what}: {error:#}"),
            since: now,
            retry_at: now,
        });
        if let Some(pending) = &mut self.pending {
            pending.retry_at = now + RETRY;
        }
    }
}

impl Agent {
    /// Notes the outcome of a map write: a failure is logged, counted and
    /// retried. Returns whether it took.
    pub(super) fn wrote(&mut self, what: &str, result: Result<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(error) => {
                self.map_writes.failed(what, &error);
                false
            }
        }
    }

    /// A purge of clients the model already forgot: kept and retried if the
    /// kernel refuses it. Returns how many were deleted.
    pub(super) fn forget_clients(&mut self, what: &str, keys: Vec<ClientKey>) -> Option<usize> {
        match self.datapath.forget_clients(&keys) {
            Ok(deleted) => Some(deleted),
            Err(error) => {
                self.map_writes.failed(what, &error);
                self.map_writes.forget_clients.extend(keys);
                None
            }
        }
    }

    /// As [`Self::forget_clients`], for VM MACs.
    pub(super) fn forget_vms(&mut self, what: &str, keys: Vec<VmKey>) -> Option<usize> {
        match self.datapath.forget_vms(&keys) {
            Ok(deleted) => Some(deleted),
            Err(error) => {
                self.map_writes.failed(what, &error);
                self.map_writes.forget_vms.extend(keys);
                None
            }
        }
    }

    /// Writes the whole model again if a write failed and a retry is due.
    pub(super) fn retry_map_writes(&mut self) {
        let Some(due) = self.map_writes.next_retry() else { return };
        if Instant::now() < due {
            return;
        }
        let result = self
            .datapath
            .republish(&self.set.state, self.model.slots.slaves(), &self.model.buckets)
            .and_then(|()| self.datapath.forget_clients(&self.map_writes.forget_clients))
            .and_then(|_| self.datapath.forget_vms(&self.map_writes.forget_vms));
        match result {
            Ok(_) => {
                let writes = &mut self.map_writes;
                writes.forget_clients.clear();
                writes.forget_vms.clear();
                if let Some(pending) = writes.pending.take() {
                    info!(
                        "map writes take again: the model is written whole, {} ms after {} \
                         ({} failed map writes in all)",
                        pending.since.elapsed().as_millis(),
                        pending.first,
                        writes.failed
                    );
                }
            }
            Err(error) => self.map_writes.failed("retry: the whole model", &error),
        }
    }
}
