//! SIGINT and SIGTERM: forwarded to the agent by `run`, turned into a clean
//! teardown by `demo`. Handlers, not a blocked mask: children inherit the
//! mask but not the handlers (exec resets them), so they keep the default
//! behaviour.

use std::{
    os::unix::process::CommandExt as _,
    process::{Command, ExitStatus},
    sync::atomic::{AtomicBool, AtomicI32, Ordering},
};

use alb_tests::cmd;
use anyhow::{Context as _, Result, bail};
use nix::{
    errno::Errno,
    sys::{
        signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction},
        wait::{Id, WaitPidFlag, waitid},
    },
    unistd::Pid,
};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The child `run` forwards signals to; 0 when there is none (or it may
/// have been reaped).
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill(2) is async-signal-safe; the PID is our unreaped
        // child (see `run_forwarding`).
        unsafe { libc::kill(child, signal) };
    }
}

fn install() -> Result<()> {
    let action =
        SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only touches atomics and calls kill(2), both
        // async-signal-safe.
        unsafe { sigaction(signal, &action) }.with_context(|| format!("cannot handle {signal}"))?;
    }
    Ok(())
}

/// From now on SIGINT and SIGTERM only set a flag that [`check`] reports, so
/// the caller can stop at its next step and tear down what it built.
pub(crate) fn catch() -> Result<()> {
    install()
}

/// Fails if SIGINT or SIGTERM has arrived since [`catch`].
pub(crate) fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!("xtask: interrupted: stopping and cleaning up");
        bail!("interrupted");
    }
    Ok(())
}

/// Runs `cmd` in a process group of its own, forwards SIGINT and SIGTERM to
/// it and returns its exit status. It gets SIGTERM if we die first.
pub(crate) fn run_forwarding(mut cmd: Command) -> Result<ExitStatus> {
    install()?;
    cmd.process_group(0);
    // SAFETY: the closure only calls sigprocmask(2) and prctl(2), which are
    // async-signal-safe and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            SigSet::empty().thread_set_mask().map_err(std::io::Error::from)?;
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child =
        cmd.spawn().with_context(|| format!("cannot start `{}`", cmd::describe(&cmd)))?;
    let pid = i32::try_from(child.id()).context("child PID out of range")?;
    CHILD.store(pid, Ordering::SeqCst);
    // Wait for the end without reaping, so the PID stays ours (and safe to
    // signal) until CHILD is cleared.
    loop {
        match waitid(Id::Pid(Pid::from_raw(pid)), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("waitid"),
            Ok(_) => break,
        }
    }
    CHILD.store(0, Ordering::SeqCst);
    child.wait().context("cannot wait for the child")
}

/// The exit code a shell would report for `status`.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}
