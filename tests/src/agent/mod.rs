//! The agent under test: `alb` started in a lab's server namespace, waited
//! for until it is ready, its `alb status --json` as typed values, stopped
//! (SIGTERM with a timeout, or `kill -9`), and what it leaves behind
//! removed. The behavioural tests, the demo and the benchmark all run the
//! agent through here.
//!
//! ```no_run
//! use alb_tests::{AgentCommand, Lab, LabConfig};
//!
//! let lab = Lab::up(LabConfig::unique()).expect("lab");
//! let mut agent = AgentCommand::new(&lab, "target/debug/alb")
//!     .args(&["--rebalance-interval", "1"])
//!     .start(&lab)
//!     .expect("agent");
//! lab.add_server_addrs().expect("addresses");
//! let status = agent.status().expect("status");
//! assert_eq!(status.active_slave.as_deref(), Some("veth17"));
//! assert!(agent.stop().expect("stop").success());
//! ```
//!
//! The agent's files live outside the lab's namespaces: its pins under
//! [`PIN_ROOT`]`/<master>` and its lock, undo record and control socket
//! under [`RUN_DIR`]. An [`Agent`] that is dropped stops the agent and, unless
//! another agent of the same master holds the lock by then (a restart after
//! `kill -9`), removes what it left with `alb down` and then by hand, with a
//! warning. Use a master name no one else uses (tests derive it from their
//! lab's unique prefix).
//!
//! A file per concern: [`command`] how to start it, [`running`] the
//! running agent, [`status`] its status, [`oneshot`] other `alb`
//! commands, [`files`] where its files are, [`cleanup`] removing what it
//! left.

mod cleanup;
mod command;
mod files;
mod oneshot;
mod running;
mod status;

pub use self::{
    cleanup::{leftovers, remove_lock_file},
    command::{AgentCommand, READY, READY_TIMEOUT},
    files::{PIN_ROOT, RUN_DIR, lock_held, lock_path, pin_dir, socket_path, state_path},
    oneshot::{COMMAND_TIMEOUT, run_alb},
    running::Agent,
    status::{ClientStatus, STATUS_VERSION, SlaveStatus, Status},
};
