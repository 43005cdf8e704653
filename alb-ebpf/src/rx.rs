//! TC ingress on every slave: the master's frames go up the master, once.

use alb_common::{
    maps::{CLIENT_MAC_KNOWN, ClientKey, EventKind, MAX_SLAVES, ServerKey, Slave, VmKey},
    reason::Reason,
    verdict::rx::{Owner, RxPlan, Watch, rx_plan, rx_unwatched, rx_watch},
    vlan::Tag,
    wire::{ArpHdr, Frame as _, Mac, is_multicast, is_valid_unicast, mac_eq},
};
use aya_ebpf::{
    bindings::{BPF_F_INGRESS, TC_ACT_OK, TC_ACT_SHOT},
    programs::TcContext,
};

use crate::{
    forward::{from_client, slave_of_slot},
    handover,
    maps::{ALB_CLIENTS, ALB_CONFIG, ALB_SERVERS, ALB_SLAVES, ALB_VMS},
    packet::{Packet, redirect},
    stats::{self, count, event},
    vlan,
};

#[inline(always)]
pub(crate) fn run(ctx: &TcContext) -> i32 {
    // SAFETY: the context pointer the kernel passed in.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let (Some(config), Some((this, slave))) = (ALB_CONFIG.get(0), slave_on(ifindex)) else {
        count(Reason::RxUnknownSlave);
        return TC_ACT_OK;
    };
    let packet = Packet::new(ctx);
    let Some(addresses) = packet.read::<[Mac; 2]>(0) else {
        count(Reason::RxMalformed);
        return TC_ACT_OK;
    };
    let [dst, src] = addresses;
    // The owner lookups rx_plan may ask for, made here where `owner_of` is
    // a direct call that is always inlined (passed as a function, LLVM kept
    // the 16-slot scan out of line; see `owner_of`).
    let on_active = this == config.active_slave;
    let owner_src = if is_multicast(&dst) && on_active { owner_of(&src) } else { None };
    let owner_dst =
        if !is_multicast(&dst) && !mac_eq(&dst, &slave.mac) { owner_of(&dst) } else { None };
    let owner = |mac: &Mac| if core::ptr::eq(mac, &src) { owner_src } else { owner_dst };
    // The VM table, asked only where the plan needs it: a group frame on
    // the active slave from no slave (its VM may have sent it), unicast
    // for no slave's MAC (it may be a VM's).
    let src_vm = is_multicast(&dst)
        && on_active
        && owner_src.is_none()
        && ALB_VMS.get_ptr(VmKey::new(src)).is_some();
    let dst_vm = !is_multicast(&dst)
        && !mac_eq(&dst, &slave.mac)
        && owner_dst.is_none()
        && ALB_VMS.get_ptr(VmKey::new(dst)).is_some();
    let is_vm = |mac: &Mac| if core::ptr::eq(mac, &src) { src_vm } else { dst_vm };
    let plan = rx_plan(
        &dst,
        &src,
        this,
        &slave.mac,
        config.active_slave,
        &config.master_mac,
        owner,
        is_vm,
    );
    match plan {
        RxPlan::Drop(reason) => {
            count(reason);
            TC_ACT_SHOT
        }
        RxPlan::Pass(reason) => {
            count(reason);
            TC_ACT_OK
        }
        RxPlan::Deliver { rewrite_dst, reason } => {
            count(reason);
            let weight = stats::slave_rx(this, packet.len(), config.client_sampling);
            // A VM's frames are counted for it, not watched: the bridge or
            // macvlan on the master takes them by their destination.
            let ipv6 = if reason == Reason::RxVm {
                to_vm(&packet);
                false
            } else if rx_unwatched(&packet, weight) {
                false
            } else {
                watch(&packet, this, vlan::tag(ctx, &packet), weight)
            };
            if rewrite_dst && !packet.store_mac(0, &config.master_mac) {
                count(Reason::RxMalformed);
                return TC_ACT_OK;
            }
            if ipv6 {
                // alb_rx6 watches it and redirects it; if it is missing,
                // the frame is delivered unwatched.
                handover::to_rx6(ctx, this, weight);
            }
            redirect(config.master_ifindex, u64::from(BPF_F_INGRESS))
        }
    }
}

