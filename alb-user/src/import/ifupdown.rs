//! ifupdown's interfaces file (interfaces(5)), line by line: no crate
//! parses it. `source PATTERN` (shell wildcards, relative to the file's
//! directory) and `source-directory DIR` (its files named with letters,
//! digits, `_` and `-`) are followed; a line ending in `\` goes on on the
//! next one. The bond is the `iface` stanza with `bond-slaves` (or
//! `slaves`, `bond-mode`); its options are `bond-*` lines, ifenslave's and
//! ifupdown2's names alike (`bond-lp-interval`, `bond_miimon`:
//! `bond-` then the kernel's name, `-` for `_`). With `bond-slaves none`
//! the slaves are the stanzas with `bond-master NAME`, in file order.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use super::{AddressConfig, Bond, BondOption, Found, Note, Place, Request, choose};

/// One option line of a stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    key: String,
    value: String,
    at: Place,
}

/// `iface NAME FAMILY METHOD` and its option lines.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stanza {
    name: String,
    /// `inet static`, `inet6 auto`, ...
    family_method: String,
    at: Place,
    lines: Vec<Line>,
}

#[derive(Debug, Default)]
struct Interfaces {
    stanzas: Vec<Stanza>,
    /// `auto NAME` and `allow-*` lines: the keyword and the names.
    autos: Vec<(String, Vec<String>)>,
    visited: BTreeSet<PathBuf>,
}

/// Words that start a new stanza.
fn starts_stanza(word: &str) -> bool {
    matches!(word, "iface" | "mapping" | "auto" | "source" | "source-directory" | "rename")
        || word.starts_with("allow-")
        || word.starts_with("no-")
}

