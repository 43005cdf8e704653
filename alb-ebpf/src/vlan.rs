//! The frame's VLAN tag, read once per program: offloaded to the skb's
//! metadata (a VLAN device on the master, a received tag the stack moved
//! there) or in the frame (`alb_common::vlan::Tag` decides which).

use alb_common::vlan::Tag;
use aya_ebpf::programs::TcContext;

use crate::packet::Packet;

/// The tag of the frame `ctx` carries.
#[inline(always)]
pub(crate) fn tag(ctx: &TcContext, packet: &Packet<'_>) -> Tag {
    // SAFETY: the context pointer the kernel passed in.
    let skb = unsafe { &*ctx.skb.skb };
    // The TCI is 16 bits in a 32-bit field.
    #[expect(clippy::cast_possible_truncation, reason = "vlan_tci holds 16 bits")]
    let offloaded = (skb.vlan_present != 0).then_some(skb.vlan_tci as u16);
    Tag::of(packet, offloaded)
}
