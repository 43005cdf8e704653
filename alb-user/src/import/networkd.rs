//! systemd-networkd: a directory of .netdev and .network files. The bond is
//! a .netdev with `[NetDev] Kind=bond` and its options in `[Bond]`
//! (systemd.netdev(5)); its slaves are the links of the .network files
//! with `[Network] Bond=NAME` (systemd.network(5)), in file-name order,
//! `PrimarySlave=yes` marking the primary; the master's own .network
//! (`[Match] Name=NAME`) holds its addressing.

use std::path::Path;

use super::{
    AddressConfig, Bond, BondOption, Found, Note, Place, Request, choose,
    keyfile::{self, KeyFile},
    translate::{self, Key, Unit},
};

/// `[Bond]` keys: the kernel's name, and the units of a time span.
const BOND_KEYS: &[Key] = &[
    ("Mode", "mode", None),
    ("TransmitHashPolicy", "xmit_hash_policy", None),
    ("LACPTransmitRate", "lacp_rate", None),
    ("MIIMonitorSec", "miimon", Some((Unit::Seconds, Unit::Milliseconds))),
    ("UpDelaySec", "updelay", Some((Unit::Seconds, Unit::Milliseconds))),
    ("DownDelaySec", "downdelay", Some((Unit::Seconds, Unit::Milliseconds))),
    ("LearnPacketIntervalSec", "lp_interval", Some((Unit::Seconds, Unit::Seconds))),
    ("AdSelect", "ad_select", None),
    ("AdActorSystemPriority", "ad_actor_sys_prio", None),
    ("AdUserPortKey", "ad_user_port_key", None),
    ("AdActorSystem", "ad_actor_system", None),
    ("FailOverMACPolicy", "fail_over_mac", None),
    ("ARPValidate", "arp_validate", None),
    ("ARPIntervalSec", "arp_interval", Some((Unit::Seconds, Unit::Milliseconds))),
    ("ARPIPTargets", "arp_ip_target", None),
    ("ARPAllTargets", "arp_all_targets", None),
    ("ARPMissedMax", "arp_missed_max", None),
    ("PrimaryReselectPolicy", "primary_reselect", None),
    ("ResendIGMP", "resend_igmp", None),
    ("PacketsPerSlave", "packets_per_slave", None),
    ("GratuitousARP", "num_grat_arp", None),
    ("AllSlavesActive", "all_slaves_active", None),
    ("DynamicTransmitLoadBalancing", "tlb_dynamic_lb", None),
    ("MinLinks", "min_links", None),
    ("PeerNotifyDelaySec", "peer_notif_delay", Some((Unit::Seconds, Unit::Milliseconds))),
];

