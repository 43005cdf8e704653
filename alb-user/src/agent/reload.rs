//! SIGHUP: the config file read again and applied all or nothing. The new
//! file is checked first, against its own rules and then against the live
//! system (each new slave exists, is Ethernet, is nobody else's and takes
//! the master's MTU; the master keeps a usable slave; a new metrics
//! address can be bound); any problem changes nothing. Slaves come and go
//! as `alb slave add|del` do, so clients of slaves the reload does not
//! touch lose nothing.

use std::net::TcpListener;

use log::{info, warn};

use super::Agent;
use crate::{
    config::{self, Options},
    links::Link,
    undo::Undo,
};

/// What a reload did to the metrics endpoint.
pub(super) enum Endpoint {
    Unchanged,
    Closed,
    /// Serve here from now on (bound while the file was checked).
    Moved(TcpListener),
}

/// A reload that took: what it changed, in one line, and the endpoint.
pub(super) struct Reloaded {
    pub summary: String,
    pub endpoint: Endpoint,
}

/// The slave set a checked file asks for.
struct SlavePlan {
    /// New slaves, checked, in the file's order.
    add: Vec<Link>,
    remove: Vec<String>,
}

impl Agent {
    /// SIGHUP or `alb reload`: re-reads the config file the agent was
    /// started with. A file with errors, or one the live system cannot
    /// take, changes nothing (each reason logged on a line of its own, and
    /// returned); options that need a restart are logged and keep their
    /// value.
    pub(super) async fn reload(&mut self, undo: &mut Undo) -> Result<Reloaded, Vec<String>> {
        let Some(source) = self.options.config.clone() else {
            let why = "the agent was started without a config file; nothing to re-read";
            warn!("{why}");
            return Err(vec![why.to_owned()]);
        };
        let path = source.path.display().to_string();
        let new = match config::load(&source) {
            Ok(options) => options,
            Err(errors) => return not_reloaded(&path, &errors),
        };
        let (plan, endpoint) = match self.check(&path, &new).await {
            Ok(checked) => checked,
            Err(problems) => return not_reloaded(&path, &problems),
        };
        let old = self.options.clone();
        for (key, was, now) in [
            ("master", old.master.clone(), new.master.clone()),
            ("max_clients", old.max_clients.to_string(), new.max_clients.to_string()),
        ] {
            if was != now {
                warn!("{path}: {key} {now} needs a restart to apply; it stays {was}");
            }
        }
        let mut changed = match self.apply_slaves(undo, &path, plan).await {
            Ok(changed) => changed,
            Err(problem) => return not_reloaded(&path, &[problem]),
        };
        changed.extend(self.apply_settings(&old, &new));
        if new.keep_datapath != old.keep_datapath {
            // Read once, when the agent stops: the running value is the one used.
            warn!("{path}: keep_datapath {} needs a restart to apply", new.keep_datapath);
        }
        let slaves = self.set.names.iter().filter(|n| !n.is_empty()).cloned().collect();
        self.options = Options {
            master: old.master,
            max_clients: old.max_clients,
            keep_datapath: old.keep_datapath,
            no_filter_sync: old.no_filter_sync,
            slaves,
            ..new
        };
        let summary = if changed.is_empty() {
            format!("{path} reloaded: nothing changed")
        } else {
            format!("{path} reloaded: {}", changed.join("; "))
        };
        info!("{summary}");
        Ok(Reloaded { summary, endpoint })
    }

    /// Checks `new` against the live system, changing nothing: every
    /// problem, or the slaves to add and remove and the metrics endpoint.
    async fn check(&self, path: &str, new: &Options) -> Result<(SlavePlan, Endpoint), Vec<String>> {
        let mut problems = Vec::new();
        let current: Vec<String> =
            self.set.names.iter().filter(|n| !n.is_empty()).cloned().collect();
        let mut plan = SlavePlan {
            add: Vec::new(),
            remove: current.iter().filter(|n| !new.slaves.contains(n)).cloned().collect(),
        };
        let joining: Vec<&String> = new.slaves.iter().filter(|n| !current.contains(n)).collect();
        for (before, name) in joining.iter().enumerate() {
            match self.check_new_slave(name, before).await {
                Ok(link) => plan.add.push(link),
                Err(error) => problems.push(format!("{path}: slave {name}: {error:#}")),
            }
        }
        let removed: Vec<usize> =
            plan.remove.iter().filter_map(|name| self.set.index_by_name(name)).collect();
        let joining_usable = plan.add.iter().any(|link| link.admin_up && link.lower_up);
        if let Some(problem) = self.set.removal_problem(&removed, joining.len(), joining_usable) {
            problems.push(format!(
                "{path}: slaves: {problem} on {}; `alb slave del --force` removes it on purpose",
                self.options.master
            ));
        }
        // The address was checked with the file (config::validate); here it
        // is bound, so a taken port refuses the reload.
        let mut endpoint = Endpoint::Unchanged;
        if new.metrics_listen != self.options.metrics_listen {
            endpoint = match new.metrics_listen {
                None => Endpoint::Closed,
                Some(addr) => match crate::metrics::bind(addr) {
                    Ok(listener) => Endpoint::Moved(listener),
                    Err(error) => {
                        problems.push(format!("{path}: metrics_listen: {error:#}"));
                        Endpoint::Unchanged
                    }
                },
            };
        }
        if problems.is_empty() { Ok((plan, endpoint)) } else { Err(problems) }
    }

    /// Adds, then removes: the set is never smaller than both the old and
    /// the new one. An add that fails after its check (the device changed
    /// in between) takes back the adds before it and refuses the reload.
    async fn apply_slaves(
        &mut self,
        undo: &mut Undo,
        path: &str,
        plan: SlavePlan,
    ) -> Result<Vec<String>, String> {
        let mut changed = Vec::new();
        let mut added: Vec<&str> = Vec::new();
        for link in &plan.add {
            match self.enslave(undo, link).await {
                Ok(text) => {
                    changed.push(text);
                    added.push(&link.name);
                }
                Err(error) => {
                    for name in added.iter().rev() {
                        if let Err(undo_error) = self.del_slave(undo, name, true).await {
                            warn!(
                                "{path}: slave {name} added by this reload stays: {undo_error:#}"
                            );
                        }
                    }
                    return Err(format!("{path}: slave {}: {error:#}", link.name));
                }
            }
        }
        for name in &plan.remove {
            // Checked: the master keeps a usable slave.
            match self.del_slave(undo, name, true).await {
                Ok(text) => changed.push(text),
                Err(error) => warn!("{path}: slave {name} not removed: {error:#}"),
            }
        }
        Ok(changed)
    }

    /// The options that change without touching a device.
    fn apply_settings(&mut self, old: &Options, new: &Options) -> Vec<String> {
        let mut changed = Vec::new();
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
        if new.metrics_listen != old.metrics_listen {
            match new.metrics_listen {
                Some(addr) => changed.push(format!("metrics_listen {addr}")),
                None => changed.push("metrics endpoint closed".to_owned()),
            }
        }
        changed
    }
}

/// Logs why the file was not applied, one reason a line, and returns the
/// reasons.
fn not_reloaded(path: &str, reasons: &[String]) -> Result<Reloaded, Vec<String>> {
    warn!("{path} not reloaded, the running configuration stays:");
    for reason in reasons {
        warn!("{reason}");
    }
    let mut said = vec![format!("{path} not reloaded, the running configuration stays")];
    said.extend(reasons.iter().cloned());
    Err(said)
}
