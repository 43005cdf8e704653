//! Programs built by hand and run with the bpf(2) syscall directly (aya
//! loads programs only from an object file):
//!
//! - [`Empty`], `r0 = 0; exit`: what it costs is what `BPF_PROG_TEST_RUN`
//!   adds to every program it runs (the loop, the timer, the skb context
//!   switch-in): the floor of the method;
//! - [`Restore`], for rows whose program rewrites the frame: test-run runs
//!   the program `repeat` times on one skb and never restores it, so from
//!   the second run on a rewriting program would see its own output. This
//!   program writes the original bytes back (`bpf_skb_store_bytes`) and
//!   tail-calls the program under test, so every run starts from the
//!   row's frame. Its own cost is measured by tail-calling [`Empty`]
//!   instead, in the same round, and subtracted.

use std::{
    io,
    os::fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
};

use anyhow::{Context as _, Result, ensure};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_FUNC_SKB_STORE_BYTES: i32 = 9;
const BPF_FUNC_TAIL_CALL: i32 = 12;
/// What [`Restore`] returns when its tail call fails (no TC action is 255).
pub(crate) const TAIL_CALL_FAILED: u32 = 255;

/// One instruction: opcode, registers, offset, immediate.
pub(crate) fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let off = off.to_le_bytes();
    let imm = imm.to_le_bytes();
    u64::from_le_bytes([code, dst | (src << 4), off[0], off[1], imm[0], imm[1], imm[2], imm[3]])
}

const MOV64_IMM: u8 = 0xb7;
const MOV64_REG: u8 = 0xbf;
const ADD64_IMM: u8 = 0x07;
const ST_MEM_W: u8 = 0x62;
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
/// `src_reg` of an `ld_imm64` whose immediate is a map's fd.
const PSEUDO_MAP_FD: u8 = 1;

pub(crate) fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
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

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    u32::try_from(fd.as_raw_fd()).expect("a descriptor is not negative")
}

/// A SCHED_CLS program of `insns`, named `name` (at most 15 bytes); a
/// refusal carries the verifier's log.
pub(crate) fn load(insns: &[u64], name: &str) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_SCHED_CLS);
    put_u32(&mut attr, 4, u32::try_from(insns.len())?);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    put_u32(&mut attr, 24, 1); // log_level
    put_u32(&mut attr, 28, u32::try_from(log.len())?);
    put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
    // prog_name at offset 48 (after kern_version, prog_flags).
    attr[48..48 + name.len()].copy_from_slice(name.as_bytes());
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: a new descriptor the kernel just gave us.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(e).context(format!(
                "the verifier refused {name}: {}",
                String::from_utf8_lossy(&log[..end])
            ))
        }
    }
}

/// One test-run of program `fd`: the return code, the kernel's mean ns
/// per run and the frame after the last run.
pub(crate) fn test_run(
    fd: BorrowedFd<'_>,
    frame: &[u8],
    ctx: &[u8],
    repeat: u32,
) -> Result<(u32, u32, Vec<u8>)> {
    let mut out = vec![0u8; frame.len() + 256];
    let mut attr = [0u8; 80];
    put_u32(&mut attr, 0, fd_u32(fd));
    put_u32(&mut attr, 8, u32::try_from(frame.len())?);
    put_u32(&mut attr, 12, u32::try_from(out.len())?);
    put_u64(&mut attr, 16, frame.as_ptr() as u64);
    put_u64(&mut attr, 24, out.as_mut_ptr() as u64);
    put_u32(&mut attr, 32, repeat);
    // No context at all when none is given: the kernel refuses a context
    // pointer with size 0.
    if !ctx.is_empty() {
        put_u32(&mut attr, 40, u32::try_from(ctx.len())?);
        put_u64(&mut attr, 48, ctx.as_ptr() as u64);
    }
    bpf(BPF_PROG_TEST_RUN, &mut attr).context("test-run")?;
    let retval = u32::from_ne_bytes(attr[4..8].try_into().expect("4 bytes"));
    let ns = u32::from_ne_bytes(attr[36..40].try_into().expect("4 bytes"));
    let size_out = u32::from_ne_bytes(attr[12..16].try_into().expect("4 bytes"));
    out.truncate(size_out as usize);
    Ok((retval, ns, out))
}

