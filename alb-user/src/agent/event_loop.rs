//! The event loop: set up, then serve link events, data-path events, the
//! control socket, metrics scrapes, SIGHUP and timers until an error (a
//! signal ends it from [`super::run`]). It only dispatches; the work is the
//! agent's methods in the files beside it.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt as _;
use log::{debug, info, warn};

use super::{Agent, reload, setup};
use crate::{
    config::Options,
    control::{self, Request},
    links::{LinkReport, Netlink},
    metrics::Scrape,
    privileges,
    service::Notifier,
    undo::Undo,
};

/// Most data-path events handled per wake-up, so a flood of them cannot
/// keep signals and link events waiting.
pub(super) const EVENT_BATCH: usize = 4096;

/// Sets up, then serves until an error (a signal ends it from `run`).
#[expect(
    clippy::too_many_arguments,
    reason = "what run() set up before the data path, handed on once"
)]
pub(super) async fn serve(
    netlink: &Netlink,
    options: &Options,
    slaves: &[crate::links::Link],
    undo: &mut Undo,
    hangup: tokio::signal::unix::Signal,
    ready: &std::cell::Cell<bool>,
    metrics: Option<std::net::TcpListener>,
    preloaded: Option<crate::datapath::Datapath>,
) -> Result<()> {
    let (mut agent, link_events) = setup::setup(netlink, options, slaves, undo, preloaded).await?;
    let result = event_loop(&mut agent, undo, link_events, hangup, ready, metrics).await;
    agent.announce.teller.stop();
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
    let mut timers = Timers::new(agent);
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
        let walking = agent.resync.walk.is_some().then(Instant::now);
        let wake = [
            agent.set.next_due(),
            Some(timers.learn_at),
            timers.rebalance_at,
            agent.model.collapses.next_due(),
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
                let reload = matches!(request, Request::Reload);
                let result = match request {
                    Request::SlaveAdd(name) => agent.add_slave(undo, &name).await,
                    Request::SlaveDel { name, force } => agent.del_slave(undo, &name, force).await,
                    Request::SetActive(name) => agent.set_active(&name),
                    Request::Info => agent.info(),
                    Request::Reload => match agent.reload(undo).await {
                        Ok(reloaded) => {
                            let summary = reloaded.summary.clone();
                            let timers = &mut timers;
                            follow_reload(agent, Some(reloaded), &mut metrics_server, &scrapes_tx, timers);
                            Ok(summary)
                        }
                        // One reply line: the reasons, each logged on its own.
                        Err(reasons) => Err(anyhow::anyhow!("{}", reasons.join("; "))),
                    },
                };
                match &result {
                    Ok(_) if query => {}
                    Ok(text) => info!("{text}"),
                    // A refused reload logged its reasons already.
                    Err(_) if reload => {}
                    Err(error) => warn!("{error:#}"),
                }
                if reply.send(result).is_err() {
                    debug!("the control client left before its answer");
                }
            }
            _ = hangup.recv() => {
                let reloaded = agent.reload(undo).await;
                follow_reload(agent, reloaded.ok(), &mut metrics_server, &scrapes_tx, &mut timers);
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
                for server in agent.model.collapses.due(Instant::now()) {
                    agent.correct_collapse(server, None);
                }
                agent.continue_walk();
                agent.retry_map_writes();
                if Instant::now() >= timers.learn_at {
                    agent.filters.read_master_multicast(agent.set.state.master_ifindex);
                    agent.learning_frames();
                    agent.age_vms();
                    agent.check_model();
                    agent.summarize();
                    timers.learn_at = Instant::now() + agent.learning();
                }
                if let (Some(at), Some(every)) = (timers.rebalance_at, agent.rebalancing()) {
                    if Instant::now() >= at {
                        match agent.rebalance(&last_loads) {
                            Ok(loads) => last_loads = loads,
                            Err(error) => warn!("{error:#}"),
                        }
                        timers.rebalance_at = Some(Instant::now() + every);
                    }
                }
            }
        }
    }
}

/// When the loop next sends learning frames and rebalances, and the
/// intervals those were set by.
struct Timers {
    learn_at: Instant,
    rebalance_at: Option<Instant>,
    intervals: (u64, u64),
}

impl Timers {
    fn new(agent: &Agent) -> Self {
        Self {
            learn_at: Instant::now(),
            rebalance_at: agent.rebalancing().map(|every| Instant::now() + every),
            intervals: (agent.options.lp_interval_s, agent.options.rebalance_interval_s),
        }
    }
}

/// After a reload that took: the metrics endpoint where it now says, and
/// the timers restarted if their intervals changed.
fn follow_reload(
    agent: &Agent,
    reloaded: Option<reload::Reloaded>,
    metrics_server: &mut Option<crate::metrics::Server>,
    scrapes: &tokio::sync::mpsc::Sender<Scrape>,
    timers: &mut Timers,
) {
    let Some(reloaded) = reloaded else { return };
    match reloaded.endpoint {
        reload::Endpoint::Unchanged => {}
        reload::Endpoint::Closed => {
            info!("metrics endpoint closed");
            // The old server stops when it is dropped.
            drop(metrics_server.take());
        }
        reload::Endpoint::Moved(listener) => {
            match crate::metrics::Server::start(listener, scrapes.clone()) {
                Ok(server) => drop(metrics_server.replace(server)),
                Err(error) => warn!("the metrics endpoint stays as it was: {error:#}"),
            }
        }
    }
    if timers.intervals != (agent.options.lp_interval_s, agent.options.rebalance_interval_s) {
        *timers = Timers::new(agent);
    }
}
