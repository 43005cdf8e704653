//! A running kernel bond: `/sys/class/net/NAME/bonding/`, one file per
//! option (`mode` reads `balance-alb 6`, `updelay` is in ms, already
//! rounded to miimon), `slaves` in enslave order. sysfs shows every
//! option, set or not: those at bonding's default are left out. The root
//! (`/sys`) is given by the request, a directory tree in tests.

use std::path::{Path, PathBuf};

use super::{Bond, BondOption, Found, Place, Request, translate::SYSFS_DEFAULTS};

/// What the bonding directory shows that is state, not an option.
const STATE: &[&str] = &[
    "slaves",
    "mii_status",
    "active_slave",
    "ad_aggregator",
    "ad_num_ports",
    "ad_actor_key",
    "ad_partner_key",
    "ad_partner_mac",
];

/// Reads the running bond `name`.
pub fn read(name: &Path, request: &Request) -> Result<Found, String> {
    let root = request.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/sys"));
    let name = name.to_str().filter(|n| !n.is_empty() && !n.contains('/')).ok_or_else(|| {
        format!("{}: not an interface name (sysfs takes the bond's name)", name.display())
    })?;
    let dir = root.join("class/net").join(name).join("bonding");
    let entries = std::fs::read_dir(&dir)
        .map_err(|error| format!("{name} is not a kernel bond ({}: {error})", dir.display()))?;
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    let mut bond = Bond {
        name: name.to_owned(),
        at: Some(Place::new(&dir.join("mode"), 1)),
        ..Bond::default()
    };
    for path in files {
        let Some(option) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        // Some are readable only with CAP_NET_ADMIN, some not in every mode.
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let value = shown(&text);
        if option == "slaves" {
            bond.slaves = value.split_whitespace().map(str::to_owned).collect();
        }
        let default = SYSFS_DEFAULTS.iter().find(|(key, _)| *key == option).map(|(_, v)| *v);
        if STATE.contains(&option.as_str()) || default == Some(value.as_str()) {
            continue;
        }
        if option == "primary" && value.is_empty() {
            continue;
        }
        bond.options.push(BondOption {
            kernel: option.clone(),
            written: option,
            value: Ok(value),
            at: Place::new(&path, 1),
        });
    }
    Ok(Found { bond, address_config: None })
}

/// A sysfs value: `always 0` (a name and its number) is the name.
fn shown(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [name, number] if number.parse::<u32>().is_ok() && name.parse::<u32>().is_err() => {
            (*name).to_owned()
        }
        _ => words.join(" "),
    }
}
