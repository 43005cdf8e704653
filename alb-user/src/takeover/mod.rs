//! `alb takeover BOND` replaces a running kernel bond (balance-alb or
//! balance-tlb) by alb's master of the same name, with the bond's MAC,
//! MTU, addresses and routes, and runs the agent in the foreground;
//! `alb handback BOND` stops that agent and builds the kernel bond again
//! with the same definition.
//!
//! Everything is read and checked before anything changes: the bond's
//! definition (sysfs, translated by `alb import sysfs`), its slaves,
//! addresses and routes (rtnetlink), and bonding's receive table where
//! debugfs shows it. The definition is kept in `/run/alb/BOND.takeover.json`
//! for the handback. The time off the network is the time between the
//! bond's deletion and the agent's programs running: the programs and maps
//! are loaded (the verifier's time) while the bond still runs, the master
//! is made and given the addresses before the agent starts, and the routes
//! the moment the agent raises it.

pub mod bond;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use log::info;
use serde::{Deserialize, Serialize};

use self::bond::{MODES, RlbClient};
use crate::{
    RUN_DIR, agent,
    config::{self, Settings},
    control, datapath, import,
    links::{
        Netlink,
        addressing::{Address, NODAD, Route},
    },
    master,
    undo::Undo,
};

/// What `alb takeover` found, for `alb handback`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub bond: String,
    /// The options sysfs showed away from bonding's defaults (sysfs file,
    /// value as shown), `mode` among them.
    pub options: Vec<(String, String)>,
    /// In enslave order.
    pub slaves: Vec<String>,
    pub mac: String,
    pub mtu: u32,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    /// Bonding's receive table (debugfs), when the kernel shows it.
    pub clients: Option<Vec<RlbClient>>,
}

/// Where the record of a takeover is kept.
pub fn record_path(bond: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{bond}.takeover.json"))
}

/// The alb config a takeover runs the agent with.
pub fn config_path(bond: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{bond}.takeover.toml"))
}

/// Where bonding's list of bonds is, under sysfs.
const BONDING_MASTERS: &str = "class/net/bonding_masters";

/// Bonding prints its receive table here only when the kernel has no
/// network namespaces (bond_debugfs.c: CONFIG_DEBUG_FS && !CONFIG_NET_NS).
fn rlb_table_path(bond: &str) -> PathBuf {
    PathBuf::from(format!("/sys/kernel/debug/bonding/{bond}/rlb_hash_table"))
}

fn require_root(command: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("alb {command} must run as root (it replaces network devices)");
    }
    Ok(())
}

/// Everything a takeover needs, read before anything changes.
struct Plan {
    record: Record,
    options: config::Options,
    bond_index: u32,
}

