//! The active slave changed at run time (`alb set active`, a new primary
//! or policy from a reload), and what `alb status` asks of the agent. A
//! new active slave is a config write and a few learning frames.

use anyhow::{Result, bail};
use log::info;

use super::Agent;
use crate::{
    control::{AgentInfo, AgentSlave},
    slaves::ActiveChange,
};

impl Agent {
    /// `alb set active IF`: bonding's `active_slave`.
    pub(super) fn set_active(&mut self, name: &str) -> Result<String> {
        let master = self.options.master.clone();
        let Some(index) = self.set.index_by_name(name) else {
            bail!("{name} is not a slave of {master}");
        };
        match self.set.set_active(index) {
            Err(refused) => bail!("{refused}"),
            Ok(None) => Ok(format!("{name} is already the active slave of {master}")),
            Ok(Some(change)) => {
                let was = self.name_of(change.before);
                self.apply_active(Some(change), "alb set active");
                Ok(format!("{name} is now the active slave of {master} (was {was})"))
            }
        }
    }

    /// Publishes a new active slave: the data path takes broadcasts and the
    /// MACs of failed slaves on it (their learning frames follow it), and
    /// it announces the master's MAC when the owner cannot.
    pub(super) fn apply_active(&mut self, change: Option<ActiveChange>, why: &str) {
        let Some(change) = change else { return };
        let written = self.datapath.write_config(&self.set.state);
        // A refused write is retried until it takes; what follows the new
        // active slave (the switch taught) goes on meanwhile.
        self.wrote(&format!("a new active slave ({why}): the config"), written);
        if let Some(active) = change.after {
            let state = &self.set.state;
            let via = state.slaves[active].ifindex;
            let down: Vec<_> =
                state.slaves.iter().filter(|s| s.ifindex != 0 && !s.up).map(|s| s.mac).collect();
            for mac in down {
                self.learn(via, &mac);
            }
            if let Some(port) = self.master_mac_port() {
                let master_mac = self.set.state.master_mac;
                self.learn(port, &master_mac);
            }
        }
        info!(
            "active slave {} (was {}): {why}",
            self.name_of(change.after),
            self.name_of(change.before)
        );
    }

    fn name_of(&self, index: Option<usize>) -> String {
        index.map_or_else(|| "none".to_owned(), |i| self.set.names[i].clone())
    }

    /// What `alb status` asks: the options and per-slave state only the
    /// agent has, as one line of JSON.
    pub(super) fn info(&self) -> Result<String> {
        let options = &self.options;
        let delays = self.set.delays();
        let slaves = (0..self.set.names.len())
            .filter(|&i| !self.set.names[i].is_empty())
            .map(|i| AgentSlave {
                name: self.set.names[i].clone(),
                state: self.set.link_state(i).to_owned(),
                link_failure_count: self.set.failures(i),
            })
            .collect();
        let info = AgentInfo {
            primary: self.set.primary().map(str::to_owned),
            primary_reselect: self.set.reselect().name().to_owned(),
            updelay_ms: delays.up_ms,
            downdelay_ms: delays.down_ms,
            lp_interval_s: options.lp_interval_s,
            rebalance_interval_s: options.rebalance_interval_s,
            vm_ageing_s: Some(options.vm_ageing_s),
            config_file: options.config.as_ref().map(|c| c.path.display().to_string()),
            slaves,
            map_write_failures: Some(self.map_writes.failed),
            map_writes_pending: self.map_writes.pending_text(),
        };
        Ok(serde_json::to_string(&info)?)
    }
}
