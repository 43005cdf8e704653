//! What is wrong with a set of options, key by key: the checks a start
//! (from the command line or a file), `alb config check` and a reload all
//! make, before anything changes. Bonding's limits where bonding has the
//! option (`lp_interval` 1 to INT_MAX s, delays up to INT_MAX ms).

use std::collections::HashSet;

use alb_common::{maps::MAX_SLAVES, sampling::MAX_CLIENT_SAMPLING};

use super::{DEFAULT_MASTER, Settings};
use crate::master;

/// Bonding's upper limit for its integer options (INT_MAX).
pub const INT_MAX: u64 = i32::MAX as u64;

/// One thing wrong with one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file key (`lp_interval`, `slaves`, ...).
    pub key: &'static str,
    /// The item of an array value it is about (a slave named twice).
    pub item: Option<usize>,
    pub message: String,
}

impl Problem {
    fn new(key: &'static str, message: String) -> Self {
        Self { key, item: None, message }
    }
}

/// Every problem with `settings`; empty when they can run.
pub fn problems(settings: &Settings) -> Vec<Problem> {
    let mut problems = Vec::new();
    let master = settings.master.as_deref().unwrap_or(DEFAULT_MASTER);
    if let Err(error) = master::validate_name(master) {
        problems.push(Problem::new("master", format!("{error:#}")));
    }
    slaves(settings, master, &mut problems);
    if let Some(every) = settings.client_sampling.filter(|n| !(1..=MAX_CLIENT_SAMPLING).contains(n))
    {
        problems.push(Problem::new(
            "client_sampling",
            format!(
                "client_sampling {every} is out of range: allowed values 1 - {MAX_CLIENT_SAMPLING} \
                 (1 counts every frame)"
            ),
        ));
    }
    if settings.max_clients == Some(0) {
        problems.push(Problem::new("max_clients", "max_clients must be at least 1".to_owned()));
    }
    let ranges = [
        ("updelay", settings.updelay, 0, "ms"),
        ("downdelay", settings.downdelay, 0, "ms"),
        // Bonding refuses lp_interval 0 ("allowed values 1 - 2147483647").
        ("lp_interval", settings.lp_interval, 1, "s"),
        ("rebalance_interval", settings.rebalance_interval, 0, "s"),
        ("vm_ageing", settings.vm_ageing, 1, "s"),
    ];
    for (key, value, min, unit) in ranges {
        if let Some(value) = value.filter(|v| !(min..=INT_MAX).contains(v)) {
            problems.push(Problem::new(
                key,
                format!("{key} {value} is out of range: allowed values {min} - {INT_MAX} ({unit})"),
            ));
        }
    }
    // As a start checks it: a file `alb config check` passes must start.
    if let Err(error) = crate::metrics::check_listen(
        settings.metrics_listen,
        settings.metrics_allow_remote.unwrap_or(false),
    ) {
        let key = if settings.metrics_listen.is_some() {
            "metrics_listen"
        } else {
            "metrics_allow_remote"
        };
        problems.push(Problem::new(key, format!("{error:#}")));
    }
    if let Some(primary) = &settings.primary {
        let slaves = settings.slaves.as_deref().unwrap_or_default();
        if !slaves.contains(primary) {
            problems.push(Problem::new(
                "primary",
                format!("primary {primary} is not one of the slaves ({})", slaves.join(", ")),
            ));
        }
    }
    problems
}

/// The slaves: at least one, at most [`MAX_SLAVES`], each an interface
/// name given once that is not the master's.
fn slaves(settings: &Settings, master: &str, problems: &mut Vec<Problem>) {
    let slaves = settings.slaves.as_deref().unwrap_or_default();
    if slaves.is_empty() {
        problems.push(Problem::new(
            "slaves",
            "no slaves: name at least one (slaves = [\"eth0\", ...] or --iface)".to_owned(),
        ));
    }
    if slaves.len() > MAX_SLAVES {
        problems.push(Problem::new(
            "slaves",
            format!("at most {MAX_SLAVES} slaves, {} given", slaves.len()),
        ));
    }
    let mut seen = HashSet::new();
    for (item, slave) in slaves.iter().enumerate() {
        let mut problem =
            |message| problems.push(Problem { key: "slaves", item: Some(item), message });
        if !seen.insert(slave) {
            problem(format!("interface {slave} is named twice"));
        } else if slave == master || *slave == master::peer_name(master) {
            problem(format!("interface {slave} is the master itself"));
        } else if slave.is_empty() || slave.len() > 15 || slave.contains(['/', ' ', ':']) {
            problem(format!("{slave:?} is not a valid interface name"));
        }
    }
}
