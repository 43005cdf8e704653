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

/// The hook of this pass. Panics on a value that names no hook: the pass
/// would test nothing it says.
pub fn expected() -> Hook {
    match requested().as_deref() {
        None | Some("tcx") => Hook::Tcx,
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
