//! The packet-access API over `TcContext`: `alb_common::wire::Frame` for
//! reads, plus the few writes and the redirect the programs need.

use alb_common::wire::{Frame, Mac};
use aya_ebpf::{bindings::TC_ACT_SHOT, helpers::bpf_redirect, programs::TcContext};

pub(crate) struct Packet<'a> {
    ctx: &'a TcContext,
}

impl<'a> Packet<'a> {
    #[inline(always)]
    pub(crate) fn new(ctx: &'a TcContext) -> Self {
        Self { ctx }
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> u32 {
        self.ctx.len()
    }

    /// Writes a MAC at `offset` (Ethernet addresses, ARP sender, ND
    /// link-layer address options).
    #[inline(always)]
    pub(crate) fn store_mac(&self, offset: usize, mac: &Mac) -> bool {
        self.ctx.store(offset, mac, 0).is_ok()
    }

    /// Writes a 2-byte field at `offset` (a checksum).
    #[inline(always)]
    pub(crate) fn store2(&self, offset: usize, bytes: [u8; 2]) -> bool {
        self.ctx.store(offset, &bytes, 0).is_ok()
    }
}

/// Reads copy the headers onto the stack with `bpf_skb_load_bytes`, which
/// also reaches non-linear skbs (no pull, so no unclone of TCP's clones)
/// and keeps packet pointers out of the verifier's way: copying whole
/// header structs through direct packet access made LLVM spill packet
/// pointers in pieces, which the verifier refuses.
impl Frame for Packet<'_> {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        self.ctx.load::<T>(offset).ok()
    }
}

/// Redirects the skb to `ifindex` (egress, or ingress with BPF_F_INGRESS).
/// `bpf_redirect` only fails for bad flags, so a failure is a drop.
#[inline(always)]
pub(crate) fn redirect(ifindex: u32, flags: u64) -> i32 {
    // SAFETY: a plain helper call with scalar arguments.
    let action = unsafe { bpf_redirect(ifindex, flags) };
    i32::try_from(action).unwrap_or(TC_ACT_SHOT)
}
