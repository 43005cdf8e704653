//! The agent: set up, serve events until SIGINT/SIGTERM, tear down.
//!
//! Everything the agent changes is recorded in [`Undo`] before it is
//! changed, and undone on every exit path, so a refused or failed start
//! leaves no device, program, pin or sysctl behind.
//!
//! The event loop ([`serve`]) only dispatches: link events go to
//! [`membership`] and [`failover`], data-path events to [`datapath_events`],
//! timers to rebalancing and summaries. Nothing in it walks the client
//! table: the agent keeps its own model ([`Clients`]) and the slot array
//! ([`Slots`]), and telling clients is the [`Teller`] thread's job.

mod datapath_events;
mod down;
mod event_loop;
mod failover;
mod map_writes;
mod membership;
mod metrics;
mod mtu;
mod rebalance;
mod reconfigure;
mod reload;
mod setup;
mod startup;
mod state;
mod vms;

use std::time::Duration;

use anyhow::Result;
use log::{info, warn};
use tokio::signal::unix::{SignalKind, signal};

pub use self::{down::down, startup::ensure_bpffs};
use self::{
    event_loop::EVENT_BATCH,
    state::{Agent, Summary},
};
use crate::{
    config::Options, control, datapath::Events, links::Netlink, service::Notifier, undo::Undo,
};

/// Runs the agent in the current network namespace until a signal.
pub async fn run(options: Options) -> Result<()> {
    run_with(options, None).await
}

/// [`run`] with the programs and maps already loaded and pinned, fresh
/// ([`crate::datapath::Datapath::load`] into the master's pin directory):
/// `alb takeover` loads them before it deletes the bond, so that the time
/// off the network does not include the verifier's.
pub async fn run_preloaded(options: Options, datapath: crate::datapath::Datapath) -> Result<()> {
    run_with(options, Some(datapath)).await
}

async fn run_with(options: Options, preloaded: Option<crate::datapath::Datapath>) -> Result<()> {
    startup::preflight(&options)?;
    let netlink = Netlink::connect()?;
    let slaves = startup::resolve_slaves(&netlink, &options).await?;
    let _lock = startup::lock_master(&options.master)?;
    // Bound before anything changes: a taken port refuses the start.
    let metrics = options.metrics_listen.map(crate::metrics::bind).transpose()?;
    ensure_bpffs()?;
    setup::refuse_foreign_pins(&options, preloaded.is_some())?;
    // An agent that died left its record: its old values are the ones to restore.
    let mut undo = Undo::load(&options.master)?.unwrap_or_default();
    undo.claim_netns(&options.master)?;
    // Signals are caught from here on, so one during setup stops the agent
    // through the same undo instead of killing it half set up.
    let mut signals = Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    };
    // Caught from here on too: a SIGHUP during setup is a reload once the
    // loop runs, never the end of the agent.
    let hangup = signal(SignalKind::hangup())?;
    let ready = std::cell::Cell::new(false);
    let result = tokio::select! {
        result = event_loop::serve(&netlink, &options, &slaves, &mut undo, hangup, &ready, metrics, preloaded) => result,
        () = signals.next() => Ok(()),
    };
    Notifier::from_env().stopping();
    // A stop before ready, or on an error, undoes everything: a half set-up
    // data path is not one to hand over.
    if options.keep_datapath && ready.get() && result.is_ok() {
        keep_datapath(&options.master);
        return Ok(());
    }
    std::mem::take(&mut undo).run(&netlink, &options.master).await;
    if result.is_ok() {
        info!("stopped; {} removed", options.master);
    }
    result
}

/// Leaves the programs, maps, master and undo record in place; only the
/// control socket goes (nobody answers it now). The lock goes with the process.
fn keep_datapath(master: &str) {
    let socket = control::socket_path(master);
    if let Err(error) = crate::remove_file_if_present(&socket) {
        warn!("cannot remove {}: {error}", socket.display());
    }
    info!(
        "stopped; the data path of {master} keeps forwarding (the next agent adopts it; \
         `alb down --master {master}` removes it)"
    );
}

