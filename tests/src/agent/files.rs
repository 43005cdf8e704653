//! Where the agent keeps its files outside the lab's namespaces: its pins
//! under [`PIN_ROOT`], its lock, undo record and control socket under
//! [`RUN_DIR`], and whether an agent holds the lock.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

/// Where the agent pins its maps and links, per master (alb-user's
/// `datapath::layout` builds its paths from the same names).
pub use alb_common::maps::pins::ROOT as PIN_ROOT;

/// Where the agent keeps its lock, undo record and control socket.
pub const RUN_DIR: &str = "/run/alb";

/// `<PIN_ROOT>/<master>`.
pub fn pin_dir(master: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(master)
}

/// `/run/alb/<master>.lock`.
pub fn lock_path(master: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{master}.lock"))
}

/// `/run/alb/<master>.state`: what a running agent has changed, to undo.
pub fn state_path(master: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{master}.state"))
}

/// `/run/alb/<master>.sock`: the agent's control socket.
pub fn socket_path(master: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{master}.sock"))
}

/// Whether some process holds the agent lock of `master`.
pub fn lock_held(master: &str) -> bool {
    let Ok(file) = File::open(lock_path(master)) else {
        return false;
    };
    // SAFETY: flock(2) on a descriptor we own; released when `file` closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0
}
