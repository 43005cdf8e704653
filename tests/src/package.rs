//! The Debian package of an earlier commit, for upgrade tests: built once
//! from that commit's own tree (`git archive`, then its own `cargo xtask
//! package`) and cached as `target/package-at/<commit>/alb_*.deb`, so only
//! the first run pays for the build. Needs the repository's history (a CI
//! clone has it) and what `cargo xtask package` needs.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, tidy};

/// A commit whose agent pins maps of format [`PREVIOUS_FORMAT`], the
/// format before this tree's 6 (`git log -S PIN_FORMAT`): main as format 5
/// was merged with VLAN client keys and the slave scan of `alb_rx`.
pub const PREVIOUS_FORMAT_COMMIT: &str = "40554fc880917b0f6244cf4b756b7d75d555c62a";
/// `PIN_FORMAT` at [`PREVIOUS_FORMAT_COMMIT`].
pub const PREVIOUS_FORMAT: u32 = 5;

/// The `.deb` in `dir`, if there is one.
fn deb_in(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut debs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    debs.sort();
    Ok(debs.pop())
}

/// The package of `commit` (anything `git rev-parse` takes), from
/// `<target>/package-at/<full commit>/`, built there first if missing.
/// The build runs in a tree of its own with a target directory of its own
/// (never `target`'s own binaries) and takes minutes; once it has made the
/// package, its tree goes and the package stays.
pub fn package_at(target: &Path, commit: &str) -> Result<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let full = cmd::run(Command::new("git").arg("-C").arg(&repo).args([
        "rev-parse",
        "--verify",
        &format!("{commit}^{{commit}}"),
    ]))
    .with_context(|| format!("commit {commit} is not in this clone's history"))?
    .trim()
    .to_owned();
    let cache = target.join("package-at").join(&full);
    if let Some(deb) = deb_in(&cache)? {
        return Ok(deb);
    }
    // The tree of an attempt that did not finish is extracted again over
    // itself (the same files, the same times), so its target directory
    // spares the next attempt what was already built.
    let tree = cache.join("src");
    fs::create_dir_all(&tree).with_context(|| format!("cannot create {}", tree.display()))?;
    eprintln!("alb-tests: building the package of {full} in {} (minutes)", tree.display());
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["archive", "--format=tar", &full])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run git archive")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&tree)
        .stdin(archive.stdout.take().context("git archive's output")?)
        .status()
        .context("cannot run tar")?;
    let archived = archive.wait().context("git archive")?;
    if !archived.success() || !tar.success() {
        bail!("git archive {full} | tar -x: {archived}, {tar}");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut build = Command::new(cargo);
    build
        .current_dir(&tree)
        .args(["xtask", "package"])
        // Its own target directory, whatever the caller's environment says.
        .env("CARGO_TARGET_DIR", tree.join("target"));
    cmd::run(&mut build).with_context(|| format!("cargo xtask package at {full}"))?;
    let built = deb_in(&tree.join("target/package"))?
        .with_context(|| format!("cargo xtask package at {full} made no .deb"))?;
    let name = built.file_name().context("a file name")?;
    let partial = cache.join("package.partial");
    fs::copy(&built, &partial).with_context(|| format!("cannot copy {}", built.display()))?;
    let deb = cache.join(name);
    fs::rename(&partial, &deb).with_context(|| format!("cannot write {}", deb.display()))?;
    tidy::remove(&tree);
    Ok(deb)
}
