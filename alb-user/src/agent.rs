//! The agent: set up, serve events until SIGINT/SIGTERM, tear down.
//!
//! Everything the agent changes is recorded in [`Undo`] before it is
//! changed, and undone on every exit path, so a refused or failed start
//! leaves no device, program, pin or sysctl behind.

use std::{
    collections::HashSet,
    fs::{self, File},
    io,
    os::fd::AsRawFd as _,
    path::Path,
    time::{Duration, Instant},
};

use alb_common::{
    assign::{choose_active, even_out, move_off, rebalance_by_load, remap},
    frames::learning_frame,
    link::{Commit, Delays},
    maps::{CLIENT_MAC_KNOWN, ClientEntry, ClientKey, Event, EventKind, MAX_SLAVES},
    wire::{Ipv4, Mac},
};
use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use futures::StreamExt as _;
use log::{info, warn};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    RUN_DIR,
    announce::Announcer,
    control::{self, Request},
    datapath::{self, SlaveState, State},
    format_mac,
    links::{Link, LinkReport, Netlink},
    master::{self, Master},
    slaves::{SlaveSet, Transition},
    sysctl,
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
    /// Seconds between learning frames (bonding's `lp_interval`).
    pub lp_interval_s: u64,
    /// Seconds between transmit rebalancing by measured load; 0 turns it off.
    pub rebalance_interval_s: u64,
}

/// Runs the agent in the current network namespace until a signal.
pub async fn run(options: Options) -> Result<()> {
    preflight(&options)?;
    let netlink = Netlink::connect()?;
    let slaves = resolve_slaves(&netlink, &options).await?;
    let _lock = lock_master(&options.master)?;
    ensure_bpffs()?;
    let pins = datapath::pin_dir(&options.master);
    let adopting = datapath::has_pinned_state(&pins);
    if adopting {
        // Refuse before touching anything: the pins may carry live traffic.
        datapath::check_pins(&pins, options.max_clients)?;
    }
    for slave in &options.slaves {
        let ours = adopting && pins.join("links").join(format!("rx-{slave}")).exists();
        if !ours && datapath::used_by_alb(slave) {
            bail!("interface {slave} is already a slave of another alb master");
        }
    }
    // An agent that died left its record: its old values are the ones to restore.
    let mut undo = Undo::load(&options.master)?.unwrap_or_default();
    // Signals are caught from here on, so one during setup stops the agent
    // through the same undo instead of killing it half set up.
    let mut signals = Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    };
    let result = serve(&netlink, &options, &slaves, &mut undo, &mut signals).await;
    std::mem::take(&mut undo).run(&netlink, &options.master).await;
    if result.is_ok() {
        info!("stopped; {} removed", options.master);
    }
    result
}

/// Checks that need no system state.
fn preflight(options: &Options) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("alb must run as root (it loads BPF programs and changes network devices)");
    }
    master::validate_name(&options.master)?;
    if options.slaves.is_empty() {
        bail!("name at least one slave with --iface");
    }
    if options.slaves.len() > MAX_SLAVES {
        bail!("at most {MAX_SLAVES} slaves, {} given", options.slaves.len());
    }
    let mut seen = HashSet::new();
    for slave in &options.slaves {
        if !seen.insert(slave) {
            bail!("interface {slave} is named twice");
        }
        if *slave == options.master || *slave == master::peer_name(&options.master) {
            bail!("interface {slave} is the master itself");
        }
    }
    if options.max_clients == 0 {
        bail!("--max-clients must be at least 1");
    }
    primary_index(options)?;
    Ok(())
}

/// The index of `--primary` among the slaves.
fn primary_index(options: &Options) -> Result<Option<usize>> {
    options
        .primary
        .as_ref()
        .map(|name| {
            options
                .slaves
                .iter()
                .position(|s| s == name)
                .with_context(|| format!("--primary {name} is not one of the --iface slaves"))
        })
        .transpose()
}

/// Looks the slaves up and refuses devices that cannot be slaves.
async fn resolve_slaves(netlink: &Netlink, options: &Options) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    for name in &options.slaves {
        links.push(check_slave(netlink, name).await?);
    }
    Ok(links)
}

/// The device `name`, if it can be a slave: it exists, is Ethernet, is no
/// bridge, bond or team, and is nobody's port or slave yet.
async fn check_slave(netlink: &Netlink, name: &str) -> Result<Link> {
    let link = netlink.existing(name).await?;
    if let Some(controller) = link.controller {
        let owner = netlink.link_by_index(controller).await?.map(|l| l.name);
        bail!(
            "interface {name} is already enslaved to {}",
            owner.unwrap_or_else(|| format!("ifindex {controller}"))
        );
    }
    if matches!(link.kind.as_deref(), Some("bridge" | "bond" | "team")) {
        bail!("interface {name} is a {} and cannot be a slave", link.kind.unwrap_or_default());
    }
    if link.mac.is_none_or(|mac| !alb_common::wire::is_valid_unicast(&mac)) {
        bail!("interface {name} has no Ethernet address and cannot be a slave");
    }
    Ok(link)
}

