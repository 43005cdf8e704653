//! Everything before the event loop: checks that refuse a start before
//! anything changes, the one-agent-per-master lock, bpffs, silencing and
//! raising the devices, and the master's MAC and MTU.

use std::{
    fs::{self, File},
    io,
    os::fd::AsRawFd as _,
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use log::info;

use crate::config::Options;
use crate::{
    RUN_DIR, datapath,
    links::{Link, Netlink},
    master::{self, Master},
    state::{SlaveState, State},
    sysctl,
    undo::Undo,
};

/// Checks that need no system state.
pub(super) fn preflight(options: &Options) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("alb must run as root (it loads BPF programs and changes network devices)");
    }
    // TCX or clsact, BTF, the ring buffer: refused in one line if missing.
    datapath::check_kernel()?;
    // The options were checked when they were read (config::validate);
    // the master's name is checked again where it is used.
    master::validate_name(&options.master)?;
    Ok(())
}

/// The index of the primary among the slaves.
pub(super) fn primary_index(options: &Options) -> Option<usize> {
    let primary = options.primary.as_ref()?;
    options.slaves.iter().position(|s| s == primary)
}

/// Looks the slaves up and refuses devices that cannot be slaves.
pub(super) async fn resolve_slaves(netlink: &Netlink, options: &Options) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    for name in &options.slaves {
        links.push(check_slave(netlink, name).await?);
    }
    Ok(links)
}

/// The device `name`, if it can be a slave: it exists, is Ethernet, is no
/// bridge, bond or team, and is nobody's port or slave yet.
pub(super) async fn check_slave(netlink: &Netlink, name: &str) -> Result<Link> {
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
    if !link.ethernet {
        bail!("interface {name} is not an Ethernet device and cannot be a slave");
    }
    if link.mac.is_none_or(|mac| !alb_common::wire::is_valid_unicast(&mac)) {
        bail!("interface {name} has no Ethernet address and cannot be a slave");
    }
    Ok(link)
}

/// Whether an alb receive program already runs on `device` in this
/// network namespace. TCX answers for this namespace's device itself; a
/// clsact record names only a device name, so it counts when its master
/// lives in this namespace: its undo record was made here, or (an older
/// agent's record, which names no namespace) its master device is here.
pub(super) fn used_by_alb_here(device: &str) -> Result<bool> {
    let (tcx, clsact) = datapath::alb_users(device);
    if tcx || clsact.is_empty() {
        return Ok(tcx);
    }
    let here = crate::undo::current_netns()?;
    for master in clsact {
        let there = Undo::load(&master).ok().flatten().and_then(|record| record.netns);
        let lives_here = there.map_or_else(
            || nix::net::if_::if_nametoindex(master.as_str()).is_ok(),
            |there| there == here,
        );
        if lives_here {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One agent per master: an exclusive lock on /run/alb/<master>.lock, held
/// while the value lives; the file goes when it is dropped.
pub(super) struct MasterLock {
    _file: File,
    path: std::path::PathBuf,
}

impl Drop for MasterLock {
    fn drop(&mut self) {
        // Removed while still locked: a second agent can only lock a new file.
        if let Err(error) = crate::remove_file_if_present(&self.path) {
            log::warn!("cannot remove {}: {error}", self.path.display());
        }
    }
}

pub(super) fn lock_master(master: &str) -> Result<MasterLock> {
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

/// Silences the slaves, raises them and the peer, gives the master the MAC of the
/// primary (or else the first slave with carrier), and an MTU: its own if it
/// existed, else the smallest slave MTU; the peer and every slave take it, as
/// a bond's slaves take the bond's. That slave becomes active and owns the
/// master's MAC. The state it returns carries `client_sampling` for the data path.
pub(super) async fn prepare_devices(
    netlink: &Netlink,
    master: &mut Master,
    slaves: &[Link],
    primary: Option<usize>,
    client_sampling: u32,
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
    let kept = if master.created { None } else { master.link.mac };
    let owner = kept
        .and_then(|mac| states.iter().position(|s| s.mac == mac))
        .or(primary)
        .or_else(|| states.iter().position(|s| s.up))
        .unwrap_or(0);
    let master_mac = kept.unwrap_or(states[owner].mac);
    let mtu = if master.created {
        slaves.iter().map(|s| s.mtu).min().unwrap_or(1500)
    } else {
        master.link.mtu
    };
    // Only what differs: setting even the same MAC flushes the master's
    // neighbour table, which an adopted master is using.
    if master.link.mac != Some(master_mac) {
        netlink.set_mac(master.link.index, &master_mac).await?;
    }
    if master.link.mtu != mtu {
        netlink.set_mtu(master.link.index, mtu).await?;
        master.link.mtu = mtu;
    }
    if master.peer.mtu != mtu {
        netlink.set_mtu(master.peer.index, mtu).await?;
        master.peer.mtu = mtu;
    }
    for slave in slaves.iter().filter(|s| s.mtu != mtu) {
        undo.record_mtu(name, slave.index, slave.mtu)?;
        netlink.set_mtu(slave.index, mtu).await?;
    }

    // The slave set chooses the active slave.
    let state = State {
        master_ifindex: master.link.index,
        master_mac,
        slaves: states,
        active: None,
        client_sampling,
    };
    Ok((state, owner))
}
