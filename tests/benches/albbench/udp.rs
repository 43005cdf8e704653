//! A paced UDP sender and a receiver that reports sequence gaps, for
//! failover outages: each datagram carries its sequence number, the
//! receiver stamps arrivals with CLOCK_MONOTONIC (shared by every process,
//! so the orchestrator can place a gap against the moment it failed a link).

use std::{
    net::{SocketAddr, UdpSocket},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

/// CLOCK_MONOTONIC in ns.
pub(crate) fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Sends `pps` datagrams of `size` bytes a second to `to` for `secs`.
pub(crate) fn send(to: SocketAddr, pps: u32, secs: f64, size: usize) -> Result<Value> {
    let socket = UdpSocket::bind("0.0.0.0:0").context("bind")?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(pps));
    let total = (secs * f64::from(pps)) as u64;
    let mut payload = vec![0u8; size.max(16)];
    let (mut sent, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    for seq in 0..total {
        let due = start + interval.mul_f64(seq as f64);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        payload[..8].copy_from_slice(&seq.to_le_bytes());
        payload[8..16].copy_from_slice(&mono_ns().to_le_bytes());
        match socket.send_to(&payload, to) {
            Ok(_) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    Ok(json!({ "to": to.to_string(), "pps": pps, "sent": sent, "errors": errors }))
}

/// Receives on `port` for `secs`; reports every gap: a jump in sequence
/// numbers or a silence longer than `gap_ms`.
pub(crate) fn receive(port: u16, secs: f64, gap_ms: f64) -> Result<Value> {
    let socket = UdpSocket::bind(("0.0.0.0", port)).with_context(|| format!("bind port {port}"))?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let gap_ns = (gap_ms * 1e6) as u64;
    let mut buf = [0u8; 2048];
    let (mut received, mut reordered) = (0u64, 0u64);
    let mut last: Option<(u64, u64)> = None;
    let (mut first_ns, mut last_ns) = (0u64, 0u64);
    let mut gaps = Vec::new();
    while Instant::now() < deadline {
        let Ok(n) = socket.recv(&mut buf) else { continue };
        if n < 8 {
            continue;
        }
        let now = mono_ns();
        let seq = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
        received += 1;
        match last {
            None => first_ns = now,
            Some((last_seq, _)) if seq <= last_seq => {
                reordered += 1;
                continue;
            }
            Some((last_seq, at)) => {
                let lost = seq - last_seq - 1;
                if lost > 0 || now - at > gap_ns {
                    gaps.push(json!({
                        "after_seq": last_seq,
                        "lost": lost,
                        "before_ns": at,
                        "at_ns": now,
                        "silence_ms": (now - at) as f64 / 1e6,
                    }));
                }
            }
        }
        last = Some((seq, now));
        last_ns = now;
    }
    Ok(json!({
        "port": port,
        "received": received,
        "reordered": reordered,
        "last_seq": last.map(|(s, _)| s),
        "first_ns": first_ns,
        "last_ns": last_ns,
        "gaps": gaps,
    }))
}
