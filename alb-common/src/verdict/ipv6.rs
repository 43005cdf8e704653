//! IPv6, beyond the kernel's mode 6 (which balances receive traffic for
//! IPv4 only, docs/bonding.md §2.10): receive balancing through Neighbor Discovery,
//! the analog of the ARP rules. The host's solicitations and
//! advertisements about a client leave by the client's slave and carry
//! that slave's MAC, so each client learns the MAC of its own slave; data
//! to a known client follows it. Router discovery, DAD, MLD, all-nodes and
//! other multicast keep the master's MAC and the active slave.

use crate::{
    assign::bucket_of_v6,
    maps::ClientKey6,
    nd::{self, Kind, NEIGHBOUR_ADVERT, NEIGHBOUR_SOLICIT, Nd},
    reason::Reason,
    vlan::{Tag, Untagged},
    wire::{
        Addr6, Aligned, BROADCAST_MAC, EthHdr, Frame, IPPROTO_HOPOPTS, IPPROTO_ICMPV6, Ipv6Hdr,
        Mac, is_multicast, mac_eq,
    },
};

/// The Ethernet address of all-nodes, ff02::1.
const ALL_NODES: Mac = [0x33, 0x33, 0, 0, 0, 1];

/// A server address and a client address in one VLAN: a client of the
/// IPv6 table, in the word form the decisions pass around
/// ([`Client6::key`] is its map key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client6 {
    pub server: Addr6,
    pub client: Addr6,
    pub vlan: u16,
}

impl Client6 {
    #[inline(always)]
    pub fn key(&self) -> ClientKey6 {
        ClientKey6::new(self.server.octets(), self.client.octets(), self.vlan)
    }
}

/// What the transmit path does with an IPv6 frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tx6Plan {
    /// Out of the active slave, unchanged.
    Active { reason: Reason },
    /// Data: on the client's slave when `client` names a known client,
    /// else on the slave of `bucket`.
    Balance { client: Option<Client6>, bucket: u32 },
    /// A solicitation or advertisement the host sent about one client: out
    /// of the client's slave (dealt now if the client is new), with that
    /// slave's MAC as Ethernet source and in the link-layer address option.
    HostNd(HostNd),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostNd {
    pub client: Client6,
    pub kind: Kind,
    /// The client's MAC as the frame names it (its destination: an answer,
    /// or a reachability probe); zero for a solicitation to the client's
    /// solicited-node group.
    pub client_mac: Mac,
    /// Offset of the MAC in the link-layer address option, as an untagged
    /// frame has it (write at [`Tag::at`]); 0 when the message has none
    /// (an answer to a reachability probe).
    pub lla_at: u32,
    /// The ICMPv6 checksum as sent, for the incremental update.
    pub checksum: [u8; 2],
}

/// Decides how an IPv6 frame leaving the master is sent; `from_master`:
/// its source is the master's MAC; `tag`: its VLAN tag ([`Tag::of`]).
#[inline(always)]
pub fn tx6_plan<F: Frame + ?Sized>(
    frame: &F,
    master_mac: &Mac,
    from_master: bool,
    tag: Tag,
) -> Tx6Plan {
    let frame = &Untagged::new(frame, tag);
    let active = Tx6Plan::Active { reason: Reason::TxActive };
    let (Some(dst), Some(Aligned(ip))) =
        (frame.read::<Mac>(0), frame.read::<Aligned<Ipv6Hdr>>(EthHdr::LEN))
    else {
        return active;
    };
    let (saddr, daddr) = (Addr6::new(&ip.saddr), Addr6::new(&ip.daddr));
    if ip.version_class_flow[0] >> 4 != 6
        || mac_eq(&dst, &BROADCAST_MAC)
        || mac_eq(&dst, &ALL_NODES)
        || saddr.is_unspecified()
        || ip.next_header == IPPROTO_HOPOPTS
    {
        return active;
    }
    if ip.next_header == IPPROTO_ICMPV6 {
        match frame.read::<u8>(nd::ICMP_OFFSET) {
            Some(NEIGHBOUR_SOLICIT | NEIGHBOUR_ADVERT) => {
                return host_nd(frame, &ip, &dst, master_mac, from_master, tag.vid);
            }
            Some(nd::ROUTER_SOLICIT | nd::ROUTER_ADVERT | nd::REDIRECT) => return active,
            _ => {}
        }
    }
    let client =
        (!is_multicast(&dst)).then_some(Client6 { server: saddr, client: daddr, vlan: tag.vid });
    Tx6Plan::Balance { client, bucket: bucket_of_v6(&ip.daddr) }
}

