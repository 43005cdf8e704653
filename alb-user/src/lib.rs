//! The alb agent: sets up the master device, loads and attaches the BPF
//! programs, publishes slave state into the maps, reacts to the data path's
//! events, and reports state (`alb status`).
//!
//! Only `datapath` talks to aya, only `links` to rtnetlink, only `announce`
//! builds and sends frames; the rest works on plain Rust state (`state`,
//! `slaves`, `clients`).

pub mod agent;
pub mod announce;
pub mod clients;
pub mod config;
pub mod control;
pub mod datapath;
pub mod ethtool;
pub mod filters;
pub mod import;
pub mod links;
pub mod master;
pub mod metrics;
pub mod privileges;
pub mod service;
pub mod slaves;
pub mod state;
pub mod status;
pub mod sysctl;
pub mod takeover;
pub mod undo;

// The man page and the shell completions are the binary's (main.rs).
use clap_complete as _;
use clap_mangen as _;

use std::fmt::Write as _;

/// Where agents keep their locks, undo records and control sockets.
pub const RUN_DIR: &str = "/run/alb";

use alb_common::wire::Mac;

/// Formats a MAC as `02:a1:b0:00:00:17`.
pub fn format_mac(mac: &Mac) -> String {
    let mut out = String::with_capacity(17);
    for (i, byte) in mac.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        write!(out, "{byte:02x}").expect("writing to a String cannot fail");
    }
    out
}

/// Removes a file; one that is already gone is no error.
pub fn remove_file_if_present(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Parses `02:a1:b0:00:00:17`.
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac = [0x02, 0xa1, 0xb0, 0, 0, 0x17];
        assert_eq!(format_mac(&mac), "02:a1:b0:00:00:17");
        assert_eq!(parse_mac("02:a1:b0:00:00:17"), Some(mac));
        assert_eq!(parse_mac("02:a1:b0:00:00"), None);
        assert_eq!(parse_mac("02:a1:b0:00:00:17:00"), None);
    }
}
