//! alb's configuration: every option of `alb run`, given on the command
//! line or in a TOML file (`--config PATH`; by default
//! `/etc/alb/<master>.toml` when it exists), the command line winning.
//!
//! [`Settings`] is the one list of options: each field is a command-line
//! flag (clap) and a file key (serde) at once, `None` when not given, so a
//! new option is one field here (and its use in [`Options`]).
//! [`file`] reads a file and says where each key is, [`validate`] says
//! what is wrong with a set of options, key by key; this module puts the
//! two sources together and words each problem after its source
//! (`--lp-interval: ...` or `PATH:LINE: ...`).

pub mod file;
mod options;
pub mod validate;

use std::path::{Path, PathBuf};

use alb_common::{
    active::Reselect,
    link::Delays,
    maps::{DEFAULT_MAX_CLIENTS, DEFAULT_VM_AGEING_S},
    sampling::DEFAULT_CLIENT_SAMPLING,
};
use serde::{Deserialize, Serialize};

pub use self::{options::Options, validate::Problem};

/// Where `alb run` looks for `<master>.toml` when no `--config` is given.
pub const DEFAULT_DIR: &str = "/etc/alb";

/// The master when none is given.
pub const DEFAULT_MASTER: &str = "alb0";

/// Every option of `alb run`: a command-line flag and a config-file key
/// each (the key is the field name; `--iface` is the key `slaves`).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The master device; created (a veth pair) if missing [default: alb0].
    #[arg(long)]
    pub master: Option<String>,
    /// A slave device; give it once per slave, in enslave order (file key:
    /// slaves).
    #[arg(long = "iface", value_name = "IF")]
    pub slaves: Option<Vec<String>>,
    /// Size of each client table, IPv4 and IPv6 [default: 65536].
    #[arg(long, value_name = "N")]
    pub max_clients: Option<u32>,
    /// Milliseconds a slave's carrier must be back before it is used again
    /// [default: 0].
    #[arg(long, value_name = "MS")]
    pub updelay: Option<u64>,
    /// Milliseconds a slave's carrier must be gone before it is given up
    /// [default: 0].
    #[arg(long, value_name = "MS")]
    pub downdelay: Option<u64>,
    /// The slave preferred as active.
    #[arg(long, value_name = "IF")]
    pub primary: Option<String>,
    /// When the primary takes the active role back from another slave that
    /// is up [default: always].
    #[arg(long, value_name = "POLICY")]
    pub primary_reselect: Option<PrimaryReselect>,
    /// Seconds between learning frames from every slave [default: 1].
    #[arg(long, value_name = "S")]
    pub lp_interval: Option<u64>,
    /// Seconds between transmit rebalancing by measured load, 0 for never
    /// [default: 10].
    #[arg(long, value_name = "S")]
    pub rebalance_interval: Option<u64>,
    /// Seconds a VM MAC (a source other than the master's: a bridged VM, a
    /// macvlan) stays pinned to its slave without a frame from it
    /// [default: 300].
    #[arg(long, value_name = "S")]
    pub vm_ageing: Option<u64>,
    /// Count 1 frame in N in each client's counters, weighted N (unbiased
    /// estimates at a fraction of the cost); 1 counts every frame
    /// [default: 16].
    #[arg(long, value_name = "N")]
    pub client_sampling: Option<u32>,
    /// On SIGINT/SIGTERM, leave the data path forwarding for the next agent
    /// to adopt (a restart or an upgrade loses nothing); `alb down` removes
    /// it [default: false; the systemd unit sets it].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub keep_datapath: Option<bool>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (loopback only,
    /// unless metrics_allow_remote) [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Allow metrics_listen on an address other hosts can reach.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub metrics_allow_remote: Option<bool>,
}

/// Bonding's `primary_reselect` as the command line and the file spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrimaryReselect {
    /// Whenever it is up.
    Always,
    /// Only if it is faster (or as fast with a better duplex).
    Better,
    /// Only when the active slave fails.
    Failure,
}

impl From<PrimaryReselect> for Reselect {
    fn from(policy: PrimaryReselect) -> Self {
        match policy {
            PrimaryReselect::Always => Self::Always,
            PrimaryReselect::Better => Self::Better,
            PrimaryReselect::Failure => Self::Failure,
        }
    }
}

impl Settings {
    /// These settings over `lower` (the command line over the file): every
    /// field given here wins. Field by field through the serde model, so a
    /// new field needs nothing here.
    #[must_use]
    pub fn over(&self, lower: &Self) -> Self {
        let mut merged = Self::given(lower);
        merged.extend(Self::given(self));
        serde_json::from_value(serde_json::Value::Object(merged))
            .expect("settings merged field by field are settings")
    }

