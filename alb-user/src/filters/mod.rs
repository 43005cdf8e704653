//! Keeping the slaves' receive filters in step with the plan ([`plan`]):
//! entries are added and removed by difference with what the agent added
//! before, which is kept in a [`Record`] (the agent's undo record, so a
//! restarted agent, a clean stop and `alb down` all know what to take away).

pub mod plan;

use std::{collections::BTreeSet, io, os::fd::AsRawFd as _};

use alb_common::wire::Mac;
use anyhow::{Context as _, Result};
use log::{debug, info, warn};

use self::plan::SlaveView;
pub use self::plan::{Entry, Kind};
use crate::{format_mac, links::Netlink, state::State};

/// Where the entries the agent added are kept, each change saved before
/// the next (the undo record).
pub trait Record {
    fn filters(&self) -> &[Entry];
    fn record_filter(&mut self, entry: Entry);
    fn forget_filter(&mut self, entry: &Entry);
}

/// The agent's side of the filters.
#[derive(Debug)]
pub struct Filters {
    /// Off only with the test switch `--no-filter-sync` (a test proves the
    /// filters matter by failing without them).
    enabled: bool,
    /// The master's multicast list as last read.
    master_multicast: Vec<Mac>,
    /// Entries that were there before the agent: not added, not removed.
    foreign: BTreeSet<Entry>,
}

impl Filters {
    pub fn new(enabled: bool) -> Self {
        Self { enabled, master_multicast: Vec::new(), foreign: BTreeSet::new() }
    }

    /// Reads the master's multicast list again (the kernel sends no event
    /// when it changes; the agent reads it every learning interval).
    pub fn read_master_multicast(&mut self, master_ifindex: u32) {
        match std::fs::read_to_string("/proc/net/dev_mcast") {
            Ok(text) => self.master_multicast = plan::multicast_of(&text, master_ifindex),
            Err(error) => warn!("cannot read /proc/net/dev_mcast: {error}"),
        }
    }

    /// Adds what the plan wants and the slaves lack, removes what they no
    /// longer need; each change is recorded before it is made. Failures are
    /// logged: a missing filter costs frames on one NIC, not the bond.
    pub async fn sync(&mut self, netlink: &Netlink, record: &mut impl Record, state: &State) {
        if !self.enabled {
            return;
        }
        let slaves: Vec<SlaveView> = state
            .slaves
            .iter()
            .map(|s| SlaveView { ifindex: s.ifindex, mac: s.mac, usable: s.up })
            .collect();
        let wanted: BTreeSet<Entry> =
            plan::wanted(&slaves, state.active, state.master_mac, &self.master_multicast)
                .difference(&self.foreign)
                .copied()
                .collect();
        let current: BTreeSet<Entry> = record.filters().iter().copied().collect();
        for entry in current.difference(&wanted) {
            if let Err(error) = remove(netlink, entry).await {
                warn!("{error:#}");
            }
            record.forget_filter(entry);
        }
        for entry in wanted.difference(&current) {
            record.record_filter(*entry);
            match add(netlink, entry).await {
                Ok(true) => debug!("filter added: {}", describe(entry)),
                Ok(false) => {
                    info!("{} was set before alb: left as it is", describe(entry));
                    self.foreign.insert(*entry);
                    record.forget_filter(entry);
                }
                Err(error) => {
                    warn!("{error:#}");
                    record.forget_filter(entry);
                }
            }
        }
    }
}

/// `unicast 02:..:17 on ifindex 5`.
pub fn describe(entry: &Entry) -> String {
    let kind = match entry.kind {
        Kind::Unicast => "unicast",
        Kind::Multicast => "multicast",
    };
    format!("{kind} {} on ifindex {}", format_mac(&entry.mac), entry.ifindex)
}

async fn add(netlink: &Netlink, entry: &Entry) -> Result<bool> {
    match entry.kind {
        Kind::Unicast => netlink.add_unicast_filter(entry.ifindex, &entry.mac).await,
        Kind::Multicast => multicast(entry.ifindex, &entry.mac, true)
            .map(|()| true)
            .with_context(|| format!("cannot add {}", describe(entry))),
    }
}

/// Removes one entry the agent added; one that is gone is no error.
pub async fn remove(netlink: &Netlink, entry: &Entry) -> Result<()> {
    match entry.kind {
        Kind::Unicast => netlink.del_unicast_filter(entry.ifindex, &entry.mac).await,
        Kind::Multicast => match multicast(entry.ifindex, &entry.mac, false) {
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ENOENT | libc::ENODEV | libc::ENXIO)
                ) =>
            {
                Ok(())
            }
            other => other.with_context(|| format!("cannot remove {}", describe(entry))),
        },
    }
}

/// `ip maddr add|del MAC dev IF`: SIOCADDMULTI or SIOCDELMULTI, which add
/// to or remove from the device's multicast list (netlink has no message
/// for it).
fn multicast(ifindex: u32, mac: &Mac, add: bool) -> io::Result<()> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let socket = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    let mut name: [libc::c_char; libc::IF_NAMESIZE] = [0; libc::IF_NAMESIZE];
    // SAFETY: `name` has IF_NAMESIZE bytes, as if_indextoname(3) requires.
    if unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) }.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut address =
        libc::sockaddr { sa_family: libc::AF_UNSPEC as libc::sa_family_t, sa_data: [0; 14] };
    for (to, from) in address.sa_data.iter_mut().zip(mac) {
        *to = *from as libc::c_char;
    }
    // SAFETY: an all-zero ifreq is a valid value (plain C data).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    request.ifr_name = name;
    request.ifr_ifru.ifru_hwaddr = address;
    let operation = if add { libc::SIOCADDMULTI } else { libc::SIOCDELMULTI };
    // SAFETY: the socket is open and `request` is a valid ifreq that lives
    // across the call; the kernel only reads it for these two requests.
    if unsafe { libc::ioctl(socket.as_raw_fd(), operation, &request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
