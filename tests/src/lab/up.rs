//! Building the seed topology: [`Lab::up`] creates the namespaces, the
//! switch's bridge, a veth pair per slave and per client, and the clients'
//! addresses; [`Lab::add_server_addrs`] gives the master (made by the agent)
//! the server's addresses.

use std::sync::{Arc, Mutex, atomic::AtomicUsize};

use anyhow::{Context as _, Result, bail};

use super::{
    BRIDGE, CLIENT_DEV, Lab, LabConfig, PREFIX_LEN4, PREFIX_LEN6, SERVER_IP4, SERVER_IP6,
    client_ns,
    names::{lab_mac, log_dir},
    require_root, srv_ns, sw_ns,
};
use crate::{cmd, netns};

/// One server slave and the switch port it is cabled to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slave {
    /// 0-based, in the order the agent is given them.
    pub index: usize,
    /// `veth17`, `veth19`, ... in the server namespace.
    pub name: String,
    /// Its MAC as the lab set it, `02:a1:b0:00:00:17` for veth17.
    pub mac: String,
    /// The peer in the switch namespace, on the bridge: `veth18`, ...
    pub port: String,
    /// The peer's MAC, `02:a1:b1:00:00:18` for veth18.
    pub port_mac: String,
}

/// One client namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// 1-based: client `n` is `<prefix>-c<n>`.
    pub number: usize,
    /// Its namespace.
    pub ns: String,
    /// Its interface, [`CLIENT_DEV`].
    pub dev: String,
    /// `198.18.0.(10+n)`.
    pub ip4: String,
    /// `2001:2::(10+n)` (the number written in decimal digits).
    pub ip6: String,
    /// `02:a1:c0:00:00:0n`.
    pub mac: String,
    /// Its switch port, `c<n>`.
    pub port: String,
}

impl Lab {
    /// Builds the topology `config` describes. Fails, leaving nothing behind,
    /// if any of its namespaces already exists.
    pub fn up(config: LabConfig) -> Result<Self> {
        Self::up_with(config, false)
    }

    /// [`Lab::up`], but the server namespace is the root network namespace
    /// (its name bound to PID 1's with `ip netns attach`): the slaves are
    /// created there, for an agent a service manager runs in the root
    /// namespace. Only for a QEMU guest that is all the lab's (the systemd
    /// guest of `cargo xtask vm-test --systemd`), never on a development
    /// host. Dropping the lab removes the name and, with the switch's
    /// namespace, the slaves (a veth pair goes with either end).
    pub fn up_with_server_in_root_ns(config: LabConfig) -> Result<Self> {
        Self::up_with(config, true)
    }

    fn up_with(config: LabConfig, server_in_root_ns: bool) -> Result<Self> {
        config.validate()?;
        require_root()?;
        let prefix = &config.prefix;
        let slaves = (0..config.slaves)
            .map(|index| {
                let n = 17 + 2 * index;
                Slave {
                    index,
                    name: format!("veth{n}"),
                    mac: lab_mac(0xb0, n),
                    port: format!("veth{}", n + 1),
                    port_mac: lab_mac(0xb1, n + 1),
                }
            })
            .collect();
        let clients = (1..=config.clients)
            .map(|number| Client {
                number,
                ns: client_ns(prefix, number),
                dev: CLIENT_DEV.to_owned(),
                ip4: format!("198.18.0.{}", 10 + number),
                ip6: format!("2001:2::{}", 10 + number),
                mac: lab_mac(0xc0, number),
                port: format!("c{number}"),
            })
            .collect();
        let mut lab = Self {
            srv: srv_ns(prefix),
            sw: sw_ns(prefix),
            slaves,
            clients,
            created: Vec::new(),
            registry: Arc::new(Mutex::new(Vec::new())),
            log_dir: log_dir(prefix),
            spawned: AtomicUsize::new(0),
            keep: false,
            config,
        };
        let all: Vec<String> = [lab.srv.clone(), lab.sw.clone()]
            .into_iter()
            .chain(lab.clients.iter().map(|c| c.ns.clone()))
            .collect();
        if let Some(taken) = all.iter().find(|ns| netns::exists(ns)) {
            bail!(
                "namespace {taken} already exists (a lab with prefix {0:?} is up, or a \
                 previous run left it): remove it with `cargo xtask lab down --prefix {0}`",
                lab.config.prefix
            );
        }
        std::fs::create_dir_all(&lab.log_dir)
            .with_context(|| format!("cannot create {}", lab.log_dir.display()))?;
        for ns in all {
            if server_in_root_ns && ns == lab.srv {
                cmd::ip(&["netns", "attach", &ns, "1"])?;
            } else {
                netns::add(&ns)?;
            }
            lab.created.push(ns);
        }
        lab.build().with_context(|| format!("cannot build lab {:?}", lab.config.prefix))?;
        Ok(lab)
    }