    /// The fields `settings` gives, by key.
    fn given(settings: &Self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(settings) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.retain(|_, value| !value.is_null());
                fields
            }
            _ => unreachable!("settings serialize as a JSON object"),
        }
    }

    /// Whether `key` is given here.
    pub fn has(&self, key: &str) -> bool {
        Self::given(self).contains_key(key)
    }

    /// The agent's options: defaults for what is not given, or every
    /// problem found.
    pub fn options(&self) -> Result<Options, Vec<Problem>> {
        let problems = validate::problems(self);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Options {
            master: self.master.clone().unwrap_or_else(|| DEFAULT_MASTER.to_owned()),
            slaves: self.slaves.clone().unwrap_or_default(),
            max_clients: self.max_clients.unwrap_or(DEFAULT_MAX_CLIENTS),
            delays: Delays {
                up_ms: self.updelay.unwrap_or(0),
                down_ms: self.downdelay.unwrap_or(0),
            },
            primary: self.primary.clone(),
            primary_reselect: self.primary_reselect.map(Reselect::from).unwrap_or_default(),
            lp_interval_s: self.lp_interval.unwrap_or(1),
            rebalance_interval_s: self.rebalance_interval.unwrap_or(10),
            vm_ageing_s: self.vm_ageing.unwrap_or(DEFAULT_VM_AGEING_S),
            client_sampling: self.client_sampling.unwrap_or(DEFAULT_CLIENT_SAMPLING),
            keep_datapath: self.keep_datapath.unwrap_or(false),
            metrics_listen: self.metrics_listen,
            metrics_allow_remote: self.metrics_allow_remote.unwrap_or(false),
            // A test switch of the command line only (`alb run --no-filter-sync`).
            no_filter_sync: false,
            config: None,
        })
    }
}

/// Where the running options came from: re-read on SIGHUP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    /// What the command line gave; it still wins after a reload.
    pub cli: Settings,
}

/// `/etc/alb/<master>.toml`.
pub fn default_path(master: &str) -> PathBuf {
    Path::new(DEFAULT_DIR).join(format!("{master}.toml"))
}

/// The options of `alb run`: the command line `cli` over the file `config`
/// (or the default file of the master, if it exists). Errors are whole
/// lines, `PATH:LINE: message` for the file's and `--flag: message` for
/// the command line's.
pub fn resolve(cli: Settings, config: Option<PathBuf>) -> Result<Options, Vec<String>> {
    let master = cli.master.as_deref().unwrap_or(DEFAULT_MASTER);
    let path = config.or_else(|| Some(default_path(master)).filter(|path| path.exists()));
    match path {
        Some(path) => load(&Source { path, cli }),
        None => cli.options().map_err(|problems| {
            problems.iter().map(|problem| on_command_line(&cli, problem)).collect()
        }),
    }
}

/// Reads the file of `source` and puts its command line over it.
pub fn load(source: &Source) -> Result<Options, Vec<String>> {
    let path = &source.path;
    let text = std::fs::read_to_string(path)
        .map_err(|error| vec![format!("cannot read {}: {error}", path.display())])?;
    let parsed = file::parse(&text);
    let merged = source.cli.over(&parsed.settings);
    let problems = match merged.options() {
        Ok(mut options) if parsed.errors.is_empty() => {
            options.config = Some(source.clone());
            return Ok(options);
        }
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    };
    // Every error at once: the file's by line, then the command line's.
    let mut in_file = parsed.errors.clone();
    let mut on_cli = Vec::new();
    for problem in &problems {
        if source.cli.has(problem.key) {
            on_cli.push(on_command_line(&source.cli, problem));
        } else if !parsed.unread(problem.key) {
            in_file.push(parsed.locate(problem));
        }
    }
    in_file.sort_by_key(|error| error.line);
    Err(in_file.iter().map(|error| error.at(path)).chain(on_cli).collect())
}

/// `alb config check PATH`: every error in the file, `PATH:LINE: message`
/// (syntax, unknown keys, wrong types, then the values of the keys that
/// could be read).
pub fn check(path: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return vec![format!("cannot read {}: {error}", path.display())],
    };
    file::check(&text).iter().map(|error| error.at(path)).collect()
}

/// A problem with a command-line option, worded after its flag.
fn on_command_line(cli: &Settings, problem: &Problem) -> String {
    if cli.has(problem.key) {
        format!("{}: {}", flag(problem.key), problem.message)
    } else {
        problem.message.clone()
    }
}

/// The command-line flag of file key `key`.
pub fn flag(key: &str) -> String {
    match key {
        "slaves" => "--iface".to_owned(),
        key => format!("--{}", key.replace('_', "-")),
    }
}

#[cfg(test)]
mod tests;