async fn plan(netlink: &Netlink, name: &str, sysfs: &Path) -> Result<Plan> {
    require_root("takeover")?;
    let request = import::Request { bond: None, sysfs_root: Some(sysfs.to_owned()) };
    let found = import::sysfs::read(Path::new(name), &request).map_err(|error| anyhow!(error))?;
    let mode = found
        .bond
        .option("mode")
        .and_then(|option| option.value.clone().ok())
        .unwrap_or_else(|| "balance-rr".to_owned());
    if !MODES.contains(&mode.as_str()) {
        bail!(
            "{name} is a bond in mode {mode}: alb takeover replaces balance-alb and balance-tlb bonds"
        );
    }
    if found.bond.slaves.is_empty() {
        bail!("bond {name} has no slaves: there is nothing to take over");
    }
    let imported = import::import(import::Format::Sysfs, Path::new(name), &request)
        .map_err(|error| anyhow!(error))?;
    let link = netlink.existing(name).await?;
    if link.kind.as_deref() != Some("bond") {
        bail!("{name} is not a kernel bond");
    }
    master::validate_name(name)?;
    let peer = master::peer_name(name);
    if netlink.link_by_name(&peer).await?.is_some() {
        bail!("cannot take over {name}: alb's master needs the name {peer}, which a device has");
    }
    for slave in &found.bond.slaves {
        netlink.existing(slave).await?;
    }
    datapath::check_kernel()?;
    if std::os::unix::net::UnixStream::connect(control::socket_path(name)).is_ok() {
        bail!("an alb agent already runs master {name}");
    }
    let mac = link.mac.ok_or_else(|| anyhow!("bond {name} has no MAC address"))?;
    let addresses = netlink.carried_addresses(link.index).await?;
    let routes = netlink.carried_routes(link.index).await?;
    let clients = match std::fs::read_to_string(rlb_table_path(name)) {
        Ok(text) => Some(
            bond::parse_rlb_table(&text)
                .map_err(|error| anyhow!("{}: {error}", rlb_table_path(name).display()))?,
        ),
        Err(_) => None,
    };
    std::fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))?;
    let config_file = config_path(name);
    std::fs::write(&config_file, &imported.config)
        .with_context(|| format!("cannot write {}", config_file.display()))?;
    let options = config::resolve(Settings::default(), Some(config_file))
        .map_err(|errors| anyhow!(errors.join("; ")))?;
    for note in &imported.notes {
        eprintln!("{note}");
    }
    let options_shown = found
        .bond
        .options
        .iter()
        .filter_map(|option| Some((option.kernel.clone(), option.value.clone().ok()?)))
        .collect::<Vec<_>>();
    // What the import did not already name.
    for name in bond::writes(&options_shown).not_written {
        if !imported.notes.iter().any(|note| note.option == name) {
            eprintln!("alb: {name}: alb handback will not set it again (not a balance-alb option)");
        }
    }
    let record = Record {
        bond: name.to_owned(),
        options: options_shown,
        slaves: found.bond.slaves.clone(),
        mac: crate::format_mac(&mac),
        mtu: link.mtu,
        addresses,
        routes,
        clients,
    };
    Ok(Plan { record, options, bond_index: link.index })
}

