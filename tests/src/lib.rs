//! alb's lab: the seed topology (a server with veth slaves, a bridge as the
//! switch, client namespaces) in private network namespaces, built with the
//! `ip`, `sysctl` and `nsenter` tools and removed on drop, and the agent
//! under test ([`agent`]: started in the lab, its status as typed values,
//! stopped and cleaned up after). The demo, the behavioural tests in
//! `tests/tests/` and the benchmark all build their topology and run the
//! agent here, so the seed scenario exists once. The packet fixtures
//! ([`fixtures`]: frame builders, the fixture table, its runner) are the
//! one source of frames for the fixture tests, the cost benchmark and
//! alb-common's unit tests.
//!
//! ```no_run
//! use std::time::Duration;
//! use alb_tests::{AgentCommand, Lab, LabConfig, SERVER_IP4};
//!
//! let lab = Lab::up(LabConfig::unique()).expect("lab");
//! let agent = AgentCommand::new(&lab, "target/debug/alb").start(&lab).expect("agent");
//! lab.add_server_addrs().expect("addresses");
//! let c1 = lab.client(1);
//! let stats = lab.ping(&c1.ns, SERVER_IP4, 10, Duration::from_millis(10)).expect("ping");
//! assert_eq!(stats.lost(), 0);
//! assert_eq!(agent.status().expect("status").clients.len(), 1);
//! ```
#![cfg_attr(
    test,
    expect(unused_crate_dependencies, reason = "the integration tests' dev-dependencies")
)]

pub mod agent;
pub mod cmd;
pub mod fixtures;
pub mod hook;
mod lab;
pub mod metrics;
pub mod netns;
pub mod package;
mod proc;
pub mod root;
mod scale;
#[cfg(test)]
mod selftest;
pub mod tidy;

pub use agent::{Agent, AgentCommand, ClientStatus, SlaveStatus, Status};
pub use lab::{
    BONDING_MODULE, BRIDGE, CLIENT_DEV, Client, DEFAULT_MASTER, DEFAULT_PREFIX, Lab, LabConfig,
    LinkInfo, LinkStats, MAX_CLIENTS, MAX_SLAVES, MAX_VMS, PREFIX_LEN4, PREFIX_LEN6, PingLog,
    PingStats, SERVER_IP4, SERVER_IP6, Slave, SrvSysfs, VM_BRIDGE, Vm, VmKind, client_ns, outage,
    require_bonding, require_root, srv_ns, sw_ns, vm_ns, wait_until,
};
pub use proc::{Proc, STOP_TIMEOUT};
pub use scale::{TIME_SCALE_VAR, scaled, time_scale};