/// A solicitation or advertisement the master sent. It goes by client
/// when it is about one client and valid; an advertisement to a group (an
/// announcement to every node), one that names a MAC other than the
/// master's (a bridged VM's, a macvlan's) and one the stack of a host would
/// drop leave unchanged by the active slave.
#[inline(always)]
fn host_nd<F: Frame + ?Sized>(
    frame: &F,
    ip: &Ipv6Hdr,
    dst: &Mac,
    master_mac: &Mac,
    from_master: bool,
    vlan: u16,
) -> Tx6Plan {
    let active = Tx6Plan::Active { reason: Reason::TxActive };
    if !from_master {
        return active;
    }
    let nd = match nd::parse(frame, ip) {
        Ok(nd) => nd,
        Err(_) => return Tx6Plan::Active { reason: Reason::TxNdInvalid },
    };
    if nd.lla_at != 0 && !mac_eq(&nd.lla, master_mac) {
        return active;
    }
    let (saddr, daddr) = (Addr6::new(&ip.saddr), Addr6::new(&ip.daddr));
    let unicast = !is_multicast(dst) && !daddr.is_multicast();
    let client = match nd.kind {
        Kind::Advert if unicast => Client6 { server: nd.target, client: daddr, vlan },
        Kind::Advert => return active,
        Kind::Solicit if nd.target == saddr => return active,
        Kind::Solicit => Client6 { server: saddr, client: nd.target, vlan },
    };
    Tx6Plan::HostNd(HostNd {
        client,
        kind: nd.kind,
        client_mac: if unicast { *dst } else { [0; 6] },
        lla_at: nd.lla_at,
        checksum: nd.checksum,
    })
}

/// What a delivered IPv6 frame tells about clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch6 {
    /// Data from `client.client` to `client.server`: count it for the client.
    Data(Client6),
    /// A valid solicitation or advertisement; `about`: the client it
    /// speaks for and the MAC it gives (zero when it gives none), if it
    /// speaks for one (not DAD, not an announcement to a group).
    Nd {
        about: Option<(Client6, Mac)>,
    },
    /// A solicitation or advertisement a host drops: nothing is learned.
    Invalid,
    Nothing,
}

/// Reads what the receive path learns from an IPv6 frame it delivers;
/// `tag`: its VLAN tag ([`Tag::of`]).
#[inline(always)]
pub fn rx6_watch<F: Frame + ?Sized>(frame: &F, tag: Tag) -> Watch6 {
    let frame = &Untagged::new(frame, tag);
    let Some(Aligned(ip)) = frame.read::<Aligned<Ipv6Hdr>>(EthHdr::LEN) else {
        return Watch6::Nothing;
    };
    if ip.version_class_flow[0] >> 4 != 6 {
        return Watch6::Nothing;
    }
    if ip.next_header == IPPROTO_ICMPV6 {
        if let Some(NEIGHBOUR_SOLICIT | NEIGHBOUR_ADVERT) = frame.read::<u8>(nd::ICMP_OFFSET) {
            return match nd::parse(frame, &ip) {
                Ok(nd) => Watch6::Nd { about: client_of(&ip, &nd, tag.vid) },
                Err(_) => Watch6::Invalid,
            };
        }
    }
    Watch6::Data(Client6 {
        server: Addr6::new(&ip.daddr),
        client: Addr6::new(&ip.saddr),
        vlan: tag.vid,
    })
}

/// The client a received solicitation or advertisement speaks for: a
/// solicitation asks about the server (its target) from the client (its
/// source); an advertisement answers the server (its destination) about
/// the client (its target).
#[inline(always)]
fn client_of(ip: &Ipv6Hdr, nd: &Nd, vlan: u16) -> Option<(Client6, Mac)> {
    let (saddr, daddr) = (Addr6::new(&ip.saddr), Addr6::new(&ip.daddr));
    let client = match nd.kind {
        Kind::Solicit if saddr.is_unspecified() => return None,
        Kind::Solicit => Client6 { server: nd.target, client: saddr, vlan },
        Kind::Advert if daddr.is_multicast() => return None,
        Kind::Advert => Client6 { server: daddr, client: nd.target, vlan },
    };
    Some((client, nd.lla))
}

#[cfg(test)]
mod tests;
