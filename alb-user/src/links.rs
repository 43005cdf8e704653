//! Network devices through rtnetlink: the agent's one netlink handle (aya
//! speaks netlink of its own for the clsact filters, inside datapath/).

pub mod addressing;

use alb_common::wire::Mac;
use anyhow::{Context as _, Result, bail};
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use rtnetlink::{
    Handle, LinkUnspec, LinkVeth, MulticastGroup,
    packet_core::NetlinkPayload,
    packet_route::{
        AddressFamily, RouteNetlinkMessage,
        address::AddressAttribute,
        link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage},
        neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
    },
};

/// A link change the kernel reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkReport {
    pub index: u32,
    pub admin_up: bool,
    pub lower_up: bool,
    pub deleted: bool,
    /// The device's MAC, when the message carries it.
    pub mac: Option<Mac>,
    /// The device's MTU, when the message carries it.
    pub mtu: Option<u32>,
    /// The kernel's socket buffer overflowed: reports were lost, and every
    /// device the agent cares about must be read again. `index` is 0.
    pub overrun: bool,
}

impl LinkReport {
    fn from_message(link: &LinkMessage, deleted: bool) -> Self {
        let mac = link.attributes.iter().find_map(|attribute| match attribute {
            LinkAttribute::Address(address) => address.as_slice().try_into().ok(),
            _ => None,
        });
        let mtu = link.attributes.iter().find_map(|attribute| match attribute {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        });
        Self {
            index: link.header.index,
            admin_up: link.header.flags.contains(LinkFlags::Up),
            lower_up: link.header.flags.contains(LinkFlags::LowerUp),
            deleted,
            mac,
            mtu,
            overrun: false,
        }
    }

    /// A device's state as read on demand (after an overrun).
    pub fn from_link(link: &Link) -> Self {
        Self {
            index: link.index,
            admin_up: link.admin_up,
            lower_up: link.lower_up,
            deleted: false,
            mac: link.mac,
            mtu: Some(link.mtu),
            overrun: false,
        }
    }

    /// The slave can move frames: administratively up with carrier.
    pub const fn carrier(&self) -> bool {
        self.admin_up && self.lower_up && !self.deleted
    }
}

/// What alb needs to know about a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    /// The hardware's own address (`ethtool -P`), where the device has one.
    pub perm_mac: Option<Mac>,
    pub mtu: u32,
    /// The MTUs the device accepts (IFLA_MIN_MTU, IFLA_MAX_MTU), where the
    /// kernel reports them.
    pub mtu_range: (Option<u32>, Option<u32>),
    /// ARPHRD_ETHER: the device frames Ethernet (a slave must).
    pub ethernet: bool,
    /// The device this one is enslaved to (bond, bridge, team, VRF).
    pub controller: Option<u32>,
    /// The link kind (`veth`, `bridge`, `bond`, ...), if it has one.
    pub kind: Option<String>,
    pub admin_up: bool,
    /// Carrier: the link can move frames.
    pub lower_up: bool,
}

impl Link {
    fn from_message(message: &LinkMessage) -> Self {
        let mut link = Self {
            index: message.header.index,
            name: String::new(),
            mac: None,
            perm_mac: None,
            mtu: 0,
            mtu_range: (None, None),
            ethernet: message.header.link_layer_type == LinkLayerType::Ether,
            controller: None,
            kind: None,
            admin_up: message.header.flags.contains(LinkFlags::Up),
            lower_up: message.header.flags.contains(LinkFlags::LowerUp),
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name.clone_from(name),
                LinkAttribute::Address(address) => link.mac = address.as_slice().try_into().ok(),
                LinkAttribute::PermAddress(address) => {
                    link.perm_mac = address.as_slice().try_into().ok();
                }
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::MinMtu(mtu) => link.mtu_range.0 = Some(*mtu),
                LinkAttribute::MaxMtu(mtu) => link.mtu_range.1 = Some(*mtu),
                LinkAttribute::Controller(index) => link.controller = Some(*index),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind_name(kind));
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    /// Whether the device accepts `mtu` (as far as the kernel says).
    pub fn takes_mtu(&self, mtu: u32) -> bool {
        let (min, max) = self.mtu_range;
        min.is_none_or(|min| mtu >= min) && max.is_none_or(|max| max == 0 || mtu <= max)
    }
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Veth => "veth".to_owned(),
        InfoKind::Bridge => "bridge".to_owned(),
        InfoKind::Bond => "bond".to_owned(),
        InfoKind::Team => "team".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Stops a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection to rtnetlink in the current network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

fn is_no_such_device(error: &rtnetlink::Error) -> bool {
    is_errno(error, libc::ENODEV)
}

fn is_errno(error: &rtnetlink::Error, errno: i32) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(message) if message.raw_code() == -errno)
}

