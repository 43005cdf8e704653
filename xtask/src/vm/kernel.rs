//! Debian's packaged kernels: the newest `linux-image-6.1.0-N-amd64` or
//! `linux-image-6.12.N+deb12-amd64` the apt index offers, downloaded with
//! `apt-get download`, extracted once into `target/vm-cache/<package>/`.
//! Debian 11's `linux-image-5.10.0-N-amd64` comes from the `bullseye`
//! suite of the same mirror, read through a private apt state under
//! `target/vm-cache/apt-bullseye/` (its own source list, lists and cache):
//! the system's apt configuration is never touched.

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
pub(crate) const SERIES: &[&str] = &["5.10", "6.1", "6.12"];

/// The newest package of `series` in the apt index, downloaded and
/// extracted under `cache` unless it already is.
pub(crate) fn prepare(series: &str, cache: &Path) -> Result<Kernel> {
    let apt = Apt::for_series(series, cache)?;
    let package = newest(series, &apt)?;
    let dir = cache.join(&package);
    let ready = dir.join(".ready");
    if !ready.exists() {
        eprintln!("vm-test: downloading {package} (apt-get download, ~70-110 MB, cached)");
        let debs = cache.join("debs");
        fs::create_dir_all(&debs)?;
        cmd::run(apt.command("apt-get").args(["download", "-q", &package]).current_dir(&debs))
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

/// How apt is run for a series: the system's state, or a private one.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn for_series(series: &str, cache: &Path) -> Result<Self> {
        if series != "5.10" {
            return Ok(Self { options: Vec::new() });
        }
        let dir = cache.join("apt-bullseye");
        let lists = dir.join("lists");
        let archives = dir.join("cache/archives/partial");
        fs::create_dir_all(lists.join("partial"))?;
        fs::create_dir_all(&archives)?;
        let source_list = dir.join("sources.list");
        let mirror = host_mirror()?;
        fs::write(
            &source_list,
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} \
                 bullseye main\n"
            ),
        )?;
        let option = |key: &str, path: &Path| format!("{key}={}", path.display());
        let apt = Self {
            options: vec![
                option("Dir::Etc::SourceList", &source_list),
                "Dir::Etc::SourceParts=/dev/null".to_owned(),
                option("Dir::State::Lists", &lists),
                option("Dir::Cache", &dir.join("cache")),
                // Downloads land in the caller's directory, root's.
                "APT::Sandbox::User=root".to_owned(),
            ],
        };
        let indexed = fs::read_dir(&lists)?
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"));
        if !indexed {
            eprintln!(
                "vm-test: reading the bullseye index of {mirror} (private apt state, ~12 MB)"
            );
            cmd::run(apt.command("apt-get").args(["update", "-q"]))
                .context("cannot read the bullseye index")?;
        }
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        for option in &self.options {
            command.args(["-o", option]);
        }
        command
    }
}

/// The Debian mirror the host's apt sources name (its first `deb` entry
/// of a release suite, one-line or deb822 format).
fn host_mirror() -> Result<String> {
    let mut texts = vec![fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(parts) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = parts.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        texts.extend(
            paths
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "sources" || e == "list"))
                .filter_map(|p| fs::read_to_string(p).ok()),
        );
    }
    texts
        .iter()
        .find_map(|text| mirror_in(text))
        .context("no Debian mirror in the host's apt sources (/etc/apt/sources.list*)")
}

/// The first Debian release mirror (suite without `-security` or
/// `-updates`, component main) in one sources file.
fn mirror_in(text: &str) -> Option<String> {
    let release = |suite: &str| !suite.contains('-') && !suite.contains('/');
    // One-line format: deb [options] URI SUITE COMPONENTS...
    for line in text.lines().map(str::trim) {
        let mut words =
            line.split_whitespace().filter(|w| !w.starts_with('[') && !w.ends_with(']'));
        if words.next() == Some("deb") {
            let (uri, suite) = (words.next()?, words.next()?);
            if release(suite) && words.any(|c| c == "main") {
                return Some(uri.to_owned());
            }
        }
    }
    // deb822: stanzas of Types/URIs/Suites/Components.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let main = field("Components").is_some_and(|c| c.split_whitespace().any(|c| c == "main"));
        let suites = field("Suites").is_some_and(|s| s.split_whitespace().any(release));
        if is_deb && main && suites {
            return field("URIs")?.split_whitespace().next().map(str::to_owned);
        }
    }
    None
}

/// The newest `linux-image` package of a series the apt index holds.
fn newest(series: &str, apt: &Apt) -> Result<String> {
    let (pattern, number): (&str, fn(&str) -> Option<u32>) = match series {
        "5.10" => (r"^linux-image-5\.10\.0-[0-9]+-amd64$", |name| {
            name.strip_prefix("linux-image-5.10.0-")?.strip_suffix("-amd64")?.parse().ok()
        }),
        "6.1" => (r"^linux-image-6\.1\.0-[0-9]+-amd64$", |name| {
            name.strip_prefix("linux-image-6.1.0-")?.strip_suffix("-amd64")?.parse().ok()
        }),
        "6.12" => (r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$", |name| {
            name.strip_prefix("linux-image-6.12.")?.strip_suffix("+deb12-amd64")?.parse().ok()
        }),
        other => bail!("unknown kernel {other} (known: {})", SERIES.join(", ")),
    };
    let out = cmd::run(apt.command("apt-cache").args(["search", "--names-only", pattern]))?;
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
    use super::{depends, mirror_in};

    #[test]
    fn the_host_mirror_is_read_from_either_format() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: \
                      bookworm-security\nComponents: main\n\nTypes: deb\nURIs: \
                      http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n";
        assert_eq!(mirror_in(deb822).as_deref(), Some("http://mirror.example/debian"));
        let one_line = "# x\ndeb http://sec.example/debian-security bookworm-security main\n\
                        deb [arch=amd64] http://m.example/debian bookworm main contrib\n";
        assert_eq!(mirror_in(one_line).as_deref(), Some("http://m.example/debian"));
        assert_eq!(mirror_in("deb-src http://x/debian bookworm main\n"), None);
    }

    #[test]
    fn depends_reads_the_modinfo_field() {
        let module = b"junk\0license=GPL\0depends=stp,llc\0intree=Y\0";
        assert_eq!(depends(module), ["stp", "llc"]);
        assert!(depends(b"\0depends=\0").is_empty());
        assert!(depends(b"nothing").is_empty());
    }
}
