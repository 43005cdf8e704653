//! The host's side of the NIC guest: a switch namespace holding a bridge
//! over the guest's tap devices and the clients' ports, and one namespace
//! per client, all under a prefix of this process's own
//! (`albnics<pid>-sw`, `-c1` ...). QEMU runs inside the switch namespace,
//! so its taps never appear in the host's root namespace. Dropping the
//! switch stops what is left inside the namespaces (QEMU included) and
//! deletes them.
//!
//! ```text
//!  guest                      albnics<pid>-sw               albnics<pid>-cI
//!  nic17 (virtio-net) -- tap17 -+
//!  nic19 (e1000e)     -- tap19 -+- br0 -+- c1 ----------- eth0 198.18.0.11
//!                                       +- c2 ----------- eth0 198.18.0.12
//!                                       +- c3 ----------- eth0 198.18.0.13
//! ```

use alb_tests::{Lab, cmd, netns};
use anyhow::Result;

/// One emulated NIC of the guest: its QEMU model, its MAC, the name the
/// guest gives it (guest.sh names NICs by MAC) and its tap on the host.
pub(super) struct Nic {
    pub(super) model: &'static str,
    pub(super) mac: &'static str,
    pub(super) guest_name: &'static str,
    pub(super) tap: &'static str,
    /// QEMU's name for its backend (`set_link` takes it).
    pub(super) netdev: &'static str,
}

/// The slaves, in `--iface` order: the first owns the master's MAC.
pub(super) const NICS: [Nic; 2] = [
    Nic {
        model: "virtio-net-pci",
        mac: "02:a1:b0:00:00:17",
        guest_name: "nic17",
        tap: "tap17",
        netdev: "n17",
    },
    Nic {
        model: "e1000e",
        mac: "02:a1:b0:00:00:19",
        guest_name: "nic19",
        tap: "tap19",
        netdev: "n19",
    },
];

/// The clients: `c1` .. `c3`, 198.18.0.11 .. 13, 2001:2::11 .. 13.
pub(super) const CLIENTS: usize = 3;

/// Client `c`'s IPv4 address: 198.18.0.11 .. 19 for the first nine (the
/// drawing above), 198.18.0.100 + `c` beyond.
pub(super) fn client_ip4(c: usize) -> String {
    if c < 10 { format!("198.18.0.1{c}") } else { format!("198.18.0.{}", 100 + c) }
}

/// The master's addresses in the guest (guest.sh adds them). The IPv6
/// address is not 2001:2::1: its solicited-node group 33:33:ff:00:00:01
/// falls in the same bucket of e1000e's multicast hash as 224.0.0.1,
/// which every NIC has, so e1000e would pass it without filter sync.
pub(super) const MASTER_IP4: &str = "198.18.0.1";
pub(super) const MASTER_IP6: &str = "2001:2::a1";
/// The group the master joins (`autojoin`), in a bucket of e1000e's
/// multicast hash of its own.
pub(super) const GROUP: &str = "239.1.2.3";
/// A group the master joins too that shares 224.0.0.1's bucket: without
/// filter sync, e1000e accepts it anyway, virtio-net (exact) does not.
pub(super) const COLLIDING_GROUP: &str = "239.1.1.1";

/// The MAC of IPv4 group `group` (its low 23 bits), as QEMU lists it.
pub(super) fn group_mac(group: &str) -> String {
    let octets: Vec<u8> = group.split('.').filter_map(|o| o.parse().ok()).collect();
    format!("01:00:5e:{:02x}:{:02x}:{:02x}", octets[1] & 0x7f, octets[2], octets[3])
}

/// The host's half of the lab; dropping it removes it.
pub(super) struct Switch {
    prefix: String,
}

