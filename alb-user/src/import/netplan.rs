//! netplan (netplan.io's YAML): `network: bonds: NAME:` with `interfaces`
//! (the slaves, in order) and `parameters` (netplan's names:
//! `mii-monitor-interval`, `up-delay`, ..., time spans in ms when bare,
//! `learn-packet-interval` in s). Read with saphyr, whose nodes carry
//! their position: each note has its line.

use std::path::Path;

use saphyr::{LoadableYamlNode as _, MarkedYaml, Scalar, Yaml, YamlData, YamlEmitter};

use super::{
    AddressConfig, Bond, BondOption, Found, Note, Place, Request, choose,
    translate::{self, Key, Unit},
};

/// netplan's `parameters`: the kernel's name, and the units of a time span
/// (bare, and the kernel's).
const PARAMETERS: &[Key] = &[
    ("mode", "mode", None),
    ("lacp-rate", "lacp_rate", None),
    ("mii-monitor-interval", "miimon", Some((Unit::Milliseconds, Unit::Milliseconds))),
    ("min-links", "min_links", None),
    ("transmit-hash-policy", "xmit_hash_policy", None),
    ("ad-select", "ad_select", None),
    ("all-slaves-active", "all_slaves_active", None),
    ("all-members-active", "all_slaves_active", None),
    ("arp-interval", "arp_interval", Some((Unit::Milliseconds, Unit::Milliseconds))),
    ("arp-ip-targets", "arp_ip_target", None),
    ("arp-validate", "arp_validate", None),
    ("arp-all-targets", "arp_all_targets", None),
    ("up-delay", "updelay", Some((Unit::Milliseconds, Unit::Milliseconds))),
    ("down-delay", "downdelay", Some((Unit::Milliseconds, Unit::Milliseconds))),
    ("fail-over-mac-policy", "fail_over_mac", None),
    ("gratuitous-arp", "num_grat_arp", None),
    // netplan's old spelling, still accepted.
    ("gratuitious-arp", "num_grat_arp", None),
    ("packets-per-slave", "packets_per_slave", None),
    ("packets-per-member", "packets_per_slave", None),
    ("primary-reselect-policy", "primary_reselect", None),
    ("resend-igmp", "resend_igmp", None),
    ("learn-packet-interval", "lp_interval", Some((Unit::Seconds, Unit::Seconds))),
    ("primary", "primary", None),
];

type Node<'a> = MarkedYaml<'a>;

/// The value of `key` in mapping `node`, with the key's node.
fn get<'a, 'b>(node: &'b Node<'a>, key: &str) -> Option<(&'b Node<'a>, &'b Node<'a>)> {
    entries(node).find(|(k, _)| text(k).as_deref() == Some(key))
}

/// The entries of a mapping (none for another node).
fn entries<'a, 'b>(node: &'b Node<'a>) -> impl Iterator<Item = (&'b Node<'a>, &'b Node<'a>)> {
    let mapping = match &node.data {
        YamlData::Mapping(mapping) => Some(mapping),
        _ => None,
    };
    mapping.into_iter().flat_map(|mapping| mapping.iter())
}

/// A scalar as text (`100`, `balance-alb`, `true`).
fn text(node: &Node<'_>) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(n)) => Some(n.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        YamlData::Representation(s, _, _) => Some(s.to_string()),
        _ => None,
    }
}

/// The line of a node, from 1.
fn line(node: &Node<'_>) -> usize {
    node.span.start.line()
}

/// Reads the bond of the netplan file `path`.
pub fn read(path: &Path, request: &Request) -> Result<Found, String> {
    let source = super::read_text(path)?;
    let documents = MarkedYaml::load_from_str(&source).map_err(|error| {
        format!("{}:{}: {}", path.display(), error.marker().line(), error.info())
    })?;
    let empty = MarkedYaml::value_from_str("");
    let root = documents.first().unwrap_or(&empty);
    let bonds = get(root, "network").and_then(|(_, network)| get(network, "bonds"));
    let names: Vec<String> = bonds
        .map(|(_, bonds)| entries(bonds).filter_map(|(k, _)| text(k)).collect())
        .unwrap_or_default();
    let name = choose(path, &names, request.bond.as_deref())?.to_owned();
    let (key, definition) =
        get(bonds.expect("a bond was chosen").1, &name).expect("chosen among them");
    let at = |node: &Node<'_>| Place::new(path, line(node));
    let mut bond = Bond { name: name.clone(), at: Some(at(key)), ..Bond::default() };
    for (key, value) in entries(definition) {
        let option = text(key).unwrap_or_default();
        match option.as_str() {
            "interfaces" => match &value.data {
                YamlData::Sequence(slaves) => {
                    bond.slaves = slaves.iter().filter_map(text).collect()
                }
                _ => return Err(format!("{}: interfaces: not a list", at(key))),
            },
            "parameters" => {
                for (key, value) in entries(value) {
                    bond.options.push(parameter(&text(key).unwrap_or_default(), value, at(key)));
                }
            }
            _ => bond.notes.push(Note { at: at(key), option, why: NOT_BOND.to_owned() }),
        }
    }
    let address_config = address_config(path, &source, &name)?;
    Ok(Found { bond, address_config: Some(address_config) })
}

