//! `alb_tx`'s client cache in front of `ALB_CLIENTS`: the thin shell of
//! `alb_common::client_cache`, which says why it is safe.

use alb_common::{
    client_cache::{self, Generations},
    maps::{ClientEntry, ClientKey, Config},
};

use crate::{
    maps::{ALB_CACHE_GEN, ALB_CLIENTS, ALB_TX_CACHE},
    stats::add_atomic,
};

/// The generations the cache is valid under now.
#[inline(always)]
pub(crate) fn generations(config: &Config) -> Generations {
    let local = match ALB_CACHE_GEN.get_ptr(0) {
        // SAFETY: a live array slot, read once (other CPUs add to it).
        Some(generation) => unsafe { core::ptr::read_volatile(generation) },
        None => 0,
    };
    Generations { agent: config.clients_generation, local: local as u32 }
}

/// Invalidates every CPU's cache: called after an insertion into
/// `ALB_CLIENTS` (an LRU insertion may evict another client).
#[inline(always)]
pub(crate) fn invalidate() {
    if let Some(generation) = ALB_CACHE_GEN.get_ptr_mut(0) {
        // SAFETY: a live array slot, only ever added to atomically.
        add_atomic(unsafe { &mut *generation }, 1);
    }
}

/// The slot of known client `key`, from this CPU's cache or else from
/// `ALB_CLIENTS` (which then fills the cache), with its table entry when
/// it was looked up (null on a hit); `None` for a client the table does
/// not hold. When every frame is counted (`client_sampling` 0 or 1) each
/// needs its entry anyway, so the table is asked directly.
#[inline(always)]
pub(crate) fn slot_of(config: &Config, key: &ClientKey) -> Option<(u32, *mut ClientEntry)> {
    if config.client_sampling <= 1 {
        let entry = ALB_CLIENTS.get_ptr_mut(key)?;
        // SAFETY: a live map value, read once.
        return Some((unsafe { (*entry).slot }, entry));
    }
    let now = generations(config);
    let cached = ALB_TX_CACHE.get_ptr_mut(client_cache::index(key));
    if let Some(cached) = cached {
        // SAFETY: a per-CPU slot, written only by this CPU.
        if let Some(slot) = client_cache::hit(unsafe { &*cached }, key, now) {
            return Some((slot, core::ptr::null_mut()));
        }
    }
    let entry = ALB_CLIENTS.get_ptr_mut(key)?;
    // SAFETY: a live map value, read once.
    let slot = unsafe { (*entry).slot };
    if let Some(cached) = cached {
        // SAFETY: as above.
        unsafe { *cached = client_cache::fill(key, slot, now) };
    }
    Some((slot, entry))
}
