//! The scale floor (issue 14 item 5): a different key on every run of one
//! `BPF_PROG_TEST_RUN` call. Test-run repeats one frame, so the program
//! cannot take its key from the packet; this bench-only program (hand-
//! assembled, loaded with bpf(2) like the cost floor) takes it from an
//! array of keys instead, the next one on each run (a cursor in a one-
//! entry array), and looks it up in a target map, reading the value's
//! first byte:
//!
//! - target: the agent's own `ALB_CLIENTS` (the LRU hash of N clients),
//!   looked up as `alb_tx` does (the same inlined lookup, which also marks
//!   the LRU node referenced);
//! - floor: a plain array of N `ClientEntry`-sized values read at random
//!   indices: one dependent memory access into as much memory, nothing
//!   else.
//!
//! Key sequences: one key repeated (hot), uniform random keys, and a
//! Zipf(0.99)-skewed sequence (a few clients carry most packets, as real
//! traffic does). The walker's own work (cursor, key read, test-run's
//! loop) is the hot array case, and is subtracted for the net figures.

use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use alb_common::maps::{ClientEntry, ClientKey};
use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::{
    frames::learned,
    raw::{self, bpf, insn},
};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_TYPE_ARRAY: u32 = 2;

fn put(attr: &mut [u8], at: usize, bytes: &[u8]) {
    attr[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A new descriptor the kernel returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) just created it and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// An array map of `entries` values of `value_size` bytes.
fn array(value_size: usize, entries: u32) -> Result<OwnedFd> {
    let mut attr = [0u8; 64];
    put(&mut attr, 0, &BPF_MAP_TYPE_ARRAY.to_ne_bytes());
    put(&mut attr, 4, &4u32.to_ne_bytes());
    put(&mut attr, 8, &(value_size as u32).to_ne_bytes());
    put(&mut attr, 12, &entries.to_ne_bytes());
    Ok(owned(bpf(BPF_MAP_CREATE, &mut attr).context("cannot create an array map")?))
}

fn set(map: &OwnedFd, index: u32, value: &[u8]) -> Result<()> {
    let mut attr = [0u8; 32];
    put(&mut attr, 0, &(map.as_raw_fd() as u32).to_ne_bytes());
    put(&mut attr, 8, &(&raw const index as u64).to_ne_bytes());
    put(&mut attr, 16, &(value.as_ptr() as u64).to_ne_bytes());
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).context("cannot fill the key array")?;
    Ok(())
}

/// `r1 = map` (ld_imm64 with BPF_PSEUDO_MAP_FD): two instructions.
fn ld_map(fd: RawFd) -> [u64; 2] {
    [insn(0x18, 1, 1, 0, fd), 0]
}

/// The walker: `i = cursor; cursor = (i + 1) & mask; key = keys[i];
/// v = lookup(target, key); if v { read v[0] }; return 0`.
fn walker(cursor: RawFd, keys: RawFd, target: RawFd, mask: u32) -> Vec<u64> {
    const LOOKUP: i32 = 1; // bpf_map_lookup_elem
    let mut p = vec![
        insn(0x62, 10, 0, -4, 0), // *(u32 *)(r10 - 4) = 0
        insn(0xbf, 2, 10, 0, 0),  // r2 = r10
        insn(0x07, 2, 0, 0, -4),  // r2 += -4
    ];
    p.extend(ld_map(cursor));
    p.extend([
        insn(0x85, 0, 0, 0, LOOKUP),
        insn(0x15, 0, 0, 19, 0),          // if r0 == 0 goto out
        insn(0xbf, 7, 0, 0, 0),           // r7 = r0
        insn(0x61, 8, 7, 0, 0),           // r8 = *(u32 *)(r7 + 0)
        insn(0xbf, 9, 8, 0, 0),           // r9 = r8
        insn(0x07, 9, 0, 0, 1),           // r9 += 1
        insn(0x57, 9, 0, 0, mask as i32), // r9 &= mask
        insn(0x63, 7, 9, 0, 0),           // *(u32 *)(r7 + 0) = r9
        insn(0x63, 10, 8, -8, 0),         // *(u32 *)(r10 - 8) = r8
        insn(0xbf, 2, 10, 0, 0),          // r2 = r10
        insn(0x07, 2, 0, 0, -8),          // r2 += -8
    ]);
    p.extend(ld_map(keys));
    p.extend([
        insn(0x85, 0, 0, 0, LOOKUP),
        insn(0x15, 0, 0, 6, 0), // if r0 == 0 goto out
        insn(0xbf, 2, 0, 0, 0), // r2 = r0 (the key, in the key array)
    ]);
    p.extend(ld_map(target));
    p.extend([
        insn(0x85, 0, 0, 0, LOOKUP),
        insn(0x15, 0, 0, 1, 0), // if r0 == 0 goto out
        insn(0x71, 1, 0, 0, 0), // r1 = *(u8 *)(r0 + 0)
        insn(0xb7, 0, 0, 0, 0), // out: r0 = 0
        insn(0x95, 0, 0, 0, 0), // exit
    ]);
    p
}

/// Runs `prog` `repeat` times on a 64-byte frame; the kernel's mean ns.
fn run(prog: &OwnedFd, repeat: u32) -> Result<u32> {
    let frame = [0u8; 64];
    Ok(raw::test_run(prog.as_fd(), &frame, &[], repeat).context("test-run of the walker")?.1)
}

fn key_bytes(i: u32) -> [u8; KEY] {
    let (server_ip, client_ip, _) = learned(i);
    let key = ClientKey::new(server_ip, client_ip, 0);
    const { assert!(size_of::<ClientKey>() == KEY) };
    // SAFETY: ClientKey is repr(C), 12 bytes of plain integers (its padding
    // an explicit field, zeroed by new).
    unsafe { std::mem::transmute::<ClientKey, [u8; KEY]>(key) }
}