const NOT_BOND: &str = "not a bond option: the master's own setting, not in alb's config \
                        (--address-config DIR writes it under ethernets:)";

/// One `parameters` key in the kernel's terms.
fn parameter(key: &str, value: &Node<'_>, at: Place) -> BondOption {
    let known = PARAMETERS.iter().find(|(name, _, _)| *name == key);
    let kernel = known.map_or(key, |(_, kernel, _)| kernel);
    let shown = match &value.data {
        YamlData::Sequence(items) => {
            Some(items.iter().filter_map(text).collect::<Vec<_>>().join(" "))
        }
        _ => text(value),
    };
    let value = match (shown, known) {
        (None, _) => Err("not a single value".to_owned()),
        (Some(shown), Some((_, _, Some((bare, unit))))) => {
            translate::time_span(&shown, *bare, *unit).map(|n| n.to_string())
        }
        (Some(shown), _) => Ok(shown),
    };
    BondOption { kernel: kernel.to_owned(), written: key.to_owned(), value, at }
}

/// The bond's settings but its bonding ones, as an `ethernets:` entry of
/// the master (what netplan applies to alb's master, a veth matched by
/// name), with the file's `renderer`.
fn address_config(path: &Path, source: &str, name: &str) -> Result<AddressConfig, String> {
    let documents =
        Yaml::load_from_str(source).map_err(|error| format!("{}: {error}", path.display()))?;
    let key = |k: &str| Yaml::Value(Scalar::String(k.to_owned().into()));
    let network = documents.first().and_then(|doc| doc.as_mapping_get("network"));
    let mut master = network
        .and_then(|network| network.as_mapping_get("bonds"))
        .and_then(|bonds| bonds.as_mapping_get(name))
        .and_then(Yaml::as_mapping)
        .cloned()
        .unwrap_or_default();
    master.remove(&key("interfaces"));
    master.remove(&key("parameters"));
    let master = yaml11_booleans(Yaml::Mapping(master));
    let mut ethernets = saphyr::Mapping::new();
    ethernets.insert(key(name), master);
    let mut out = saphyr::Mapping::new();
    out.insert(key("version"), Yaml::Value(Scalar::Integer(2)));
    if let Some(renderer) = network.and_then(|network| network.as_mapping_get("renderer")) {
        out.insert(key("renderer"), renderer.clone());
    }
    out.insert(key("ethernets"), Yaml::Mapping(ethernets));
    let mut document = saphyr::Mapping::new();
    document.insert(key("network"), Yaml::Mapping(out));
    let mut text = format!("# The addressing of alb's master {name}, from {}\n", path.display());
    YamlEmitter::new(&mut text)
        .dump(&Yaml::Mapping(document))
        .map_err(|error| format!("{error:?}"))?;
    text.push('\n');
    Ok(AddressConfig {
        file_name: format!("60-alb-{name}.yaml"),
        text,
        private: true,
        advice: format!(
            "remove bonds: {name} from {} (its slaves stay under ethernets:)",
            path.display()
        ),
    })
}

/// netplan's boolean keys.
const BOOLEANS: &[&str] = &[
    "dhcp4",
    "dhcp6",
    "accept-ra",
    "critical",
    "optional",
    "ipv6-privacy",
    "wakeonlan",
    "emit-lldp",
    "ignore-carrier",
    "on-link",
    "use-dns",
    "use-ntp",
    "use-routes",
    "use-mtu",
    "use-hostname",
    "send-hostname",
    "use-domains",
];

/// netplan reads YAML 1.1 booleans (`dhcp4: no`), which saphyr (YAML 1.2)
/// reads as strings and would write back quoted: they go back as
/// booleans.
fn yaml11_booleans(node: Yaml<'_>) -> Yaml<'_> {
    match node {
        Yaml::Mapping(mapping) => Yaml::Mapping(
            mapping
                .into_iter()
                .map(|(key, value)| {
                    let boolean = key.as_str().is_some_and(|k| BOOLEANS.contains(&k));
                    let value = match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                        Some("yes" | "on" | "y") if boolean => Yaml::Value(Scalar::Boolean(true)),
                        Some("no" | "off" | "n") if boolean => Yaml::Value(Scalar::Boolean(false)),
                        _ => yaml11_booleans(value),
                    };
                    (key, value)
                })
                .collect(),
        ),
        Yaml::Sequence(items) => Yaml::Sequence(items.into_iter().map(yaml11_booleans).collect()),
        other => other,
    }
}
