//! Named network namespaces (`/var/run/netns/NAME`), entered with `nsenter
//! --net` rather than `ip netns exec`: the latter remounts /sys in a private
//! mount namespace, which hides the bpffs pins under /sys/fs/bpf.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::{cmd, hook};

/// Where `ip netns add` puts the namespaces' bind mounts.
pub const NETNS_DIR: &str = "/var/run/netns";

/// The file that names namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether namespace `name` exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Every named network namespace, sorted.
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(format!("cannot read {NETNS_DIR}")),
    };
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.with_context(|| format!("cannot read {NETNS_DIR}"))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Creates namespace `name` (`ip netns add`).
pub fn add(name: &str) -> Result<()> {
    cmd::ip(&["netns", "add", name]).map(drop)
}

/// Deletes namespace `name` (`ip netns delete`). Its devices go when the
/// last process inside it has left.
pub fn delete(name: &str) -> Result<()> {
    cmd::ip(&["netns", "delete", name]).map(drop)
}

/// The processes whose network namespace is `name` (`ip netns pids`).
pub fn pids(name: &str) -> Result<Vec<i32>> {
    let out = cmd::ip(&["netns", "pids", name])?;
    out.split_whitespace()
        .map(|p| p.parse().with_context(|| format!("`ip netns pids {name}` printed {p:?}")))
        .collect()
}

/// `program args...` to run inside namespace `ns`, through `nsenter --net`
/// (which execs the program: the child's PID is the program's), with the
/// agent's hook switch of this pass ([`hook::agent_env`]): every `alb` the
/// lab starts attaches through the pass's hook.
pub fn command<S: AsRef<OsStr>>(ns: &str, argv: &[S]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", path(ns).display())).arg("--");
    cmd.args(argv);
    if let Some((key, value)) = hook::agent_env() {
        cmd.env(key, value);
    }
    cmd
}
