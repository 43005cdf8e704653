//! Hand-made frames sent from inside a lab namespace: an `AF_PACKET` raw
//! socket opened by a thread that has entered the namespace (a socket stays
//! in the namespace it was created in, so the test thread can then send
//! through it), ARP frames built field by field, and a small reproducible
//! pseudo-random generator for floods.

use std::{
    ffi::CString,
    fs::File,
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    thread,
    time::{Duration, Instant},
};

use alb_tests::netns;
use nix::sched::{CloneFlags, setns};

/// `ff:ff:ff:ff:ff:ff`.
pub(crate) const BROADCAST: [u8; 6] = [0xff; 6];

const ETH_P_ARP: u16 = 0x0806;

/// `02:a1:c0:00:00:03` as bytes.
pub(crate) fn mac(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("MAC {text:?}: {e}")))
        .collect();
    bytes.try_into().unwrap_or_else(|_| panic!("MAC {text:?} is not six bytes"))
}

/// An Ethernet/IPv4 ARP frame, padded to the 60-byte Ethernet minimum.
pub(crate) fn arp(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&eth_dst);
    frame.extend_from_slice(&eth_src);
    frame.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    // Ethernet, IPv4, 6-byte and 4-byte addresses.
    frame.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]);
    frame.extend_from_slice(&op.to_be_bytes());
    frame.extend_from_slice(&sha);
    frame.extend_from_slice(&spa.octets());
    frame.extend_from_slice(&tha);
    frame.extend_from_slice(&tpa.octets());
    frame.resize(60, 0);
    frame
}

/// A gratuitous ARP (sender IP = target IP = `ip`) from `mac`, broadcast:
/// a request (`op` 1) or a reply (`op` 2).
pub(crate) fn gratuitous(mac: [u8; 6], ip: Ipv4Addr, op: u16) -> Vec<u8> {
    arp(BROADCAST, mac, op, mac, ip, if op == 1 { [0; 6] } else { BROADCAST }, ip)
}

/// A raw `AF_PACKET` socket bound to one device of one namespace; it
/// receives nothing (protocol 0) and sends whole Ethernet frames.
pub(crate) struct RawSocket {
    fd: OwnedFd,
    ifindex: i32,
    what: String,
}

impl RawSocket {
    /// Opens a socket on device `dev` of namespace `ns`.
    pub(crate) fn open(ns: &str, dev: &str) -> Self {
        let ns_path = netns::path(ns);
        let name = dev.to_owned();
        let (fd, ifindex) = thread::spawn(move || {
            let file =
                File::open(&ns_path).unwrap_or_else(|e| panic!("{}: {e}", ns_path.display()));
            // setns(2) moves only this thread, which ends once the socket
            // exists; the socket stays in the namespace it was made in.
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the lab namespace");
            let c_name = CString::new(name.clone()).expect("device name without NUL");
            // SAFETY: a valid NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
            assert_ne!(ifindex, 0, "no device {name}: {}", io::Error::last_os_error());
            // SAFETY: plain socket(2); the descriptor is owned just below.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            assert!(raw >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
            // SAFETY: `raw` is a fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            (fd, i32::try_from(ifindex).expect("ifindex fits i32"))
        })
        .join()
        .expect("raw socket thread");
        Self { fd, ifindex, what: format!("{dev} in {ns}") }
    }

    /// Sends one frame; fails with the kernel's error (ENOBUFS when the
    /// device queue is full).
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = u16::try_from(libc::AF_PACKET).expect("AF_PACKET fits u16");
        addr.sll_protocol = ETH_P_ARP.to_be();
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` and `addr` outlive the call; the lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&addr).cast(),
                u32::try_from(size_of::<libc::sockaddr_ll>()).expect("sockaddr_ll size"),
            )
        };
        if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Sends `frames` in bursts of `burst` frames every `every`, retrying a
    /// frame the device queue refused (ENOBUFS) after a short pause; gives
    /// up at `deadline`. Returns how many were sent and how long it took.
    pub(crate) fn send_paced(
        &self,
        frames: &[Vec<u8>],
        burst: usize,
        every: Duration,
        deadline: Duration,
    ) -> (usize, Duration) {
        let start = Instant::now();
        let mut sent = 0;
        for (n, chunk) in frames.chunks(burst.max(1)).enumerate() {
            let due = start + every * u32::try_from(n).unwrap_or(u32::MAX);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            for frame in chunk {
                loop {
                    assert!(
                        start.elapsed() < deadline,
                        "sending through {} took over {deadline:?} ({sent} sent)",
                        self.what
                    );
                    match self.send(frame) {
                        Ok(()) => break,
                        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            thread::sleep(Duration::from_micros(200));
                        }
                        Err(e) => panic!("send through {}: {e}", self.what),
                    }
                }
                sent += 1;
            }
        }
        (sent, start.elapsed())
    }
}

/// xorshift64*: a reproducible stream of pseudo-random numbers (the floods
/// must be the same on every run).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