/// Counts a frame delivered to a VM MAC. Its destination is read again
/// rather than kept across the plan: kept, it changed LLVM's register
/// allocation into a copy of an undefined register, which the verifier
/// refuses.
#[inline(always)]
fn to_vm(packet: &Packet<'_>) {
    let Some(dst) = packet.read::<Mac>(0) else { return };
    if let Some(entry) = ALB_VMS.get_ptr_mut(VmKey::new(dst)) {
        // SAFETY: a live map value; counters are only updated atomically.
        let entry = unsafe { &mut *entry };
        stats::add_shared(&mut entry.rx_packets, &mut entry.rx_bytes, packet.len(), 1);
    }
}

/// Client bookkeeping on delivered frames: per-client counters for IPv4
/// (when the frame is drawn: `weight` non-zero; see `alb_common::sampling`),
/// MAC learning and events for ARP. True for IPv6, which `alb_rx6` watches.
/// Out of line: inlined into `run` with the VM look-ups, LLVM copied an
/// undefined register on the ARP path (a short ARP), which the verifier
/// refuses.
#[inline(never)]
fn watch(packet: &Packet<'_>, this: u32, tag: Tag, weight: u64) -> bool {
    match rx_watch(packet, tag) {
        Watch::Ipv4(key) => {
            if weight != 0 {
                if let Some(entry) = ALB_CLIENTS.get_ptr_mut(key) {
                    from_client(packet, entry, this, weight);
                }
            }
        }
        Watch::Arp(arp) => client_arp(&arp, tag.vid, this),
        Watch::Ipv6 => return true,
        Watch::Nothing => {}
    }
    false
}

/// A known client that answers from a new MAC gets its entry updated (the
/// agent then tells it its slave again). An ARP from a server address (in
/// its VLAN) is reported, so the agent can purge the clients of an address
/// another host claims; any other client ARP is not: the agent had no use
/// for it, and each woke it (~6 µs here).
#[inline(always)]
fn client_arp(arp: &ArpHdr, vlan: u16, this: u32) {
    count(Reason::RxArp);
    let key = ClientKey::new(arp.tpa, arp.spa, vlan);
    if let Some(entry) = ALB_CLIENTS.get_ptr_mut(key) {
        // SAFETY: a live map value.
        let entry = unsafe { &mut *entry };
        if is_valid_unicast(&arp.sha) && !mac_eq(&entry.mac, &arp.sha) {
            entry.mac = arp.sha;
            entry.flags |= CLIENT_MAC_KNOWN;
            count(Reason::RxClientMacChanged);
            let slot = entry.slot;
            event(EventKind::ClientMacChanged, slave_of_slot(slot), key, arp.sha, arp.oper(), slot);
        }
    }
    if ALB_SERVERS.get_ptr(ServerKey::new(arp.spa, vlan)).is_some() {
        event(EventKind::ArpSeen, this, key, arp.sha, arp.oper(), 0);
    }
}

/// The slave on device `ifindex` and its index, if it is one: the slave
/// table scanned in order (a removed slave's entry is empty), unrolled as
/// in [`owner_of`]. A hash map from ifindex to index cost a helper call
/// and a hash on every received frame (~15 ns); with two slaves this is
/// one or two inlined array reads.
#[inline(always)]
fn slave_on(ifindex: u32) -> Option<(u32, &'static Slave)> {
    macro_rules! slave {
        ($($index:literal)*) => {$(
            if let Some(slave) = ALB_SLAVES.get($index) {
                if slave.ifindex == ifindex && slave.flags != 0 {
                    return Some(($index, slave));
                }
            }
        )*};
    }
    slave!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    None
}

/// The slave whose MAC is `mac`, if any: at most 16 slaves. Unrolled by
/// hand, with no loop at all: Linux 6.1's verifier rejects the loop LLVM
/// makes of the scan ("back-edge from insn N to N+1": the loop head follows
/// a helper call). Always inlined: out of line, 6.1 refuses the BTF of a
/// function returning `Option<Owner>` (a union member at a non-zero offset),
/// and an `#[inline(never)]` variant returning an integer was miscompiled
/// (a caller-saved register read after a helper call).
#[inline(always)]
fn owner_of(mac: &Mac) -> Option<Owner> {
    macro_rules! slave {
        ($($index:literal)*) => {$(
            if let Some(slave) = ALB_SLAVES.get($index) {
                if slave.flags != 0 && mac_eq(&slave.mac, mac) {
                    return Some(Owner { index: $index, up: slave.is_up() });
                }
            }
        )*};
    }
    slave!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    None
}

const _: () = assert!(MAX_SLAVES == 16, "owner_of checks 16 slaves");
