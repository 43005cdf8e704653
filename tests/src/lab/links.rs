//! The lab's devices as `ip -j -s link` reports them: [`LinkInfo`] and its
//! counters ([`LinkStats`]), per device, per switch port and per slave, and
//! setting a device up or down.

use std::{fmt, ops::Sub};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::Lab;
use crate::cmd;

/// Interface counters (`ip -s link`), as seen by the interface they belong
/// to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

impl LinkStats {
    /// The same traffic seen from the other end of a veth pair.
    #[must_use]
    pub fn swapped(self) -> Self {
        Self {
            rx_packets: self.tx_packets,
            rx_bytes: self.tx_bytes,
            rx_dropped: self.tx_dropped,
            tx_packets: self.rx_packets,
            tx_bytes: self.rx_bytes,
            tx_dropped: self.rx_dropped,
        }
    }

    fn from_json(link: &Value) -> Result<Self> {
        let stats = link
            .get("stats64")
            .or_else(|| link.get("stats"))
            .context("no stats in `ip -s -j link` output")?;
        let get = |dir: &str, field: &str| -> Result<u64> {
            stats[dir][field]
                .as_u64()
                .with_context(|| format!("no {dir}.{field} in `ip -s -j link` output"))
        };
        Ok(Self {
            rx_packets: get("rx", "packets")?,
            rx_bytes: get("rx", "bytes")?,
            rx_dropped: get("rx", "dropped")?,
            tx_packets: get("tx", "packets")?,
            tx_bytes: get("tx", "bytes")?,
            tx_dropped: get("tx", "dropped")?,
        })
    }
}

impl Sub for LinkStats {
    type Output = Self;

    /// Counter increase from `rhs` (earlier) to `self` (later).
    fn sub(self, rhs: Self) -> Self {
        Self {
            rx_packets: self.rx_packets.saturating_sub(rhs.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(rhs.rx_bytes),
            rx_dropped: self.rx_dropped.saturating_sub(rhs.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(rhs.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(rhs.tx_bytes),
            tx_dropped: self.tx_dropped.saturating_sub(rhs.tx_dropped),
        }
    }
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx {} pkts / {} B, tx {} pkts / {} B",
            self.rx_packets, self.rx_bytes, self.tx_packets, self.tx_bytes
        )
    }
}

/// What `ip -j -s link show` says about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: String,
    pub mac: String,
    /// `UP`, `DOWN`, `LOWERLAYERDOWN`, `UNKNOWN`, ...
    pub operstate: String,
    /// Interface flags (`UP`, `LOWER_UP`, `BROADCAST`, ...).
    pub flags: Vec<String>,
    pub mtu: u32,
    /// The device it is enslaved to, if any.
    pub master: Option<String>,
    pub stats: LinkStats,
}

impl LinkInfo {
    /// Administratively up (`IFF_UP`).
    pub fn admin_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// Carrier present (`IFF_LOWER_UP`).
    pub fn lower_up(&self) -> bool {
        self.flags.iter().any(|f| f == "LOWER_UP")
    }
}

impl Lab {
    /// Whether device `dev` exists in namespace `ns`.
    pub fn link_exists(&self, ns: &str, dev: &str) -> Result<bool> {
        let out = cmd::output(&mut cmd::command("ip", &["-n", ns, "link", "show", "dev", dev]))?;
        Ok(out.status.success())
    }

    /// What `ip -j -s link show dev <dev>` says in namespace `ns`.
    pub fn link(&self, ns: &str, dev: &str) -> Result<LinkInfo> {
        let out = self.ip(ns, &["-j", "-s", "link", "show", "dev", dev])?;
        let list = parse_json_list(&out, "ip -j link")?;
        let link = list.first().with_context(|| format!("no link {dev} in {ns}"))?;
        let str_of = |field: &str| link[field].as_str().map(str::to_owned);
        Ok(LinkInfo {
            ifindex: link["ifindex"]
                .as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .context("no ifindex in `ip -j link`")?,
            name: str_of("ifname").context("no ifname in `ip -j link`")?,
            mac: str_of("address").unwrap_or_default(),
            operstate: str_of("operstate").unwrap_or_default(),
            flags: link["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            mtu: link["mtu"].as_u64().and_then(|m| u32::try_from(m).ok()).unwrap_or_default(),
            master: str_of("master"),
            stats: LinkStats::from_json(link)?,
        })
    }

    /// The MAC of device `dev` in namespace `ns`.
    pub fn link_mac(&self, ns: &str, dev: &str) -> Result<String> {
        Ok(self.link(ns, dev)?.mac)
    }

    /// Sets device `dev` in namespace `ns` administratively up or down.
    pub fn set_link(&self, ns: &str, dev: &str, up: bool) -> Result<()> {
        self.ip(ns, &["link", "set", dev, if up { "up" } else { "down" }]).map(drop)
    }

    /// Counters of switch port `port` (`veth18`, `c1`, ...) as the switch
    /// sees them: tx is what the switch sent towards the server or client.
    pub fn port_stats(&self, port: &str) -> Result<LinkStats> {
        Ok(self.link(&self.sw, port)?.stats)
    }

    /// Traffic of slave `index` from the server's point of view, measured on
    /// its switch port: rx is what the server received on that slave (the
    /// port's egress), tx what the server sent out of it (the port's
    /// ingress). Unlike the slave's own counters, this sees frames that BPF
    /// redirects past the slave's stack.
    pub fn slave_traffic(&self, index: usize) -> Result<LinkStats> {
        Ok(self.port_stats(&self.slaves[index].port)?.swapped())
    }

    /// [`Lab::slave_traffic`] for every slave, in order; subtract two of
    /// these to get what crossed each slave in between.
    pub fn traffic_snapshot(&self) -> Result<Vec<LinkStats>> {
        (0..self.slaves.len()).map(|i| self.slave_traffic(i)).collect()
    }
}

/// The JSON list that `what` (`ip -j ...`, `bridge -j ...`) printed; no
/// output is an empty list.
pub(super) fn parse_json_list(out: &str, what: &str) -> Result<Vec<Value>> {
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value =
        serde_json::from_str(out).with_context(|| format!("cannot parse `{what}` output"))?;
    match value {
        Value::Array(list) => Ok(list),
        other => bail!("`{what}` printed {other}, not a list"),
    }
}
