//! Debian's packaged kernels: the newest `linux-image-6.1.0-N-amd64` or
//! `linux-image-6.12.N+deb12-amd64` the apt index offers, downloaded with
//! `apt-get download`, extracted once into `target/vm-cache/<package>/`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use alb_tests::cmd;
use anyhow::{Context as _, Result, bail};

/// A kernel ready to boot: its image and its module tree.
pub(crate) struct Kernel {
    pub(crate) package: String,
    pub(crate) vmlinuz: PathBuf,
    /// `lib/modules/<release>/`.
    pub(crate) modules: PathBuf,
}

/// The kernel series vm-test knows.
pub(crate) const SERIES: &[&str] = &["6.1", "6.12"];

/// The newest package of `series` in the apt index, downloaded and
/// extracted under `cache` unless it already is.
pub(crate) fn prepare(series: &str, cache: &Path) -> Result<Kernel> {
    let package = newest(series)?;
    let dir = cache.join(&package);
    let ready = dir.join(".ready");
    if !ready.exists() {
        eprintln!("vm-test: downloading {package} (apt-get download, ~70-110 MB, cached)");
        let debs = cache.join("debs");
        fs::create_dir_all(&debs)?;
        cmd::run(Command::new("apt-get").args(["download", "-q", &package]).current_dir(&debs))
            .with_context(|| format!("cannot download {package}"))?;
        let deb = fs::read_dir(&debs)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
            })
            .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        cmd::run(Command::new("dpkg").arg("-x").arg(&deb).arg(&dir))?;
        fs::remove_file(&deb)?;
        fs::write(&ready, b"")?;
    }
    let vmlinuz = fs::read_dir(dir.join("boot"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .context("no boot/vmlinuz-* in the package")?;
    let modules = fs::read_dir(dir.join("lib/modules"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .next()
        .context("no lib/modules/<release> in the package")?;
    Ok(Kernel { package, vmlinuz, modules })
}

/// The newest `linux-image` package of a series the apt index holds.
fn newest(series: &str) -> Result<String> {
    let (pattern, number): (&str, fn(&str) -> Option<u32>) = match series {
        "6.1" => (r"^linux-image-6\.1\.0-[0-9]+-amd64$", |name| {
            name.strip_prefix("linux-image-6.1.0-")?.strip_suffix("-amd64")?.parse().ok()
        }),
        "6.12" => (r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$", |name| {
            name.strip_prefix("linux-image-6.12.")?.strip_suffix("+deb12-amd64")?.parse().ok()
        }),
        other => bail!("unknown kernel {other} (known: {})", SERIES.join(", ")),
    };
    let out = cmd::run(Command::new("apt-cache").args(["search", "--names-only", pattern]))?;
    out.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| Some((number(name)?, name.to_owned())))
        .max()
        .map(|(_, name)| name)
        .with_context(|| {
            format!("the apt index has no package matching {pattern} (run apt-get update)")
        })
}

/// The module files (decompressed) needed for `wanted`, dependencies
/// first, read from each module's `depends=` in its .modinfo section.
pub(crate) fn modules(kernel: &Kernel, wanted: &[&str], out: &Path) -> Result<Vec<String>> {
    let mut index = std::collections::HashMap::new();
    index_modules(&kernel.modules.join("kernel"), &mut index)?;
    let mut order = Vec::new();
    for name in wanted {
        add_module(name, &index, out, &mut order)?;
    }
    Ok(order)
}

fn index_modules(dir: &Path, index: &mut std::collections::HashMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) {
            if let Some(stem) = name.split(".ko").next().filter(|_| name.contains(".ko")) {
                index.insert(stem.replace('-', "_"), path);
            }
        }
    }
    Ok(())
}

fn add_module(
    name: &str,
    index: &std::collections::HashMap<String, PathBuf>,
    out: &Path,
    order: &mut Vec<String>,
) -> Result<()> {
    let name = name.replace('-', "_");
    if order.contains(&name) {
        return Ok(());
    }
    // Built in (or absent and not needed): nothing to load.
    let Some(path) = index.get(&name) else { return Ok(()) };
    let bytes = match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => cmd::output(Command::new("xz").arg("-dc").arg(path))?.stdout,
        Some("zst") => cmd::output(Command::new("zstd").arg("-dc").arg(path))?.stdout,
        _ => fs::read(path)?,
    };
    for dep in depends(&bytes) {
        add_module(&dep, index, out, order)?;
    }
    fs::write(out.join(format!("{name}.ko")), &bytes)?;
    order.push(name);
    Ok(())
}

/// The `depends=` field of a module's .modinfo strings.
fn depends(module: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    module
        .windows(key.len())
        .position(|w| w == key)
        .map(|at| {
            let rest = &module[at + key.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::depends;

    #[test]
    fn depends_reads_the_modinfo_field() {
        let module = b"junk\0license=GPL\0depends=stp,llc\0intree=Y\0";
        assert_eq!(depends(module), ["stp", "llc"]);
        assert!(depends(b"\0depends=\0").is_empty());
        assert!(depends(b"nothing").is_empty());
    }
}