/// xorshift64: the fixed pseudo-random sequences of the walk.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `len` draws over `0..n`, uniform.
fn uniform(n: u32, len: u32, seed: u64) -> Vec<u32> {
    let mut s = seed;
    (0..len).map(|_| (xorshift(&mut s) % u64::from(n)) as u32).collect()
}

/// `len` draws over `0..n` with P(rank r) ∝ 1/(r+1)^s (inverse CDF).
fn zipf(n: u32, len: u32, s: f64, seed: u64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut total = 0.0;
    for r in 0..n {
        total += 1.0 / f64::from(r + 1).powf(s);
        cdf.push(total);
    }
    let mut st = seed;
    (0..len)
        .map(|_| {
            let u = (xorshift(&mut st) >> 11) as f64 / (1u64 << 53) as f64 * total;
            cdf.partition_point(|&c| c < u).min(n as usize - 1) as u32
        })
        .collect()
}

/// One walk: a key array and its mask.
struct Keys {
    fd: OwnedFd,
    mask: u32,
}

/// The size of every entry of a key array: an `ALB_CLIENTS` key; an array
/// index takes its first 4 bytes.
const KEY: usize = size_of::<ClientKey>();

fn keys(values: &[[u8; KEY]]) -> Result<Keys> {
    ensure!(values.len().is_power_of_two(), "the walk's length must be a power of two");
    let fd = array(KEY, values.len() as u32)?;
    for (i, v) in values.iter().enumerate() {
        set(&fd, i as u32, v)?;
    }
    Ok(Keys { fd, mask: values.len() as u32 - 1 })
}

fn index_bytes(i: u32) -> [u8; KEY] {
    let mut b = [0u8; KEY];
    b[..4].copy_from_slice(&i.to_ne_bytes());
    b
}

/// The walk over `clients` known clients in `clients_fd` (the agent's
/// `ALB_CLIENTS`), `walk` keys per sequence (a power of two; one
/// test-run call walks them all), median of `runs` calls per case.
/// `table_bytes`: the client table's memory (its memlock), for a second
/// floor of the same footprint.
pub(crate) fn measure(
    clients_fd: RawFd,
    clients: u32,
    table_bytes: u64,
    walk: u32,
    runs: usize,
) -> Result<Value> {
    let floor = array(size_of::<ClientEntry>(), clients)?;
    // As many bytes per entry as the table takes (buckets, element
    // headers, LRU nodes), rounded up to 8.
    let per_entry = (table_bytes / u64::from(clients.max(1))).next_multiple_of(8).max(8) as usize;
    let footprint = array(per_entry, clients)?;
    let random = uniform(clients, walk, 0x9e37_79b9_7f4a_7c15);
    let skewed = zipf(clients, walk, 0.99, 0x2545_f491_4f6c_dd1d);
    let hot = clients / 2;
    let cases: Vec<(&str, &str, Keys, RawFd)> = vec![
        (
            "array_hot",
            "array, one index repeated (the walker's own cost)",
            keys(&[index_bytes(hot)])?,
            floor.as_raw_fd(),
        ),
        (
            "array_random",
            "array of N values read at uniform random indices (the memory floor)",
            keys(&random.iter().map(|&i| index_bytes(i)).collect::<Vec<_>>())?,
            floor.as_raw_fd(),
        ),
        (
            "footprint_random",
            "array of N values as big as the table's entries (its memlock ÷ N) read at uniform random indices",
            keys(&random.iter().map(|&i| index_bytes(i)).collect::<Vec<_>>())?,
            footprint.as_raw_fd(),
        ),
        ("clients_hot", "ALB_CLIENTS, one client repeated", keys(&[key_bytes(hot)])?, clients_fd),
        (
            "clients_random",
            "ALB_CLIENTS, uniform random clients",
            keys(&random.iter().map(|&i| key_bytes(i)).collect::<Vec<_>>())?,
            clients_fd,
        ),
        (
            "clients_zipf",
            "ALB_CLIENTS, Zipf(0.99)-skewed clients",
            keys(&skewed.iter().map(|&i| key_bytes(i)).collect::<Vec<_>>())?,
            clients_fd,
        ),
    ];
    let cursors = cases.iter().map(|_| array(4, 1)).collect::<Result<Vec<_>>>()?;
    let progs = cases
        .iter()
        .zip(&cursors)
        .map(|((_, _, k, target), cursor)| {
            raw::load(&walker(cursor.as_raw_fd(), k.fd.as_raw_fd(), *target, k.mask), "alb_walk")
        })
        .collect::<Result<Vec<_>>>()?;
    // Calls of every case in turn, so drift hits them alike.
    let mut samples = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, prog) in progs.iter().enumerate() {
            samples[i].push(run(prog, walk)?);
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_unstable();
            f64::from(s[s.len() / 2])
        })
        .collect();
    let own = medians[0];
    let net = |i: usize| medians[i] - own;
    Ok(json!({
        "clients": clients,
        "walk": walk,
        "runs": runs,
        "zipf_s": 0.99,
        "cases": cases.iter().enumerate().map(|(i, (id, what, _, _))| json!({
            "id": id,
            "what": what,
            "median_ns": medians[i],
            "net_ns": net(i),
            "samples_ns": samples[i],
        })).collect::<Vec<_>>(),
        "footprint_entry_bytes": per_entry,
        "random_over_floor": medians[4] / medians[1],
        "random_over_floor_net": net(4) / net(1),
        "zipf_over_floor_net": net(5) / net(1),
        "random_over_footprint_net": net(4) / net(2),
        "target_net_ratio": 2.0,
    }))
}