impl Switch {
    /// Builds the switch namespace (bridge, taps) and the clients.
    pub(super) fn up() -> Result<Self> {
        let switch = Self { prefix: format!("albnics{}", std::process::id()) };
        // Leftovers of an earlier run under the same PID.
        Lab::down(&switch.prefix)?;
        let sw = switch.sw();
        netns::add(&sw)?;
        cmd::ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        // The switch has no addresses and sends nothing of its own.
        for key in ["all", "default"] {
            cmd::run(&mut netns::command(
                &sw,
                &["sysctl", "-q", "-w", &format!("net.ipv6.conf.{key}.disable_ipv6=1")],
            ))?;
        }
        // No snooping: multicast is flooded to every port, so what the
        // guest receives is decided by its NICs' filters.
        cmd::ip(&[
            "-n",
            &sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        cmd::ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for nic in &NICS {
            cmd::ip(&["-n", &sw, "tuntap", "add", "dev", nic.tap, "mode", "tap"])?;
            cmd::ip(&["-n", &sw, "link", "set", nic.tap, "master", "br0", "up"])?;
        }
        for c in 1..=CLIENTS {
            switch.add_client(c)?;
            cmd::ip(&[
                "-n",
                &switch.client(c),
                "addr",
                "add",
                &format!("2001:2::1{c}/64"),
                "dev",
                "eth0",
                "nodad",
            ])?;
            // Multicast pings to the master's group leave by eth0.
            cmd::ip(&["-n", &switch.client(c), "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        Ok(switch)
    }

    /// Client `c`'s namespace with its port on the bridge: MAC
    /// 02:a1:c0:00:00:`c` (hex), IPv4 [`client_ip4`]. Dropping the switch
    /// removes it with the others.
    pub(super) fn add_client(&self, c: usize) -> Result<()> {
        let (ns, sw) = (self.client(c), self.sw());
        netns::add(&ns)?;
        cmd::ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        cmd::run(&mut netns::command(
            &ns,
            &["sysctl", "-q", "-w", "net.ipv6.conf.default.router_solicitations=0"],
        ))?;
        let (mac, port) = (format!("02:a1:c0:00:00:{c:02x}"), format!("c{c}"));
        cmd::ip(&[
            "-n", &ns, "link", "add", "eth0", "address", &mac, "type", "veth", "peer", "name",
            &port, "netns", &sw,
        ])?;
        cmd::ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
        cmd::ip(&["-n", &ns, "addr", "add", &format!("{}/24", client_ip4(c)), "dev", "eth0"])?;
        cmd::ip(&["-n", &ns, "link", "set", "eth0", "up"]).map(drop)
    }

    /// Removes client `c` (one added by [`Self::add_client`]).
    pub(super) fn remove_client(&self, c: usize) -> Result<()> {
        netns::delete(&self.client(c))
    }

    /// Sets the MTU of every link between the guest's NICs and clients
    /// `clients`: the taps, the clients' ports and their eth0.
    pub(super) fn set_mtu(&self, clients: &[usize], mtu: u32) -> Result<()> {
        let (sw, mtu) = (self.sw(), mtu.to_string());
        for nic in &NICS {
            cmd::ip(&["-n", &sw, "link", "set", nic.tap, "mtu", &mtu])?;
        }
        for &c in clients {
            cmd::ip(&["-n", &sw, "link", "set", &format!("c{c}"), "mtu", &mtu])?;
            cmd::ip(&["-n", &self.client(c), "link", "set", "eth0", "mtu", &mtu])?;
        }
        Ok(())
    }

    /// The switch namespace (QEMU runs in it).
    pub(super) fn sw(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// Client `c`'s namespace (1-based).
    pub(super) fn client(&self, c: usize) -> String {
        format!("{}-c{c}", self.prefix)
    }

    /// (rx, tx) packets of a tap as the host counts them: tx is what the
    /// bridge sent towards the guest's NIC (the NIC's receive side,
    /// before its filter), rx what the NIC sent.
    pub(super) fn tap_packets(&self, tap: &str) -> Result<(u64, u64)> {
        let text = cmd::run(&mut netns::command(&self.sw(), &["cat", "/proc/net/dev"]))?;
        text.lines()
            .filter_map(|line| line.trim_start().split_once(':'))
            .find(|(name, _)| *name == tap)
            .and_then(|(_, counters)| {
                let fields: Vec<u64> =
                    counters.split_whitespace().filter_map(|f| f.parse().ok()).collect();
                Some((*fields.get(1)?, *fields.get(9)?))
            })
            .ok_or_else(|| anyhow::anyhow!("no {tap} in the switch's /proc/net/dev"))
    }

    /// `ip ARGS` in client `c`'s namespace.
    pub(super) fn client_ip(&self, c: usize, args: &[&str]) -> Result<String> {
        let ns = self.client(c);
        let mut argv = vec!["-n", ns.as_str()];
        argv.extend_from_slice(args);
        cmd::ip(&argv)
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        // Stops what is still inside (QEMU if its owner could not), then
        // deletes the namespaces with their taps, bridge and veths.
        if let Err(error) = Lab::down(&self.prefix) {
            eprintln!("vm-test: cannot remove the namespaces {}-*: {error:#}", self.prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// e1000e's multicast filter bucket of `mac` (Linux programs the table
    /// with filter type 0: bits 36-47 of the address, 4096 buckets).
    fn e1000e_bucket(mac: &str) -> u16 {
        let octets: Vec<u16> =
            mac.split(':').filter_map(|o| u16::from_str_radix(o, 16).ok()).collect();
        ((octets[5] << 4) | (octets[4] >> 4)) & 0xfff
    }

    #[test]
    fn only_the_colliding_group_shares_all_hosts_bucket_on_e1000e() {
        assert_eq!(group_mac(GROUP), "01:00:5e:01:02:03");
        let all_hosts = e1000e_bucket("01:00:5e:00:00:01");
        assert_eq!(e1000e_bucket(&group_mac(COLLIDING_GROUP)), all_hosts);
        // And so would 2001:2::1's solicited-node group.
        assert_eq!(e1000e_bucket("33:33:ff:00:00:01"), all_hosts);
        assert_ne!(e1000e_bucket(&group_mac(GROUP)), all_hosts);
        assert_ne!(e1000e_bucket("33:33:ff:00:00:a1"), all_hosts);
        assert!(MASTER_IP6.ends_with("::a1"));
    }
}
