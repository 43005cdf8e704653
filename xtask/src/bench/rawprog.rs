//! The forwarders of the layout experiment: four-instruction TC programs
//! that redirect every frame to one device (`bpf_redirect` or
//! `bpf_redirect_peer` with a fixed ifindex), loaded with bpf(2) and
//! pinned so that `tc filter ... bpf da object-pinned` attaches them.
//! They do none of alb's per-packet work: the experiment weighs the
//! layouts alone.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;

/// `bpf_redirect(ifindex, flags)` and `bpf_redirect_peer(ifindex, flags)`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Helper {
    Redirect = 23,
    RedirectPeer = 155,
}

/// `BPF_F_INGRESS`: bpf_redirect into the target's receive path.
pub(crate) const BPF_F_INGRESS: u32 = 1;

/// `r1 = ifindex; r2 = flags; call helper; exit`.
fn program(helper: Helper, ifindex: u32, flags: u32) -> [u64; 4] {
    // mov64 imm: 0xb7 (dst in the low nibble of the regs byte); call 0x85;
    // exit 0x95.
    [insn(0xb7, 1, ifindex), insn(0xb7, 2, flags), insn(0x85, 0, helper as u32), insn(0x95, 0, 0)]
}

/// One instruction: opcode, registers (dst in the low nibble), offset,
/// immediate.
fn insn_off(code: u8, regs: u8, off: i16, imm: u32) -> u64 {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = regs;
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..].copy_from_slice(&imm.to_le_bytes());
    u64::from_le_bytes(b)
}

fn insn(code: u8, regs: u8, imm: u32) -> u64 {
    insn_off(code, regs, 0, imm)
}

/// The known-cost program of figure 2c: `r1 = n; do r1 -= 1 while r1 !=
/// 0; r0 = 0 (TC_ACT_OK); exit`, a bounded loop the verifier walks to
/// its end. `n = 0` is the empty program (`r0 = 0; exit`).
fn burn_program(n: u32) -> Vec<u64> {
    if n == 0 {
        return vec![insn(0xb7, 0, 0), insn(0x95, 0, 0)];
    }
    // add64 imm 0x07; jne imm 0x55 (offset -2: back to the add).
    vec![
        insn(0xb7, 1, n),
        insn(0x07, 1, u32::MAX),
        insn_off(0x55, 1, -2, 0),
        insn(0xb7, 0, 0),
        insn(0x95, 0, 0),
    ]
}

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-initialised `union bpf_attr` prefix of the
    // size passed; the kernel reads only within it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// A pinned forwarder; the pin is removed on drop (an attached filter
/// keeps the program).
pub(crate) struct Pinned {
    pub(crate) path: PathBuf,
    fd: OwnedFd,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ignored = std::fs::remove_file(&self.path);
    }
}

/// Loads a forwarder and pins it at `path` (on bpffs).
pub(crate) fn pin(helper: Helper, ifindex: u32, flags: u32, path: &Path) -> Result<Pinned> {
    load_and_pin(&program(helper, ifindex, flags), path)
        .with_context(|| format!("cannot load a {helper:?} forwarder"))
}

/// Loads the known-cost program of `n` loop iterations and pins it.
pub(crate) fn pin_burn(n: u32, path: &Path) -> Result<Pinned> {
    load_and_pin(&burn_program(n), path)
        .with_context(|| format!("cannot load the known-cost program ({n} iterations)"))
}

/// Mean ns per run of `pin` by BPF_PROG_TEST_RUN (100000 runs on a
/// 64-byte frame, median of 5 calls), less the empty program's, measured
/// in turn with it.
pub(crate) fn burn_ns(pin: &Pinned) -> Result<f64> {
    let empty = load(&burn_program(0))?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        with.push(test_run(&pin.fd, 100_000)?);
        without.push(test_run(&empty, 100_000)?);
    }
    Ok(super::median(&with) - super::median(&without))
}

/// BPF_PROG_TEST_RUN of `fd`, `repeat` runs: the kernel's mean ns per run.
fn test_run(fd: &OwnedFd, repeat: u32) -> Result<f64> {
    let data = [0u8; 64];
    let mut attr = [0u8; 80];
    attr[0..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
    attr[16..24].copy_from_slice(&(data.as_ptr() as u64).to_ne_bytes());
    attr[32..36].copy_from_slice(&repeat.to_ne_bytes());
    bpf(BPF_PROG_TEST_RUN, &mut attr).context("BPF_PROG_TEST_RUN")?;
    Ok(f64::from(u32::from_ne_bytes([attr[36], attr[37], attr[38], attr[39]])))
}

/// Loads a TC program.
fn load(insns: &[u64]) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_SCHED_CLS.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..48 + 8].copy_from_slice(b"alb_fwd\0");
    let fd = bpf(BPF_PROG_LOAD, &mut attr).context("BPF_PROG_LOAD")?;
    // SAFETY: a new descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Loads a TC program and pins it at `path`.
fn load_and_pin(insns: &[u64], path: &Path) -> Result<Pinned> {
    let fd = load(insns)?;
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut attr = [0u8; 16];
    attr[0..8].copy_from_slice(&(c_path.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    bpf(BPF_OBJ_PIN, &mut attr).with_context(|| format!("cannot pin {}", path.display()))?;
    Ok(Pinned { path: path.to_owned(), fd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarder_is_four_instructions() {
        let p = program(Helper::RedirectPeer, 7, 0);
        assert_eq!(p[0].to_le_bytes(), [0xb7, 1, 0, 0, 7, 0, 0, 0]);
        assert_eq!(p[1].to_le_bytes(), [0xb7, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p[2].to_le_bytes(), [0x85, 0, 0, 0, 155, 0, 0, 0]);
        assert_eq!(p[3].to_le_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn the_known_cost_loop_jumps_back_to_its_decrement() {
        let p = burn_program(300);
        assert_eq!(p[0].to_le_bytes(), [0xb7, 1, 0, 0, 44, 1, 0, 0]);
        assert_eq!(p[1].to_le_bytes(), [0x07, 1, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(p[2].to_le_bytes(), [0x55, 1, 0xfe, 0xff, 0, 0, 0, 0]);
        assert_eq!(burn_program(0).len(), 2);
    }
}
