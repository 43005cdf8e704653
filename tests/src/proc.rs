//! Long-running processes started in a lab namespace, stopped by PID.

use std::{
    fs::File,
    os::unix::process::{CommandExt as _, ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use nix::{
    errno::Errno,
    sys::{
        signal::{Signal, killpg},
        wait::{Id, WaitPidFlag, WaitStatus, waitid},
    },
    unistd::Pid,
};

use crate::{cmd, tidy};

/// How long [`Proc::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The PIDs of the processes a lab started and has not yet seen stopped.
pub(crate) type Registry = Arc<Mutex<Vec<u32>>>;

/// A process started in a namespace; dropping it stops it (SIGTERM, then
/// SIGKILL after [`STOP_TIMEOUT`]). Its standard output and error go to a log
/// file, printed when it is dropped during a panic.
///
/// The process leads a process group of its own: signals go to the whole
/// group (so `sh -c` wrappers take their children with them), a terminal's
/// Ctrl-C does not reach it (its owner stops it), and the leader is reaped
/// only once the group has been stopped, so its PID stays ours to signal
/// until then. It gets SIGTERM if the thread that started it ends first
/// (`PR_SET_PDEATHSIG`): start it from the thread that owns the lab.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    /// Known once the leader has exited (it may not be reaped yet).
    status: Option<ExitStatus>,
    reaped: bool,
    registry: Registry,
}

impl Proc {
    pub(crate) fn start(
        mut cmd: Command,
        name: &str,
        log: PathBuf,
        registry: Registry,
    ) -> Result<Self> {
        let file =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = file.try_clone().context("cannot duplicate the log file")?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err).process_group(0);
        // SAFETY: the closure only calls sigprocmask(2) and prctl(2), which
        // are async-signal-safe and touch no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                // The mask is inherited: a caller that blocks SIGTERM must
                // not make the process deaf to it.
                nix::sys::signal::SigSet::empty()
                    .thread_set_mask()
                    .map_err(std::io::Error::from)?;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child =
            cmd.spawn().with_context(|| format!("cannot start `{}`", cmd::describe(&cmd)))?;
        registry.lock().unwrap_or_else(PoisonError::into_inner).push(child.id());
        Ok(Self { name: name.to_owned(), child, log, status: None, reaped: false, registry })
    }

    /// The process ID (also its process group ID).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at start (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that collects the process's standard output and error.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process has printed so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the process has ended, without waiting (and
    /// without reaping it).
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            let status = waitid(Id::Pid(pid(self.pid())), flags)
                .with_context(|| format!("cannot wait for {}", self.name))?;
            self.status = match status {
                WaitStatus::Exited(_, code) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
                WaitStatus::Signaled(_, signal, core) => {
                    Some(ExitStatus::from_raw(signal as i32 | if core { 0x80 } else { 0 }))
                }
                _ => None,
            };
        }
        Ok(self.status)
    }

    /// Sends `signal` to the process's group. Does nothing once the process
    /// has been reaped (its PID is no longer ours then).
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.reaped {
            return Ok(());
        }
        match killpg(pid(self.pid()), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e)
                .with_context(|| format!("cannot send {signal} to {} ({})", self.name, self.pid())),
        }
    }

    /// Waits up to `timeout` ([`crate::scaled`]) for the process to end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + crate::scaled(timeout);
        loop {
            if let Some(status) = self.exited()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the process and its group: SIGTERM, then SIGKILL if the
    /// process is still there after `timeout`, and SIGKILL for whatever is
    /// left in its group once it has ended. Returns its exit status.
    pub fn stop_within(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if self.exited()?.is_none() {
            self.signal(Signal::SIGTERM)?;
            if self.wait_timeout(timeout)?.is_none() {
                eprintln!(
                    "lab: {} ({}) ignored SIGTERM for {timeout:?}; sending SIGKILL",
                    self.name,
                    self.pid()
                );
            }
        }
        // Stragglers (children of a shell, say), then the leader if need be.
        self.signal(Signal::SIGKILL)?;
        let status = self.child.wait().with_context(|| format!("cannot wait for {}", self.name))?;
        self.reaped = true;
        Ok(*self.status.get_or_insert(status))
    }

    /// [`Proc::stop_within`] with [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.stop_within(STOP_TIMEOUT)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Deregister first: once reaped, the lab must not signal the PID.
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|&p| p != self.child.id());
        if let Err(e) = self.stop() {
            eprintln!("lab: stopping {}: {e:#}", self.name);
        }
        if thread::panicking() {
            let log = self.log();
            let tail = log.char_indices().rev().nth(8000).map_or(&log[..], |(i, _)| &log[i..]);
            eprintln!(
                "---- {} ({}), {}, last output:\n{tail}\n---- end of {}",
                self.name,
                self.status.map_or_else(|| "not waited".to_owned(), |s| s.to_string()),
                self.log.display(),
                self.name
            );
        }
    }
}

fn pid(raw: u32) -> Pid {
    Pid::from_raw(i32::try_from(raw).unwrap_or(i32::MAX))
}

/// Whether process `pid` exists and has not exited (a zombie counts as
/// ended).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Stops process `pid`, which need not be our child: SIGTERM, then SIGKILL
/// after `timeout`.
pub(crate) fn terminate(pid_raw: u32, timeout: Duration) {
    if !alive(pid_raw) {
        return;
    }
    tidy::signal(pid(pid_raw), Signal::SIGTERM);
    let deadline = Instant::now() + crate::scaled(timeout);
    while alive(pid_raw) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if alive(pid_raw) {
        tidy::signal(pid(pid_raw), Signal::SIGKILL);
    }
}

/// Stops the group of an unreaped [`Proc`] whose owner lost it (the leader
/// stays a zombie, so the group ID cannot have been reused): SIGTERM, then
/// SIGKILL for the group after the leader ends or `timeout` passes.
pub(crate) fn terminate_group(leader: u32, timeout: Duration) {
    tidy::signal_group(pid(leader), Signal::SIGTERM);
    let deadline = Instant::now() + crate::scaled(timeout);
    while alive(leader) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    tidy::signal_group(pid(leader), Signal::SIGKILL);
}
