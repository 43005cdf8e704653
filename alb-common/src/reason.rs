//! Why the data path did what it did: one per-CPU counter per reason
//! (`ALB_COUNTERS[reason]`), in the manner of Cilium's drop reasons.

/// An action or drop reason; its value indexes `ALB_COUNTERS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// IP unicast to a known client, sent on that client's slave.
    TxClient = 0,
    /// Unicast IP to a destination without a client entry, sent by bucket.
    TxBucket,
    /// Broadcast, IGMP, IPv6 router discovery, DAD, all-nodes, MLD,
    /// multicast advertisements, Neighbor Discovery of other MACs or
    /// non-IP: sent unchanged on the active slave.
    TxActive,
    /// A host ARP reply rewritten to the client's slave MAC.
    TxArpReply,
    /// A host ARP request sent from the target client's slave.
    TxArpRequest,
    /// A gratuitous ARP or probe from the master: unchanged on the active
    /// slave.
    TxArpAnnounce,
    /// An ARP the master did not originate (other sender MAC): unchanged on
    /// the active slave.
    TxArpForeign,
    /// A host ARP gave a client its first slave.
    TxNewClient,
    /// The chosen slave was down; the frame went out on the active slave.
    TxFallbackActive,
    /// No slave could carry the frame: dropped.
    TxNoSlave,
    /// The transmit program could not read the frame: dropped.
    TxMalformed,
    /// A host neighbour advertisement to a client, sent from the client's
    /// slave with that slave's MAC (Ethernet source and target link-layer
    /// address option; checksum updated).
    TxNdAdvert,
    /// A host neighbour solicitation for a client, sent from the client's
    /// slave with that slave's MAC (Ethernet source and source link-layer
    /// address option; checksum updated).
    TxNdSolicit,
    /// A host solicitation or advertisement that is not valid Neighbor
    /// Discovery (bad checksum, options, length or hop limit): unchanged
    /// on the active slave, no client learned.
    TxNdInvalid,
    /// A unicast frame for one of the slaves' MACs, delivered to the master.
    RxUnicast,
    /// Broadcast or multicast on the active slave, delivered to the master.
    RxBroadcast,
    /// Broadcast or multicast on a non-active slave: dropped, the active
    /// slave delivers the copy the network floods to it.
    RxBroadcastInactive,
    /// A frame for a failed slave's MAC, accepted on the active slave.
    RxFailover,
    /// A broadcast or multicast one of our own slaves sent (the master's,
    /// or a VM MAC's), flooded back by the switch: dropped.
    RxLooped,
    /// A link-local group frame (LLDP, STP) on a non-active slave: left to
    /// the slave, as the kernel does.
    RxLinkLocal,
    /// Unicast for a MAC that is not this slave's (flooded, or for another
    /// host): left to the slave, which has no address and drops it.
    RxNotForUs,
    /// A client ARP seen on its way to the master.
    RxArp,
    /// A known client answered from a new MAC; its entry was updated.
    RxClientMacChanged,
    /// IP from a known client that arrived on a slave other than its own.
    RxClientOffSlave,
    /// A valid neighbour solicitation or advertisement seen on its way to
    /// the master.
    RxNd,
    /// A solicitation or advertisement that is not valid Neighbor
    /// Discovery (bad checksum, options, length or hop limit): delivered
    /// unchanged (the stack drops it), nothing learned.
    RxNdInvalid,
    /// The receiving device is not a slave of this master: passed unchanged.
    RxUnknownSlave,
    /// The receive program could not read the frame: passed unchanged.
    RxMalformed,
    /// A frame from a VM MAC (a source other than the master's: a bridged
    /// VM, a macvlan) sent unchanged on the slave its MAC is pinned to.
    TxVm,
    /// A VM MAC seen for the first time was pinned to a slot.
    TxNewVm,
    /// Unicast for a known VM MAC, delivered to the master (whichever
    /// slave it arrived on).
    RxVm,
    /// The event ring buffer was full; the agent missed an event.
    EventLost,
}

impl Reason {
    /// Number of reasons: the size of `ALB_COUNTERS`.
    pub const COUNT: u32 = Self::EventLost as u32 + 1;

    pub const ALL: [Self; Self::COUNT as usize] = [
        Self::TxClient,
        Self::TxBucket,
        Self::TxActive,
        Self::TxArpReply,
        Self::TxArpRequest,
        Self::TxArpAnnounce,
        Self::TxArpForeign,
        Self::TxNewClient,
        Self::TxFallbackActive,
        Self::TxNoSlave,
        Self::TxMalformed,
        Self::TxNdAdvert,
        Self::TxNdSolicit,
        Self::TxNdInvalid,
        Self::RxUnicast,
        Self::RxBroadcast,
        Self::RxBroadcastInactive,
        Self::RxFailover,
        Self::RxLooped,
        Self::RxLinkLocal,
        Self::RxNotForUs,
        Self::RxArp,
        Self::RxClientMacChanged,
        Self::RxClientOffSlave,
        Self::RxNd,
        Self::RxNdInvalid,
        Self::RxUnknownSlave,
        Self::RxMalformed,
        Self::TxVm,
        Self::TxNewVm,
        Self::RxVm,
        Self::EventLost,
    ];

    /// The name `alb status` prints.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TxClient => "tx_client",
            Self::TxBucket => "tx_bucket",
            Self::TxActive => "tx_active",
            Self::TxArpReply => "tx_arp_reply",
            Self::TxArpRequest => "tx_arp_request",
            Self::TxArpAnnounce => "tx_arp_announce",
            Self::TxArpForeign => "tx_arp_foreign",
            Self::TxNewClient => "tx_new_client",
            Self::TxFallbackActive => "tx_fallback_active",
            Self::TxNoSlave => "tx_no_slave",
            Self::TxMalformed => "tx_malformed",
            Self::TxNdAdvert => "tx_nd_advert",
            Self::TxNdSolicit => "tx_nd_solicit",
            Self::TxNdInvalid => "tx_nd_invalid",
            Self::RxUnicast => "rx_unicast",
            Self::RxBroadcast => "rx_broadcast",
            Self::RxBroadcastInactive => "rx_broadcast_inactive",
            Self::RxFailover => "rx_failover",
            Self::RxLooped => "rx_looped",
            Self::RxLinkLocal => "rx_link_local",
            Self::RxNotForUs => "rx_not_for_us",
            Self::RxArp => "rx_arp",
            Self::RxClientMacChanged => "rx_client_mac_changed",
            Self::RxClientOffSlave => "rx_client_off_slave",
            Self::RxNd => "rx_nd",
            Self::RxNdInvalid => "rx_nd_invalid",
            Self::RxUnknownSlave => "rx_unknown_slave",
            Self::RxMalformed => "rx_malformed",
            Self::TxVm => "tx_vm",
            Self::TxNewVm => "tx_new_vm",
            Self::RxVm => "rx_vm",
            Self::EventLost => "event_lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn all_is_in_index_order() {
        for (index, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index, "{}", reason.name());
        }
    }
}
