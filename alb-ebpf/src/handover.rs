//! The tail calls from the IPv4 programs into the IPv6 ones (`ALB_PROGS`),
//! and what `alb_rx` hands `alb_rx6` in the frame's `cb`.

use alb_common::maps::{TAIL_RX6, TAIL_TX6};
use aya_ebpf::programs::TcContext;

use crate::maps::ALB_PROGS;

/// `alb_tx` hands an IPv6 frame to `alb_tx6`; returns only if it is
/// missing.
#[inline(always)]
pub(crate) fn to_tx6(ctx: &TcContext) {
    // SAFETY: a tail call with the program's own context; on success it
    // does not return.
    unsafe { ALB_PROGS.tail_call(ctx, TAIL_TX6) };
}

/// `alb_rx` hands an IPv6 frame it delivers to `alb_rx6`, with the
/// receiving slave's index in `cb[0]` and the frame's weight in its
/// client's counters (drawn by `alb_rx`) in `cb[1]`; returns only if it is
/// missing.
#[inline(always)]
pub(crate) fn to_rx6(ctx: &TcContext, this: u32, weight: u64) {
    // SAFETY: the context pointer the kernel passed in; TC programs may
    // write `cb`, which a tail call keeps.
    unsafe {
        (*ctx.skb.skb).cb[0] = this;
        // A weight is at most MAX_CLIENT_SAMPLING (2^20).
        (*ctx.skb.skb).cb[1] = weight as u32;
    }
    // SAFETY: as in `to_tx6`.
    unsafe { ALB_PROGS.tail_call(ctx, TAIL_RX6) };
}

/// What `to_rx6` handed over: the receiving slave and the frame's weight.
#[inline(always)]
pub(crate) fn from_rx(ctx: &TcContext) -> (u32, u64) {
    // SAFETY: the context pointer the kernel passed in.
    let (this, weight) = unsafe { ((*ctx.skb.skb).cb[0], (*ctx.skb.skb).cb[1]) };
    (this, u64::from(weight))
}
