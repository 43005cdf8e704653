//! A device's addresses and routes, read and written through rtnetlink,
//! for `alb takeover` and `alb handback`, which move them between a kernel
//! bond and alb's master of the same name.
//!
//! What moves is what the operator (or their network tool) gave the
//! device; what the kernel makes by itself is left to it: the routes an
//! address brings (`proto kernel`), the local table, IPv6 link-local
//! addresses (made again from the same MAC) and addresses from router
//! advertisements (not permanent).

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context as _, Result};
use futures::TryStreamExt as _;
use rtnetlink::packet_route::{
    AddressFamily,
    address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo},
    route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol},
};
use serde::{Deserialize, Serialize};

use super::Netlink;

/// The kernel's lifetime for "forever" (INFINITY_LIFE_TIME).
const FOREVER: u32 = u32::MAX;

/// The address flags an `ip address add` may give (the others are state).
const SETTABLE_FLAGS: u32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400;

/// IFA_F_NODAD.
pub const NODAD: u32 = 0x02;

/// The local routing table, the kernel's own.
const TABLE_LOCAL: u32 = 255;

/// One address of a device, as `ip address add` would give it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub ip: IpAddr,
    pub prefix_len: u8,
    pub broadcast: Option<Ipv4Addr>,
    pub label: Option<String>,
    pub scope: u8,
    /// IFA_FLAGS the operator can set (nodad, noprefixroute, ...).
    pub flags: u32,
    /// Lifetimes in seconds; `None` is forever.
    pub valid_s: Option<u32>,
    pub preferred_s: Option<u32>,
    /// The metric of the prefix route the address brings.
    pub metric: Option<u32>,
}

/// One route through a device, as `ip route add` would give it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub ipv6: bool,
    pub table: u32,
    /// `None` is the default route.
    pub destination: Option<IpAddr>,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    pub pref_source: Option<IpAddr>,
    pub priority: Option<u32>,
    pub protocol: u8,
    pub scope: u8,
    pub kind: u8,
}

/// The address `message` holds, if it is one the operator gave: not an
/// IPv6 link-local address, nor an IPv6 address the kernel made itself.
pub fn carried_address(message: &AddressMessage) -> Option<Address> {
    let ipv6 = message.header.family == AddressFamily::Inet6;
    let mut local = None;
    let mut peer = None;
    let mut address = Address {
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        prefix_len: message.header.prefix_len,
        broadcast: None,
        label: None,
        scope: message.header.scope.into(),
        flags: u32::from(message.header.flags.bits()),
        valid_s: None,
        preferred_s: None,
        metric: None,
    };
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => peer = Some(*ip),
            AddressAttribute::Broadcast(ip) => address.broadcast = Some(*ip),
            AddressAttribute::Label(label) => address.label = Some(label.clone()),
            AddressAttribute::Flags(flags) => address.flags = flags.bits(),
            AddressAttribute::RoutePriority(metric) => address.metric = Some(*metric),
            AddressAttribute::CacheInfo(info) => {
                address.valid_s = (info.ifa_valid != FOREVER).then_some(info.ifa_valid);
                address.preferred_s = (info.ifa_preferred != FOREVER).then_some(info.ifa_preferred);
            }
            _ => {}
        }
    }
    // IPv4 gives its own address as IFA_LOCAL, IPv6 as IFA_ADDRESS.
    address.ip = local.or(peer)?;
    if let IpAddr::V6(ip) = address.ip {
        let permanent = address.flags & AddressFlags::Permanent.bits() != 0;
        if ip.is_unicast_link_local() || !permanent || !ipv6 {
            return None;
        }
    }
    address.flags &= SETTABLE_FLAGS;
    Some(address)
}

/// The route `message` holds, if it leaves by device `index` and is not
/// one the kernel made (an address's prefix route, the local table, a
/// route from a router advertisement).
pub fn carried_route(message: &RouteMessage, index: u32) -> Option<Route> {
    let header = &message.header;
    let mut route = Route {
        ipv6: header.address_family == AddressFamily::Inet6,
        table: u32::from(header.table),
        destination: None,
        prefix_len: header.destination_prefix_length,
        gateway: None,
        pref_source: None,
        priority: None,
        protocol: header.protocol.into(),
        scope: header.scope.into(),
        kind: header.kind.into(),
    };
    let mut oif = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Oif(device) => oif = Some(*device),
            RouteAttribute::Table(table) => route.table = *table,
            RouteAttribute::Destination(address) => route.destination = ip(address),
            RouteAttribute::Gateway(address) => route.gateway = ip(address),
            RouteAttribute::PrefSource(address) => route.pref_source = ip(address),
            RouteAttribute::Priority(priority) => route.priority = Some(*priority),
            _ => {}
        }
    }
    let kernel_made = matches!(header.protocol, RouteProtocol::Kernel | RouteProtocol::Ra);
    (oif == Some(index) && !kernel_made && route.table != TABLE_LOCAL).then_some(route)
}

