//! VMs behind the master, as a hypervisor host or a container host has
//! them: a namespace each, reaching the master through a bridge over it or a
//! macvlan on it ([`Lab::add_vms`]).

use anyhow::{Result, ensure};

use super::{
    CLIENT_DEV, Lab, PREFIX_LEN4, PREFIX_LEN6, SERVER_IP4, SERVER_IP6, names::lab_mac, vm_ns,
};
use crate::netns;

/// The bridge a hypervisor host puts on its bond, in the server namespace.
pub const VM_BRIDGE: &str = "vmbr0";
/// Most VMs a lab takes: 198.18.0.201 ..= 198.18.0.220.
pub const MAX_VMS: usize = 20;

/// How a VM reaches the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmKind {
    /// A veth on [`VM_BRIDGE`], a bridge over the master (Proxmox, libvirt).
    Bridged,
    /// A macvlan in bridge mode on the master (containers).
    Macvlan,
}

/// One VM: a namespace behind the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// 1-based: VM `n` is `<prefix>-v<n>`.
    pub number: usize,
    pub ns: String,
    /// Its interface in its namespace.
    pub dev: String,
    /// `198.18.0.(200+n)`.
    pub ip4: String,
    /// `2001:2::(200+n)` (decimal digits).
    pub ip6: String,
    /// `02:a1:d0:00:00:0n`.
    pub mac: String,
}

impl Lab {
    /// Adds `count` VMs of `kind` behind the master, which must exist (the
    /// agent made it). Bridged: a bridge [`VM_BRIDGE`] over the master with
    /// the master's MAC, holding the server's addresses (as hypervisor
    /// hosts set it), and a veth per VM on it. Macvlan: a macvlan in bridge
    /// mode per VM on the master, moved into the VM's namespace; the
    /// server's addresses stay on the master. VMs get 198.18.0.(200+n)/24
    /// and 2001:2::(200+n)/64 (no DAD). Their namespaces go with the lab.
    pub fn add_vms(&mut self, kind: VmKind, count: usize) -> Result<Vec<Vm>> {
        ensure!((1..=MAX_VMS).contains(&count), "VMs must be 1..={MAX_VMS}, not {count}");
        ensure!(self.clients.len() < 190, "client addresses would meet the VMs' (.201 on)");
        let master = self.config.master.clone();
        let srv = self.srv.clone();
        if kind == VmKind::Bridged {
            let mac = self.link_mac(&srv, &master)?;
            self.ip(&srv, &["link", "add", VM_BRIDGE, "address", &mac, "type", "bridge"])?;
            self.ip(&srv, &["link", "set", &master, "master", VM_BRIDGE])?;
            for (address, extra) in [
                (format!("{SERVER_IP4}/{PREFIX_LEN4}"), None),
                (format!("{SERVER_IP6}/{PREFIX_LEN6}"), Some("nodad")),
            ] {
                // The addresses live on the bridge now, not on the master.
                let _gone = self.ip(&srv, &["addr", "del", &address, "dev", &master]);
                let mut args = vec!["addr", "replace", address.as_str(), "dev", VM_BRIDGE];
                args.extend(extra);
                self.ip(&srv, &args)?;
            }
            self.ip(&srv, &["link", "set", VM_BRIDGE, "up"])?;
        }
        let mut vms = Vec::new();
        for number in 1..=count {
            let ns = vm_ns(&self.config.prefix, number);
            ensure!(!netns::exists(&ns), "namespace {ns} already exists");
            netns::add(&ns)?;
            self.created.push(ns.clone());
            let vm = Vm {
                number,
                dev: match kind {
                    VmKind::Bridged => CLIENT_DEV.to_owned(),
                    VmKind::Macvlan => format!("mv{number}"),
                },
                ip4: format!("198.18.0.{}", 200 + number),
                ip6: format!("2001:2::{}", 200 + number),
                mac: lab_mac(0xd0, number),
                ns,
            };
            match kind {
                VmKind::Bridged => {
                    let port = format!("vm{number}");
                    self.ip(
                        &vm.ns,
                        &[
                            "link", "add", &vm.dev, "address", &vm.mac, "type", "veth", "peer",
                            "name", &port, "netns", &srv,
                        ],
                    )?;
                    self.ip(&srv, &["link", "set", &port, "master", VM_BRIDGE, "up"])?;
                }
                VmKind::Macvlan => {
                    self.ip(
                        &srv,
                        &[
                            "link", "add", "link", &master, "name", &vm.dev, "address", &vm.mac,
                            "type", "macvlan", "mode", "bridge",
                        ],
                    )?;
                    self.ip(&srv, &["link", "set", &vm.dev, "netns", &vm.ns])?;
                }
            }
            self.ip(
                &vm.ns,
                &["addr", "add", &format!("{}/{PREFIX_LEN4}", vm.ip4), "dev", &vm.dev],
            )?;
            self.ip(
                &vm.ns,
                &["addr", "add", &format!("{}/{PREFIX_LEN6}", vm.ip6), "dev", &vm.dev, "nodad"],
            )?;
            self.ip(&vm.ns, &["link", "set", &vm.dev, "up"])?;
            vms.push(vm);
        }
        Ok(vms)
    }
}
