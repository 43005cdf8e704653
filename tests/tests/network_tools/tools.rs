//! The network tools and their configuration of the master, file by file:
//! what README.md's recipes say to write. Every configuration gives the
//! host 198.18.0.1/24 and a route to 198.19.7.0/24 through 198.18.0.2 (the
//! switch side), and names the slaves veth17 and veth19 and the master's
//! hidden peer alb0p only to leave them alone.

use super::guest::run;

/// A network tool, configured for alb0.
#[derive(Clone)]
pub(crate) struct Tool {
    /// What the messages call it.
    pub(crate) name: &'static str,
    /// A program of its package, checked first.
    pub(crate) program: &'static str,
    /// Its units, started with alb@alb0 in one transaction at the boot
    /// (sockets too: networkd's netlink socket starts networkd on a link's
    /// first event); the first is the one `systemctl restart` restarts.
    pub(crate) units: &'static [&'static str],
    /// Its state in /run, which a reboot clears.
    pub(crate) runtime: &'static [&'static str],
    /// Devices it creates (gone at a reboot).
    pub(crate) devices: &'static [&'static str],
    /// (path, contents, mode) of its configuration.
    pub(crate) files: Vec<(&'static str, String, u32)>,
    /// Files a generator must have made of them (systemd runs generators
    /// at the boot and at every daemon-reload).
    pub(crate) generated: &'static [&'static str],
    /// The device that gets the host's addresses.
    pub(crate) host_dev: &'static str,
    /// Addresses `host_dev` must have (`ip -o addr` form).
    pub(crate) addrs: &'static [&'static str],
    /// How routes of `host_dev` must begin (`ip route` form).
    pub(crate) routes: &'static [&'static str],
    /// The host address comes from the switch side's DHCP server.
    pub(crate) dhcp: bool,
    /// What the tool says of a device it must leave alone ("unmanaged").
    pub(crate) slave_state: fn(&str) -> String,
}

const ADDRS: &[&str] = &["198.18.0.1/24"];
const ROUTES: &[&str] = &["198.19.7.0/24 via 198.18.0.2"];

/// networkd's own view of a link: the SETUP column of `networkctl list`.
fn networkd_state(dev: &str) -> String {
    let list = run("networkctl", &["list", "--no-legend", "--no-pager"]);
    list.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.get(1) == Some(&dev))
        .and_then(|w| w.last().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| panic!("networkctl list has no {dev}:\n{list}"))
}

/// The slaves and the master's peer: networkd leaves a link it has no
/// .network for unmanaged; this file says so in as many words, so that a
/// catch-all .network of the system (netplan writes some) does not take
/// them.
const NETWORKD_SLAVES: &str = "\
[Match]
Name=veth17 veth19 alb0p

[Link]
Unmanaged=yes
";

fn networkd(name: &'static str, network: &str, dhcp: bool) -> Tool {
    Tool {
        name,
        program: "/lib/systemd/systemd-networkd",
        units: &["systemd-networkd.service", "systemd-networkd.socket"],
        runtime: &["/run/systemd/netif"],
        devices: &[],
        files: vec![
            ("/etc/systemd/network/10-alb-slaves.network", NETWORKD_SLAVES.to_owned(), 0o644),
            ("/etc/systemd/network/20-alb0.network", network.to_owned(), 0o644),
        ],
        generated: &[],
        host_dev: "alb0",
        addrs: ADDRS,
        routes: ROUTES,
        dhcp,
        slave_state: networkd_state,
    }
}

/// systemd-networkd, a static address and route.
pub(crate) fn networkd_static() -> Tool {
    networkd(
        "systemd-networkd",
        "\
[Match]
Name=alb0

[Network]
Address=198.18.0.1/24

[Route]
Destination=198.19.7.0/24
Gateway=198.18.0.2
",
        false,
    )
}

/// systemd-networkd, DHCP from the switch side (its server gives the
/// address and the route, option 121).
pub(crate) fn networkd_dhcp() -> Tool {
    networkd(
        "systemd-networkd (DHCP)",
        "\
[Match]
Name=alb0

[Network]
DHCP=ipv4
",
        true,
    )
}

