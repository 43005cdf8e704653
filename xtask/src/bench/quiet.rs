//! Was the machine quiet during a measurement? The CPU time every process
//! used, sampled around it from /proc: what the bench's own process tree
//! (the agent, iperf3, albbench) and kernel threads (the softirq work of
//! the traffic measured) used is ours; anything else that burned CPU
//! meanwhile is another user of this shared machine, and the measurement
//! is discarded.

use std::{collections::HashMap, time::Instant};

use serde_json::{Value, json};

struct Process {
    name: String,
    ppid: u32,
    cpu_s: f64,
}

/// Every process's CPU seconds at one moment.
pub(crate) struct Snapshot {
    at: Instant,
    procs: HashMap<u32, Process>,
}

impl Snapshot {
    pub(crate) fn take() -> Self {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut procs = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                if let Some(p) = parse_stat(&stat, hz) {
                    procs.insert(pid, p);
                }
            }
        }
        Self { at: Instant::now(), procs }
    }

    /// The bench's own tree: `root` and its descendants, and kernel
    /// threads (kthreadd, pid 2, and its children).
    fn ours(&self, pid: u32, root: u32) -> bool {
        let mut p = pid;
        for _ in 0..64 {
            if p == root || p == 2 {
                return true;
            }
            match self.procs.get(&p) {
                Some(proc) if proc.ppid != 0 => p = proc.ppid,
                _ => return false,
            }
        }
        false
    }
}

/// `/proc/PID/stat`: name, parent and user + system CPU seconds.
fn parse_stat(stat: &str, hz: f64) -> Option<Process> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(').map_or("?", |(_, n)| n).to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state, ppid, ..., utime (14th field of the line,
    // 12th after the name) and stime.
    let at = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Process { name, ppid: at(1)? as u32, cpu_s: (at(11)? + at(12)?) as f64 / hz })
}

/// What the others used between two snapshots: their CPU seconds as a
/// share of one CPU over the wall time, and the busiest of them.
#[derive(Clone, Debug)]
pub(crate) struct Others {
    pub(crate) share: f64,
    pub(crate) busiest: Vec<(String, f64)>,
}

impl Others {
    pub(crate) fn between(before: &Snapshot, after: &Snapshot) -> Self {
        Self::between_for(before, after, std::process::id())
    }

    fn between_for(before: &Snapshot, after: &Snapshot, root: u32) -> Self {
        let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let mut used: Vec<(String, f64)> = after
            .procs
            .iter()
            .filter(|(pid, _)| !after.ours(**pid, root) && !before.ours(**pid, root))
            .map(|(pid, p)| {
                // A process started meanwhile used all its CPU meanwhile.
                let was = before.procs.get(pid).map_or(0.0, |b| b.cpu_s);
                (p.name.clone(), (p.cpu_s - was).max(0.0))
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        used.sort_by(|a, b| b.1.total_cmp(&a.1));
        let share = used.iter().map(|(_, s)| s).sum::<f64>() / wall;
        used.truncate(3);
        Self { share, busiest: used.into_iter().map(|(n, s)| (n, s / wall)).collect() }
    }

    /// Others used more than `share` of one CPU (`cargo xtask bench
    /// --busy-share`, 0.2 by default: a compiler or another benchmark, not a
    /// daemon's tick).
    pub(crate) fn busy(&self, share: f64) -> bool {
        self.share > share
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "share_of_one_cpu": self.share,
            "busiest": self.busiest.iter().map(|(n, s)| json!({ "name": n, "share": s })).collect::<Vec<_>>(),
        })
    }
}

/// Waits, in half-second windows, until one window is quiet or `max` has
/// passed; returns how long it waited. A round started on a busy machine
/// would only be discarded.
pub(crate) fn wait_quiet(max: std::time::Duration, share: f64) -> std::time::Duration {
    let start = Instant::now();
    while start.elapsed() < max {
        let before = Snapshot::take();
        std::thread::sleep(std::time::Duration::from_millis(500));
        if !Others::between(&before, &Snapshot::take()).busy(share) {
            break;
        }
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_spaces_and_parens_in_the_name_parse() {
        let line = "1234 (rustc (x) y) R 99 1234 1234 0 -1 4194304 1 0 0 0 250 50 0 0 20 0 1 0";
        let p = parse_stat(line, 100.0).expect("parses");
        assert_eq!((p.name.as_str(), p.ppid), ("rustc (x) y", 99));
        assert!((p.cpu_s - 3.0).abs() < 1e-9, "utime 250 + stime 50 ticks at 100 Hz");
    }

    #[test]
    fn our_children_and_kernel_threads_are_not_others() {
        let snap = |cpu: f64| Snapshot {
            at: Instant::now(),
            procs: HashMap::from([
                (10, Process { name: "bench".into(), ppid: 1, cpu_s: cpu }),
                (11, Process { name: "iperf3".into(), ppid: 10, cpu_s: cpu }),
                (12, Process { name: "ksoftirqd/0".into(), ppid: 2, cpu_s: cpu }),
                (20, Process { name: "rustc".into(), ppid: 1, cpu_s: cpu }),
            ]),
        };
        let (a, mut b) = (snap(1.0), snap(1.5));
        b.at = a.at + std::time::Duration::from_secs(1);
        assert!(b.ours(11, 10) && b.ours(12, 10) && !b.ours(20, 10));
        let others = Others::between_for(&a, &b, 10);
        assert!((others.share - 0.5).abs() < 1e-9, "rustc alone, half a CPU: {others:?}");
        assert!(others.busy(0.2) && !others.busy(0.6) && others.busiest[0].0 == "rustc");
    }
}
