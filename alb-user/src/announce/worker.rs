//! The teller: a thread of its own that sends clients their slave's MAC,
//! paced and in batches, so that telling half a million moved clients never
//! delays the event loop (link events, control requests, signals).
//!
//! Work comes as [`Job`]s, one per client slot: the clients of that slot and
//! the slave the slot points at. Each slot has a generation, bumped by the
//! agent whenever the slot moves; a job whose slot has moved since it was
//! queued is dropped (a newer job tells the clients where they are now), so
//! a client is never told a stale slave, even 1.1 s later at the repeat.
//!
//! Every client is told twice: at once with the gratuitous form (applied
//! at once by Linux, whatever its ARP locktime), and again [`RETELL_AFTER`]
//! later with the gratuitous and the kernel's RLB form (a lost frame, and
//! clients that ignore gratuitous ARP and take the RLB form outside their
//! locktime of 1 s). IPv6 clients get an unsolicited neighbour
//! advertisement with the override flag, in both passes.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use alb_common::{
    frames::UpdateForm,
    maps::{ClientKey, ClientKey6},
    wire::Mac,
};
use anyhow::{Context as _, Result};
use log::{debug, info, warn};

use super::{Announcer, Outgoing, client_advert, client_update};

/// Clients told per second at most (one frame each in the first pass, two
/// in the repeat): 500,000 moved clients are told within 1.25 s when the
/// machine keeps up. The kernel tells at most one client per
/// 10 ms tick and round of its table walk.
pub const TELL_RATE: u64 = 400_000;
/// Clients per batch: one sendmmsg (up to twice as many frames).
const BATCH: usize = 256;
/// Linux clients ignore a non-gratuitous ARP change within 1 s (locktime).
pub const RETELL_AFTER: Duration = Duration::from_millis(1100);

/// Clients of one slot, to be told the MAC of the slave the slot points at.
#[derive(Clone, Debug)]
pub struct Job {
    pub slot: u32,
    /// The slot's generation when the job was made.
    pub generation: u32,
    pub slave_ifindex: u32,
    pub slave_mac: Mac,
    /// `(client, its MAC)`: IPv4 clients.
    pub clients: Vec<(ClientKey, Mac)>,
    /// IPv6 clients, told after the IPv4 ones.
    pub clients6: Vec<(ClientKey6, Mac)>,
    /// Told again after [`RETELL_AFTER`].
    pub repeat: bool,
}

