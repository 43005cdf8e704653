//! The MTU, as bonding keeps it: every slave has the master's MTU (a slave
//! gets it when it joins and its own back when it leaves), and a change of
//! the master's MTU is applied to every slave, or undone if a slave refuses
//! it (bond_change_mtu unwinds the same way, but can fail the user's
//! command; the agent sees the change after the fact and can only put the
//! master back, with a warning).

use anyhow::Result;
use log::{info, warn};

use super::Agent;
use crate::{links::Link, undo::Undo};

impl Agent {
    /// Gives slave `link` the master's MTU, recording its own first.
    pub(super) async fn give_master_mtu(&self, undo: &mut Undo, link: &Link) -> Result<()> {
        let mtu = self.master.link.mtu;
        if link.mtu != mtu {
            undo.record_mtu(&self.options.master, link.index, link.mtu)?;
            self.netlink.set_mtu(link.index, mtu).await?;
        }
        Ok(())
    }

    /// Gives a released slave its MTU from before it joined.
    pub(super) async fn restore_mtu(&self, undo: &mut Undo, index: u32) {
        if let Some(mtu) = undo.release_mtu(index) {
            if let Err(error) = self.netlink.set_mtu_if_present(index, mtu).await {
                warn!("{error:#}");
            }
        }
    }

    /// The master's MTU changed: the peer and every slave follow; if one
    /// cannot, those already changed and the master go back.
    pub(super) async fn master_mtu_changed(&mut self, undo: &mut Undo, mtu: u32) {
        let old = self.master.link.mtu;
        let mut devices = vec![(self.master.peer.index, self.master.peer.name.clone())];
        for (index, slave) in self.set.state.slaves.iter().enumerate() {
            if slave.ifindex != 0 {
                devices.push((slave.ifindex, self.set.names[index].clone()));
            }
        }
        let mut changed = Vec::new();
        for (index, name) in &devices {
            if *index != self.master.peer.index {
                if let Err(error) = undo.record_mtu(&self.options.master, *index, old) {
                    warn!("{error:#}");
                }
            }
            if let Err(error) = self.netlink.set_mtu(*index, mtu).await {
                warn!(
                    "{name} cannot take MTU {mtu} ({error:#}); {} goes back to {old}",
                    self.options.master
                );
                for &index in &changed {
                    if let Err(error) = self.netlink.set_mtu(index, old).await {
                        warn!("{error:#}");
                    }
                }
                if let Err(error) = self.netlink.set_mtu(self.master.link.index, old).await {
                    warn!("{error:#}");
                }
                return;
            }
            changed.push(*index);
        }
        self.master.link.mtu = mtu;
        self.master.peer.mtu = mtu;
        info!(
            "MTU {mtu} on {} and its {} slaves (was {old})",
            self.options.master,
            devices.len() - 1
        );
    }
}
