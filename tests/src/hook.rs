//! The hook the suite runs the agent on. The host has TCX, which the agent
//! picks by itself; the clsact pass (`ALB_TEST_HOOK=clsact` in the
//! environment of the test binary, as `cargo xtask test` runs its second
//! pass) gives every process the lab starts in a namespace the agent's
//! developer switch `ALB_HOOK=clsact` ([`netns::command`]), so agents
//! started in any way (an [`AgentCommand`], `alb` run by [`run_alb`], a
//! wrapper, a copy of the binary) attach through clsact, the hook of
//! kernels before 6.6. Tests assert the hook of their pass with
//! [`expected`].
//!
//! [`netns::command`]: crate::netns::command
//! [`AgentCommand`]: crate::AgentCommand
//! [`run_alb`]: crate::agent::run_alb

/// Names the pass's hook in the environment of a test binary: `clsact`,
/// or `tcx` (the default when unset or empty).
pub const TEST_HOOK_VAR: &str = "ALB_TEST_HOOK";

/// The agent's developer switch (alb-user's `datapath::HOOK_VAR`).
pub const AGENT_HOOK_VAR: &str = "ALB_HOOK";

/// How the agent attaches its programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// BPF links (Linux >= 6.6).
    Tcx,
    /// `cls_bpf` filters on a clsact qdisc.
    Clsact,
}

impl Hook {
    /// `tcx` or `clsact`, as `alb status` and `ALB_HOOK` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        }
    }
}

/// The value [`TEST_HOOK_VAR`] holds, if any.
fn requested() -> Option<String> {
    std::env::var(TEST_HOOK_VAR).ok().filter(|value| !value.is_empty())
}

/// Whether the running kernel has TCX links (Linux >= 6.6, from its
/// release). The agent probes for itself; this is what the tests expect
/// of it (a guest's 5.10 or 6.1 has no TCX, so the agent picks clsact).
pub fn kernel_has_tcx() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_else(|e| panic!("/proc/sys/kernel/osrelease: {e}"));
    tcx_in(&release).unwrap_or_else(|| panic!("cannot read a kernel version from {release:?}"))
}

/// Whether kernel release `release` ("6.1.0-57-amd64") is 6.6 or later.
fn tcx_in(release: &str) -> Option<bool> {
    let mut numbers = release.trim().split(['.', '-', '+']).map(|n| n.parse::<u32>().ok());
    let (major, minor) = (numbers.next()??, numbers.next()??);
    Some((major, minor) >= (6, 6))
}

/// Whether this pass forces a hook ([`TEST_HOOK_VAR`] set): then the
/// agent says it attached through it because of `ALB_HOOK`.
pub fn forced() -> bool {
    requested().is_some()
}

/// The hook of this pass: the one [`TEST_HOOK_VAR`] names, else the
/// kernel's own (TCX where it exists, else clsact). Panics on a value that
/// names no hook: the pass would test nothing it says.
pub fn expected() -> Hook {
    match requested().as_deref() {
        None if kernel_has_tcx() => Hook::Tcx,
        None => Hook::Clsact,
        Some("tcx") => Hook::Tcx,
        Some("clsact") => Hook::Clsact,
        Some(other) => panic!("{TEST_HOOK_VAR}={other:?} names no hook (tcx or clsact)"),
    }
}

/// The environment an agent of this pass gets: [`AGENT_HOOK_VAR`] set to
/// the pass's hook when one is asked for (passed as given, so the agent
/// refuses a bad one).
pub fn agent_env() -> Option<(&'static str, String)> {
    requested().map(|value| (AGENT_HOOK_VAR, value))
}

#[cfg(test)]
mod tests {
    use super::tcx_in;

    #[test]
    fn tcx_comes_with_linux_6_6() {
        assert_eq!(tcx_in("5.10.0-32-amd64"), Some(false));
        assert_eq!(tcx_in("6.1.0-57-amd64\n"), Some(false));
        assert_eq!(tcx_in("6.6.0"), Some(true));
        assert_eq!(tcx_in("6.12.118+deb12-amd64"), Some(true));
        assert_eq!(tcx_in("6.18.0"), Some(true));
        assert_eq!(tcx_in("7.0"), Some(true));
        assert_eq!(tcx_in("linux"), None);
    }
}