/// The undo record as the filters' [`crate::filters::Record`]: every
/// change is saved before the next one.
struct UndoFilters<'a> {
    undo: &'a mut Undo,
    master: &'a str,
}

impl UndoFilters<'_> {
    fn save(&self) {
        if let Err(error) = self.undo.save(self.master) {
            warn!("{error:#}");
        }
    }
}

impl crate::filters::Record for UndoFilters<'_> {
    fn filters(&self) -> &[crate::filters::Entry] {
        &self.undo.filters
    }

    fn record_filter(&mut self, entry: crate::filters::Entry) {
        self.undo.filters.push(entry);
        self.save();
    }

    fn forget_filter(&mut self, entry: &crate::filters::Entry) {
        self.undo.filters.retain(|e| e != entry);
        self.save();
    }
}

/// SIGINT and SIGTERM, caught from the start of `run`.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

impl Agent {
    /// Applies the events waiting in the ring before acting on the model:
    /// those written without a wake-up (new clients) wait for the drain
    /// timer, and a failover, a rebalance or a status answer must not
    /// miss a client dealt meanwhile.
    fn catch_up(&mut self, events: &mut Events) {
        for event in events.ready(EVENT_BATCH) {
            self.on_datapath_event(&event);
        }
    }

    /// Between two rounds of learning frames (and summaries).
    fn learning(&self) -> Duration {
        Duration::from_secs(self.options.lp_interval_s.max(1))
    }

    /// Between two rounds of transmit rebalancing, if it is on.
    fn rebalancing(&self) -> Option<Duration> {
        (self.options.rebalance_interval_s > 0)
            .then(|| Duration::from_secs(self.options.rebalance_interval_s))
    }

    async fn sync_filters(&mut self, undo: &mut Undo) {
        let mut record = UndoFilters { undo, master: &self.options.master };
        self.filters.sync(&self.netlink, &mut record, &self.set.state).await;
    }

    /// What follows the active slave, whatever changed it: the receive
    /// filters, and the master's groups reported through a new one.
    async fn follow_active(&mut self, undo: &mut Undo) {
        self.sync_filters(undo).await;
        let active = self.set.state.active;
        if active != self.announce.groups_reported_on {
            if let Some(active) = active {
                self.rejoin_groups(active).await;
            }
            self.announce.groups_reported_on = active;
        }
    }

    /// Logged once everything is up: programs, maps, master, control
    /// socket; returns the one-line status for the service manager.
    fn ready(&self) -> String {
        let options = &self.options;
        let state = &self.set.state;
        let active = state.active.map_or("none", |a| self.set.names[a].as_str());
        info!(
            "ready: master {} ({}) over {} (active {active}); {} clients; maps pinned in {}",
            options.master,
            crate::format_mac(&state.master_mac),
            options.slaves.join(", "),
            self.model.clients.len() + self.model.clients6.len(),
            self.link_dir.parent().unwrap_or(&self.link_dir).display()
        );
        format!("serving {} over {} (active {active})", options.master, options.slaves.join(", "))
    }

    /// One line a second at most about clients learned and told.
    fn summarize(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let counts = &self.announce.teller.counts;
        let (told, failed) = (counts.told.load(Relaxed), counts.failed.load(Relaxed));
        let newly_told = told - self.report.summary.told;
        if self.report.summary.learned > 0 || newly_told > 0 {
            info!(
                "clients: {} learned, {newly_told} told in the last {}s; {} in the table",
                self.report.summary.learned,
                self.options.lp_interval_s.max(1),
                self.model.clients.len() + self.model.clients6.len()
            );
        }
        if failed > self.report.summary.failed {
            warn!(
                "{} client updates could not be sent in the last {}s (the repeat may still \
                 reach them)",
                failed - self.report.summary.failed,
                self.options.lp_interval_s.max(1)
            );
        }
        self.report.summary = Summary { learned: 0, told, failed };
    }
}
