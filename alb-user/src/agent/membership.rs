//! The slave set at run time: link reports for the master and the slaves,
//! `alb slave add|del`, and slaves whose device is deleted.

use alb_common::{maps::MAX_SLAVES, wire::Mac};
use anyhow::{Result, bail};
use log::{info, warn};

use super::{
    Agent,
    startup::{check_slave, used_by_alb_here},
};
use crate::{
    ethtool, format_mac,
    links::{Link, LinkReport},
    master,
    state::SlaveState,
    sysctl,
    undo::Undo,
};

impl Agent {
    /// Whether a report says the master (or its peer) is gone.
    pub(super) fn master_deleted(&self, report: &LinkReport) -> bool {
        report.deleted
            && (report.index == self.master.link.index || report.index == self.master.peer.index)
    }

    /// A link report for the master or a slave; a failed step is logged.
    pub(super) async fn on_link(&mut self, undo: &mut Undo, report: &LinkReport) {
        if let Err(error) = self.apply_link(undo, report).await {
            warn!("{error:#}");
        }
    }

    async fn apply_link(&mut self, undo: &mut Undo, report: &LinkReport) -> Result<()> {
        if report.index == self.master.link.index {
            if let Some(mac) = report.mac.filter(|mac| *mac != self.set.state.master_mac) {
                self.master_mac_changed(mac)?;
            }
            if let Some(mtu) = report.mtu.filter(|&mtu| mtu != self.master.link.mtu) {
                self.master_mtu_changed(undo, mtu).await;
            }
            return Ok(());
        }
        let Some(index) = self.set.index_of(report.index) else { return Ok(()) };
        if report.deleted {
            // As bonding releases a slave whose device goes away.
            warn!(
                "slave {} was deleted; releasing it from {}",
                self.set.names[index], self.options.master
            );
            return self.release_slave(undo, index).await;
        }
        if report.carrier() {
            // Bonding reads speed and duplex when a link comes up.
            self.set.set_speed(index, ethtool::speed(&self.set.names[index]));
        }
        for transition in self.set.carrier(index, report.carrier()) {
            self.transition(&transition).await?;
        }
        Ok(())
    }

    /// The user gave the master a new MAC (`ip link set alb0 address ...`):
    /// the data path takes it as the master's (the active slave carries it,
    /// host ARP with it is rewritten per client), and the switch learns it
    /// on the active slave's port.
    fn master_mac_changed(&mut self, mac: Mac) -> Result<()> {
        info!(
            "{} has a new MAC {}; the active slave carries it",
            self.options.master,
            format_mac(&mac)
        );
        self.set.state.master_mac = mac;
        let written = self.datapath.write_config(&self.set.state);
        self.wrote("the master's new MAC: the config", written);
        if let Some(active) = self.set.state.active {
            self.learn(self.set.state.slaves[active].ifindex, &mac);
        }
        Ok(())
    }

    /// Reads the master and every slave again, as reports (after an overrun).
    pub(super) async fn reread_links(&self) -> Vec<LinkReport> {
        let indices = self.set.state.slaves.iter().map(|s| s.ifindex).filter(|&i| i != 0);
        let mut reports = Vec::new();
        for index in std::iter::once(self.master.link.index).chain(indices) {
            match self.netlink.link_by_index(index).await {
                Ok(Some(link)) => reports.push(LinkReport::from_link(&link)),
                Ok(None) => reports.push(LinkReport {
                    index,
                    admin_up: false,
                    lower_up: false,
                    deleted: true,
                    mac: None,
                    mtu: None,
                    overrun: false,
                }),
                Err(error) => warn!("{error:#}"),
            }
        }
        reports
    }

    /// Whether `name` can join now, checked against the live system before
    /// anything changes: it exists, is Ethernet, is not the master, belongs
    /// to no other master (alb's or the kernel's), takes the master's MTU,
    /// and fits beside the slaves there are and `joining` others.
    pub(super) async fn check_new_slave(&self, name: &str, joining: usize) -> Result<Link> {
        let master = &self.options.master;
        if self.set.index_by_name(name).is_some() {
            bail!("{name} is already a slave of {master}");
        }
        if name == master || name == master::peer_name(master) {
            bail!("interface {name} is the master itself");
        }
        let slaves = self.set.state.slaves.iter().filter(|s| s.ifindex != 0).count();
        if slaves + joining >= MAX_SLAVES {
            bail!("{master} would have more than {MAX_SLAVES} slaves");
        }
        let link = check_slave(&self.netlink, name).await?;
        if used_by_alb_here(name)? {
            bail!("interface {name} is already a slave of another alb master");
        }
        let mtu = self.master.link.mtu;
        if !link.takes_mtu(mtu) {
            let (min, max) = link.mtu_range;
            bail!(
                "interface {name} cannot take the MTU {mtu} of {master} (it accepts {} - {})",
                min.unwrap_or(0),
                max.unwrap_or(u32::MAX)
            );
        }
        Ok(link)
    }

