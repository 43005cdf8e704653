//! The packet-access API over `TcContext`: `alb_common::wire::Frame` for
//! reads, plus the few writes and the redirect the programs need.

use alb_common::wire::{Frame, Mac};
use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    helpers::{bpf_redirect, bpf_skb_load_bytes},
    programs::TcContext,
};

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

/// Reads load the headers straight from the packet (direct packet access,
/// one bounds check against `data_end` per read) when they lie in the
/// skb's linear part, which holds the headers of every frame the stack
/// builds and of every frame a driver or GRO delivers. Only a header past
/// the linear part (a frame built with its headers in fragments) is copied
/// with `bpf_skb_load_bytes`, which reaches it without a pull (a pull
/// would unclone TCP's clones).
impl Frame for Packet<'_> {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let start = self.ctx.data() + offset;
        if start + size_of::<T>() <= self.ctx.data_end() {
            // SAFETY: `start..start + size_of::<T>()` lies inside the
            // linear part (checked just above, as the verifier wants), and
            // `read_unaligned` accepts any alignment. Only the header types
            // of `alb_common::wire` (byte arrays and bytes, valid for every
            // bit pattern) are read.
            return Some(unsafe { (start as *const T).read_unaligned() });
        }
        load_bytes(self.ctx, offset)
    }
}

/// Copies the `T` at `offset` with `bpf_skb_load_bytes`. The copy is
/// zeroed first (the helper zeroes it on failure too), so the value is
/// defined on both outcomes: left undefined on failure (as
/// `TcContext::load` leaves it), LLVM merged it with the direct read into a
/// copy of an unset register, which the verifier refuses.
#[inline(always)]
fn load_bytes<T: Copy>(ctx: &TcContext, offset: usize) -> Option<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    // SAFETY: the helper writes at most `size_of::<T>()` bytes into `value`.
    let status = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            offset as u32,
            value.as_mut_ptr().cast(),
            size_of::<T>() as u32,
        )
    };
    // SAFETY: zeroed, then written by the helper or left zero; only the
    // header types of `alb_common::wire` (valid for every bit pattern) are read.
    let value = unsafe { value.assume_init() };
    (status == 0).then_some(value)
}

/// Redirects the skb to `ifindex` (egress, or ingress with BPF_F_INGRESS).
/// `bpf_redirect` only fails for bad flags, so a failure is a drop.
#[inline(always)]
pub(crate) fn redirect(ifindex: u32, flags: u64) -> i32 {
    // SAFETY: a plain helper call with scalar arguments.
    let action = unsafe { bpf_redirect(ifindex, flags) };
    i32::try_from(action).unwrap_or(TC_ACT_SHOT)
}
