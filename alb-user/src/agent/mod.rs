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
mod failover;
mod map_writes;
mod membership;
mod metrics;
mod mtu;
mod rebalance;
mod reconfigure;
mod setup;
mod startup;
mod vms;

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use alb_common::{active::Reselect, assign::Slots, link::Delays, maps::ClientKey6};
use anyhow::Result;
use futures::StreamExt as _;
use log::{debug, info, warn};
use tokio::signal::unix::{SignalKind, signal};

pub use self::{down::down, startup::ensure_bpffs};
use crate::{
    announce::{Announcer, worker::Teller},
    clients::{Clients, collapse::Collapses},
    control::{self, Request},
    datapath::{Datapath, Events},
    filters::Filters,
    links::{LinkReport, Netlink},
    master::Master,
    metrics::{Scrape, Transitions},
    privileges,
    service::Notifier,
    slaves::SlaveSet,
    undo::Undo,
};

/// How the agent was asked to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub master: String,
    pub slaves: Vec<String>,
    pub max_clients: u32,
    /// Bonding's updelay and downdelay.
    pub delays: Delays,
    /// The slave preferred as active (bonding's `primary`).
    pub primary: Option<String>,
    /// When the primary takes the active role back (bonding's `primary_reselect`).
    pub primary_reselect: Reselect,
    /// Seconds between learning frames (bonding's `lp_interval`).
    pub lp_interval_s: u64,
    /// Seconds between transmit rebalancing by measured load; 0 turns it off.
    pub rebalance_interval_s: u64,
    /// Seconds a VM MAC is kept without a frame from it.
    pub vm_ageing_s: u64,
    /// Client counters count 1 frame in this many, weighted by it.
    pub client_sampling: u32,
    /// The config file the options came from, re-read on SIGHUP.
    pub config: Option<crate::config::Source>,
    /// On SIGINT/SIGTERM after ready, leave the data path forwarding (programs,
    /// maps, master, the undo record) for the next agent to adopt, as a kernel
    /// bond outlives a daemon; `alb down` removes it.
    pub keep_datapath: bool,
    /// Test switch: leave the slaves' receive filters alone (a test shows
    /// what breaks on NICs that filter).
    pub no_filter_sync: bool,
    /// Where to serve Prometheus metrics (`--metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Whether a non-loopback `metrics_listen` is meant (`--metrics-allow-remote`).
    pub metrics_allow_remote: bool,
}

