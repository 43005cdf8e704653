//! What the lab's hosts and switch have learned: a namespace's neighbour
//! (ARP and ND) entries, and which switch ports the bridge's forwarding
//! database holds a MAC on.

use anyhow::Result;

use super::{BRIDGE, Lab, links::parse_json_list};
use crate::{cmd, netns};

impl Lab {
    /// The MAC namespace `ns` has resolved `ip` to, if it has a usable
    /// neighbour entry (not INCOMPLETE or FAILED).
    pub fn neigh_mac(&self, ns: &str, ip: &str) -> Result<Option<String>> {
        let out = self.ip(ns, &["-j", "neigh", "show", "to", ip])?;
        let entries = parse_json_list(&out, "ip -j neigh")?;
        Ok(entries
            .iter()
            .filter(|e| e["dst"].as_str() == Some(ip))
            .filter(|e| {
                !e["state"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|v| v == "FAILED" || v == "INCOMPLETE"))
            })
            .find_map(|e| e["lladdr"].as_str().map(str::to_owned)))
    }

    /// Empties the neighbour (ARP and ND) table of namespace `ns`.
    pub fn flush_neigh(&self, ns: &str) -> Result<()> {
        self.ip(ns, &["neigh", "flush", "all"]).map(drop)
    }

    /// The switch ports (`bridge fdb` in the switch namespace) that have
    /// learned `mac`, dynamic entries only.
    pub fn switch_ports_of(&self, mac: &str) -> Result<Vec<String>> {
        let out = cmd::run(&mut netns::command(
            &self.sw,
            &["bridge", "-j", "fdb", "show", "br", BRIDGE],
        ))?;
        let entries = parse_json_list(&out, "bridge -j fdb")?;
        Ok(entries
            .iter()
            .filter(|e| e["mac"].as_str().is_some_and(|m| m.eq_ignore_ascii_case(mac)))
            .filter(|e| e["vlan"].is_null() || e["vlan"].as_u64().is_some())
            .filter(|e| {
                !e["flags"].as_array().is_some_and(|f| f.iter().any(|v| v == "self"))
                    && e["state"].as_str() != Some("permanent")
            })
            .filter_map(|e| e["ifname"].as_str().map(str::to_owned))
            .collect())
    }
}
