//! Packet captures with tcpdump in a lab namespace, read back from the
//! pcap file, and ARP frames decoded field by field.

use std::{
    fmt,
    net::Ipv4Addr,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use alb_tests::{Lab, Proc};

/// One captured frame.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// Capture time since the epoch.
    pub(crate) time: Duration,
    pub(crate) data: Vec<u8>,
}

/// tcpdump writing a pcap file from one device; [`Capture::finish`] stops
/// it and returns the frames.
pub(crate) struct Capture {
    proc: Proc,
    file: PathBuf,
    what: String,
}

impl Capture {
    /// Starts `tcpdump -i dev filter` in namespace `ns` and waits until it
    /// captures.
    pub(crate) fn start(lab: &Lab, ns: &str, dev: &str, filter: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = lab.log_dir().join(format!("capture{n:02}-{dev}.pcap"));
        let path = file.to_str().expect("UTF-8 path").to_owned();
        let mut argv = vec![
            "tcpdump",
            "-i",
            dev,
            "-nn",
            "-p",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-s",
            "256",
            "-w",
            &path,
        ];
        argv.extend(filter.split_whitespace());
        let mut proc = lab.spawn(ns, &argv).unwrap_or_else(|e| panic!("tcpdump: {e:#}"));
        let deadline = Instant::now() + alb_tests::scaled(Duration::from_secs(10));
        while !proc.log().contains("listening on") {
            if let Some(status) = proc.exited().expect("tcpdump status") {
                panic!("tcpdump on {dev} in {ns} exited ({status}):\n{}", proc.log());
            }
            assert!(Instant::now() < deadline, "tcpdump on {dev} in {ns} did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { proc, file, what: format!("{dev} in {ns}") }
    }

    /// What tcpdump has written so far (`-U`: whole packets), to wait on.
    pub(crate) fn frames_so_far(&self) -> Vec<Frame> {
        std::fs::read(&self.file).ok().and_then(|bytes| parse_pcap(&bytes)).unwrap_or_default()
    }

    /// Stops tcpdump (after a short grace period for frames in flight) and
    /// returns what it captured.
    pub(crate) fn finish(mut self) -> Vec<Frame> {
        std::thread::sleep(Duration::from_millis(100));
        if let Err(error) = self.proc.stop() {
            eprintln!("capture on {}: tcpdump did not stop cleanly: {error:#}", self.what);
        }
        let bytes = std::fs::read(&self.file)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.file.display()));
        parse_pcap(&bytes).unwrap_or_else(|| {
            panic!("capture on {} is not a pcap file: {}", self.what, self.proc.log())
        })
    }
}

/// The records of a classic pcap file (either byte order, micro- or
/// nanosecond timestamps).
pub(crate) fn parse_pcap(bytes: &[u8]) -> Option<Vec<Frame>> {
    let magic: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let (little, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => return None,
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let secs = u32_at(at)?;
        let frac = u32_at(at + 4)?;
        let caplen = usize::try_from(u32_at(at + 8)?).ok()?;
        let data = bytes.get(at + 16..at + 16 + caplen)?.to_vec();
        let time = Duration::from_secs(u64::from(secs))
            + if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
        frames.push(Frame { time, data });
        at += 16 + caplen;
    }
    Some(frames)
}

/// An Ethernet + IPv4 ARP frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arp {
    pub(crate) eth_dst: String,
    pub(crate) eth_src: String,
    pub(crate) op: u16,
    pub(crate) sha: String,
    pub(crate) spa: Ipv4Addr,
    pub(crate) tha: String,
    pub(crate) tpa: Ipv4Addr,
}

pub(crate) const ARP_REQUEST: u16 = 1;
pub(crate) const ARP_REPLY: u16 = 2;

fn mac(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn ip(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

impl Arp {
    /// Decodes `frame` if it is an untagged Ethernet/IPv4 ARP frame.
    pub(crate) fn parse(frame: &[u8]) -> Option<Self> {
        if frame.len() < 42 || frame[12..14] != [0x08, 0x06] {
            return None;
        }
        let arp = &frame[14..42];
        // Ethernet / IPv4, 6-byte and 4-byte addresses.
        if arp[0..6] != [0x00, 0x01, 0x08, 0x00, 6, 4] {
            return None;
        }
        Some(Self {
            eth_dst: mac(&frame[0..6]),
            eth_src: mac(&frame[6..12]),
            op: u16::from_be_bytes([arp[6], arp[7]]),
            sha: mac(&arp[8..14]),
            spa: ip(&arp[14..18]),
            tha: mac(&arp[18..24]),
            tpa: ip(&arp[24..28]),
        })
    }

    /// Gratuitous form: SPA = TPA.
    pub(crate) fn is_gratuitous(&self) -> bool {
        self.spa == self.tpa
    }
}

impl fmt::Display for Arp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} {} sha {} spa {} tha {} tpa {}",
            self.eth_src,
            self.eth_dst,
            match self.op {
                ARP_REQUEST => "request",
                ARP_REPLY => "reply",
                _ => "op?",
            },
            self.sha,
            self.spa,
            self.tha,
            self.tpa
        )
    }
}

/// The ARP frames among `frames`, with their capture times.
pub(crate) fn arps(frames: &[Frame]) -> Vec<(Duration, Arp)> {
    frames.iter().filter_map(|f| Arp::parse(&f.data).map(|a| (f.time, a))).collect()
}

/// `frames` as readable lines, for assertion messages.
pub(crate) fn describe(arps: &[(Duration, Arp)]) -> String {
    arps.iter().map(|(t, a)| format!("  {:.6} {a}", t.as_secs_f64())).collect::<Vec<_>>().join("\n")
}