impl Netlink {
    /// Opens the connection; must run inside a tokio runtime.
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) =
            rtnetlink::new_connection().context("cannot open an rtnetlink socket")?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Link changes as the kernel announces them (RTNLGRP_LINK): no
    /// polling, so a carrier loss is seen within microseconds.
    pub fn watch_links(&self) -> Result<impl Stream<Item = LinkReport> + Unpin + use<>> {
        let (connection, _, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .context("cannot subscribe to link events")?;
        // The stream owns the connection: once it is dropped, the link
        // changes the agent's own teardown causes are not read (netlink-proto
        // warns about each message it can no longer forward).
        let connection = AbortOnDrop(tokio::spawn(connection));
        Ok(messages.filter_map(move |(message, _)| {
            let _owned = &connection;
            let report = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    Some(LinkReport::from_message(&link, false))
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    Some(LinkReport::from_message(&link, true))
                }
                NetlinkPayload::Overrun(_) => Some(LinkReport {
                    index: 0,
                    admin_up: false,
                    lower_up: false,
                    deleted: false,
                    mac: None,
                    mtu: None,
                    overrun: true,
                }),
                _ => None,
            };
            futures::future::ready(report)
        }))
    }

    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let mut request = self.handle.link().get().match_name(name.to_owned()).execute();
        match request.try_next().await {
            Ok(Some(message)) => Ok(Some(Link::from_message(&message))),
            Ok(None) => Ok(None),
            Err(error) if is_no_such_device(&error) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot look up device {name}")),
        }
    }

    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let mut request = self.handle.link().get().match_index(index).execute();
        match request.try_next().await {
            Ok(Some(message)) => Ok(Some(Link::from_message(&message))),
            Ok(None) => Ok(None),
            Err(error) if is_no_such_device(&error) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot look up ifindex {index}")),
        }
    }

    /// The device called `name`, or an error that says it does not exist.
    pub async fn existing(&self, name: &str) -> Result<Link> {
        match self.link_by_name(name).await? {
            Some(link) => Ok(link),
            None => bail!("no network device named {name} in this network namespace"),
        }
    }

    /// Creates the veth pair `name`/`peer`, `name` with the MAC `mac` if
    /// one is given (else the kernel's random one).
    pub async fn create_veth_pair(&self, name: &str, peer: &str, mac: Option<&Mac>) -> Result<()> {
        let mut pair = LinkVeth::new(name, peer);
        if let Some(mac) = mac {
            pair = pair.address(mac.to_vec());
        }
        self.handle
            .link()
            .add(pair.build())
            .execute()
            .await
            .with_context(|| format!("cannot create veth pair {name}/{peer}"))
    }

    pub async fn set_mac(&self, index: u32, mac: &Mac) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).address(mac.to_vec()).build();
        self.handle.link().set(message).execute().await.context("cannot set MAC address")
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .with_context(|| format!("cannot set the MTU of ifindex {index} to {mtu}"))
    }

    /// [`Netlink::set_mtu`]; a device that is gone is no error (undoing).
    pub async fn set_mtu_if_present(&self, index: u32, mtu: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).mtu(mtu).build();
        match self.handle.link().set(message).execute().await {
            Err(error) if is_no_such_device(&error) => Ok(()),
            other => {
                other.with_context(|| format!("cannot set the MTU of ifindex {index} to {mtu}"))
            }
        }
    }

    pub async fn set_up(&self, index: u32, up: bool) -> Result<()> {
        let builder = LinkUnspec::new_with_index(index);
        let message = if up { builder.up() } else { builder.down() }.build();
        self.handle.link().set(message).execute().await.context("cannot set link state")
    }

    /// Takes a device down again (undoing a raise); a device that is gone
    /// (the master's peer goes with the master, a slave may be deleted) is
    /// down already.
    pub async fn set_down_if_present(&self, index: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).down().build();
        match self.handle.link().set(message).execute().await {
            Err(error) if is_no_such_device(&error) => Ok(()),
            other => other.context("cannot set link state"),
        }
    }

    pub async fn delete(&self, index: u32) -> Result<()> {
        match self.handle.link().del(index).execute().await {
            Err(error) if is_no_such_device(&error) => Ok(()),
            other => other.context("cannot delete device"),
        }
    }

    /// Adds `mac` to the unicast filter of device `index`: an fdb entry on
    /// the device itself (`bridge fdb add MAC dev IF self permanent`), which
    /// the kernel puts in the device's unicast list, or turns into
    /// promiscuous mode where the driver has no unicast filter. `Ok(false)`
    /// when the entry was there already (someone else's: not ours to remove).
    pub async fn add_unicast_filter(&self, index: u32, mac: &Mac) -> Result<bool> {
        let request = self
            .handle
            .neighbours()
            .add_bridge(index, mac)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent);
        match request.execute().await {
            Ok(()) => Ok(true),
            Err(error) if is_errno(&error, libc::EEXIST) => Ok(false),
            Err(error) => Err(error).with_context(|| {
                format!(
                    "cannot add {} to the unicast filter of ifindex {index}",
                    crate::format_mac(mac)
                )
            }),
        }
    }

    /// Removes what [`Netlink::add_unicast_filter`] added; an entry or a
    /// device that is gone is no error.
    pub async fn del_unicast_filter(&self, index: u32, mac: &Mac) -> Result<()> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        message.header.ifindex = index;
        message.header.flags = NeighbourFlags::Own;
        message.header.state = NeighbourState::Permanent;
        message.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        match self.handle.neighbours().del(message).execute().await {
            Err(error) if is_errno(&error, libc::ENOENT) || is_no_such_device(&error) => Ok(()),
            other => other.with_context(|| {
                format!(
                    "cannot remove {} from the unicast filter of ifindex {index}",
                    crate::format_mac(mac)
                )
            }),
        }
    }

    /// The first IPv4 address of device `index` (the source of the IGMP
    /// reports sent for it), if it has one.
    pub async fn first_ipv4(&self, index: u32) -> Result<Option<std::net::Ipv4Addr>> {
        let mut addresses = self.handle.address().get().set_link_index_filter(index).execute();
        while let Some(message) = addresses
            .try_next()
            .await
            .with_context(|| format!("cannot read the addresses of ifindex {index}"))?
        {
            for attribute in &message.attributes {
                if let AddressAttribute::Local(std::net::IpAddr::V4(ip))
                | AddressAttribute::Address(std::net::IpAddr::V4(ip)) = attribute
                {
                    return Ok(Some(*ip));
                }
            }
        }
        Ok(None)
    }
}