/// A loaded empty SCHED_CLS program.
pub(crate) struct Empty {
    fd: OwnedFd,
}

impl Empty {
    pub(crate) fn load() -> Result<Self> {
        let empty = [insn(MOV64_IMM, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)];
        Ok(Self { fd: load(&empty, "alb_empty")? })
    }

    /// Runs `frame` `repeat` times with `ctx`; the kernel's mean ns per run.
    pub(crate) fn run(&self, frame: &[u8], ctx: &[u8], repeat: u32) -> Result<u32> {
        Ok(test_run(self.fd.as_fd(), frame, ctx, repeat)?.1)
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Writes `bytes` back at `offset`, then tail-calls the program in its
/// one-slot program array.
pub(crate) struct Restore {
    fd: OwnedFd,
    slots: OwnedFd,
}

impl Restore {
    pub(crate) fn load(offset: usize, bytes: &[u8]) -> Result<Self> {
        ensure!(!bytes.is_empty() && bytes.len() <= 256, "{} bytes to restore", bytes.len());
        let mut attr = [0u8; 72];
        put_u32(&mut attr, 0, BPF_MAP_TYPE_PROG_ARRAY);
        put_u32(&mut attr, 4, 4);
        put_u32(&mut attr, 8, 4);
        put_u32(&mut attr, 12, 1);
        let map = bpf(BPF_MAP_CREATE, &mut attr).context("cannot create a program array")?;
        // SAFETY: a new descriptor the kernel just gave us.
        let slots = unsafe { OwnedFd::from_raw_fd(map as RawFd) };

        // The bytes go on the stack in 4-byte words, 8-byte aligned.
        let room = i16::try_from(bytes.len().div_ceil(8) * 8)?;
        let mut code = vec![insn(MOV64_REG, 6, 1, 0, 0)];
        for (i, word) in bytes.chunks(4).enumerate() {
            let mut padded = [0u8; 4];
            padded[..word.len()].copy_from_slice(word);
            let at = -room + i16::try_from(4 * i)?;
            code.push(insn(ST_MEM_W, 10, 0, at, i32::from_le_bytes(padded)));
        }
        code.extend([
            insn(MOV64_REG, 1, 6, 0, 0),
            insn(MOV64_IMM, 2, 0, 0, i32::try_from(offset)?),
            insn(MOV64_REG, 3, 10, 0, 0),
            insn(ADD64_IMM, 3, 0, 0, -i32::from(room)),
            insn(MOV64_IMM, 4, 0, 0, i32::try_from(bytes.len())?),
            insn(MOV64_IMM, 5, 0, 0, 0),
            insn(CALL, 0, 0, 0, BPF_FUNC_SKB_STORE_BYTES),
            insn(MOV64_REG, 1, 6, 0, 0),
            insn(LD_IMM64, 2, PSEUDO_MAP_FD, 0, slots.as_raw_fd()),
            0,
            insn(MOV64_IMM, 3, 0, 0, 0),
            insn(CALL, 0, 0, 0, BPF_FUNC_TAIL_CALL),
            insn(MOV64_IMM, 0, 0, 0, TAIL_CALL_FAILED as i32),
            insn(EXIT, 0, 0, 0, 0),
        ]);
        let fd = load(&code, "alb_restore")?;
        Ok(Self { fd, slots })
    }

    /// Makes `program` the one the tail call enters.
    pub(crate) fn enter(&self, program: BorrowedFd<'_>) -> Result<()> {
        let key = 0u32;
        let value = fd_u32(program);
        let mut attr = [0u8; 32];
        put_u32(&mut attr, 0, fd_u32(self.slots.as_fd()));
        put_u64(&mut attr, 8, (&raw const key) as u64);
        put_u64(&mut attr, 16, (&raw const value) as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).context("cannot set the tail call's program")?;
        Ok(())
    }

    /// Runs `frame` `repeat` times; the return code, the mean ns per run
    /// and the frame after the last run.
    pub(crate) fn run(&self, frame: &[u8], ctx: &[u8], repeat: u32) -> Result<(u32, u32, Vec<u8>)> {
        test_run(self.fd.as_fd(), frame, ctx, repeat)
    }
}
