//! IPv6, beyond the kernel's mode 6: receive balancing through Neighbor
//! Discovery (`alb_common::verdict::ipv6` decides). The host's
//! solicitations and advertisements about a client leave by the client's
//! slave with that slave's MAC (Ethernet source and link-layer address
//! option, checksum updated), data follows known clients, and clients' own
//! solicitations and advertisements tell their MAC.
//!
//! Two programs of their own, `alb_tx6` and `alb_rx6`, entered from
//! `alb_tx` and `alb_rx` by tail call (`ALB_PROGS`): a fresh 512-byte stack
//! and verifier budget, and the IPv4 programs keep their code.

use alb_common::{
    maps::{CLIENT_MAC_KNOWN, CURSOR_CLIENTS, ClientKey6, Config, EventKind, HostKey6, NO_SLAVE},
    nd::{self, Kind, checksum},
    reason::Reason,
    ring::NEW_CLIENT6_UNTOLD,
    verdict::ipv6::{HostNd, Tx6Plan, Watch6, rx6_watch, tx6_plan},
    vlan::Tag,
    wire::{EthHdr, Frame as _, Mac, is_valid_unicast, mac_eq},
};
use aya_ebpf::{
    bindings::{BPF_F_INGRESS, BPF_NOEXIST, TC_ACT_OK, TC_ACT_SHOT},
    programs::TcContext,
};

use crate::{
    forward::{
        by_bucket, deal, fresh_entry, from_client, send, slave_of_slot, to_client, usable_slave,
    },
    handover,
    maps::{ALB_CLIENTS6, ALB_CONFIG, ALB_HOSTS6},
    packet::{Packet, redirect},
    stats::{self, count, event6},
    vlan,
};

/// `alb_tx6`: TC egress on the master, for an IPv6 frame.
#[inline(always)]
pub(crate) fn run_tx(ctx: &TcContext) -> i32 {
    let Some(config) = ALB_CONFIG.get(0) else {
        return TC_ACT_SHOT;
    };
    let packet = Packet::new(ctx);
    let Some(src) = packet.read::<Mac>(EthHdr::SRC_OFFSET) else {
        count(Reason::TxMalformed);
        return TC_ACT_SHOT;
    };
    let tag = vlan::tag(ctx, &packet);
    tx(&packet, config, mac_eq(&src, &config.master_mac), tag)
}

/// `alb_rx6`: what `alb_rx` delivers of IPv6 (destination already
/// rewritten), watched, then up the master.
#[inline(always)]
pub(crate) fn run_rx(ctx: &TcContext) -> i32 {
    let Some(config) = ALB_CONFIG.get(0) else {
        return TC_ACT_OK;
    };
    let (this, weight) = handover::from_rx(ctx);
    let packet = Packet::new(ctx);
    watch(&packet, this, vlan::tag(ctx, &packet), weight);
    redirect(config.master_ifindex, u64::from(BPF_F_INGRESS))
}

/// IPv6 leaving the master.
#[inline(always)]
fn tx(packet: &Packet<'_>, config: &Config, from_master: bool, tag: Tag) -> i32 {
    match tx6_plan(packet, &config.master_mac, from_master, tag) {
        Tx6Plan::Active { reason } => {
            count(reason);
            send(packet, config, config.active_slave, from_master)
        }
        Tx6Plan::Balance { client, bucket } => {
            if let Some(client) = client {
                if let Some(entry) = ALB_CLIENTS6.get_ptr_mut(client.key()) {
                    return to_client(packet, config, entry, from_master);
                }
            }
            by_bucket(packet, config, bucket, from_master)
        }
        Tx6Plan::HostNd(nd) => host_nd(packet, config, &nd, tag),
    }
}

/// A host solicitation or advertisement leaves by the client's slave with
/// that slave's MAC, so the client learns the MAC of the slave that will
/// carry its traffic. `tag`: where the message is (after an in-frame tag).
#[inline(always)]
fn host_nd(packet: &Packet<'_>, config: &Config, nd: &HostNd, tag: Tag) -> i32 {
    let key = nd.client.key();
    let slave = match ALB_CLIENTS6.get_ptr_mut(key) {
        Some(entry) => {
            // SAFETY: a live map value.
            let entry = unsafe { &mut *entry };
            let slave = slave_of_slot(entry.slot);
            if is_valid_unicast(&nd.client_mac) && !mac_eq(&entry.mac, &nd.client_mac) {
                entry.mac = nd.client_mac;
                entry.flags |= CLIENT_MAC_KNOWN;
                let (mac, slot) = (nd.client_mac, entry.slot);
                remember_host(&mac, key.vlan, slot);
                event6(EventKind::ClientMacChanged6, slave, key, mac, 0, slot);
            }
            slave
        }
        None => new_client(&key, &nd.client_mac, nd.lla_at != 0),
    };
    let Some((slave, target)) = usable_slave(config, slave) else {
        count(Reason::TxNoSlave);
        return TC_ACT_SHOT;
    };
    if !mac_eq(&target.mac, &config.master_mac) {
        let mut rewritten = packet.store_mac(EthHdr::SRC_OFFSET, &target.mac);
        if nd.lla_at != 0 {
            // The option held the master's MAC (the verdict checked it).
            let sum = checksum::replace_mac(nd.checksum, &config.master_mac, &target.mac);
            rewritten = rewritten
                && packet.store_mac(tag.at(nd.lla_at as usize), &target.mac)
                && packet.store2(tag.at(nd::CHECKSUM_OFFSET), sum);
        }
        if !rewritten {
            count(Reason::TxMalformed);
            return TC_ACT_SHOT;
        }
    }
    count(match nd.kind {
        Kind::Advert => Reason::TxNdAdvert,
        Kind::Solicit => Reason::TxNdSolicit,
    });
    stats::slave_tx(slave, packet.len());
    redirect(target.ifindex, 0)
}

