//! Options changed at run time: SIGHUP re-reads the config file and
//! applies what may change without a restart (slaves, primary, policy,
//! delays, intervals); `alb set active`; and what `alb status` asks of the
//! agent. None of it stops traffic: slaves come and go as `alb slave
//! add|del` do, and a new active slave is a config write and a few
//! learning frames.

use anyhow::{Result, bail};
use log::{info, warn};

use super::{Agent, Options};
use crate::{
    config,
    slaves::ActiveChange,
    status::{AgentInfo, AgentSlave},
    undo::Undo,
};

impl Agent {
    /// SIGHUP: re-reads the config file the agent was started with. A file
    /// with errors changes nothing (each is logged as `PATH:LINE: ...`);
    /// options that need a restart are logged and keep their value.
    pub(super) async fn reload(&mut self, undo: &mut Undo) {
        let Some(source) = self.options.config.clone() else {
            warn!("SIGHUP: the agent was started without a config file; nothing to re-read");
            return;
        };
        let path = source.path.display().to_string();
        let new = match config::load(&source) {
            Ok(options) => options,
            Err(errors) => {
                warn!("{path} not reloaded, the running configuration stays:");
                for error in errors {
                    warn!("{error}");
                }
                return;
            }
        };
        let old = self.options.clone();
        let restart = [
            ("master", old.master.clone(), new.master.clone()),
            ("max_clients", old.max_clients.to_string(), new.max_clients.to_string()),
        ];
        for (key, was, now) in restart {
            if was != now {
                warn!("{path}: {key} {now} needs a restart to apply; it stays {was}");
            }
        }
        let mut changed = Vec::new();
        let current: Vec<String> =
            self.set.names.iter().filter(|n| !n.is_empty()).cloned().collect();
        // Added first: the set is never smaller than both old and new.
        for name in new.slaves.iter().filter(|n| !current.contains(n)) {
            match self.add_slave(undo, name).await {
                Ok(text) => changed.push(text),
                Err(error) => warn!("{path}: slave {name} not added: {error:#}"),
            }
        }
        for name in current.iter().filter(|n| !new.slaves.contains(n)) {
            match self.del_slave(undo, name).await {
                Ok(text) => changed.push(text),
                Err(error) => warn!("{path}: slave {name} not removed: {error:#}"),
            }
        }
        if new.delays != self.set.delays() {
            self.set.set_delays(new.delays);
            changed.push(format!(
                "updelay {} ms, downdelay {} ms",
                new.delays.up_ms, new.delays.down_ms
            ));
        }
        if new.primary_reselect != self.set.reselect() {
            let change = self.set.set_reselect(new.primary_reselect);
            changed.push(format!("primary_reselect {}", new.primary_reselect));
            self.apply_active(change, "primary_reselect changed");
        }
        if new.primary.as_deref() != self.set.primary() {
            let change = self.set.set_primary(new.primary.clone());
            changed.push(format!("primary {}", new.primary.as_deref().unwrap_or("none")));
            self.apply_active(change, "a new primary");
        }
        if new.lp_interval_s != old.lp_interval_s {
            changed.push(format!("lp_interval {} s", new.lp_interval_s));
        }
        if new.rebalance_interval_s != old.rebalance_interval_s {
            changed.push(format!("rebalance_interval {} s", new.rebalance_interval_s));
        }
        if new.vm_ageing_s != old.vm_ageing_s {
            changed.push(format!("vm_ageing {} s", new.vm_ageing_s));
        }
        if new.client_sampling != old.client_sampling {
            self.set.state.client_sampling = new.client_sampling;
            let written = self.datapath.write_config(&self.set.state);
            // A refused write is retried until it takes (map_writes.rs).
            let note = if self.wrote("reload: client_sampling in the config", written) {
                ""
            } else {
                " (its map write is pending)"
            };
            changed.push(format!("client_sampling {}{note}", new.client_sampling));
        }
        // Checked before it is used, as at start: a remote address without
        // metrics_allow_remote keeps the running endpoint.
        let (mut listen, mut allow_remote) = (new.metrics_listen, new.metrics_allow_remote);
        if let Err(error) = crate::metrics::check_listen(listen, allow_remote) {
            warn!("{path}: {error:#}; the metrics endpoint stays as it is");
            (listen, allow_remote) = (old.metrics_listen, old.metrics_allow_remote);
        }
        // Read once, when the agent stops: the running value is the one used.
        if new.keep_datapath != old.keep_datapath {
            warn!("{path}: keep_datapath {} needs a restart to apply", new.keep_datapath);
        }
        let slaves = self.set.names.iter().filter(|n| !n.is_empty()).cloned().collect();
        self.options = Options {
            master: old.master,
            max_clients: old.max_clients,
            keep_datapath: old.keep_datapath,
            metrics_listen: listen,
            metrics_allow_remote: allow_remote,
            slaves,
            ..new
        };
        if changed.is_empty() {
            info!("{path} reloaded: nothing changed");
        } else {
            info!("{path} reloaded: {}", changed.join("; "));
        }
    }

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
    fn apply_active(&mut self, change: Option<ActiveChange>, why: &str) {
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

    /// A reload changed `metrics_listen` (from `old`): a server on the new
    /// address, or none. The port is bound with the capabilities kept after
    /// setup, so one below 1024 is refused (the old server then stays).
    pub(super) fn rebind_metrics(
        &mut self,
        old: Option<std::net::SocketAddr>,
        scrapes: &tokio::sync::mpsc::Sender<crate::metrics::Scrape>,
    ) -> Result<Option<crate::metrics::Server>> {
        let Some(addr) = self.options.metrics_listen else {
            info!("metrics endpoint closed");
            return Ok(None);
        };
        match crate::metrics::bind(addr)
            .and_then(|l| crate::metrics::Server::start(l, scrapes.clone()))
        {
            Ok(server) => Ok(Some(server)),
            Err(error) => {
                self.options.metrics_listen = old;
                Err(error.context("the metrics endpoint stays as it was"))
            }
        }
    }
}
