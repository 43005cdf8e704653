//! TC egress on the master: every frame the host sends leaves by a slave.

use alb_common::{
    maps::{
        CLIENT_MAC_KNOWN, CURSOR_CLIENTS, CURSOR_VMS, ClientKey, Config, EventKind, NO_SLAVE,
        ServerKey, VmEntry, VmKey,
    },
    reason::Reason,
    verdict::tx::{HostArp, TxPlan, tx_plan},
    vlan::Tag,
    wire::{ARP_OP_REPLY, ArpHdr, EthHdr, Mac, ipv4_eq, is_valid_unicast, mac_eq},
};
use aya_ebpf::{bindings::TC_ACT_SHOT, helpers::bpf_ktime_get_ns, programs::TcContext};

use crate::{
    cache,
    forward::{by_bucket, deal, fresh_entry, send, slave_of_slot, to_slot, usable_slave},
    handover,
    maps::{ALB_CLIENTS, ALB_CONFIG, ALB_SERVERS, ALB_VMS},
    packet::{Packet, redirect},
    stats::{self, count, event},
    vlan,
};

#[inline(always)]
pub(crate) fn run(ctx: &TcContext) -> i32 {
    let Some(config) = ALB_CONFIG.get(0) else {
        return TC_ACT_SHOT;
    };
    let packet = Packet::new(ctx);
    let tag = vlan::tag(ctx, &packet);
    match tx_plan(&packet, &config.master_mac, tag) {
        TxPlan::Malformed => {
            count(Reason::TxMalformed);
            TC_ACT_SHOT
        }
        TxPlan::Active { reason, from_master } => {
            count(reason);
            send(&packet, config, config.active_slave, from_master)
        }
        TxPlan::Balance { client, bucket, from_master } => {
            if let Some(key) = client {
                if let Some((slot, entry)) = cache::slot_of(config, &key) {
                    let look_up = || ALB_CLIENTS.get_ptr_mut(key).unwrap_or_default();
                    return to_slot(&packet, config, slot, entry, look_up, from_master);
                }
            }
            by_bucket(&packet, config, bucket, from_master)
        }
        TxPlan::HostArp(arp) => host_arp(&packet, config, &arp, tag),
        TxPlan::Vm { mac } => to_vm_slave(&packet, config, &mac),
        TxPlan::Ipv6 { from_master } => {
            handover::to_tx6(ctx);
            // Only if alb_tx6 is missing: unchanged by the active slave.
            count(Reason::TxActive);
            send(&packet, config, config.active_slave, from_master)
        }
        TxPlan::Announce { server_ip, vlan } => {
            count(Reason::TxArpAnnounce);
            if !ipv4_eq(&server_ip, &[0; 4]) {
                let key = ClientKey::new(server_ip, server_ip, vlan);
                event(
                    EventKind::HostArpBroadcast,
                    config.active_slave,
                    key,
                    config.master_mac,
                    0,
                    0,
                );
            }
            send(&packet, config, config.active_slave, true)
        }
    }
}

/// A frame from VM MAC `mac` leaves, unchanged, by the slave of its slot
/// (dealt now if the MAC is new), so the switch sees the MAC on one port.
#[inline(always)]
fn to_vm_slave(packet: &Packet<'_>, config: &Config, mac: &Mac) -> i32 {
    let key = VmKey::new(*mac);
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let slot = match ALB_VMS.get_ptr_mut(key) {
        Some(entry) => {
            // SAFETY: a live map value; counters are only updated atomically.
            let entry = unsafe { &mut *entry };
            entry.last_seen_ns = now;
            stats::add_shared(&mut entry.tx_packets, &mut entry.tx_bytes, packet.len(), 1);
            entry.slot
        }
        None => new_vm(&key, now, packet.len()),
    };
    count(Reason::TxVm);
    // No slot (no usable slave when it came): the active slave, as ever.
    let slave = if slot == NO_SLAVE { config.active_slave } else { slave_of_slot(slot) };
    send(packet, config, slave, false)
}

