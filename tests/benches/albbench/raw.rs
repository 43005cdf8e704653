//! The test-run floor: an empty TC program (`r0 = 0; exit`), loaded and
//! run with the bpf(2) syscall directly (aya loads programs only from an
//! object file). What it costs is what `BPF_PROG_TEST_RUN` adds to every
//! program it runs: the loop, the timer, the skb context switch-in.

use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd, RawFd},
};

use anyhow::{Context as _, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;

/// `mov64 r0, 0; exit`.
const EMPTY: [u64; 2] = [
    u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]),
    u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
];

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-initialised `union bpf_attr` prefix of the
    // size passed; the kernel reads (and for test-run writes) only within it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

fn put_u32(attr: &mut [u8], at: usize, value: u32) {
    attr[at..at + 4].copy_from_slice(&value.to_ne_bytes());
}

fn put_u64(attr: &mut [u8], at: usize, value: u64) {
    attr[at..at + 8].copy_from_slice(&value.to_ne_bytes());
}

/// A loaded empty SCHED_CLS program.
pub(crate) struct Empty {
    fd: OwnedFd,
}

impl Empty {
    pub(crate) fn load() -> Result<Self> {
        let license = c"GPL";
        let mut attr = [0u8; 128];
        put_u32(&mut attr, 0, BPF_PROG_TYPE_SCHED_CLS);
        put_u32(&mut attr, 4, EMPTY.len() as u32);
        put_u64(&mut attr, 8, EMPTY.as_ptr() as u64);
        put_u64(&mut attr, 16, license.as_ptr() as u64);
        // prog_name at offset 48 (after log_level, log_size, log_buf,
        // kern_version, prog_flags).
        attr[48..48 + 9].copy_from_slice(b"alb_empty");
        let fd = bpf(BPF_PROG_LOAD, &mut attr).context("cannot load the empty program")?;
        // SAFETY: a new descriptor the kernel just gave us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Self { fd })
    }

    /// Runs `frame` `repeat` times with `ctx`; the kernel's mean ns per run.
    pub(crate) fn run(&self, frame: &[u8], ctx: &[u8], repeat: u32) -> Result<u32> {
        use std::os::fd::AsRawFd as _;
        let mut out = vec![0u8; frame.len() + 256];
        let mut attr = [0u8; 80];
        put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
        put_u32(&mut attr, 8, frame.len() as u32);
        put_u32(&mut attr, 12, out.len() as u32);
        put_u64(&mut attr, 16, frame.as_ptr() as u64);
        put_u64(&mut attr, 24, out.as_mut_ptr() as u64);
        put_u32(&mut attr, 32, repeat);
        put_u32(&mut attr, 40, ctx.len() as u32);
        put_u64(&mut attr, 48, ctx.as_ptr() as u64);
        bpf(BPF_PROG_TEST_RUN, &mut attr).context("test-run of the empty program")?;
        Ok(u32::from_ne_bytes(attr[36..40].try_into().expect("4 bytes")))
    }
}
