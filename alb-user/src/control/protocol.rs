//! The control protocol: one request line from `alb slave|set|status`, one
//! reply line from the agent (`ok TEXT` or `error TEXT`); what only the
//! agent knows travels as one line of JSON ([`AgentInfo`]).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// A request the agent serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    SlaveAdd(String),
    /// `force`: even the last slave, or the last usable one.
    SlaveDel {
        name: String,
        force: bool,
    },
    /// Bonding's `active_slave`.
    SetActive(String),
    /// What only the agent knows, as one line of JSON ([`AgentInfo`]).
    Info,
    /// Read the config file again (as SIGHUP does) and answer with what
    /// changed, or why nothing did.
    Reload,
}

impl Request {
    pub fn parse(line: &str) -> Result<Self> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["slave", "add", name] => Ok(Self::SlaveAdd((*name).to_owned())),
            ["slave", "del", name] => Ok(Self::SlaveDel { name: (*name).to_owned(), force: false }),
            ["slave", "del", name, "force"] => {
                Ok(Self::SlaveDel { name: (*name).to_owned(), force: true })
            }
            ["set", "active", name] => Ok(Self::SetActive((*name).to_owned())),
            ["info"] => Ok(Self::Info),
            ["reload"] => Ok(Self::Reload),
            _ => bail!("unknown request {line:?}"),
        }
    }

    pub fn to_line(&self) -> String {
        match self {
            Self::SlaveAdd(name) => format!("slave add {name}"),
            Self::SlaveDel { name, force: false } => format!("slave del {name}"),
            Self::SlaveDel { name, force: true } => format!("slave del {name} force"),
            Self::SetActive(name) => format!("set active {name}"),
            Self::Info => "info".to_owned(),
            Self::Reload => "reload".to_owned(),
        }
    }
}

/// What only the agent knows, sent over the control socket (`info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub primary: Option<String>,
    pub primary_reselect: String,
    pub updelay_ms: u64,
    pub downdelay_ms: u64,
    pub lp_interval_s: u64,
    pub rebalance_interval_s: u64,
    /// Absent from an older agent's answer.
    #[serde(default)]
    pub vm_ageing_s: Option<u64>,
    pub config_file: Option<String>,
    pub slaves: Vec<AgentSlave>,
    /// Map writes refused since the agent started (retries included);
    /// absent from an older agent's answer.
    #[serde(default)]
    pub map_write_failures: Option<u64>,
    /// The first refused write not yet taken, and for how long (the agent
    /// writes its model again until it takes); none when the maps match.
    #[serde(default)]
    pub map_writes_pending: Option<String>,
}

/// One slave as the agent sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSlave {
    pub name: String,
    /// Bonding's MII Status: `up`, `going down`, `down`, `going back`.
    pub state: String,
    pub link_failure_count: u64,
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::SlaveAdd("veth21".into()),
            Request::SlaveDel { name: "veth19".into(), force: false },
            Request::SlaveDel { name: "veth19".into(), force: true },
            Request::SetActive("veth17".into()),
            Request::Info,
            Request::Reload,
        ] {
            assert_eq!(Request::parse(&request.to_line()).unwrap(), request);
        }
        assert!(Request::parse("slave add").is_err());
        assert!(Request::parse("reboot").is_err());
        assert!(Request::parse("set active").is_err());
    }
}
