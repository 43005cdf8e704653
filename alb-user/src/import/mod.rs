//! `alb import FORMAT PATH`: a kernel bond's definition, as netplan,
//! ifupdown, systemd-networkd, NetworkManager or a running bond's sysfs
//! hold it, turned into an alb config file (TOML).
//!
//! Each format has its own reader (one file each) that finds the bond and
//! gives a [`Bond`]: its name, slaves in order and options under the
//! kernel's names, each with the place it was written. [`translate`] (pure)
//! turns that into alb's [`Settings`](crate::config::Settings) and a note for each option that does
//! not map. A reader also gives the master's addressing in its own tool's
//! format, for `--address-config DIR`.

pub mod ifupdown;
pub mod keyfile;
pub mod netplan;
pub mod networkd;
pub mod nm;
pub mod sysfs;
pub mod translate;

use std::{
    fmt,
    path::{Path, PathBuf},
};

/// The configuration tools `alb import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A netplan YAML file (`network: bonds:`).
    Netplan,
    /// An ifupdown interfaces file (ifenslave's or ifupdown2's `bond-*`).
    Ifupdown,
    /// A systemd-networkd directory of .netdev and .network files.
    Networkd,
    /// A NetworkManager keyfile of the bond, or a directory of keyfiles.
    Nm,
    /// The name of a running kernel bond (/sys/class/net/NAME/bonding).
    Sysfs,
}

/// Where something was written: a file and a line (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub path: PathBuf,
    pub line: usize,
}

impl Place {
    pub fn new(path: &Path, line: usize) -> Self {
        Self { path: path.to_owned(), line }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// One bonding option as the source gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondOption {
    /// The kernel's name (`miimon`, `lp_interval`, ...), or the source's
    /// own when the kernel has none.
    pub kernel: String,
    /// As the source spells it (`mii-monitor-interval`, `MIIMonitorSec`).
    pub written: String,
    /// In the kernel's units (ms for miimon, updelay, downdelay and
    /// arp_interval, s for lp_interval), or an error when it could not be
    /// read in them.
    pub value: Result<String, String>,
    pub at: Place,
}

/// Something of the source that alb's config does not carry, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub at: Place,
    pub option: String,
    pub why: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.option, self.why)
    }
}

/// A bond as a reader found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bond {
    pub name: String,
    /// Where the bond is defined (its stanza, section or file).
    pub at: Option<Place>,
    /// In enslave order.
    pub slaves: Vec<String>,
    pub options: Vec<BondOption>,
    /// What the source gives the bond that is no bonding option (MTU,
    /// addresses, ...).
    pub notes: Vec<Note>,
}

impl Bond {
    /// The option under kernel name `kernel`, the last one given.
    pub fn option(&self, kernel: &str) -> Option<&BondOption> {
        self.options.iter().rev().find(|option| option.kernel == kernel)
    }
}

/// The master's addressing in the source tool's own format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressConfig {
    /// The file name to write it under.
    pub file_name: String,
    pub text: String,
    /// Only root may read it (NetworkManager ignores a keyfile others can).
    pub private: bool,
    /// What the operator changes next to it, said on stderr.
    pub advice: String,
}

/// What a reader gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub bond: Bond,
    /// `None` when the source has none (sysfs).
    pub address_config: Option<AddressConfig>,
}

/// What `alb import` prints and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The alb config (TOML), for stdout.
    pub config: String,
    /// One line each, for stderr.
    pub notes: Vec<Note>,
    pub address_config: Option<AddressConfig>,
}

/// Options of a reader.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Which bond, when the source defines several.
    pub bond: Option<String>,
    /// Where sysfs is (`/sys`; a directory tree in tests).
    pub sysfs_root: Option<PathBuf>,
}

/// Reads the bond of `path` in `format` and translates it. An error is
/// one line: a bond of another mode, no bond, an unreadable file.
pub fn import(format: Format, path: &Path, request: &Request) -> Result<Imported, String> {
    let found = match format {
        Format::Netplan => netplan::read(path, request)?,
        Format::Ifupdown => ifupdown::read(path, request)?,
        Format::Networkd => networkd::read(path, request)?,
        Format::Nm => nm::read(path, request)?,
        Format::Sysfs => sysfs::read(path, request)?,
    };
    let translation = translate::translate(&found.bond)?;
    // What alb's own checks refuse (a name too long for a master, a slave
    // named twice) is refused here, not printed for `alb config check`.
    if let Err(problems) = translation.settings.options() {
        let at =
            found.bond.at.as_ref().map_or_else(|| path.display().to_string(), ToString::to_string);
        let problems: Vec<String> = problems.into_iter().map(|problem| problem.message).collect();
        return Err(format!("{at}: bond {}: {}", found.bond.name, problems.join("; ")));
    }
    let config = format!(
        "# alb config of master {}, imported from {} by alb import\n{}",
        found.bond.name,
        path.display(),
        toml::to_string(&translation.settings).map_err(|error| error.to_string())?
    );
    Ok(Imported { config, notes: translation.notes, address_config: found.address_config })
}

/// Picks the bond named `wanted`, or the only one; `names` in source order.
pub fn choose<'a>(
    path: &Path,
    names: &'a [String],
    wanted: Option<&str>,
) -> Result<&'a str, String> {
    match (wanted, names) {
        (Some(wanted), _) => {
            names.iter().find(|name| *name == wanted).map(String::as_str).ok_or_else(|| {
                format!("{}: no bond {wanted} (bonds: {})", path.display(), list(names))
            })
        }
        (None, []) => Err(format!("{}: no bond defined", path.display())),
        (None, [only]) => Ok(only),
        (None, _) => Err(format!(
            "{}: several bonds ({}): choose one with --bond NAME",
            path.display(),
            names.join(", ")
        )),
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// Reads a file, its error as one line.
pub fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))
}