/// Runs the agent in the current network namespace until a signal.
pub async fn run(options: Options) -> Result<()> {
    startup::preflight(&options)?;
    let netlink = Netlink::connect()?;
    let slaves = startup::resolve_slaves(&netlink, &options).await?;
    let _lock = startup::lock_master(&options.master)?;
    // Bound before anything changes: a taken port refuses the start.
    let metrics = options.metrics_listen.map(crate::metrics::bind).transpose()?;
    ensure_bpffs()?;
    setup::refuse_foreign_pins(&options)?;
    // An agent that died left its record: its old values are the ones to restore.
    let mut undo = Undo::load(&options.master)?.unwrap_or_default();
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
        result = serve(&netlink, &options, &slaves, &mut undo, hangup, &ready, metrics) => result,
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

/// What the event loop acts on: the agent's whole state.
struct Agent {
    options: Options,
    netlink: Netlink,
    master: Master,
    set: SlaveSet,
    datapath: Datapath,
    /// The agent's model of the client table.
    clients: Clients,
    /// The agent's model of the IPv6 client table.
    clients6: Clients<ClientKey6>,
    /// The client slot array as published, with each slot's home.
    slots: Slots,
    /// The transmit buckets as published.
    buckets: Vec<u32>,
    /// Sends learning frames (the teller sends client updates).
    announcer: Announcer,
    teller: Teller,
    collapses: Collapses,
    /// The slaves' receive filters (the master's MAC and multicast list on
    /// the active slave, failed slaves' MACs).
    filters: Filters,
    /// The active slave the master's groups were last reported through.
    groups_reported_on: Option<usize>,
    link_dir: PathBuf,
    /// The data path's lost-event count at the last look.
    events_lost: u64,
    /// When the model was last read from the kernel.
    resynced: Instant,
    /// A walk of the kernel table under way, a batch per loop turn.
    walk: Option<Walk>,
    /// Whether the data path was adopted from an earlier agent.
    adopted: bool,
    /// Whether a walk of the kernel table has completed.
    resynced_once: bool,
    summary: Summary,
    /// Failovers and failbacks, for the metrics.
    transitions: Transitions,
    /// Map writes that failed, and the retry of the model.
    map_writes: map_writes::MapWrites,
}

/// A walk of the kernel's client tables (IPv4, then IPv6), spread over the
/// loop's turns.
struct Walk {
    cursor: crate::datapath::ClientCursor,
    cursor6: crate::datapath::ClientCursor,
    started: Instant,
    /// Events lost before it started.
    lost: u64,
    /// Slot moves whose clients are told once the walk has read them (an
    /// adoption's).
    then_tell: Vec<(usize, u32)>,
}

/// What happened since the last summary line.
#[derive(Default)]
struct Summary {
    learned: u64,
    told: u64,
    /// Updates the teller could not send, in all.
    failed: u64,
}

/// Most data-path events handled per wake-up, so a flood of them cannot
/// keep signals and link events waiting.
const EVENT_BATCH: usize = 4096;

/// Sets up, then serves until an error (a signal ends it from `run`).
async fn serve(
    netlink: &Netlink,
    options: &Options,
    slaves: &[crate::links::Link],
    undo: &mut Undo,
    hangup: tokio::signal::unix::Signal,
    ready: &std::cell::Cell<bool>,
    metrics: Option<std::net::TcpListener>,
) -> Result<()> {
    let (mut agent, link_events) = setup::setup(netlink, options, slaves, undo).await?;
    let result = event_loop(&mut agent, undo, link_events, hangup, ready, metrics).await;
    agent.teller.stop();
    result
}

async fn event_loop(
    agent: &mut Agent,
    undo: &mut Undo,
    link_events: impl futures::Stream<Item = LinkReport>,
    mut hangup: tokio::signal::unix::Signal,
    ready: &std::cell::Cell<bool>,
    metrics: Option<std::net::TcpListener>,
) -> Result<()> {
    let mut link_events = std::pin::pin!(link_events);
    let control = control::listen(&agent.options.master)?;
    let (requests_tx, mut requests) = tokio::sync::mpsc::channel::<control::Pending>(8);
    let (scrapes_tx, mut scrapes) = tokio::sync::mpsc::channel::<Scrape>(4);
    let mut metrics_server =
        metrics.map(|l| crate::metrics::Server::start(l, scrapes_tx.clone())).transpose()?;
    let mut events = agent.datapath.events()?;
    let mut learn_at = Instant::now();
    let mut rebalance_at = agent.rebalancing().map(|every| Instant::now() + every);
    let mut last_loads = agent.read_loads()?;
    let mut notifier = Notifier::from_env();
    agent.filters.read_master_multicast(agent.set.state.master_ifindex);
    agent.sync_filters(undo).await;
    // Everything that needs more than the kept capabilities is done; what
    // bpf() on the maps still needs on this kernel is probed.
    let needs = privileges::bpf_needs(&mut agent.datapath.map_access()?)?;
    privileges::restrict(&needs.keep)?;
    notifier.ready(&agent.ready());
    ready.set(true);
    loop {
        // Here, not in a timer branch: a loop kept busy by events still feeds it.
        notifier.feed_if_due(Instant::now());
        // After whatever the last turn changed (the active slave, a failed
        // slave, the master's multicast list); nothing to do most turns.
        agent.follow_active(undo).await;
        let walking = agent.walk.is_some().then(Instant::now);
        let wake = [
            agent.set.next_due(),
            Some(learn_at),
            rebalance_at,
            agent.collapses.next_due(),
            walking,
            notifier.next_feed(),
            agent.map_writes.next_retry(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            batch = events.next_batch(EVENT_BATCH) => {
                for event in batch? {
                    agent.on_datapath_event(&event);
                }
            }
            accepted = control.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(control::serve_connection(stream, requests_tx.clone()));
                }
                Err(error) => warn!("control socket: {error}"),
            },
            Some(scrape) = scrapes.recv() => {
                if scrape.send(agent.snapshot()).is_err() {
                    debug!("the metrics client left before its snapshot");
                }
            }
            Some((request, reply)) = requests.recv() => {
                agent.catch_up(&mut events);
                // A query changes nothing: not worth a log line.
                let query = matches!(request, Request::Info);
                let result = match request {
                    Request::SlaveAdd(name) => agent.add_slave(undo, &name).await,
                    Request::SlaveDel(name) => agent.del_slave(undo, &name).await,
                    Request::SetActive(name) => agent.set_active(&name),
                    Request::Info => agent.info(),
                };
                match &result {
                    Ok(_) if query => {}
                    Ok(text) => info!("{text}"),
                    Err(error) => warn!("{error:#}"),
                }
                if reply.send(result).is_err() {
                    debug!("the control client left before its answer");
                }
            }
            _ = hangup.recv() => {
                let intervals = (agent.options.lp_interval_s, agent.options.rebalance_interval_s);
                let listen = agent.options.metrics_listen;
                agent.reload(undo).await;
                if agent.options.metrics_listen != listen {
                    match agent.rebind_metrics(listen, &scrapes_tx) {
                        // The old server stops when it is dropped.
                        Ok(server) => drop(std::mem::replace(&mut metrics_server, server)),
                        Err(error) => warn!("{error:#}"),
                    }
                }
                if intervals != (agent.options.lp_interval_s, agent.options.rebalance_interval_s) {
                    learn_at = Instant::now();
                    rebalance_at = agent.rebalancing().map(|every| Instant::now() + every);
                }
            }
            Some(report) = link_events.next() => {
                agent.catch_up(&mut events);
                if agent.master_deleted(&report) {
                    anyhow::bail!("master {} was deleted by someone else; stopping", agent.options.master);
                }
                let reports = if report.overrun {
                    warn!("link events were lost (netlink overrun): reading every slave again");
                    agent.reread_links().await
                } else {
                    vec![report]
                };
                for report in reports {
                    agent.on_link(undo, &report).await;
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {
                agent.catch_up(&mut events);
                // One failed step is logged and the agent goes on: tearing
                // the bond down would hurt every client, not just one.
                for transition in agent.set.tick() {
                    if let Err(error) = agent.transition(&transition).await {
                        warn!("{error:#}");
                    }
                }
                for server in agent.collapses.due(Instant::now()) {
                    agent.correct_collapse(server, None);
                }
                agent.continue_walk();
                agent.retry_map_writes();
                if Instant::now() >= learn_at {
                    agent.filters.read_master_multicast(agent.set.state.master_ifindex);
                    agent.learning_frames();
                    agent.age_vms();
                    agent.check_model();
                    agent.summarize();
                    learn_at = Instant::now() + agent.learning();
                }
                if let (Some(at), Some(every)) = (rebalance_at, agent.rebalancing()) {
                    if Instant::now() >= at {
                        match agent.rebalance(&last_loads) {
                            Ok(loads) => last_loads = loads,
                            Err(error) => warn!("{error:#}"),
                        }
                        rebalance_at = Some(Instant::now() + every);
                    }
                }
            }
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
        if active != self.groups_reported_on {
            if let Some(active) = active {
                self.rejoin_groups(active).await;
            }
            self.groups_reported_on = active;
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
            self.clients.len() + self.clients6.len(),
            self.link_dir.parent().unwrap_or(&self.link_dir).display()
        );
        format!("serving {} over {} (active {active})", options.master, options.slaves.join(", "))
    }

    /// One line a second at most about clients learned and told.
    fn summarize(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let counts = &self.teller.counts;
        let (told, failed) = (counts.told.load(Relaxed), counts.failed.load(Relaxed));
        let newly_told = told - self.summary.told;
        if self.summary.learned > 0 || newly_told > 0 {
            info!(
                "clients: {} learned, {newly_told} told in the last {}s; {} in the table",
                self.summary.learned,
                self.options.lp_interval_s.max(1),
                self.clients.len() + self.clients6.len()
            );
        }
        if failed > self.summary.failed {
            warn!(
                "{} client updates could not be sent in the last {}s (the repeat may still \
                 reach them)",
                failed - self.summary.failed,
                self.options.lp_interval_s.max(1)
            );
        }
        self.summary = Summary { learned: 0, told, failed };
    }
}
