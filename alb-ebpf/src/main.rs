//! alb's BPF programs. Each is a thin shell: read the frame, ask
//! `alb_common::verdict` what to do, look up what the verdict names, apply
//! the rewrite and redirect.
//!
//! - `alb_tx`: TC egress on the master. Picks the slave every frame the host
//!   sends leaves by, and rewrites host ARP per client.
//! - `alb_rx`: TC ingress on every slave. Delivers the frames that are the
//!   master's to the master, once, and watches client ARP and Neighbor
//!   Discovery.
//! - `alb_tx6`, `alb_rx6` (`ipv6`): the IPv6 path, which `alb_tx` and
//!   `alb_rx` enter with a tail call after one ethertype check, so it has a
//!   stack and a verifier budget of its own and the IPv4 path is unchanged.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "atomic_xadd: the BPF target has no CAS, so core offers no atomic fetch_add"
)]

mod cache;
mod forward;
mod handover;
mod ipv6;
mod maps;
mod packet;
mod rx;
mod stats;
mod tx;
mod vlan;

use aya_ebpf::{macros::classifier, programs::TcContext};

#[classifier]
pub(crate) fn alb_tx(ctx: TcContext) -> i32 {
    tx::run(&ctx)
}

#[classifier]
pub(crate) fn alb_rx(ctx: TcContext) -> i32 {
    rx::run(&ctx)
}

#[classifier]
pub(crate) fn alb_tx6(ctx: TcContext) -> i32 {
    ipv6::run_tx(&ctx)
}

#[classifier]
pub(crate) fn alb_rx6(ctx: TcContext) -> i32 {
    ipv6::run_rx(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any path that could reach this loop.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