fn ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

/// The message that adds `route` through device `index`.
pub fn route_message(route: &Route, index: u32) -> RouteMessage {
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = if route.ipv6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    header.destination_prefix_length = route.prefix_len;
    header.table = u8::try_from(route.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    header.protocol = route.protocol.into();
    header.scope = route.scope.into();
    header.kind = route.kind.into();
    let attributes = &mut message.attributes;
    attributes.push(RouteAttribute::Table(route.table));
    if let Some(destination) = route.destination {
        attributes.push(RouteAttribute::Destination(destination.into()));
    }
    if let Some(gateway) = route.gateway {
        attributes.push(RouteAttribute::Gateway(gateway.into()));
    }
    if let Some(source) = route.pref_source {
        attributes.push(RouteAttribute::PrefSource(source.into()));
    }
    if let Some(priority) = route.priority {
        attributes.push(RouteAttribute::Priority(priority));
    }
    attributes.push(RouteAttribute::Oif(index));
    message
}

impl Netlink {
    /// The addresses of device `index` that the operator gave it.
    pub async fn carried_addresses(&self, index: u32) -> Result<Vec<Address>> {
        let mut request = self.handle.address().get().set_link_index_filter(index).execute();
        let mut addresses = Vec::new();
        while let Some(message) = request
            .try_next()
            .await
            .with_context(|| format!("cannot read the addresses of ifindex {index}"))?
        {
            // The filter is applied here too: older kernels dump them all.
            if message.header.index == index {
                addresses.extend(carried_address(&message));
            }
        }
        Ok(addresses)
    }

    /// The routes through device `index` that the operator gave it, IPv4
    /// then IPv6, every table.
    pub async fn carried_routes(&self, index: u32) -> Result<Vec<Route>> {
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut query = RouteMessage::default();
            query.header.address_family = family;
            let mut request = self.handle.route().get(query).execute();
            while let Some(message) =
                request.try_next().await.context("cannot read the routing tables")?
            {
                routes.extend(carried_route(&message, index));
            }
        }
        Ok(routes)
    }

    /// Gives device `index` the address `address`, with `extra_flags` (e.g.
    /// [`NODAD`]) added to its own.
    pub async fn add_address(&self, index: u32, address: &Address, extra_flags: u32) -> Result<()> {
        let mut request = self.handle.address().add(index, address.ip, address.prefix_len);
        let message = request.message_mut();
        message.header.scope = address.scope.into();
        if let Some(broadcast) = address.broadcast {
            message.attributes.push(AddressAttribute::Broadcast(broadcast));
        }
        if let Some(label) = &address.label {
            message.attributes.push(AddressAttribute::Label(label.clone()));
        }
        let flags = address.flags | if address.ip.is_ipv6() { extra_flags } else { 0 };
        if flags != 0 {
            message.attributes.push(AddressAttribute::Flags(AddressFlags::from_bits_retain(flags)));
        }
        if let Some(metric) = address.metric {
            message.attributes.push(AddressAttribute::RoutePriority(metric));
        }
        if address.valid_s.is_some() || address.preferred_s.is_some() {
            let mut info = CacheInfo::default();
            info.ifa_preferred = address.preferred_s.unwrap_or(FOREVER);
            info.ifa_valid = address.valid_s.unwrap_or(FOREVER);
            message.attributes.push(AddressAttribute::CacheInfo(info));
        }
        request.execute().await.with_context(|| {
            format!("cannot add address {}/{} to ifindex {index}", address.ip, address.prefix_len)
        })
    }

    /// Adds `route` through device `index`.
    pub async fn add_route(&self, index: u32, route: &Route) -> Result<()> {
        self.handle.route().add(route_message(route, index)).execute().await.with_context(|| {
            let destination = route
                .destination
                .map_or_else(|| "default".to_owned(), |d| format!("{d}/{}", route.prefix_len));
            format!("cannot add route {destination} (table {}) to ifindex {index}", route.table)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use rtnetlink::packet_route::{
        address::AddressScope,
        route::{RouteScope, RouteType},
    };

    use super::*;

    fn lifetimes(preferred: u32, valid: u32) -> CacheInfo {
        let mut info = CacheInfo::default();
        info.ifa_preferred = preferred;
        info.ifa_valid = valid;
        info
    }

    fn v4_address(ip: Ipv4Addr, prefix_len: u8) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix_len;
        message.header.index = 7;
        message.attributes = vec![
            AddressAttribute::Address(IpAddr::V4(ip)),
            AddressAttribute::Local(IpAddr::V4(ip)),
            AddressAttribute::Broadcast(Ipv4Addr::new(198, 18, 0, 255)),
            AddressAttribute::Label("bond0".into()),
            AddressAttribute::Flags(AddressFlags::Permanent | AddressFlags::Noprefixroute),
            AddressAttribute::CacheInfo(lifetimes(FOREVER, FOREVER)),
        ];
        message
    }

    fn v6_address(ip: Ipv6Addr, flags: AddressFlags) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet6;
        message.header.prefix_len = 64;
        message.header.scope = AddressScope::Universe;
        message.attributes =
            vec![AddressAttribute::Address(IpAddr::V6(ip)), AddressAttribute::Flags(flags)];
        message
    }

    #[test]
    fn an_ipv4_address_is_carried_with_its_broadcast_label_and_settable_flags() {
        let address = carried_address(&v4_address(Ipv4Addr::new(198, 18, 0, 1), 24))
            .expect("an IPv4 address is carried");
        assert_eq!(address.ip, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(address.prefix_len, 24);
        assert_eq!(address.broadcast, Some(Ipv4Addr::new(198, 18, 0, 255)));
        assert_eq!(address.label.as_deref(), Some("bond0"));
        // Permanent is state, noprefixroute the operator's.
        assert_eq!(address.flags, AddressFlags::Noprefixroute.bits());
        assert_eq!((address.valid_s, address.preferred_s), (None, None));
    }

    #[test]
    fn a_dhcp_lease_keeps_its_remaining_lifetime() {
        let mut message = v4_address(Ipv4Addr::new(198, 18, 0, 9), 24);
        message.attributes.push(AddressAttribute::CacheInfo(lifetimes(300, 600)));
        let address = carried_address(&message).expect("a lease is carried");
        assert_eq!((address.valid_s, address.preferred_s), (Some(600), Some(300)));
    }

    #[test]
    fn ipv6_link_local_and_autoconfigured_addresses_are_left_to_the_kernel() {
        let global = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
        let carried = carried_address(&v6_address(global, AddressFlags::Permanent))
            .expect("a permanent global IPv6 address is carried");
        assert_eq!(carried.ip, IpAddr::V6(global));
        let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        assert_eq!(carried_address(&v6_address(link_local, AddressFlags::Permanent)), None);
        let slaac = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
        assert_eq!(carried_address(&v6_address(slaac, AddressFlags::Managetempaddr)), None);
    }

    fn route(protocol: RouteProtocol, table: u8, oif: u32) -> RouteMessage {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.table = table;
        message.header.protocol = protocol;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message.attributes = vec![
            RouteAttribute::Table(u32::from(table)),
            RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 18, 0, 254))),
            RouteAttribute::Priority(100),
            RouteAttribute::Oif(oif),
        ];
        message
    }

    #[test]
    fn a_static_default_route_is_carried_and_rebuilt_for_the_new_device() {
        let carried = carried_route(&route(RouteProtocol::Boot, 254, 7), 7)
            .expect("a static route through the device is carried");
        assert_eq!(carried.destination, None);
        assert_eq!(carried.gateway, Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 254))));
        assert_eq!((carried.table, carried.priority), (254, Some(100)));
        let rebuilt = route_message(&carried, 12);
        assert!(rebuilt.attributes.contains(&RouteAttribute::Oif(12)));
        assert_eq!(carried_route(&rebuilt, 12), Some(carried));
    }

    #[test]
    fn kernel_routes_other_devices_and_the_local_table_stay() {
        assert_eq!(carried_route(&route(RouteProtocol::Kernel, 254, 7), 7), None);
        assert_eq!(carried_route(&route(RouteProtocol::Ra, 254, 7), 7), None);
        assert_eq!(carried_route(&route(RouteProtocol::Boot, 255, 7), 7), None);
        assert_eq!(carried_route(&route(RouteProtocol::Boot, 254, 8), 7), None);
    }

    #[test]
    fn a_table_above_255_is_given_as_an_attribute() {
        let mut message = route(RouteProtocol::Static, 252, 7);
        message.attributes[0] = RouteAttribute::Table(1000);
        let carried = carried_route(&message, 7).expect("carried");
        assert_eq!(carried.table, 1000);
        let rebuilt = route_message(&carried, 7);
        assert_eq!(rebuilt.header.table, RouteHeader::RT_TABLE_UNSPEC);
        assert!(rebuilt.attributes.contains(&RouteAttribute::Table(1000)));
    }
}
