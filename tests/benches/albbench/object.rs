//! A loaded object driven by hand (the scale figure): its maps, its event
//! ring, and test-runs of its programs with `repeat`.

use alb::datapath::{Datapath, Maps};
use anyhow::{Context as _, Result};
use aya::programs::{TestRun as _, TestRunOptions};

/// `TC_ACT_REDIRECT` as test-run reports it.
pub(crate) const TC_ACT_REDIRECT: u32 = 7;

/// `sizeof(struct __sk_buff)`, and the offset of `ifindex` in it.
const SK_BUFF_LEN: usize = 192;
const SK_BUFF_IFINDEX: usize = 40;

/// The `__sk_buff` test-run starts from: `ifindex` names the receiving
/// device (0: none, as on egress).
pub(crate) fn ctx(ifindex: u32) -> [u8; SK_BUFF_LEN] {
    let mut ctx = [0u8; SK_BUFF_LEN];
    ctx[SK_BUFF_IFINDEX..SK_BUFF_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// One test-run: the return code and the kernel's mean ns per run.
pub(crate) struct Run {
    pub(crate) action: u32,
    pub(crate) ns: u32,
}

/// A loaded object with published state and its maps.
pub(crate) struct Object {
    pub(crate) ebpf: Datapath,
    pub(crate) maps: Maps,
}

impl Object {
    pub(crate) fn from_loaded(mut ebpf: Datapath) -> Result<Self> {
        let maps = ebpf.take_maps()?;
        Ok(Self { ebpf, maps })
    }

    /// Runs `frame` `repeat` times.
    pub(crate) fn run(
        &mut self,
        program: &str,
        frame: &[u8],
        ctx: &[u8],
        repeat: u32,
    ) -> Result<Run> {
        let classifier = self.ebpf.program(program)?;
        let result = classifier
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(ctx),
                repeat,
                ..TestRunOptions::default()
            })
            .with_context(|| format!("test-run of {program}"))?;
        let ns = u32::try_from(result.duration.as_nanos()).unwrap_or(u32::MAX);
        Ok(Run { action: result.return_value, ns })
    }
}