impl Interfaces {
    fn read(&mut self, path: &Path) -> Result<(), String> {
        // A file sourced twice (or sourcing itself) is read once.
        if !self.visited.insert(path.to_owned()) {
            return Ok(());
        }
        let text = super::read_text(path)?;
        let dir = path.parent().unwrap_or_else(|| Path::new("/"));
        let mut in_iface = false;
        let mut pending = String::new();
        let mut first = 0;
        for (index, raw) in text.lines().enumerate() {
            if pending.is_empty() {
                first = index + 1;
            }
            if let Some(start) = raw.strip_suffix('\\') {
                pending.push_str(start);
                pending.push(' ');
                continue;
            }
            pending.push_str(raw);
            let line = std::mem::take(&mut pending);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let at = Place::new(path, first);
            let (word, rest) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
            let rest = rest.trim();
            if !starts_stanza(word) {
                if in_iface {
                    let stanza = self.stanzas.last_mut().expect("in an iface stanza");
                    stanza.lines.push(Line { key: word.to_owned(), value: rest.to_owned(), at });
                }
                continue;
            }
            in_iface = word == "iface";
            match word {
                "iface" => {
                    let (name, family_method) =
                        rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    self.stanzas.push(Stanza {
                        name: name.to_owned(),
                        family_method: family_method.trim().to_owned(),
                        at,
                        lines: Vec::new(),
                    });
                }
                "source" => {
                    for file in sourced(dir, rest, &at)? {
                        self.read(&file)?;
                    }
                }
                "source-directory" => {
                    for file in directory(dir, rest, &at)? {
                        self.read(&file)?;
                    }
                }
                word if word == "auto" || word.starts_with("allow-") => {
                    self.autos.push((
                        word.to_owned(),
                        rest.split_whitespace().map(str::to_owned).collect(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The files `source PATTERN` names, sorted (as the shell expands them).
fn sourced(dir: &Path, pattern: &str, at: &Place) -> Result<Vec<PathBuf>, String> {
    let pattern = dir.join(pattern);
    let paths =
        glob::glob(&pattern.to_string_lossy()).map_err(|error| format!("{at}: source: {error}"))?;
    let mut files: Vec<PathBuf> =
        paths.filter_map(Result::ok).filter(|path| path.is_file()).collect();
    files.sort();
    Ok(files)
}

/// The files of `source-directory DIR` that run-parts would take.
fn directory(dir: &Path, name: &str, at: &Place) -> Result<Vec<PathBuf>, String> {
    let dir = dir.join(name);
    let entries = std::fs::read_dir(&dir)
        .map_err(|error| format!("{at}: source-directory {}: {error}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    !n.is_empty()
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The kernel's name of a `bond-*` (or `bond_*`) option; `None` for
/// another option.
fn kernel_name(key: &str) -> Option<String> {
    let rest = key.strip_prefix("bond-").or_else(|| key.strip_prefix("bond_"))?;
    let kernel = rest.replace('-', "_");
    Some(match kernel.as_str() {
        // ifupdown2's names for the 802.3ad actor.
        "ad_sys_priority" => "ad_actor_sys_prio".to_owned(),
        "ad_sys_mac_addr" => "ad_actor_system".to_owned(),
        _ => kernel,
    })
}

/// Whether `key` lists the slaves.
fn is_slaves(key: &str) -> bool {
    matches!(key, "bond-slaves" | "bond_slaves" | "slaves" | "bond-ports")
}

/// Reads the bond of the interfaces file `path` and the files it sources.
pub fn read(path: &Path, request: &Request) -> Result<Found, String> {
    let mut interfaces = Interfaces::default();
    interfaces.read(path)?;
    let mut names: Vec<String> = Vec::new();
    for stanza in &interfaces.stanzas {
        let bond = stanza
            .lines
            .iter()
            .any(|line| is_slaves(&line.key) || kernel_name(&line.key).as_deref() == Some("mode"));
        if bond && !names.contains(&stanza.name) {
            names.push(stanza.name.clone());
        }
    }
    let name = choose(path, &names, request.bond.as_deref())?.to_owned();
    let stanzas: Vec<&Stanza> = interfaces.stanzas.iter().filter(|s| s.name == name).collect();
    let mut bond = Bond { name: name.clone(), at: Some(stanzas[0].at.clone()), ..Bond::default() };
    for line in stanzas.iter().flat_map(|stanza| &stanza.lines) {
        if is_slaves(&line.key) {
            bond.slaves =
                line.value.split_whitespace().filter(|s| *s != "none").map(str::to_owned).collect();
        } else if let Some(kernel) = kernel_name(&line.key) {
            bond.options.push(BondOption {
                kernel,
                written: line.key.clone(),
                value: Ok(line.value.clone()),
                at: line.at.clone(),
            });
        } else {
            bond.notes.push(Note {
                at: line.at.clone(),
                option: line.key.clone(),
                why: NOT_BOND.to_owned(),
            });
        }
    }
    if bond.slaves.is_empty() {
        // ifenslave's other way: each slave names its master.
        for stanza in &interfaces.stanzas {
            let enslaved = stanza.lines.iter().any(|line| {
                matches!(line.key.as_str(), "bond-master" | "bond_master") && line.value == name
            });
            if enslaved && !bond.slaves.contains(&stanza.name) {
                bond.slaves.push(stanza.name.clone());
            }
        }
    }
    Ok(Found { address_config: Some(address_config(&interfaces, &name, &stanzas)), bond })
}

const NOT_BOND: &str = "not a bond option: the master's own setting, not in alb's config \
                        (--address-config DIR writes it in an iface stanza)";

/// The bond's stanzas with no bond lines, for alb's master.
fn address_config(interfaces: &Interfaces, name: &str, stanzas: &[&Stanza]) -> AddressConfig {
    let mut text = format!("# The addressing of alb's master {name}, from {}\n", stanzas[0].at);
    for (keyword, names) in &interfaces.autos {
        if names.iter().any(|n| n == name) {
            text.push_str(&format!("{keyword} {name}\n"));
        }
    }
    for stanza in stanzas {
        text.push_str(&format!("iface {name} {}\n", stanza.family_method));
        for line in &stanza.lines {
            if !is_slaves(&line.key) && kernel_name(&line.key).is_none() {
                text.push_str(&format!("    {} {}\n", line.key, line.value));
            }
        }
    }
    let places: Vec<String> = stanzas.iter().map(|stanza| stanza.at.to_string()).collect();
    AddressConfig {
        file_name: name.to_owned(),
        text,
        private: false,
        advice: format!(
            "for /etc/network/interfaces.d/ (source-directory); remove the stanza at {} and the \
             slaves' bond-* lines",
            places.join(", ")
        ),
    }
}