impl Job {
    /// Clients of both families.
    pub fn len(&self) -> usize {
        self.clients.len() + self.clients6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the teller has done, for the agent's summaries.
#[derive(Debug, Default)]
pub struct Counts {
    /// Clients told (each repeat counts again).
    pub told: AtomicU64,
    /// Clients not told because their slot moved again meanwhile.
    pub stale: AtomicU64,
    /// Frames the socket refused.
    pub failed: AtomicU64,
}

/// A job as queued, with when.
struct Queued {
    job: Job,
    at: Instant,
}

/// The agent's handle on the teller thread.
pub struct Teller {
    jobs: Option<Sender<Queued>>,
    generations: Arc<[AtomicU32]>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub counts: Arc<Counts>,
}

impl Teller {
    /// Starts the thread with its own socket; `slots` generations.
    pub fn start(slots: usize) -> Result<Self> {
        let announcer = Announcer::new()?;
        let generations: Arc<[AtomicU32]> = (0..slots).map(|_| AtomicU32::new(0)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let (jobs, queue) = mpsc::channel();
        let worker = Worker {
            announcer,
            queue,
            generations: Arc::clone(&generations),
            stop: Arc::clone(&stop),
            counts: Arc::clone(&counts),
            rate: TELL_RATE,
        };
        let (started, dropped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("alb-teller".to_owned())
            .spawn(move || {
                // It sends on the socket it was given and needs no
                // capability: none is left to it, before it sends.
                let result = crate::privileges::drop_all();
                let ok = result.is_ok();
                if started.send(result).is_ok() && ok {
                    worker.run();
                }
            })
            .context("cannot start the teller thread")?;
        dropped
            .recv()
            .context("the teller thread ended at its start")?
            .context("the teller thread cannot drop its capabilities")?;
        Ok(Self { jobs: Some(jobs), generations, stop, thread: Some(thread), counts })
    }

    /// The current generation of `slot`, for a new job.
    pub fn generation(&self, slot: u32) -> u32 {
        self.generations.get(slot as usize).map_or(0, |g| g.load(Ordering::Acquire))
    }

    /// `slot` moved: jobs queued for it are stale.
    pub fn moved(&self, slot: u32) {
        if let Some(generation) = self.generations.get(slot as usize) {
            generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Queues a job; never blocks.
    pub fn tell(&self, job: Job) {
        if job.is_empty() {
            return;
        }
        if let Some(jobs) = &self.jobs {
            if jobs.send(Queued { job, at: Instant::now() }).is_err() {
                warn!("the teller thread has stopped; clients are not told");
            }
        }
    }

    /// Stops the thread at its next batch (within milliseconds), dropping
    /// what it had not sent.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the teller thread panicked");
            }
        }
    }
}

impl Drop for Teller {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    announcer: Announcer,
    queue: Receiver<Queued>,
    generations: Arc<[AtomicU32]>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    /// Clients per second.
    rate: u64,
}

/// A job being sent: how far it got.
struct Sending {
    job: Job,
    next: usize,
}

impl Worker {
    fn run(self) {
        let mut current: Option<Sending> = None;
        let mut repeats: VecDeque<(Instant, Job)> = VecDeque::new();
        let mut pace = Pace::new(self.rate);
        let mut burst: Option<Burst> = None;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if current.is_none() {
                current = match self.next_job(&mut repeats, &mut burst) {
                    Next::Job(job) => Some(Sending { job, next: 0 }),
                    Next::Idle => None,
                    Next::Closed => return,
                };
            }
            let Some(sending) = current.as_mut() else { continue };
            if !self.current(&sending.job) {
                self.counts
                    .stale
                    .fetch_add((sending.job.len() - sending.next) as u64, Ordering::Relaxed);
                current = None;
                continue;
            }
            pace.wait(BATCH);
            let end = (sending.next + BATCH).min(sending.job.len());
            let sent = self.send(&sending.job, sending.next, end);
            if sending.job.repeat {
                if let Some(burst) = burst.as_mut() {
                    burst.clients += sent;
                    burst.last = Instant::now();
                }
            }
            sending.next = end;
            if end == sending.job.len() {
                let Sending { job, .. } = current.take().expect("a job is being sent");
                if job.repeat {
                    repeats
                        .push_back((Instant::now() + RETELL_AFTER, Job { repeat: false, ..job }));
                }
            }
        }
    }

    /// The next job: a new one first (a failover's first tells go before
    /// the repeats of older ones), else a repeat that is due; waits (up to
    /// the next repeat, and never long, so a stop is seen) when there is
    /// none. A burst of new jobs ends when none is left: it is logged.
    fn next_job(&self, repeats: &mut VecDeque<(Instant, Job)>, burst: &mut Option<Burst>) -> Next {
        match self.queue.try_recv() {
            Ok(queued) => return Next::Job(Self::started(queued, burst)),
            Err(TryRecvError::Disconnected) => return Next::Closed,
            Err(TryRecvError::Empty) => {}
        }
        if let Some(ended) = burst.take() {
            ended.log();
        }
        let now = Instant::now();
        if repeats.front().is_some_and(|(due, _)| *due <= now) {
            return Next::Job(repeats.pop_front().expect("a due repeat").1);
        }
        let wait = repeats
            .front()
            .map_or(Duration::from_millis(100), |(due, _)| due.saturating_duration_since(now))
            .min(Duration::from_millis(100));
        match self.queue.recv_timeout(wait) {
            Ok(queued) => Next::Job(Self::started(queued, burst)),
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    fn started(queued: Queued, burst: &mut Option<Burst>) -> Job {
        burst.get_or_insert(Burst { since: queued.at, clients: 0, last: queued.at });
        queued.job
    }

    fn current(&self, job: &Job) -> bool {
        self.generations
            .get(job.slot as usize)
            .is_some_and(|g| g.load(Ordering::Acquire) == job.generation)
    }

    /// Sends the updates of clients `from..to` of `job` (IPv4 clients
    /// first, then IPv6 ones); returns how many clients were told.
    fn send(&self, job: &Job, from: usize, to: usize) -> u64 {
        let v4 = job.clients.len();
        let mut told = 0;
        if from < v4 {
            told += self.send_v4(job, from, to.min(v4));
        }
        if to > v4 {
            told += self.send_v6(job, from.max(v4) - v4, to - v4);
        }
        told
    }

    /// IPv4 clients `from..to`. The first pass sends the gratuitous form
    /// only (what Linux clients apply at once), so a failover's first pass
    /// is twice as fast; the repeat sends it again with the RLB form.
    fn send_v4(&self, job: &Job, from: usize, to: usize) -> u64 {
        let forms: &[UpdateForm] = if job.repeat {
            &[UpdateForm::Gratuitous]
        } else {
            &[UpdateForm::Gratuitous, UpdateForm::Rlb]
        };
        let frames: Vec<Outgoing> = job.clients[from..to]
            .iter()
            .flat_map(|(key, mac)| {
                forms.iter().map(|&form| client_update(form, &job.slave_mac, key, mac))
            })
            .collect();
        self.send_frames(job.slave_ifindex, &frames, forms.len())
    }

    /// IPv6 clients `from..to`: one unsolicited advertisement each, in
    /// both passes.
    fn send_v6(&self, job: &Job, from: usize, to: usize) -> u64 {
        let frames: Vec<Outgoing> = job.clients6[from..to]
            .iter()
            .map(|(key, mac)| client_advert(&job.slave_mac, key, mac))
            .collect();
        self.send_frames(job.slave_ifindex, &frames, 1)
    }

    /// Sends `frames`, `per_client` of them per client; returns how many
    /// clients were told.
    fn send_frames(&self, ifindex: u32, frames: &[Outgoing], per_client: usize) -> u64 {
        match self.announcer.send_many(ifindex, frames) {
            Ok(sent) => {
                let told = (sent / per_client) as u64;
                self.counts.told.fetch_add(told, Ordering::Relaxed);
                let refused = frames.len() - sent;
                if refused > 0 {
                    self.counts.failed.fetch_add(refused as u64, Ordering::Relaxed);
                }
                told
            }
            Err(error) => {
                debug!("{error:#}");
                self.counts.failed.fetch_add(frames.len() as u64, Ordering::Relaxed);
                0
            }
        }
    }
}

/// First tells sent since a job reached an idle teller.
struct Burst {
    since: Instant,
    clients: u64,
    last: Instant,
}

impl Burst {
    fn log(&self) {
        let ms = self.last.saturating_duration_since(self.since).as_millis();
        if self.clients >= 100 {
            info!("told {} clients in {ms} ms", self.clients);
        } else if self.clients > 0 {
            debug!("told {} clients in {ms} ms", self.clients);
        }
    }
}

enum Next {
    Job(Job),
    Idle,
    Closed,
}

/// A token bucket of clients: at most `rate` per second, in bursts of one
/// batch.
struct Pace {
    rate: u64,
    start: Instant,
    spent: u64,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Self { rate: rate.max(1), start: Instant::now(), spent: 0 }
    }

    /// Waits until `clients` more may leave.
    fn wait(&mut self, clients: usize) {
        let now = Instant::now();
        let earned = u64::try_from(
            u128::from(self.rate) * now.duration_since(self.start).as_micros() / 1_000_000,
        )
        .unwrap_or(u64::MAX);
        // Idle time earns no more than one batch of credit.
        if earned > self.spent + BATCH as u64 {
            self.spent = earned - BATCH as u64;
        }
        self.spent += clients as u64;
        if self.spent > earned {
            let ahead = (self.spent - earned) * 1_000_000 / self.rate;
            std::thread::sleep(Duration::from_micros(ahead));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_holds_the_rate() {
        let mut pace = Pace::new(100_000);
        let start = Instant::now();
        for _ in 0..100 {
            pace.wait(BATCH);
        }
        // 6,400 clients at 100k/s: 64 ms, less the first batch's credit.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(55), "{took:?}");
    }

    #[test]
    fn a_moved_slot_makes_its_jobs_stale() {
        let mut teller = Teller::start(4).expect("AF_PACKET socket (needs root)");
        let generation = teller.generation(2);
        teller.moved(2);
        assert_ne!(teller.generation(2), generation);
        assert_eq!(teller.generation(3), 0);
        teller.stop();
    }
}