/// Gives an IPv6 client the host has just answered or solicited a slot:
/// the slot of its host's other clients (`ALB_HOSTS6`), else the next one
/// in turn; records it and returns the slave. `told`: the message carries
/// a link-layer address (so it tells the client its slave).
#[inline(always)]
fn new_client(key: &ClientKey6, mac: &Mac, told: bool) -> u32 {
    let joined = if is_valid_unicast(mac) {
        // SAFETY: a live map value, copied at once.
        unsafe { ALB_HOSTS6.get(HostKey6 { mac: *mac, vlan: key.vlan }) }.copied()
    } else {
        None
    };
    let (slot, slave) = match joined {
        Some(slot) => (slot, slave_of_slot(slot)),
        None => match deal(CURSOR_CLIENTS) {
            Some(dealt) => dealt,
            None => return NO_SLAVE,
        },
    };
    let entry = fresh_entry(slot, mac);
    // Another CPU may have dealt this client first: keep its assignment.
    if ALB_CLIENTS6.insert(key, entry, u64::from(BPF_NOEXIST)).is_err() {
        // SAFETY: a live map value, read once.
        return ALB_CLIENTS6.get_ptr(key).map_or(slave, |e| slave_of_slot(unsafe { (*e).slot }));
    }
    if joined.is_none() {
        remember_host(mac, key.vlan, slot);
    }
    count(Reason::TxNewClient);
    let op = if told { 0 } else { NEW_CLIENT6_UNTOLD };
    event6(EventKind::NewClient6, slave, *key, entry.mac, op, slot);
    slave
}

/// Records `slot` as the slot of host `mac`'s clients in VLAN `vlan`,
/// unless it has one already (its first client's).
#[inline(always)]
fn remember_host(mac: &Mac, vlan: u16, slot: u32) {
    if is_valid_unicast(mac) {
        let host = HostKey6 { mac: *mac, vlan };
        // Already there: the host's first client keeps its slot.
        let _kept = ALB_HOSTS6.insert(host, slot, u64::from(BPF_NOEXIST));
    }
}

/// A delivered IPv6 frame: per-client counters for data (when drawn:
/// `weight` non-zero), MAC learning from valid solicitations and
/// advertisements.
#[inline(always)]
fn watch(packet: &Packet<'_>, this: u32, tag: Tag, weight: u64) {
    match rx6_watch(packet, tag) {
        Watch6::Data(client) => {
            if weight != 0 {
                if let Some(entry) = ALB_CLIENTS6.get_ptr_mut(client.key()) {
                    from_client(packet, entry, this, weight);
                }
            }
        }
        Watch6::Nd { about } => {
            count(Reason::RxNd);
            if let Some((client, mac)) = about {
                learn(&client.key(), &mac);
            }
        }
        Watch6::Invalid => count(Reason::RxNdInvalid),
        Watch6::Nothing => {}
    }
}

/// A known client whose solicitation or advertisement gives a new MAC
/// gets its entry updated (the agent then tells it its slave again).
#[inline(always)]
fn learn(key: &ClientKey6, mac: &Mac) {
    if !is_valid_unicast(mac) {
        return;
    }
    if let Some(entry) = ALB_CLIENTS6.get_ptr_mut(key) {
        // SAFETY: a live map value.
        let entry = unsafe { &mut *entry };
        if !mac_eq(&entry.mac, mac) {
            entry.mac = *mac;
            entry.flags |= CLIENT_MAC_KNOWN;
            count(Reason::RxClientMacChanged);
            let slot = entry.slot;
            remember_host(mac, key.vlan, slot);
            event6(EventKind::ClientMacChanged6, slave_of_slot(slot), *key, *mac, 0, slot);
        }
    }
}