/// Pins a VM MAC seen for the first time to the next VM slot in turn;
/// returns the slot ([`NO_SLAVE`] if none can be dealt).
#[inline(always)]
fn new_vm(key: &VmKey, now: u64, len: u32) -> u32 {
    let Some((slot, slave)) = deal(CURSOR_VMS) else { return NO_SLAVE };
    let entry = VmEntry {
        slot,
        created_ns: now,
        last_seen_ns: now,
        tx_packets: 1,
        tx_bytes: u64::from(len),
        ..VmEntry::default()
    };
    // Another CPU may have pinned it first: keep its slot.
    if ALB_VMS.insert(key, entry, u64::from(aya_ebpf::bindings::BPF_NOEXIST)).is_err() {
        // SAFETY: a live map value, read once.
        return ALB_VMS.get_ptr(key).map_or(slot, |e| unsafe { (*e).slot });
    }
    count(Reason::TxNewVm);
    event(EventKind::NewVm, slave, ClientKey::default(), key.mac, 0, slot);
    slot
}

/// A host ARP leaves by the client's slave with that slave's MAC as sender,
/// so the client learns the MAC of the slave that will carry its traffic.
/// `tag`: where the ARP header is (after an in-frame VLAN tag).
#[inline(always)]
fn host_arp(packet: &Packet<'_>, config: &Config, arp: &HostArp, tag: Tag) -> i32 {
    let slave = match ALB_CLIENTS.get_ptr_mut(arp.key) {
        Some(entry) => {
            // SAFETY: a live map value.
            let entry = unsafe { &mut *entry };
            let slave = slave_of_slot(entry.slot);
            if is_valid_unicast(&arp.client_mac) && !mac_eq(&entry.mac, &arp.client_mac) {
                entry.mac = arp.client_mac;
                entry.flags |= CLIENT_MAC_KNOWN;
                // The agent's client model learns MACs from events only.
                let (key, mac, slot) = (arp.key, arp.client_mac, entry.slot);
                event(EventKind::ClientMacChanged, slave, key, mac, arp.op, slot);
            }
            slave
        }
        None => new_client(&arp.key, &arp.client_mac),
    };
    let Some((slave, target)) = usable_slave(config, slave) else {
        count(Reason::TxNoSlave);
        return TC_ACT_SHOT;
    };
    if !mac_eq(&target.mac, &config.master_mac) {
        let rewritten = packet.store_mac(EthHdr::SRC_OFFSET, &target.mac)
            && packet.store_mac(tag.at(EthHdr::LEN + ArpHdr::SHA_OFFSET), &target.mac);
        if !rewritten {
            count(Reason::TxMalformed);
            return TC_ACT_SHOT;
        }
    }
    if arp.broadcast {
        event(EventKind::HostArpBroadcast, slave, arp.key, target.mac, arp.op, 0);
    }
    count(if arp.op == ARP_OP_REPLY { Reason::TxArpReply } else { Reason::TxArpRequest });
    stats::slave_tx(slave, packet.len());
    redirect(target.ifindex, 0)
}

/// Deals the next slot (and so its slave) to a client the host has just
/// answered or asked, and records it; returns the slave.
#[inline(always)]
fn new_client(key: &ClientKey, mac: &Mac) -> u32 {
    let Some((slot, slave)) = deal(CURSOR_CLIENTS) else { return NO_SLAVE };
    let entry = fresh_entry(slot, mac);
    // Another CPU may have dealt this client first: keep its assignment.
    let inserted = ALB_CLIENTS.insert(key, entry, u64::from(aya_ebpf::bindings::BPF_NOEXIST));
    // Inserted or not, the LRU may have evicted a client to make room.
    cache::invalidate();
    if inserted.is_err() {
        // SAFETY: a live map value, read once.
        return ALB_CLIENTS.get_ptr(key).map_or(slave, |e| slave_of_slot(unsafe { (*e).slot }));
    }
    count(Reason::TxNewClient);
    remember_server(key);
    event(EventKind::NewClient, slave, *key, entry.mac, 0, slot);
    slave
}

/// Records the server address of `key` in `ALB_SERVERS`, so `alb_rx`
/// reports ARPs from it (a claim). Looked up first: an LRU update takes a
/// free node (evicting one if none) before it checks the key, and the
/// look-up marks the entry used. BPF_NOEXIST: another CPU's entry stays.
#[inline(always)]
fn remember_server(key: &ClientKey) {
    let server = ServerKey::new(key.server_ip, key.vlan);
    if ALB_SERVERS.get_ptr(server).is_none() {
        let _raced = ALB_SERVERS.insert(server, 0, u64::from(aya_ebpf::bindings::BPF_NOEXIST));
    }
}