/// netplan, rendered by networkd: a YAML file for alb0 alone (netplan
/// writes a .network file only for what it lists, so the slaves have none).
pub(crate) fn netplan() -> Tool {
    Tool {
        name: "netplan (networkd)",
        program: "/usr/libexec/netplan/generate",
        units: &["systemd-networkd.service", "systemd-networkd.socket"],
        runtime: &["/run/systemd/netif"],
        devices: &[],
        files: vec![(
            "/etc/netplan/60-alb0.yaml",
            "\
network:
  version: 2
  renderer: networkd
  ethernets:
    alb0:
      addresses: [198.18.0.1/24]
      routes:
        - to: 198.19.7.0/24
          via: 198.18.0.2
"
            .to_owned(),
            0o600,
        )],
        generated: &["/run/systemd/network/10-netplan-alb0.network"],
        host_dev: "alb0",
        addrs: ADDRS,
        routes: ROUTES,
        dhcp: false,
        slave_state: networkd_state,
    }
}

/// ifupdown's view: a device `ifquery --state` lists is one it brought up.
fn ifupdown_state(dev: &str) -> String {
    let state = run("ifquery", &["--state"]);
    if state.lines().any(|l| l.split('=').next() == Some(dev)) {
        format!("configured by ifup ({})", state.trim())
    } else {
        "unmanaged".to_owned()
    }
}

fn ifupdown(name: &'static str, interfaces: &str, host_dev: &'static str) -> Tool {
    Tool {
        name,
        program: "/sbin/ifup",
        units: &["networking.service"],
        runtime: &["/run/network"],
        devices: if host_dev == "alb0" { &[] } else { &["vmbr0"] },
        files: vec![("/etc/network/interfaces", interfaces.to_owned(), 0o644)],
        generated: &[],
        host_dev,
        addrs: ADDRS,
        routes: ROUTES,
        dhcp: false,
        slave_state: ifupdown_state,
    }
}

/// ifupdown: a stanza for alb0 in /etc/network/interfaces; the slaves are
/// not in the file.
pub(crate) fn ifupdown_static() -> Tool {
    ifupdown(
        "ifupdown",
        "\
auto lo
iface lo inet loopback

auto alb0
iface alb0 inet static
    address 198.18.0.1/24
    up ip route replace 198.19.7.0/24 via 198.18.0.2 dev alb0
",
        "alb0",
    )
}

/// The bridge a Proxmox host puts on its bond: vmbr0 over alb0, with
/// alb0's MAC (veth17's), holding the host's address.
pub(crate) fn ifupdown_bridge() -> Tool {
    ifupdown(
        "ifupdown (vmbr0 over alb0)",
        "\
auto lo
iface lo inet loopback

auto alb0
iface alb0 inet manual

auto vmbr0
iface vmbr0 inet static
    address 198.18.0.1/24
    hwaddress 02:a1:b0:00:00:17
    bridge-ports alb0
    bridge-stp off
    bridge-fd 0
    up ip route replace 198.19.7.0/24 via 198.18.0.2 dev vmbr0
",
        "vmbr0",
    )
}

/// NetworkManager's view: the STATE column of `nmcli device`.
fn nm_state(dev: &str) -> String {
    let list = run("nmcli", &["-t", "-f", "DEVICE,STATE", "device"]);
    list.lines()
        .find_map(|l| l.strip_prefix(&format!("{dev}:")).map(str::to_owned))
        .unwrap_or_else(|| panic!("nmcli device has no {dev}:\n{list}"))
}

/// NetworkManager: a keyfile for alb0; the slaves and the master's peer in
/// its unmanaged list (otherwise it gives each new Ethernet device a DHCP
/// profile of its own).
pub(crate) fn network_manager() -> Tool {
    Tool {
        name: "NetworkManager",
        program: "/usr/sbin/NetworkManager",
        units: &["NetworkManager.service"],
        runtime: &["/run/NetworkManager"],
        devices: &[],
        files: vec![
            (
                "/etc/NetworkManager/conf.d/90-alb.conf",
                "\
[keyfile]
unmanaged-devices=interface-name:veth17;interface-name:veth19;interface-name:alb0p
"
                .to_owned(),
                0o644,
            ),
            (
                "/etc/NetworkManager/system-connections/alb0.nmconnection",
                "\
[connection]
id=alb0
type=ethernet
interface-name=alb0

[ipv4]
method=manual
address1=198.18.0.1/24
route1=198.19.7.0/24,198.18.0.2

[ipv6]
method=ignore
"
                .to_owned(),
                0o600,
            ),
        ],
        generated: &[],
        host_dev: "alb0",
        addrs: ADDRS,
        routes: ROUTES,
        dhcp: false,
        slave_state: nm_state,
    }
}