    fn build(&self) -> Result<()> {
        for ns in &self.created {
            self.ip(ns, &["link", "set", "lo", "up"])?;
        }
        // The switch sends nothing of its own: no IPv6 (no DAD, RS, MLD).
        self.sysctl(&self.sw, "net.ipv6.conf.default.disable_ipv6", "1")?;
        self.sysctl(&self.sw, "net.ipv6.conf.all.disable_ipv6", "1")?;
        self.ip(
            &self.sw,
            &[
                "link",
                "add",
                BRIDGE,
                "type",
                "bridge",
                "ageing_time",
                "30000",
                "stp_state",
                "0",
                "mcast_snooping",
                "0",
            ],
        )?;
        self.ip(&self.sw, &["link", "set", BRIDGE, "up"])?;
        for slave in &self.slaves {
            self.ip(
                &self.srv,
                &[
                    "link",
                    "add",
                    &slave.name,
                    "address",
                    &slave.mac,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &slave.port,
                    "address",
                    &slave.port_mac,
                    "netns",
                    &self.sw,
                ],
            )?;
            self.ip(&self.sw, &["link", "set", &slave.port, "master", BRIDGE, "up"])?;
            self.ip(&self.srv, &["link", "set", &slave.name, "up"])?;
        }
        for client in &self.clients {
            // No router in the lab: router solicitations are only noise.
            self.sysctl(&client.ns, "net.ipv6.conf.default.router_solicitations", "0")?;
            self.ip(
                &client.ns,
                &[
                    "link",
                    "add",
                    &client.dev,
                    "address",
                    &client.mac,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &client.port,
                    "address",
                    &lab_mac(0xc1, client.number),
                    "netns",
                    &self.sw,
                ],
            )?;
            self.ip(&self.sw, &["link", "set", &client.port, "master", BRIDGE, "up"])?;
            self.ip(
                &client.ns,
                &["addr", "add", &format!("{}/{PREFIX_LEN4}", client.ip4), "dev", &client.dev],
            )?;
            self.ip(
                &client.ns,
                &[
                    "addr",
                    "add",
                    &format!("{}/{PREFIX_LEN6}", client.ip6),
                    "dev",
                    &client.dev,
                    "nodad",
                ],
            )?;
            self.ip(&client.ns, &["link", "set", &client.dev, "up"])?;
        }
        Ok(())
    }

    /// Gives the master the server's addresses, 198.18.0.1/24 and
    /// 2001:2::1/64 (no DAD), as a user does on a bond. Idempotent.
    pub fn add_server_addrs(&self) -> Result<()> {
        let master = self.config.master.as_str();
        self.ip(
            &self.srv,
            &["addr", "replace", &format!("{SERVER_IP4}/{PREFIX_LEN4}"), "dev", master],
        )?;
        self.ip(
            &self.srv,
            &["addr", "replace", &format!("{SERVER_IP6}/{PREFIX_LEN6}"), "dev", master, "nodad"],
        )?;
        Ok(())
    }
}
