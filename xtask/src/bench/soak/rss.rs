//! The agent's resident memory over the soak: a thread reads
//! `/proc/<pid>/status` (`VmRSS`) of the current agent every
//! [`SAMPLE_EVERY`] and stops when dropped.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use super::unix_now;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// One reading: when (seconds since the epoch), which agent instance
/// (1-based), its resident memory in KiB.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Sample {
    pub(super) at: f64,
    pub(super) instance: usize,
    pub(super) rss_kib: u64,
}

/// The sampling thread; [`Rss::follow`] points it at another agent.
pub(super) struct Rss {
    /// pid << 32 | instance; 0 while no agent runs.
    target: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Rss {
    pub(super) fn start() -> Self {
        let target = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (target, samples, stop) =
                (Arc::clone(&target), Arc::clone(&samples), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = target.load(Ordering::Relaxed);
                    let (pid, instance) = (t >> 32, (t & 0xffff_ffff) as usize);
                    if let Some(rss_kib) = (pid != 0).then(|| rss_kib(pid)).flatten() {
                        let sample = Sample { at: unix_now(), instance, rss_kib };
                        samples.lock().unwrap_or_else(PoisonError::into_inner).push(sample);
                    }
                    thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        Self { target, samples, stop, thread: Some(thread) }
    }

    /// Samples process `pid` as agent instance `instance` from now on (0:
    /// none).
    pub(super) fn follow(&self, pid: u32, instance: usize) {
        let instance = u64::try_from(instance).unwrap_or(0) & 0xffff_ffff;
        self.target.store(u64::from(pid) << 32 | instance, Ordering::Relaxed);
    }

    /// Every sample so far.
    pub(super) fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Rss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                eprintln!("bench: the RSS sampling thread panicked");
            }
        }
    }
}

/// `VmRSS` of `/proc/<pid>/status` in KiB, while the process exists.
fn rss_kib(pid: u64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
