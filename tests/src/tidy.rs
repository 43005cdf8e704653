//! Cleanup steps that must not fail their caller (a guard's `Drop`, a lab
//! torn down after a failed test): what is already gone is not worth a
//! word, anything else is said on stderr, so nothing fails silently.

use std::{io, path::Path};

use nix::{
    errno::Errno,
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};

/// Removes a file, or a directory with what it holds.
pub fn remove(path: &Path) {
    let result =
        if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match result {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            eprintln!("cleanup: cannot remove {}: {error}", path.display());
        }
        _ => {}
    }
}

/// Removes an empty directory; one still in use (not empty) stays quietly.
pub fn remove_empty_dir(path: &Path) {
    match std::fs::remove_dir(path) {
        Err(error)
            if !matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            eprintln!("cleanup: cannot remove {}: {error}", path.display());
        }
        _ => {}
    }
}

/// Sends `signal` to process `pid`; one that has already ended is fine.
pub fn signal(pid: Pid, signal: Signal) {
    said(kill(pid, signal), || format!("cannot send {signal} to {pid}"));
}

/// Sends `signal` to process group `group`; one already empty is fine.
pub fn signal_group(group: Pid, signal: Signal) {
    said(killpg(group, signal), || format!("cannot send {signal} to group {group}"));
}

fn said(result: nix::Result<()>, what: impl FnOnce() -> String) {
    match result {
        Err(error) if error != Errno::ESRCH => eprintln!("cleanup: {}: {error}", what()),
        _ => {}
    }
}
