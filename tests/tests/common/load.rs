//! Transmit load the server sends through its buckets: UDP over IPv6 from
//! the server namespace to addresses that are no client's (IPv6 always goes
//! by bucket), chosen so that each lands in a bucket of a given slave, and
//! delivered to a client's MAC through static neighbour entries (so no
//! neighbour discovery is needed and the client drops them quietly).

use std::{
    fs::File,
    net::{Ipv6Addr, SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use alb_common::assign::bucket_of_v6;
use alb_tests::{Lab, netns};
use nix::sched::{CloneFlags, setns};

/// The first address tried for bucket traffic, 2001:2::1:0: in the lab's
/// subnet, but no client's (clients are 2001:2::11 up to 2001:2::250).
const FIRST: u128 = 0x2001_0002_0000_0000_0000_0000_0001_0000;

/// The bucket of IPv6 destination `addr`, as `alb_tx` computes it.
pub(crate) fn bucket_of(addr: Ipv6Addr) -> usize {
    bucket_of_v6(&addr.octets()) as usize
}

/// `count` destinations, after skipping `skip` matches, whose buckets are
/// all different and all on slave index `slave` in `buckets` (the
/// `ALB_TX_BUCKETS` map).
pub(crate) fn destinations_on(
    buckets: &[u32],
    slave: u32,
    skip: usize,
    count: usize,
) -> Vec<Ipv6Addr> {
    let mut seen = std::collections::BTreeSet::new();
    (0..1_000_000_u128)
        .map(|i| Ipv6Addr::from(FIRST + i))
        .filter(|&addr| {
            let bucket = bucket_of(addr);
            buckets[bucket] == slave && seen.insert(bucket)
        })
        .skip(skip)
        .take(count)
        .collect()
}

/// Static neighbour entries on the master: every address of `addrs` at
/// `mac` (a client's), so the server sends to them without asking.
pub(crate) fn neighbours(lab: &Lab, addrs: &[Ipv6Addr], mac: &str) {
    for addr in addrs {
        let addr = addr.to_string();
        lab.ip(
            lab.srv(),
            &[
                "-6",
                "neigh",
                "replace",
                &addr,
                "lladdr",
                mac,
                "dev",
                lab.master(),
                "nud",
                "permanent",
            ],
        )
        .unwrap_or_else(|e| panic!("neighbour {addr}: {e:#}"));
    }
}

/// UDP datagrams sent from the server namespace by a thread of ours, in
/// phases: phase `i` sends to `phases[i]` for `phase_len`, the last phase
/// until [`UdpLoad::stop`]. Every `every`, one datagram of `size` bytes
/// goes to each destination of the current phase, so the destinations of
/// a phase carry the same load.
pub(crate) struct UdpLoad {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl UdpLoad {
    pub(crate) fn start(
        lab: &Lab,
        phases: Vec<Vec<Ipv6Addr>>,
        phase_len: Duration,
        size: usize,
        every: Duration,
    ) -> Self {
        assert!(phases.iter().all(|p| !p.is_empty()), "every phase has destinations");
        let ns_path = netns::path(lab.srv());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let ns = File::open(&ns_path).unwrap_or_else(|e| panic!("{}: {e}", ns_path.display()));
            // setns(2) moves only this thread, which ends with the load.
            setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the server namespace");
            let socket = UdpSocket::bind("[::]:0").expect("UDP socket in the server namespace");
            let payload = vec![0xa5_u8; size];
            let start = Instant::now();
            let mut sent = 0_u64;
            let mut tick = 0_u32;
            while !flag.load(Ordering::Relaxed) {
                let due = start + every * tick;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                tick += 1;
                let phase = usize::try_from(start.elapsed().as_nanos() / phase_len.as_nanos())
                    .unwrap_or(usize::MAX)
                    .min(phases.len() - 1);
                for addr in &phases[phase] {
                    // Discard port; a refused send (a full queue) is only
                    // less load.
                    if socket.send_to(&payload, SocketAddr::from((*addr, 9))).is_ok() {
                        sent += 1;
                    }
                }
            }
            sent
        });
        Self { stop, handle: Some(handle) }
    }

    /// Stops sending; returns how many datagrams were sent.
    pub(crate) fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map_or(0, |h| h.join().expect("UDP load thread"))
    }
}

impl Drop for UdpLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                eprintln!("the UDP load thread panicked");
            }
        }
    }
}