    /// `alb slave add`: checks the device like a start does, silences it,
    /// attaches the receive program and deals it its share.
    pub(super) async fn add_slave(&mut self, undo: &mut Undo, name: &str) -> Result<String> {
        let link = self.check_new_slave(name, 0).await?;
        self.enslave(undo, &link).await
    }

    /// Makes the checked device `link` a slave; a step that fails gives
    /// the device back as it was.
    pub(super) async fn enslave(&mut self, undo: &mut Undo, link: &Link) -> Result<String> {
        let master = self.options.master.clone();
        let name = link.name.as_str();
        if let Err(error) = self.prepare_slave(undo, link).await {
            // Give the device back as it was: a refused add changes nothing.
            if let Err(detach) = self.datapath.detach_slave(name) {
                warn!("{detach:#}");
            }
            let (sysctls, raised) = undo.release_device(name, link.index);
            sysctl::restore(sysctls);
            self.restore_mtu(undo, link.index).await;
            if raised {
                if let Err(down) = self.netlink.set_down_if_present(link.index).await {
                    warn!("cannot take {name} down again: {down:#}");
                }
            }
            undo.save(&master)?;
            return Err(error);
        }
        let current = self.netlink.existing(name).await?;
        let slave = SlaveState {
            ifindex: current.index,
            mac: current.mac.unwrap_or_default(),
            up: current.admin_up && current.lower_up,
        };
        let (index, transitions) = self.set.add(name.to_owned(), slave, ethtool::speed(name));
        if transitions.is_empty() {
            let written = self.datapath.publish_slaves(&self.set.state);
            self.wrote(&format!("slave add {name}: the slave table and config"), written);
        }
        for transition in transitions {
            self.transition(&transition).await?;
        }
        Ok(format!("{name} added to {master} as slave {index}"))
    }

    /// Silences and raises a device about to become a slave, and attaches
    /// the receive program to it, recording each change first.
    async fn prepare_slave(&mut self, undo: &mut Undo, link: &Link) -> Result<()> {
        let master = &self.options.master;
        sysctl::silence(&link.name, |saved| undo.record_sysctl(master, saved))?;
        if !link.admin_up {
            undo.record_raised(master, link.index)?;
            self.netlink.set_up(link.index, true).await?;
        }
        // As bonding's enslave: the slave takes the master's MTU.
        self.give_master_mtu(undo, link).await?;
        self.datapath.attach_slave(&link.name)
    }

    /// `alb slave del`: moves the slave's clients and buckets away, detaches
    /// it and gives the device back as it was. Without `force` it refuses
    /// to remove the last slave, or the last usable one.
    pub(super) async fn del_slave(
        &mut self,
        undo: &mut Undo,
        name: &str,
        force: bool,
    ) -> Result<String> {
        let master = self.options.master.clone();
        let Some(index) = self.set.index_by_name(name) else {
            bail!("{name} is not a slave of {master}");
        };
        if let Some(problem) = self.set.removal_problem(&[index], 0, false).filter(|_| !force) {
            bail!("{problem} on {master}; `alb slave del --force {name}` removes it anyway");
        }
        self.release_slave(undo, index).await?;
        Ok(format!("{name} removed from {master}"))
    }

    /// Takes slave `index` out (`alb slave del`, or its device was deleted):
    /// its clients and buckets move first, then its program is detached and
    /// the device gets back what the agent changed.
    async fn release_slave(&mut self, undo: &mut Undo, index: usize) -> Result<()> {
        let master = self.options.master.clone();
        let name = self.set.names[index].clone();
        let removed = self.set.state.slaves[index].clone();
        for transition in self.set.remove(index) {
            self.transition(&transition).await?;
        }
        self.set.forget(index);
        // A removed slave is nobody's home any more.
        self.model.slots.forget_home(u32::try_from(index)?);
        let written = self.datapath.publish_slaves(&self.set.state);
        self.wrote(&format!("slave del {name}: the slave table and config"), written);
        // A deleted device took its link with it; the pin may remain.
        if let Err(error) = self.datapath.detach_slave(&name) {
            warn!("{error:#}");
        }
        let (sysctls, raised) = undo.release_device(&name, removed.ifindex);
        sysctl::restore(sysctls);
        self.restore_mtu(undo, removed.ifindex).await;
        if raised {
            if let Err(error) = self.netlink.set_down_if_present(removed.ifindex).await {
                warn!("cannot take {name} down again: {error:#}");
            }
        }
        undo.save(&master)?;
        if removed.mac == self.set.state.master_mac {
            warn!(
                "{master} keeps the MAC of {name} ({}); give one of them another MAC \
                 before {name} joins the same network elsewhere",
                format_mac(&removed.mac)
            );
        }
        Ok(())
    }
}