/// Reads the bond of the directory `dir`.
pub fn read(dir: &Path, request: &Request) -> Result<Found, String> {
    let netdevs = keyfile::files_in(dir, &[".netdev"])?
        .iter()
        .map(|path| KeyFile::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    let networks = keyfile::files_in(dir, &[".network"])?
        .iter()
        .map(|path| KeyFile::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    let bonds: Vec<(&KeyFile, String)> = netdevs
        .iter()
        .filter(|file| file.get("NetDev", "Kind").is_some_and(|kind| kind.value == "bond"))
        .filter_map(|file| Some((file, file.get("NetDev", "Name")?.value.clone())))
        .collect();
    let names: Vec<String> = bonds.iter().map(|(_, name)| name.clone()).collect();
    let name = choose(dir, &names, request.bond.as_deref())?;
    let (netdev, _) = bonds.iter().find(|(_, n)| n == name).expect("chosen among them");
    let mut bond = Bond {
        name: name.to_owned(),
        at: netdev.sections("NetDev").next().map(|s| Place::new(&netdev.path, s.line)),
        ..Bond::default()
    };
    for section in &netdev.sections {
        for entry in &section.entries {
            let at = Place::new(&netdev.path, entry.line);
            match (section.name.as_str(), entry.key.as_str()) {
                ("NetDev", "Name" | "Kind" | "Description") | ("Match", _) => {}
                ("NetDev", key) => bond.notes.push(Note {
                    at,
                    option: key.to_owned(),
                    why: "not a bond option: set it on the system (alb's master is a veth it creates)"
                        .to_owned(),
                }),
                ("Bond", key) => bond.options.push(bond_option(key, &entry.value, at)),
                _ => {}
            }
        }
    }
    translate::mode(&bond)?;
    let mut master_network = None;
    for network in &networks {
        let links = match_names(network)?;
        let enslaved = network.get("Network", "Bond").is_some_and(|entry| entry.value == name);
        if enslaved && links.is_empty() {
            let line = network.sections("Match").next().map_or(1, |section| section.line);
            return Err(format!(
                "{}:{line}: a slave of {name} matched by no Name= (alb needs each slave's name)",
                network.path.display()
            ));
        }
        if enslaved {
            for key in ["PrimarySlave", "ActiveSlave"] {
                if let Some(entry) =
                    network.get("Network", key).filter(|e| boolean(&e.value) == Some(true))
                {
                    let kernel = if key == "PrimarySlave" { "primary" } else { "active_slave" };
                    bond.options.push(BondOption {
                        kernel: kernel.to_owned(),
                        written: key.to_owned(),
                        value: links
                            .first()
                            .cloned()
                            .ok_or_else(|| "its [Match] names no link".to_owned()),
                        at: Place::new(&network.path, entry.line),
                    });
                }
            }
            bond.slaves.extend(links);
        } else if master_network.is_none() && links.iter().any(|link| link == name) {
            master_network = Some(network);
        }
    }
    let address_config = master_network.map(|network| {
        let mut text = format!(
            "# The addressing of alb's master {name}, from {}\n[Match]\nName={name}\n",
            network.path.display()
        );
        for section in network.sections.iter().filter(|section| section.name != "Match") {
            text.push('\n');
            text.push_str(&network.section_text(section));
        }
        let slaves: Vec<String> = networks
            .iter()
            .filter(|n| n.get("Network", "Bond").is_some_and(|entry| entry.value == name))
            .map(|n| n.path.display().to_string())
            .collect();
        AddressConfig {
            file_name: network
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            text,
            private: false,
            advice: format!(
                "it replaces {}; remove {} and the Bond= lines of {}",
                network.path.display(),
                netdev.path.display(),
                slaves.join(", ")
            ),
        }
    });
    Ok(Found { bond, address_config })
}

/// One `[Bond]` key in the kernel's terms.
fn bond_option(key: &str, value: &str, at: Place) -> BondOption {
    let known = BOND_KEYS.iter().find(|(name, _, _)| *name == key);
    let kernel = known.map_or(key, |(_, kernel, _)| kernel);
    let value = match known {
        Some((_, _, Some((bare, unit)))) => {
            translate::time_span(value, *bare, *unit).map(|n| n.to_string())
        }
        Some((_, "all_slaves_active" | "tlb_dynamic_lb", _)) => boolean(value)
            .map(|on| u8::from(on).to_string())
            .ok_or_else(|| format!("{value:?} is not a boolean")),
        _ => Ok(value.to_owned()),
    };
    BondOption { kernel: kernel.to_owned(), written: key.to_owned(), value, at }
}

/// The links a .network's `[Match] Name=` lines name, in order (an empty
/// assignment resets the list). A pattern names no link alb can take.
fn match_names(network: &KeyFile) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for entry in network.sections("Match").flat_map(|section| &section.entries) {
        if entry.key != "Name" {
            continue;
        }
        if entry.value.is_empty() {
            names.clear();
        }
        for name in entry.value.split_whitespace() {
            if name.contains(['*', '?', '[']) && network.get("Network", "Bond").is_some() {
                return Err(format!(
                    "{}:{}: Name={name} is a pattern: alb needs each slave's name",
                    network.path.display(),
                    entry.line
                ));
            }
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// systemd's booleans.
fn boolean(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}
