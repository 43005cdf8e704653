//! A test-only fault switch for map writes, set in the agent's environment
//! (never a config key or an option a user sets): with
//! `ALB_TEST_MAP_WRITE_FAULT=<path>`, every map write the agent makes while
//! `<path>` exists goes to the kernel with BPF_NOEXIST, which an array
//! (whose entries all exist) refuses with EEXIST and a batch delete (which
//! takes no such flag) with EINVAL. The write really reaches bpf() and is
//! really refused there, as one refused for any other cause; removing the
//! file is the cause gone.

use std::path::PathBuf;

/// The environment variable.
const ENV: &str = "ALB_TEST_MAP_WRITE_FAULT";

/// BPF_ANY and BPF_NOEXIST (uapi/linux/bpf.h).
const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

/// The switch, read once when the data path is loaded.
#[derive(Debug, Default)]
pub(super) struct WriteFault {
    path: Option<PathBuf>,
}

impl WriteFault {
    pub(super) fn from_env() -> Self {
        let path = std::env::var_os(ENV).filter(|p| !p.is_empty()).map(PathBuf::from);
        if let Some(path) = &path {
            log::warn!("{ENV}: map writes are refused while {} exists", path.display());
        }
        Self { path }
    }

    /// The flags of the next map write.
    pub(super) fn flags(&self) -> u64 {
        match &self.path {
            Some(path) if path.exists() => BPF_NOEXIST,
            _ => BPF_ANY,
        }
    }
}