fn save(record: &Record) -> Result<()> {
    let path = record_path(&record.bond);
    let text = serde_json::to_string_pretty(record)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `alb takeover BOND`: replaces the bond and runs the agent until
/// SIGTERM. `sysfs` is where sysfs is mounted (`/sys`; tests mount one of
/// their namespace elsewhere).
pub async fn takeover(name: &str, sysfs: &Path) -> Result<()> {
    let netlink = Netlink::connect()?;
    let Plan { record, options, bond_index } = plan(&netlink, name, sysfs).await?;
    // The verifier's time is spent while the bond still carries the traffic.
    agent::ensure_bpffs()?;
    let pins = datapath::pin_dir(name);
    if datapath::has_pinned_state(&pins) {
        bail!("{} holds an earlier alb data path: alb down --master {name} first", pins.display());
    }
    let preloaded = match datapath::Datapath::load(Some(&pins), options.max_clients) {
        Ok(preloaded) => preloaded,
        Err(error) => {
            warn_on(datapath::remove_pins(&pins));
            return Err(error);
        }
    };
    save(&record)?;
    let started = Instant::now();
    // Deleting the bond releases its slaves (bond_uninit), each with its
    // own MAC again (bonding restores the permanent one on release).
    netlink.delete(bond_index).await.with_context(|| format!("cannot delete bond {name}"))?;
    if let Err(error) = prepare_master(&netlink, &record).await {
        drop(preloaded);
        return Err(give_back_after(&netlink, &record, sysfs, error).await);
    }
    let agent = agent::run_preloaded(options, preloaded);
    tokio::pin!(agent);
    tokio::select! {
        result = &mut agent => {
            // The agent stopped before it was ready (it undid its own
            // changes): the bond is put back.
            let error = result.err().unwrap_or_else(|| anyhow!("the agent stopped during the takeover"));
            return Err(give_back_after(&netlink, &record, sysfs, error).await);
        }
        result = finish(&netlink, &record) => match result {
            Ok(()) => println!(
                "alb: took over {name} in {} ms: {} addresses, {} routes over {}{}; \
                 `alb handback {name}` gives it back",
                started.elapsed().as_millis(),
                record.addresses.len(),
                record.routes.len(),
                record.slaves.join(", "),
                record.clients.as_ref().map_or_else(String::new, |clients| format!(
                    "; bonding's receive table held {} clients", clients.len()
                )),
            ),
            Err(error) => eprintln!("alb: {error:#}"),
        },
    }
    agent.await
}

/// Creates alb's master as the bond was (name, MAC, MTU) and gives it the
/// bond's addresses, before the agent starts: the agent adopts it, and its
/// undo record (written here) has it remove it on stop.
async fn prepare_master(netlink: &Netlink, record: &Record) -> Result<()> {
    let name = &record.bond;
    let mac = crate::parse_mac(&record.mac).ok_or_else(|| anyhow!("bad MAC {}", record.mac))?;
    netlink.create_veth_pair(name, &master::peer_name(name), Some(&mac)).await?;
    let link = netlink.existing(name).await?;
    let undo = Undo {
        created_master: Some(link.index),
        pins: Some(datapath::pin_dir(name)),
        netns: Some(crate::undo::current_netns()?),
        ..Undo::default()
    };
    undo.save(name)?;
    if link.mtu != record.mtu {
        netlink.set_mtu(link.index, record.mtu).await?;
    }
    // The addresses were this host's a moment ago: no duplicate address
    // detection, which would keep IPv6 ones unusable for a second.
    for address in &record.addresses {
        netlink.add_address(link.index, address, NODAD).await?;
    }
    Ok(())
}

/// Once the agent raised the master: its routes.
async fn finish(netlink: &Netlink, record: &Record) -> Result<()> {
    let link = loop {
        if let Some(link) = netlink.link_by_name(&record.bond).await? {
            if link.admin_up {
                break link;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    for route in &record.routes {
        netlink.add_route(link.index, route).await?;
    }
    info!("took over {}: master up with its addresses and routes", record.bond);
    Ok(())
}

/// A takeover failed after the bond was deleted: builds it again and
/// returns the error to report.
async fn give_back_after(
    netlink: &Netlink,
    record: &Record,
    sysfs: &Path,
    error: anyhow::Error,
) -> anyhow::Error {
    if let Ok(Some(link)) = netlink.link_by_name(&record.bond).await {
        if link.kind.as_deref() == Some("veth") {
            warn_on(netlink.delete(link.index).await);
        }
    }
    warn_on(crate::remove_file_if_present(&Undo::path(&record.bond)).map_err(anyhow::Error::from));
    warn_on(datapath::remove_pins(&datapath::pin_dir(&record.bond)));
    match create_bond(netlink, record, sysfs, &record.addresses, &record.routes).await {
        Ok(()) => {
            warn_on(
                crate::remove_file_if_present(&record_path(&record.bond))
                    .map_err(anyhow::Error::from),
            );
            error.context(format!("takeover of {} failed; the bond is back", record.bond))
        }
        Err(again) => error.context(format!(
            "takeover of {} failed, and the bond could not be built again ({again:#}); its \
             definition is in {}",
            record.bond,
            record_path(&record.bond).display()
        )),
    }
}

/// Cleaning up after a failure: what fails is said, the first error stays
/// the one reported.
fn warn_on(result: Result<()>) {
    if let Err(error) = result {
        log::warn!("{error:#}");
    }
}

/// `alb handback BOND`: stops the agent `alb takeover BOND` runs and
/// builds the bond again, with the master's addresses and routes as they
/// are now.
pub async fn handback(name: &str, sysfs: &Path) -> Result<()> {
    require_root("handback")?;
    let path = record_path(name);
    let text = std::fs::read_to_string(&path).map_err(|error| {
        anyhow!("no takeover of {name} to hand back ({}: {error})", path.display())
    })?;
    let record: Record = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a takeover record", path.display()))?;
    if !sysfs.join(BONDING_MASTERS).exists() {
        bail!(
            "the bonding module is not loaded (modprobe bonding): cannot build bond {name} again"
        );
    }
    let netlink = Netlink::connect()?;
    let link = netlink.existing(name).await?;
    if link.kind.as_deref() != Some("veth") {
        bail!("{name} is not alb's master (kind {})", link.kind.as_deref().unwrap_or("none"));
    }
    let pid = agent_pid(name)?;
    let live = netlink.carried_addresses(link.index).await?;
    let addresses = as_recorded(&record.addresses, live);
    let routes = netlink.carried_routes(link.index).await?;
    let started = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .with_context(|| format!("cannot stop the agent (pid {pid})"))?;
    // The agent's undo ends by removing its record; the master goes before.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Undo::path(name).exists() || netlink.link_by_name(name).await?.is_some() {
        if Instant::now() > deadline {
            bail!("the agent (pid {pid}) did not stop within 60 s; nothing handed back");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    create_bond(&netlink, &record, sysfs, &addresses, &routes).await?;
    crate::remove_file_if_present(&path)?;
    crate::remove_file_if_present(&config_path(name))?;
    println!(
        "alb: handed back {name} in {} ms: a kernel bond ({}) over {} with {} addresses, {} routes",
        started.elapsed().as_millis(),
        record.options.iter().find(|(n, _)| n == "mode").map_or("balance-alb", |(_, v)| v),
        record.slaves.join(", "),
        addresses.len(),
        routes.len()
    );
    Ok(())
}

/// The pid of the agent serving master `name`, from its control socket.
fn agent_pid(name: &str) -> Result<nix::unistd::Pid> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let path = control::socket_path(name);
    let stream = std::os::unix::net::UnixStream::connect(&path).map_err(|error| {
        anyhow!("no alb agent runs master {name} ({}: {error})", path.display())
    })?;
    let credentials =
        getsockopt(&stream, PeerCredentials).context("cannot read the agent's pid")?;
    Ok(nix::unistd::Pid::from_raw(credentials.pid()))
}

/// The master's addresses now, with the flags they had on the bond: the
/// takeover added them without duplicate address detection.
pub fn as_recorded(recorded: &[Address], live: Vec<Address>) -> Vec<Address> {
    live.into_iter()
        .map(|mut address| {
            let before =
                recorded.iter().find(|r| r.ip == address.ip && r.prefix_len == address.prefix_len);
            if let Some(before) = before {
                address.flags = before.flags;
            }
            address
        })
        .collect()
}

fn write_sysfs(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .with_context(|| format!("cannot write {value:?} to {}", path.display()))
}

/// Builds the kernel bond of `record` with `addresses` and `routes`.
async fn create_bond(
    netlink: &Netlink,
    record: &Record,
    sysfs: &Path,
    addresses: &[Address],
    routes: &[Route],
) -> Result<()> {
    let name = &record.bond;
    write_sysfs(&sysfs.join(BONDING_MASTERS), &format!("+{name}"))?;
    let dir = sysfs.join("class/net").join(name).join("bonding");
    let writes = bond::writes(&record.options);
    for (option, value) in &writes.before_slaves {
        write_sysfs(&dir.join(option), value)?;
    }
    let link = netlink.existing(name).await?;
    let mac = crate::parse_mac(&record.mac).ok_or_else(|| anyhow!("bad MAC {}", record.mac))?;
    netlink.set_mac(link.index, &mac).await?;
    if link.mtu != record.mtu {
        netlink.set_mtu(link.index, record.mtu).await?;
    }
    for slave in &record.slaves {
        // As ifenslave does: a slave is enslaved down, bonding raises it.
        let device = netlink.existing(slave).await?;
        if device.admin_up {
            netlink.set_up(device.index, false).await?;
        }
        write_sysfs(&dir.join("slaves"), &format!("+{slave}"))?;
    }
    if let Some(primary) = &writes.primary {
        write_sysfs(&dir.join("primary"), primary)?;
    }
    netlink.set_up(link.index, true).await?;
    for address in addresses {
        netlink.add_address(link.index, address, 0).await?;
    }
    for route in routes {
        netlink.add_route(link.index, route).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use super::*;

    fn address(ip: IpAddr, flags: u32) -> Address {
        Address {
            ip,
            prefix_len: 64,
            broadcast: None,
            label: None,
            scope: 0,
            flags,
            valid_s: None,
            preferred_s: None,
            metric: None,
        }
    }

    #[test]
    fn handed_back_addresses_lose_the_nodad_the_takeover_gave_them() {
        let moved = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1));
        let added_since = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2));
        let recorded = [address(moved, 0)];
        let live = vec![address(moved, NODAD), address(added_since, NODAD)];
        let back = as_recorded(&recorded, live);
        assert_eq!(back[0].flags, 0, "the bond's own flags");
        assert_eq!(back[1].flags, NODAD, "an address given to the master keeps its flags");
    }
}
