//! A [`Snapshot`] as an exposition: a `prometheus-client` registry built
//! for the scrape (prefix `alb_`, label `master` on every series), encoded
//! as the Prometheus text format (0.0.4) or, when the scraper accepts it,
//! OpenMetrics text.

use std::{borrow::Cow, iter};

use prometheus_client::{
    encoding::{EncodeLabelSet, prometheus_text, text},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use super::{SlaveSample, Snapshot};

/// The two text formats a scraper may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, the default.
    Prometheus,
    /// OpenMetrics 1.0 text, for a scraper whose `Accept` names it (as
    /// Prometheus's does): ends with `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The format a request's `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }

    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A per-slave counter: name, help, value.
type SlaveCounter = (&'static str, &'static str, fn(&SlaveSample) -> u64);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlaveLabel {
    slave: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The exposition of `snapshot` in `format`.
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    let registry = registry(snapshot);
    let mut out = String::new();
    match format {
        Format::Prometheus => prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => text::encode(&mut out, &registry),
    }
    .expect("writing to a String cannot fail");
    out
}

/// alb's own series (prefix `alb_`) and, beside them, node_exporter's two
/// bonding series, so bond dashboards and alerts keep working.
fn registry(snapshot: &Snapshot) -> Registry {
    let master = (Cow::Borrowed("master"), Cow::Owned(snapshot.master.clone()));
    let mut root = Registry::with_labels(iter::once(master));
    node_bonding(&mut root, &snapshot.slaves);
    alb_series(root.sub_registry_with_prefix("alb"), snapshot);
    root
}

/// node_exporter's bonding collector, with its names, label and meaning:
/// the slaves a master has, and those whose MII Status is `up` (bonding's
/// `mii_status`; a slave in its downdelay, `going down`, is not counted).
fn node_bonding(registry: &mut Registry, slaves: &[SlaveSample]) {
    let count = |n: usize| gauge_value(n as u64);
    let configured = Gauge::<i64>::default();
    configured.set(count(slaves.len()));
    registry.register(
        "node_bonding_slaves",
        "Number of configured slaves per bonding interface.",
        configured,
    );
    let active = Gauge::<i64>::default();
    active.set(count(slaves.iter().filter(|s| s.mii_up).count()));
    registry.register(
        "node_bonding_active",
        "Number of active slaves per bonding interface.",
        active,
    );
}

fn alb_series(registry: &mut Registry, snapshot: &Snapshot) {
    let slaves = &snapshot.slaves;
    let flag = |on: bool| i64::from(on);
    slave_gauge(registry, slaves, "slave_link_up", "1 while the slave has carrier", |s| {
        flag(s.link)
    });
    slave_gauge(registry, slaves, "slave_usable", "1 while the data path uses the slave", |s| {
        flag(s.usable)
    });
    slave_gauge(registry, slaves, "slave_active", "1 for the active slave", |s| flag(s.active));
    slave_gauge(registry, slaves, "slave_clients", "Clients assigned to the slave", |s| {
        gauge_value(s.clients)
    });
    let traffic: [SlaveCounter; 4] = [
        ("slave_rx_packets", "Packets the slave received for the master", |s| s.rx_packets),
        ("slave_rx_bytes", "Bytes the slave received for the master", |s| s.rx_bytes),
        ("slave_tx_packets", "Packets the master sent through the slave", |s| s.tx_packets),
        ("slave_tx_bytes", "Bytes the master sent through the slave", |s| s.tx_bytes),
    ];
    for (name, help, value) in traffic {
        let family = Family::<SlaveLabel, Counter>::default();
        for slave in slaves {
            family.get_or_create(&SlaveLabel { slave: slave.name.clone() }).inc_by(value(slave));
        }
        registry.register(name, help, family);
    }

    let reasons = Family::<ReasonLabel, Counter>::default();
    for &(reason, count) in &snapshot.reasons {
        reasons.get_or_create(&ReasonLabel { reason }).inc_by(count);
    }
    registry.register(
        "datapath_reasons",
        "What the data path did with frames (and events it lost), by reason",
        reasons,
    );

    let transitions = &snapshot.transitions;
    counter(registry, "failovers", "Slaves given up", transitions.failovers);
    registry.register_with_unit(
        "failover_duration",
        "Agent time per failover: slots and buckets moved, clients queued to be told",
        Unit::Seconds,
        transitions.failover_seconds.clone(),
    );
    counter(registry, "failbacks", "Slaves taken (back) into service", transitions.failbacks);
    registry.register_with_unit(
        "failback_duration",
        "Agent time per failback: slots and buckets moved, clients queued to be told",
        Unit::Seconds,
        transitions.failback_seconds.clone(),
    );

    counter(registry, "client_updates_sent", "Client updates sent", snapshot.updates_sent);
    counter(
        registry,
        "client_updates_failed",
        "Client update frames the socket refused",
        snapshot.updates_failed,
    );
    counter(
        registry,
        "map_write_failures",
        "Map writes the kernel refused (each retry counts again)",
        snapshot.map_write_failures,
    );
    let pending = "1 while a refused map write has not taken (the model is written again)";
    gauge(registry, "map_writes_pending", pending, u64::from(snapshot.map_writes_pending));
    let entries = "Clients in the tables (IPv4 and IPv6)";
    gauge(registry, "client_table_entries", entries, snapshot.clients);
    let capacity = "Size of each client table (IPv4, IPv6)";
    gauge(registry, "client_table_capacity", capacity, snapshot.capacity);
    if let Some(bytes) = snapshot.resident_bytes {
        let resident = Gauge::<i64>::default();
        resident.set(gauge_value(bytes));
        registry.register_with_unit(
            "agent_resident_memory",
            "Resident memory of the agent",
            Unit::Bytes,
            resident,
        );
    }
}

/// A gauge per slave.
fn slave_gauge(
    registry: &mut Registry,
    slaves: &[SlaveSample],
    name: &str,
    help: &str,
    value: impl Fn(&SlaveSample) -> i64,
) {
    let family = Family::<SlaveLabel, Gauge>::default();
    for slave in slaves {
        family.get_or_create(&SlaveLabel { slave: slave.name.clone() }).set(value(slave));
    }
    registry.register(name, help, family);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let counter = Counter::<u64>::default();
    counter.inc_by(value);
    registry.register(name, help, counter);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let gauge = Gauge::<i64>::default();
    gauge.set(gauge_value(value));
    registry.register(name, help, gauge);
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Transitions;

    fn snapshot() -> Snapshot {
        let slave = |name: &str, active| SlaveSample {
            name: name.to_owned(),
            link: true,
            mii_up: active,
            usable: true,
            active,
            clients: 3,
            rx_packets: 10,
            rx_bytes: 1000,
            tx_packets: 20,
            tx_bytes: 2000,
        };
        let mut transitions = Transitions::default();
        transitions.record(true, 0.003);
        Snapshot {
            master: "alb0".to_owned(),
            slaves: vec![slave("veth17", true), slave("veth19", false)],
            reasons: vec![("tx_client", 7), ("rx_unicast", 9)],
            transitions,
            updates_sent: 5,
            updates_failed: 0,
            map_write_failures: 2,
            map_writes_pending: true,
            clients: 6,
            capacity: 65536,
            resident_bytes: Some(4096),
        }
    }

    #[test]
    fn prometheus_text_has_every_series_with_master_and_slave_labels() {
        let text = encode(&snapshot(), Format::Prometheus);
        for line in [
            "# TYPE alb_slave_link_up gauge",
            r#"alb_slave_link_up{master="alb0",slave="veth17"} 1"#,
            r#"alb_slave_active{master="alb0",slave="veth19"} 0"#,
            r#"alb_slave_clients{master="alb0",slave="veth19"} 3"#,
            "# TYPE alb_slave_rx_packets_total counter",
            r#"alb_slave_rx_packets_total{master="alb0",slave="veth17"} 10"#,
            r#"alb_slave_tx_bytes_total{master="alb0",slave="veth19"} 2000"#,
            r#"alb_datapath_reasons_total{master="alb0",reason="tx_client"} 7"#,
            r#"alb_failovers_total{master="alb0"} 1"#,
            r#"alb_failover_duration_seconds_count{master="alb0"} 1"#,
            r#"alb_failover_duration_seconds_bucket{master="alb0",le="0.004"} 1"#,
            r#"alb_failbacks_total{master="alb0"} 0"#,
            r#"alb_client_updates_sent_total{master="alb0"} 5"#,
            r#"alb_map_write_failures_total{master="alb0"} 2"#,
            r#"alb_map_writes_pending{master="alb0"} 1"#,
            r#"alb_client_table_entries{master="alb0"} 6"#,
            r#"alb_client_table_capacity{master="alb0"} 65536"#,
            r#"alb_agent_resident_memory_bytes{master="alb0"} 4096"#,
            "# TYPE node_bonding_slaves gauge",
            r#"node_bonding_slaves{master="alb0"} 2"#,
            r#"node_bonding_active{master="alb0"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn openmetrics_when_asked_for_ends_with_eof() {
        let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::from_accept(Some(accept)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        let text = encode(&snapshot(), Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# UNIT alb_failover_duration_seconds seconds"), "{text}");
    }
}