/// One agent per master: an exclusive lock on /run/alb/<master>.lock, held
/// while the value lives; the file goes when it is dropped.
struct MasterLock {
    _file: File,
    path: std::path::PathBuf,
}

impl Drop for MasterLock {
    fn drop(&mut self) {
        // Removed while still locked: a second agent can only lock a new file.
        let _ = fs::remove_file(&self.path);
    }
}

fn lock_master(master: &str) -> Result<MasterLock> {
    let dir = Path::new(RUN_DIR);
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{master}.lock"));
    let file = File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock(2) on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            bail!("another alb agent already runs master {master}");
        }
        return Err(error).with_context(|| format!("cannot lock {}", path.display()));
    }
    Ok(MasterLock { _file: file, path })
}

/// `alb down`: removes what an agent that died left behind (its pinned
/// programs and maps, the master it created, the sysctls it changed).
pub async fn down(master: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("alb down must run as root");
    }
    master::validate_name(master)?;
    let _lock = lock_master(master)
        .with_context(|| format!("stop the running agent of {master} with SIGTERM instead"))?;
    ensure_bpffs()?;
    let netlink = Netlink::connect()?;
    let pins = datapath::pin_dir(master);
    let record = Undo::load(master)?;
    let device = netlink.link_by_name(master).await?;
    let peer = netlink.link_by_name(&master::peer_name(master)).await?;
    if record.is_none() && !pins.exists() {
        println!("alb: nothing to remove for master {master}");
        return Ok(());
    }
    let mut undo = record.unwrap_or_default();
    undo.pins = Some(pins);
    // A master without a record is removed only if it is alb's veth pair.
    if undo.created_master.is_none() {
        if let (Some(device), Some(_)) = (&device, &peer) {
            if device.kind.as_deref() == Some("veth") {
                undo.created_master = Some(device.index);
            }
        }
    }
    undo.run(&netlink, master).await;
    println!("alb: master {master} removed");
    Ok(())
}

/// Mounts bpffs on /sys/fs/bpf when nothing is mounted there.
pub fn ensure_bpffs() -> Result<()> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let path = Path::new(datapath::BPFFS);
    if nix::sys::statfs::statfs(path).is_ok_and(|fs| fs.filesystem_type().0 == BPF_FS_MAGIC) {
        return Ok(());
    }
    info!("mounting bpffs on {}", path.display());
    nix::mount::mount(Some("bpf"), path, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
        .with_context(|| {
            format!("bpffs is not mounted on {} and cannot be mounted", path.display())
        })
}

/// SIGINT and SIGTERM, caught from the start of `run`.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

