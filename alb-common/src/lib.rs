//! What alb's BPF programs and its agent share: the layouts of the BPF maps,
//! the packet-access API and header views, and every decision the data path
//! takes, as pure functions that run (and are tested and fuzzed) on the host.
//!
//! The BPF side (`alb-ebpf`) is a thin shell: it reads a frame through
//! [`wire::Frame`], asks [`verdict`] what to do, performs the map look-ups the
//! verdict names and applies the rewrite.
#![no_std]

#[cfg(any(test, feature = "alloc", feature = "testing"))]
extern crate alloc;
#[cfg(any(test, feature = "testing"))]
extern crate std;

pub mod active;
pub mod assign;
pub mod client_cache;
pub mod frames;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod link;
pub mod maps;
pub mod nd;
pub mod reason;
pub mod reports;
pub mod ring;
pub mod sampling;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod verdict;
pub mod vlan;
pub mod vms;
pub mod wire;
