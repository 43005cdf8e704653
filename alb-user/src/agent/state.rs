//! The agent's state, grouped by concern: what it published of the client
//! table ([`Model`]), its reading of the kernel's tables ([`Resync`]),
//! telling the network ([`Announce`]) and what it reports ([`Report`]).
//! [`Agent`] holds one of each beside the options, the devices, the slave
//! set and the data path.

use std::{path::PathBuf, time::Instant};

use alb_common::{assign::Slots, maps::ClientKey6};

use crate::{
    announce::{Announcer, worker::Teller},
    clients::{Clients, collapse::Collapses},
    config::Options,
    datapath::Datapath,
    filters::Filters,
    links::Netlink,
    master::Master,
    metrics::Transitions,
    slaves::SlaveSet,
};

/// What the event loop acts on: the agent's whole state.
pub(super) struct Agent {
    pub(super) options: Options,
    pub(super) netlink: Netlink,
    pub(super) master: Master,
    pub(super) set: SlaveSet,
    pub(super) datapath: Datapath,
    pub(super) model: Model,
    pub(super) resync: Resync,
    pub(super) announce: Announce,
    /// The slaves' receive filters (the master's MAC and multicast list on
    /// the active slave, failed slaves' MACs).
    pub(super) filters: Filters,
    pub(super) report: Report,
    pub(super) link_dir: PathBuf,
    /// Map writes that failed, and the retry of the model.
    pub(super) map_writes: super::map_writes::MapWrites,
}

/// The agent's model of what it published: the clients, the slot array
/// and the transmit buckets (it never re-reads them from the kernel to
/// decide).
pub(super) struct Model {
    /// The agent's model of the client table.
    pub(super) clients: Clients,
    /// The agent's model of the IPv6 client table.
    pub(super) clients6: Clients<ClientKey6>,
    /// The client slot array as published, with each slot's home.
    pub(super) slots: Slots,
    /// The transmit buckets as published.
    pub(super) buckets: Vec<u32>,
    /// Pacing of the corrections after a host broadcast collapsed clients.
    pub(super) collapses: Collapses,
}

/// Reading the kernel's client tables back: after lost events, and once
/// after an adoption.
pub(super) struct Resync {
    /// The data path's lost-event count at the last look.
    pub(super) events_lost: u64,
    /// When the model was last read from the kernel.
    pub(super) resynced: Instant,
    /// A walk of the kernel table under way, a batch per loop turn.
    pub(super) walk: Option<Walk>,
    /// Whether the data path was adopted from an earlier agent.
    pub(super) adopted: bool,
    /// Whether a walk of the kernel table has completed.
    pub(super) resynced_once: bool,
}

/// A walk of the kernel's client tables (IPv4, then IPv6), spread over the
/// loop's turns.
pub(super) struct Walk {
    pub(super) cursor: crate::datapath::ClientCursor,
    pub(super) cursor6: crate::datapath::ClientCursor,
    pub(super) started: Instant,
    /// Events lost before it started.
    pub(super) lost: u64,
    /// Slot moves whose clients are told once the walk has read them (an
    /// adoption's).
    pub(super) then_tell: Vec<(usize, u32)>,
}

/// Telling the network: learning frames, client updates (the teller
/// thread), multicast reports.
pub(super) struct Announce {
    /// Sends learning frames (the teller sends client updates).
    pub(super) announcer: Announcer,
    pub(super) teller: Teller,
    /// The active slave the master's groups were last reported through.
    pub(super) groups_reported_on: Option<usize>,
}

/// What the agent reports: its summary lines and the metrics' transitions.
#[derive(Default)]
pub(super) struct Report {
    pub(super) summary: Summary,
    /// Failovers and failbacks, for the metrics.
    pub(super) transitions: Transitions,
}

/// What happened since the last summary line.
#[derive(Default)]
pub(super) struct Summary {
    pub(super) learned: u64,
    pub(super) told: u64,
    /// Updates the teller could not send, in all.
    pub(super) failed: u64,
}