async fn serve(
    netlink: &Netlink,
    options: &Options,
    slaves: &[Link],
    undo: &mut Undo,
    signals: &mut Signals,
) -> Result<()> {
    let master = master::create_or_adopt(netlink, &options.master).await?;
    if master.created {
        undo.created_master = Some(master.link.index);
        undo.save(&options.master)?;
    }
    // Subscribe before reading link state, so no change falls between.
    let mut link_events = netlink.watch_links()?;
    let primary = primary_index(options)?;
    let (state, mac_owner) = prepare_devices(netlink, &master, slaves, primary, undo).await?;
    let mut set = SlaveSet::new(state, options.slaves.clone(), options.delays, primary, mac_owner);

    let pins = datapath::pin_dir(&options.master);
    let adopting = datapath::has_pinned_state(&pins);
    let link_dir = pins.join("links");
    fs::create_dir_all(&link_dir)
        .with_context(|| format!("cannot create {}", link_dir.display()))?;
    undo.pins = Some(pins.clone());
    undo.save(&options.master)?;
    let mut ebpf = datapath::load(Some(&pins), options.max_clients)?;
    let links = datapath::attach(&mut ebpf, &options.master, &options.slaves, Some(&link_dir))?;
    // Clients of slaves that went down while no agent ran, moved below and
    // told once the announcer exists, as a failover tells them.
    let mut moved_clients = Vec::new();
    if adopting {
        // The maps and links of an agent that died: keep its clients and
        // buckets on their devices (its slave indices may differ from
        // ours), move only what points at a slave that is gone or down.
        let old_ifindex = datapath::slave_ifindexes(&ebpf)?;
        let new_ifindex: Vec<u32> = set.state.slaves.iter().map(|s| s.ifindex).collect();
        let buckets = datapath::buckets(&ebpf)?;
        let moves = remap(&buckets, &old_ifindex, &new_ifindex);
        datapath::set_buckets(&mut ebpf, &moves)?;
        let clients = datapath::clients(&ebpf)?;
        let assigned: Vec<u32> = clients.iter().map(|(_, e)| e.slave).collect();
        for (item, slave) in remap(&assigned, &old_ifindex, &new_ifindex) {
            datapath::move_client(&mut ebpf, &clients[item].0, slave)?;
        }
        datapath::write_slaves(&mut ebpf, &set.state)?;
        datapath::write_config(&mut ebpf, &set.state)?;
        let usable = set.state.usable();
        let buckets = datapath::buckets(&ebpf)?;
        let moves = move_off(&buckets, &usable);
        datapath::set_buckets(&mut ebpf, &moves)?;
        let clients = datapath::clients(&ebpf)?;
        let assigned: Vec<u32> = clients.iter().map(|(_, e)| e.slave).collect();
        for (item, slave) in move_off(&assigned, &usable) {
            if let Some(entry) = datapath::move_client(&mut ebpf, &clients[item].0, slave)? {
                moved_clients.push((clients[item].0, entry));
            }
        }
        info!("adopted the data path of an earlier agent: {} clients kept", clients.len());
    } else {
        datapath::publish(&mut ebpf, &set.state)?;
    }
    if !set.any_up() {
        netlink.set_up(master.peer.index, false).await?;
    }
    // Raised only now that the programs run: a client that ARPs the moment
    // the master appears is answered at once, not after its 1 s retry.
    netlink.set_up(master.link.index, true).await?;

    let active = set.state.active.map_or("none", |a| options.slaves[a].as_str());
    info!(
        "ready: master {} ({}) over {} (active {active}); maps pinned in {}",
        options.master,
        format_mac(&set.state.master_mac),
        options.slaves.join(", "),
        pins.display()
    );
    let mut agent = Agent {
        ebpf,
        announcer: Announcer::new()?,
        netlink: netlink.clone(),
        peer: master.peer.index,
        retell: Vec::new(),
        links,
        homes: std::collections::HashMap::new(),
    };
    if !moved_clients.is_empty() {
        info!(
            "{} clients moved off slaves that went down meanwhile; telling them",
            moved_clients.len()
        );
        let now = Instant::now();
        for (key, entry) in &moved_clients {
            agent.tell(&set.state, key, entry);
            agent.retell.push((now + RETELL_AFTER, *key));
        }
        // As a failover does: the switch learns the failed MACs through
        // the active slave, which accepts them (rx_failover).
        if let Some(active) = set.state.active {
            let via = set.state.slaves[active].ifindex;
            for slave in set.state.slaves.iter().filter(|s| s.ifindex != 0 && !s.up) {
                agent.learn(via, &slave.mac);
            }
        }
    }
    let learning = Duration::from_secs(options.lp_interval_s.max(1));
    let mut learn_at = Instant::now();
    let rebalancing = (options.rebalance_interval_s > 0)
        .then(|| Duration::from_secs(options.rebalance_interval_s));
    let mut rebalance_at = rebalancing.map(|every| Instant::now() + every);
    let mut last_loads = Counters::read(&agent.ebpf)?;
    let mut servers = ServerIps::read(&agent.ebpf)?;
    let mut collapses = Collapses::default();
    let control = control::listen(&options.master)?;
    let (requests_tx, mut requests) = tokio::sync::mpsc::channel::<control::Pending>(8);
    // SAFETY: the ring buffer owns its descriptor and keeps it open, unchanged,
    // for as long as the AsyncFd owns the ring buffer.
    let mut events = unsafe { AsyncFd::register(datapath::take_events(&mut agent.ebpf)?) }
        .map_err(|error| anyhow::anyhow!("cannot watch the event ring: {error}"))?;
    loop {
        let wake = [
            set.next_due(),
            agent.retell.first().map(|r| r.0),
            Some(learn_at),
            rebalance_at,
            collapses.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = signals.interrupt.recv() => return Ok(()),
            _ = signals.terminate.recv() => return Ok(()),
            ready = events.readable_mut() => {
                let mut guard = ready?;
                let ring: &mut RingBuf<MapData> = guard.get_inner_mut();
                let mut batch = Vec::new();
                while let Some(item) = ring.next() {
                    if item.len() >= size_of::<Event>() {
                        // SAFETY: the ring only carries `Event`s; read unaligned.
                        batch.push(unsafe { item.as_ptr().cast::<Event>().read_unaligned() });
                    }
                }
                guard.clear_ready();
                for event in batch {
                    if let Err(error) = handle(&mut agent.ebpf, &set.state, &agent.announcer, &mut servers, &mut collapses, &event) {
                        warn!("{error:#}");
                    }
                }
            }
            accepted = control.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(control::serve_connection(stream, requests_tx.clone()));
                }
                Err(error) => warn!("control socket: {error}"),
            },
            Some((request, reply)) = requests.recv() => {
                let result = match request {
                    Request::SlaveAdd(name) => {
                        agent.add_slave(&mut set, undo, &options.master, &link_dir, &name).await
                    }
                    Request::SlaveDel(name) => {
                        agent.del_slave(&mut set, undo, &options.master, &link_dir, &name).await
                    }
                };
                match &result {
                    Ok(text) => info!("{text}"),
                    Err(error) => warn!("{error:#}"),
                }
                let _ = reply.send(result);
            }
            Some(report) = link_events.next() => {
                if report.deleted && (report.index == master.link.index || report.index == master.peer.index) {
                    bail!("master {} was deleted by someone else; stopping", options.master);
                }
                let reports = if report.overrun {
                    warn!("link events were lost (netlink overrun): reading every slave again");
                    agent.reread_links(&set, master.link.index).await
                } else {
                    vec![report]
                };
                for report in reports {
                    let master_index = master.link.index;
                    if let Err(error) =
                        agent.on_link(&mut set, undo, &options.master, &link_dir, master_index, &report).await
                    {
                        warn!("{error:#}");
                    }
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {
                // One failed step is logged and the agent goes on: tearing
                // the bond down would hurt every client, not just one.
                for transition in set.tick() {
                    if let Err(error) = agent.transition(&set, &transition).await {
                        warn!("{error:#}");
                    }
                }
                if let Err(error) = agent.retell_due(&set) {
                    warn!("{error:#}");
                }
                for server in collapses.due(Instant::now()) {
                    if let Err(error) = correct_collapse(&agent.ebpf, &set.state, &agent.announcer, server, None) {
                        warn!("{error:#}");
                    }
                }
                if Instant::now() >= learn_at {
                    agent.learning_frames(&set);
                    if let Err(error) = servers.resync(&agent.ebpf) {
                        warn!("{error:#}");
                    }
                    learn_at = Instant::now() + learning;
                }
                if let (Some(at), Some(every)) = (rebalance_at, rebalancing) {
                    if Instant::now() >= at {
                        match agent.rebalance(&set, &last_loads) {
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

/// Silences the slaves, raises them and the peer, gives the master the MAC of the
/// primary (or else the first slave with carrier) and the smallest slave
/// MTU. That slave becomes active and owns the master's MAC.
async fn prepare_devices(
    netlink: &Netlink,
    master: &Master,
    slaves: &[Link],
    primary: Option<usize>,
    undo: &mut Undo,
) -> Result<(State, usize)> {
    let name = &master.link.name;
    for device in slaves.iter().map(|s| &s.name).chain([&master.peer.name]) {
        sysctl::silence(device, |saved| undo.record_sysctl(name, saved))?;
    }
    for link in slaves.iter().chain([&master.peer]) {
        if !link.admin_up {
            undo.record_raised(name, link.index)?;
            netlink.set_up(link.index, true).await?;
        }
    }
    let mut states = Vec::new();
    for link in slaves {
        let current = netlink.existing(&link.name).await?;
        let mac = current.mac.unwrap_or_default();
        states.push(SlaveState { ifindex: current.index, mac, up: current.lower_up });
    }
    // The master's MAC is the primary's, whatever its carrier now, else the
    // first slave's with carrier: with the primary preferred as active, the
    // slave that owns the MAC is active whenever it is up, so the MAC never
    // shows on two ports.
    // A master that already existed (an earlier agent's) keeps its MAC:
    // changing it would flush its neighbour table and strand every peer
    // that knows it.
    let up: Vec<bool> = states.iter().map(|s| s.up).collect();
    let kept = if master.created { None } else { master.link.mac };
    let owner = kept
        .and_then(|mac| states.iter().position(|s| s.mac == mac))
        .or(primary)
        .or_else(|| up.iter().position(|&u| u))
        .unwrap_or(0);
    let active = choose_active(&up, primary, owner, None);
    let master_mac = kept.unwrap_or(states[owner].mac);
    let mtu = slaves.iter().map(|s| s.mtu).min().unwrap_or(1500);
    // Only what differs: setting even the same MAC flushes the master's
    // neighbour table, which an adopted master is using.
    if master.link.mac != Some(master_mac) {
        netlink.set_mac(master.link.index, &master_mac).await?;
    }
    if master.link.mtu != mtu {
        netlink.set_mtu(master.link.index, mtu).await?;
    }

    Ok((State { master_ifindex: master.link.index, master_mac, slaves: states, active }, owner))
}

/// What the event loop acts on.
struct Agent {
    ebpf: Ebpf,
    announcer: Announcer,
    netlink: Netlink,
    peer: u32,
    /// Clients to tell again once their ARP locktime has passed: the
    /// gratuitous form is applied at once, this covers a lost frame and
    /// clients that only take the RLB form.
    retell: Vec<(Instant, ClientKey)>,
    /// The agent's handles on its pinned links.
    links: datapath::Links,
    /// Clients a failure moved, with the slave they were taken from: that
    /// slave takes them back first when it returns.
    homes: std::collections::HashMap<ClientKey, u32>,
}

/// Byte counters read at one rebalancing round, to subtract at the next.
struct Counters {
    buckets: Vec<u64>,
    slaves: Vec<u64>,
}

impl Counters {
    fn read(ebpf: &Ebpf) -> Result<Self> {
        Ok(Self { buckets: datapath::bucket_bytes(ebpf)?, slaves: datapath::slave_tx_bytes(ebpf)? })
    }
}

/// Linux clients ignore a non-gratuitous ARP change within 1 s (locktime).
const RETELL_AFTER: Duration = Duration::from_millis(1100);

impl Agent {
    /// Applies a committed link change: the data path first (it stops using
    /// a failed slave at once), then clients and buckets, then the network.
    async fn transition(&mut self, set: &SlaveSet, transition: &Transition) -> Result<()> {
        let state = &set.state;
        let name = &set.names[transition.slave];
        datapath::write_slaves(&mut self.ebpf, state)?;
        datapath::write_config(&mut self.ebpf, state)?;
        let usable = state.usable();
        let clients = datapath::clients(&self.ebpf)?;
        let assigned: Vec<u32> = clients.iter().map(|(_, e)| e.slave).collect();
        let buckets = datapath::buckets(&self.ebpf)?;
        let home: Vec<Option<u32>> =
            clients.iter().map(|(key, _)| self.homes.get(key).copied()).collect();
        let (client_moves, bucket_moves) = match transition.commit {
            Commit::Down => (move_off(&assigned, &usable), move_off(&buckets, &usable)),
            Commit::Up => (even_out(&assigned, &home, &usable), even_out(&buckets, &[], &usable)),
        };
        datapath::set_buckets(&mut self.ebpf, &bucket_moves)?;
        let now = Instant::now();
        for &(item, slave) in &client_moves {
            let key = clients[item].0;
            // Remember where a failure took a client from; forget it once
            // the client is back there.
            if home[item] == Some(slave) {
                self.homes.remove(&key);
            } else if transition.commit == Commit::Down {
                self.homes.entry(key).or_insert(assigned[item]);
            }
            if let Some(entry) = datapath::move_client(&mut self.ebpf, &key, slave)? {
                self.tell(state, &key, &entry);
                self.retell.push((now + RETELL_AFTER, key));
            }
        }
        let active = transition.active_after.map_or("none", |a| set.names[a].as_str());
        match transition.commit {
            Commit::Down => {
                info!(
                    "{name} down: {} clients and {} buckets moved; active {active}",
                    client_moves.len(),
                    bucket_moves.len()
                );
                // Teach the switch that the failed MAC is reachable through the
                // active slave, which accepts it (rx_failover) until clients
                // have learned their new slave.
                if let Some(active) = transition.active_after {
                    let failed = state.slaves[transition.slave].mac;
                    self.learn(state.slaves[active].ifindex, &failed);
                }
                if !set.any_up() {
                    warn!("no slave left: {} carrier down", "master");
                    self.netlink.set_up(self.peer, false).await?;
                }
            }
            Commit::Up => {
                info!(
                    "{name} up: {} clients and {} buckets moved; active {active}",
                    client_moves.len(),
                    bucket_moves.len()
                );
                if transition.active_before.is_none() {
                    self.netlink.set_up(self.peer, true).await?;
                }
                let slave = &state.slaves[transition.slave];
                self.learn(slave.ifindex, &slave.mac);
            }
        }
        if transition.active_changed() {
            if let Some(active) = transition.active_after {
                self.learn(state.slaves[active].ifindex, &state.master_mac);
            }
        }
        Ok(())
    }

    /// A link report for the master or a slave.
    async fn on_link(
        &mut self,
        set: &mut SlaveSet,
        undo: &mut Undo,
        master: &str,
        link_dir: &Path,
        master_index: u32,
        report: &LinkReport,
    ) -> Result<()> {
        if report.index == master_index {
            if let Some(mac) = report.mac.filter(|mac| *mac != set.state.master_mac) {
                self.master_mac_changed(set, master, mac)?;
            }
            return Ok(());
        }
        let Some(index) = set.index_of(report.index) else { return Ok(()) };
        if report.deleted {
            // As bonding releases a slave whose device goes away.
            warn!("slave {} was deleted; releasing it from {master}", set.names[index]);
            return self.release_slave(set, undo, master, link_dir, index).await;
        }
        if let Some(transition) = set.carrier(index, report.carrier()) {
            self.transition(set, &transition).await?;
        }
        Ok(())
    }

    /// The user gave the master a new MAC (`ip link set alb0 address ...`):
    /// the data path takes it as the master's (the active slave carries it,
    /// host ARP with it is rewritten per client), and the switch learns it
    /// on the active slave's port.
    fn master_mac_changed(&mut self, set: &mut SlaveSet, master: &str, mac: Mac) -> Result<()> {
        info!("{master} has a new MAC {}; the active slave carries it", format_mac(&mac));
        set.state.master_mac = mac;
        datapath::write_config(&mut self.ebpf, &set.state)?;
        if let Some(active) = set.state.active {
            self.learn(set.state.slaves[active].ifindex, &mac);
        }
        Ok(())
    }

    /// Reads the master and every slave again, as reports (after an overrun).
    async fn reread_links(&self, set: &SlaveSet, master_index: u32) -> Vec<LinkReport> {
        let indices = set.state.slaves.iter().map(|s| s.ifindex).filter(|&i| i != 0);
        let mut reports = Vec::new();
        for index in std::iter::once(master_index).chain(indices) {
            match self.netlink.link_by_index(index).await {
                Ok(Some(link)) => reports.push(LinkReport::from_link(&link)),
                Ok(None) => reports.push(LinkReport {
                    index,
                    admin_up: false,
                    lower_up: false,
                    deleted: true,
                    mac: None,
                    overrun: false,
                }),
                Err(error) => warn!("{error:#}"),
            }
        }
        reports
    }

    /// `alb slave add`: checks the device like a start does, silences it,
    /// attaches the receive program and deals it its share.
    async fn add_slave(
        &mut self,
        set: &mut SlaveSet,
        undo: &mut Undo,
        master: &str,
        links: &Path,
        name: &str,
    ) -> Result<String> {
        if set.index_by_name(name).is_some() {
            bail!("{name} is already a slave of {master}");
        }
        if name == master || name == master::peer_name(master) {
            bail!("interface {name} is the master itself");
        }
        if set.state.slaves.iter().filter(|s| s.ifindex != 0).count() >= MAX_SLAVES {
            bail!("{master} has {MAX_SLAVES} slaves already");
        }
        let link = check_slave(&self.netlink, name).await?;
        if datapath::used_by_alb(name) {
            bail!("interface {name} is already a slave of another alb master");
        }
        let prepared = self.prepare_slave(undo, master, links, &link).await;
        if let Err(error) = prepared {
            // Give the device back as it was: a refused add changes nothing.
            let _ = datapath::detach_slave(name, links, &mut self.links);
            let (sysctls, raised) = undo.release_device(name, link.index);
            sysctl::restore(sysctls);
            if raised {
                let _ = self.netlink.set_up(link.index, false).await;
            }
            undo.save(master)?;
            return Err(error);
        }
        let current = self.netlink.existing(name).await?;
        let slave = SlaveState {
            ifindex: current.index,
            mac: current.mac.unwrap_or_default(),
            up: current.admin_up && current.lower_up,
        };
        let (index, transition) = set.add(name.to_owned(), slave);
        match transition {
            Some(transition) => self.transition(set, &transition).await?,
            None => {
                datapath::write_slaves(&mut self.ebpf, &set.state)?;
                datapath::write_config(&mut self.ebpf, &set.state)?;
            }
        }
        Ok(format!("{name} added to {master} as slave {index}"))
    }

    /// Silences and raises a device about to become a slave, and attaches
    /// the receive program to it, recording each change first.
    async fn prepare_slave(
        &mut self,
        undo: &mut Undo,
        master: &str,
        links: &Path,
        link: &Link,
    ) -> Result<()> {
        sysctl::silence(&link.name, |saved| undo.record_sysctl(master, saved))?;
        if !link.admin_up {
            undo.record_raised(master, link.index)?;
            self.netlink.set_up(link.index, true).await?;
        }
        datapath::attach_slave(&mut self.ebpf, &link.name, Some(links), &mut self.links)
    }

    /// `alb slave del`: moves the slave's clients and buckets away, detaches
    /// it and gives the device back as it was.
    async fn del_slave(
        &mut self,
        set: &mut SlaveSet,
        undo: &mut Undo,
        master: &str,
        links: &Path,
        name: &str,
    ) -> Result<String> {
        let Some(index) = set.index_by_name(name) else {
            bail!("{name} is not a slave of {master}");
        };
        self.release_slave(set, undo, master, links, index).await?;
        Ok(format!("{name} removed from {master}"))
    }

    /// Takes slave `index` out (`alb slave del`, or its device was deleted):
    /// its clients and buckets move first, then its program is detached and
    /// the device gets back what the agent changed.
    async fn release_slave(
        &mut self,
        set: &mut SlaveSet,
        undo: &mut Undo,
        master: &str,
        links: &Path,
        index: usize,
    ) -> Result<()> {
        let name = set.names[index].clone();
        let removed = set.state.slaves[index].clone();
        if let Some(transition) = set.remove(index) {
            self.transition(set, &transition).await?;
        }
        set.forget(index);
        // A removed slave is nobody's home any more.
        let slot = u32::try_from(index)?;
        self.homes.retain(|_, home| *home != slot);
        datapath::write_slaves(&mut self.ebpf, &set.state)?;
        datapath::write_config(&mut self.ebpf, &set.state)?;
        datapath::forget_slave(&mut self.ebpf, removed.ifindex)?;
        // A deleted device took its link with it; the pin may remain.
        if let Err(error) = datapath::detach_slave(&name, links, &mut self.links) {
            warn!("{error:#}");
        }
        let (sysctls, raised) = undo.release_device(&name, removed.ifindex);
        sysctl::restore(sysctls);
        if raised {
            let _ = self.netlink.set_up(removed.ifindex, false).await;
        }
        undo.save(master)?;
        if removed.mac == set.state.master_mac {
            warn!(
                "{master} keeps the MAC of {name} ({}); give one of them another MAC \
                 before {name} joins the same network elsewhere",
                format_mac(&removed.mac)
            );
        }
        Ok(())
    }

    /// Moves transmit buckets by the load they carried since the last
    /// round, only where that narrows the gap between slaves by more than
    /// 10% of the traffic; returns the byte counters to compare against next.
    fn rebalance(&mut self, set: &SlaveSet, last: &Counters) -> Result<Counters> {
        let now = Counters::read(&self.ebpf)?;
        let load: Vec<u64> =
            now.buckets.iter().zip(&last.buckets).map(|(n, l)| n.saturating_sub(*l)).collect();
        let buckets = datapath::buckets(&self.ebpf)?;
        // What each slave sent outside the buckets: its total minus its buckets.
        let baseline: Vec<u64> = (0..now.slaves.len())
            .map(|slave| {
                let sent = now.slaves[slave].saturating_sub(last.slaves[slave]);
                let in_buckets: u64 = buckets
                    .iter()
                    .zip(&load)
                    .filter(|(s, _)| usize::try_from(**s).ok() == Some(slave))
                    .map(|(_, l)| *l)
                    .sum();
                sent.saturating_sub(in_buckets)
            })
            .collect();
        let usable = set.state.usable();
        let moves = rebalance_by_load(&buckets, &load, &baseline, &usable, 0.1);
        if !moves.is_empty() {
            datapath::set_buckets(&mut self.ebpf, &moves)?;
            info!("rebalanced transmit load: {} buckets moved", moves.len());
        }
        Ok(now)
    }

    fn tell(&self, state: &State, key: &ClientKey, entry: &ClientEntry) {
        tell(&self.announcer, state, key, entry);
    }

    fn retell_due(&mut self, set: &SlaveSet) -> Result<()> {
        let now = Instant::now();
        let due: Vec<ClientKey> =
            self.retell.iter().filter(|(at, _)| *at <= now).map(|(_, key)| *key).collect();
        self.retell.retain(|(at, _)| *at > now);
        if due.is_empty() {
            return Ok(());
        }
        let clients: std::collections::HashMap<ClientKey, ClientEntry> =
            datapath::clients(&self.ebpf)?.into_iter().collect();
        for key in due {
            if let Some(entry) = clients.get(&key) {
                self.tell(&set.state, &key, entry);
            }
        }
        Ok(())
    }

    /// Bonding's periodic learning frames (spec §2.7): every usable slave
    /// with its own MAC, and the active slave with the master's MAC when
    /// that MAC's owner is down.
    fn learning_frames(&self, set: &SlaveSet) {
        let state = &set.state;
        for slave in state.slaves.iter().filter(|s| s.up) {
            self.learn(slave.ifindex, &slave.mac);
        }
        if let Some(active) = state.active {
            let slave = &state.slaves[active];
            if slave.mac != state.master_mac {
                self.learn(slave.ifindex, &state.master_mac);
            }
        }
    }

    fn learn(&self, ifindex: u32, mac: &Mac) {
        if let Err(error) = self.announcer.send(ifindex, &learning_frame(mac)) {
            warn!("{error:#}");
        }
    }
}

fn handle(
    ebpf: &mut Ebpf,
    state: &State,
    announcer: &Announcer,
    servers: &mut ServerIps,
    collapses: &mut Collapses,
    event: &Event,
) -> Result<()> {
    let Some(kind) = EventKind::from_u32(event.kind) else { return Ok(()) };
    match kind {
        EventKind::NewClient => {
            servers.ips.insert(event.key.server_ip);
            info!(
                "client {} of {} dealt to slave {}",
                ip(&event.key.client_ip),
                ip(&event.key.server_ip),
                event.slave
            );
        }
        EventKind::HostArpBroadcast => {
            if collapses.note(event.key.server_ip, Instant::now()) {
                let skip = Some((event.key.client_ip, event.slave));
                correct_collapse(ebpf, state, announcer, event.key.server_ip, skip)?;
            }
        }
        EventKind::ClientMacChanged => {
            servers.ips.insert(event.key.server_ip);
            info!("client {} now at {}", ip(&event.key.client_ip), format_mac(&event.mac));
            if let Some(entry) = datapath::client(ebpf, &event.key)? {
                tell(announcer, state, &event.key, &entry);
            }
        }
        // Only an ARP from a server address can claim it: any other client
        // ARP costs a set lookup, not a walk of the whole client table.
        EventKind::ArpSeen if servers.ips.contains(&event.key.client_ip) => {
            purge_foreign_claim(ebpf, state, event)?;
        }
        EventKind::ArpSeen => {}
    }
    Ok(())
}

/// The server addresses of the client table. A foreign claim (spec §1.6)
/// can only concern one of them; walking the whole table for every client
/// ARP instead made an ARP flood cost O(table) per frame (at 700 clients,
/// 10,000 ARPs took 9 s of CPU, and the event ring overflowed).
struct ServerIps {
    ips: HashSet<Ipv4>,
    /// The data path's `event_lost` count when the set was last read.
    lost: u64,
}

impl ServerIps {
    /// From the table as it is (an adopted one already has clients).
    fn read(ebpf: &Ebpf) -> Result<Self> {
        let ips = datapath::clients(ebpf)?.iter().map(|(key, _)| key.server_ip).collect();
        Ok(Self { ips, lost: datapath::events_lost(ebpf)? })
    }

    /// Reads the set again from the table if the ring lost events since
    /// the last look: a lost `NewClient` may have named an address the set
    /// lacks.
    fn resync(&mut self, ebpf: &Ebpf) -> Result<()> {
        if datapath::events_lost(ebpf)? != self.lost {
            *self = Self::read(ebpf)?;
        }
        Ok(())
    }
}

/// Corrections after the host broadcast ARP: at most five walks of the
/// client table per server address per second. The first broadcast is
/// corrected at once; more within the next 200 ms are merged into one
/// correction when they end (a host that ARPs many addresses at once would
/// otherwise make the agent re-tell every client for each of them).
#[derive(Default)]
struct Collapses {
    last: std::collections::HashMap<Ipv4, Instant>,
    pending: std::collections::HashMap<Ipv4, Instant>,
}

const COLLAPSE_SPACING: Duration = Duration::from_millis(200);

impl Collapses {
    /// A broadcast for `server`: true to correct now, else it is pending.
    fn note(&mut self, server: Ipv4, now: Instant) -> bool {
        match self.last.get(&server) {
            Some(&last) if now.duration_since(last) < COLLAPSE_SPACING => {
                self.pending.entry(server).or_insert(last + COLLAPSE_SPACING);
                false
            }
            _ => {
                self.last.insert(server, now);
                true
            }
        }
    }

    /// Server addresses whose merged correction is due.
    fn due(&mut self, now: Instant) -> Vec<Ipv4> {
        let due: Vec<Ipv4> =
            self.pending.iter().filter(|(_, at)| **at <= now).map(|(ip, _)| *ip).collect();
        for server in &due {
            self.pending.remove(server);
            self.last.insert(*server, now);
        }
        due
    }

    fn next_due(&self) -> Option<Instant> {
        self.pending.values().min().copied()
    }
}

/// Every client of `server` that heard a host broadcast ARP now points at
/// its sender MAC. Tell the others their own slave again, at once
/// (gratuitous form, so Linux clients apply it inside their ARP locktime);
/// the kernel waits ~2 s. `skip`: the target of the request and the slave
/// whose MAC it carried, which need no correction.
fn correct_collapse(
    ebpf: &Ebpf,
    state: &State,
    announcer: &Announcer,
    server: Ipv4,
    skip: Option<(Ipv4, u32)>,
) -> Result<()> {
    let mut told = 0;
    for (key, entry) in datapath::clients(ebpf)? {
        let skipped =
            skip.is_some_and(|(target, slave)| key.client_ip == target || entry.slave == slave);
        if key.server_ip == server && !skipped && entry.flags & CLIENT_MAC_KNOWN != 0 {
            tell(announcer, state, &key, &entry);
            told += 1;
        }
    }
    if told > 0 {
        match skip {
            Some((target, _)) => {
                info!("host ARP request for {}: re-told {told} clients", ip(&target))
            }
            None => info!("host ARP broadcasts for {}: re-told {told} clients", ip(&server)),
        }
    }
    Ok(())
}

/// Sends a client its slave's MAC for the server address, via that slave
/// (if the client's MAC is known and the slave is up).
fn tell(announcer: &Announcer, state: &State, key: &ClientKey, entry: &ClientEntry) {
    if entry.flags & CLIENT_MAC_KNOWN == 0 {
        return;
    }
    let Some(slave) = usize::try_from(entry.slave).ok().and_then(|i| state.slaves.get(i)) else {
        return;
    };
    if slave.up {
        if let Err(error) = announcer.update_client(slave.ifindex, &slave.mac, key, &entry.mac) {
            warn!("{error:#}");
        }
    }
}

/// Another host claims a server address (an ARP from it with a MAC that is
/// none of ours): forget every client of that address, so no update ever
/// claims it for us again (spec §1.6).
fn purge_foreign_claim(ebpf: &mut Ebpf, state: &State, event: &Event) -> Result<()> {
    let sender_ip = event.key.client_ip;
    let ours = |mac: &Mac| state.slaves.iter().any(|s| s.mac == *mac) || *mac == state.master_mac;
    if ours(&event.mac) || sender_ip == [0; 4] {
        return Ok(());
    }
    let forgotten = datapath::forget_clients_of(ebpf, &sender_ip)?;
    if forgotten > 0 {
        warn!(
            "{} claimed by {}: forgot {forgotten} clients of that address",
            ip(&sender_ip),
            format_mac(&event.mac),
        );
    }
    Ok(())
}

fn ip(addr: &Ipv4) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(*addr)
}
