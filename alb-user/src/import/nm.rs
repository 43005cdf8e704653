//! NetworkManager keyfiles (nm-settings-keyfile(5)): the bond is a
//! connection with `[connection] type=bond`, its options in `[bond]` under
//! the kernel's names; its slaves (ports) are the keyfiles of the same
//! directory whose `master=` (or `controller=`) names the bond's
//! interface, id or uuid with `slave-type=bond` (or `port-type=bond`), in
//! file-name order. `[ipv4]` and `[ipv6]` hold the master's addressing.

use std::path::Path;

use super::{
    AddressConfig, Bond, BondOption, Found, Note, Place, Request, choose,
    keyfile::{self, KeyFile},
};

/// Reads the bond keyfile `path`, or the only (or `--bond`) bond of the
/// directory `path`; the ports come from the same directory.
pub fn read(path: &Path, request: &Request) -> Result<Found, String> {
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or_else(|| Path::new(".")) };
    let files = keyfile::files_in(dir, &[".nmconnection"])?;
    let mut keyfiles =
        files.iter().map(|file| KeyFile::read(file)).collect::<Result<Vec<_>, _>>()?;
    if !path.is_dir() && !keyfiles.iter().any(|file| file.path == path) {
        keyfiles.push(KeyFile::read(path)?);
    }
    let is_bond =
        |file: &KeyFile| file.get("connection", "type").is_some_and(|t| t.value == "bond");
    let bonds: Vec<&KeyFile> = if path.is_dir() {
        keyfiles.iter().filter(|file| is_bond(file)).collect()
    } else {
        keyfiles.iter().filter(|file| file.path == path && is_bond(file)).collect()
    };
    let names: Vec<String> = bonds.iter().map(|file| interface(file)).collect();
    let name = choose(path, &names, request.bond.as_deref())?.to_owned();
    let keyfile = bonds[names.iter().position(|n| *n == name).expect("chosen among them")];
    let references: Vec<String> = ["interface-name", "id", "uuid"]
        .iter()
        .filter_map(|key| keyfile.get("connection", key).map(|entry| entry.value.clone()))
        .collect();
    let mut bond = Bond {
        name: name.clone(),
        at: keyfile.sections("connection").next().map(|s| Place::new(&keyfile.path, s.line)),
        ..Bond::default()
    };
    for section in &keyfile.sections {
        let at = |line| Place::new(&keyfile.path, line);
        match section.name.as_str() {
            "bond" => bond.options.extend(section.entries.iter().map(|entry| BondOption {
                kernel: entry.key.clone(),
                written: entry.key.clone(),
                value: Ok(entry.value.clone()),
                at: at(entry.line),
            })),
            "ethernet" | "802-3-ethernet" | "ethtool" | "match" => {
                bond.notes.extend(section.entries.iter().map(|entry| Note {
                    at: at(entry.line),
                    option: format!("{}.{}", section.name, entry.key),
                    why: "not a bond option: set it on the system (alb's master is a veth it creates)"
                        .to_owned(),
                }));
            }
            "ipv4" | "ipv6" => bond.notes.push(Note {
                at: at(section.line),
                option: format!("[{}]", section.name),
                why: ADDRESSING.to_owned(),
            }),
            _ => {}
        }
    }
    // A bond of another mode is refused before its ports are looked at.
    super::translate::mode(&bond)?;
    let mut ports = Vec::new();
    for file in &keyfiles {
        let controller =
            file.get("connection", "controller").or_else(|| file.get("connection", "master"));
        let port_type =
            file.get("connection", "port-type").or_else(|| file.get("connection", "slave-type"));
        if controller.is_some_and(|c| references.contains(&c.value))
            && port_type.is_some_and(|t| t.value == "bond")
        {
            let Some(port) = file.get("connection", "interface-name") else {
                return Err(format!(
                    "{}: a port of {name} with no interface-name",
                    file.path.display()
                ));
            };
            bond.slaves.push(port.value.clone());
            ports.push(file.path.display().to_string());
        }
    }
    let mut text = format!(
        "# The addressing of alb's master {name}, from {}\n[connection]\nid={name}\ntype=ethernet\n\
         interface-name={name}\n\n[ethernet]\n",
        keyfile.path.display()
    );
    for section in keyfile.sections.iter().filter(|s| s.name == "ipv4" || s.name == "ipv6") {
        text.push('\n');
        text.push_str(&keyfile.section_text(section));
    }
    let address_config = AddressConfig {
        file_name: format!("{name}.nmconnection"),
        text,
        private: true,
        advice: format!(
            "remove the bond's keyfile {} and its ports' {} (the slaves are alb's: \
             `nmcli device set IF managed no`)",
            keyfile.path.display(),
            if ports.is_empty() { "(none)".to_owned() } else { ports.join(", ") }
        ),
    };
    Ok(Found { bond, address_config: Some(address_config) })
}

const ADDRESSING: &str =
    "the master's addressing: not in alb's config (--address-config DIR writes it as a keyfile)";

/// The interface a connection is for: `interface-name`, else its `id`.
fn interface(file: &KeyFile) -> String {
    file.get("connection", "interface-name")
        .or_else(|| file.get("connection", "id"))
        .map(|entry| entry.value.clone())
        .unwrap_or_default()
}
