//! What the kernel says about a master's data path: the programs on its
//! devices (TCX links and clsact filters alike, each with its hook, so a
//! test asserts the hook of its pass) and the sysctls the agent changes on
//! its slaves.

use std::{collections::BTreeMap, fs::File, thread};

use alb_common::maps::{TX_BUCKETS, TxBucket, names};
use alb_tests::{
    Lab,
    agent::pin_dir,
    hook::{self, Hook},
    netns,
};
use aya::{
    maps::{Array, Map, MapData},
    programs::{SchedClassifier, TcAttachType},
};
use nix::sched::{CloneFlags, setns};

use crate::common::sysctl_get;

/// The sysctls the agent changes on a slave.
pub(crate) const SLAVE_SYSCTLS: [&str; 2] =
    ["net.ipv4.conf.{}.arp_ignore", "net.ipv6.conf.{}.disable_ipv6"];

/// The sysctls the agent changes on `slave`, as (key, value).
pub(crate) fn sysctls_of(lab: &Lab, slave: &str) -> Vec<(String, String)> {
    SLAVE_SYSCTLS
        .iter()
        .map(|k| {
            let key = k.replace("{}", slave);
            let value = sysctl_get(lab, lab.srv(), &key);
            (key, value)
        })
        .collect()
}

/// Whether `slave`'s sysctls are as a running agent sets them.
pub(crate) fn silenced(lab: &Lab, slave: &str) -> bool {
    sysctls_of(lab, slave)
        .iter()
        .all(|(key, value)| value == if key.ends_with("arp_ignore") { "8" } else { "1" })
}

/// One TC program on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TcProgram {
    /// A TCX link or a `cls_bpf` filter.
    pub(crate) hook: Hook,
    /// `ingress` or `egress`.
    pub(crate) direction: &'static str,
    pub(crate) name: String,
    pub(crate) id: u32,
}

/// The TC programs attached to `dev` in the server namespace through
/// either hook: its TCX programs, then its `cls_bpf` filters.
pub(crate) fn tc_programs(lab: &Lab, dev: &str) -> Vec<TcProgram> {
    let mut found = tcx_programs(lab, dev);
    found.extend(clsact_programs(lab, dev));
    found
}

/// The `cls_bpf` filters on `dev`'s clsact qdisc (`tc -j filter show`;
/// none without a qdisc).
fn clsact_programs(lab: &Lab, dev: &str) -> Vec<TcProgram> {
    let mut found = Vec::new();
    for direction in ["ingress", "egress"] {
        let argv = ["tc", "-j", "filter", "show", "dev", dev, direction];
        let out = lab.run(lab.srv(), &argv).unwrap_or_else(|e| panic!("{argv:?}: {e:#}"));
        let filters: Vec<serde_json::Value> = if out.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{argv:?} printed {out}: {e}"))
        };
        // tc lists each filter's chain head without options; the filter
        // itself carries them.
        for filter in filters.iter().filter(|f| f["kind"] == "bpf") {
            let options = &filter["options"];
            let Some(id) = options["prog"]["id"].as_u64() else { continue };
            found.push(TcProgram {
                hook: Hook::Clsact,
                direction,
                name: options["bpf_name"].as_str().unwrap_or_default().to_owned(),
                id: u32::try_from(id).unwrap_or_else(|_| panic!("program id {id}")),
            });
        }
    }
    found
}

/// The TCX programs attached to `dev` in the server namespace, as the
/// kernel reports them (BPF_PROG_QUERY from a thread that has entered the
/// namespace: this bpftool predates TCX and lists none).
fn tcx_programs(lab: &Lab, dev: &str) -> Vec<TcProgram> {
    if !hook::kernel_has_tcx() {
        return Vec::new();
    }
    let ns_path = netns::path(lab.srv());
    let dev = dev.to_owned();
    thread::spawn(move || {
        let ns = File::open(&ns_path).unwrap_or_else(|e| panic!("{}: {e}", ns_path.display()));
        // setns(2) moves only this thread, which ends with the query.
        setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the server namespace");
        let mut found = Vec::new();
        for (attach, direction) in
            [(TcAttachType::Ingress, "ingress"), (TcAttachType::Egress, "egress")]
        {
            let (_, programs) = SchedClassifier::query_tcx(&dev, attach)
                .unwrap_or_else(|e| panic!("query TCX {direction} of {dev}: {e}"));
            found.extend(programs.iter().map(|p| TcProgram {
                hook: Hook::Tcx,
                direction,
                name: p.name_as_str().unwrap_or_default().to_owned(),
                id: p.id(),
            }));
        }
        found
    })
    .join()
    .expect("TCX query thread")
}

/// Asserts that `dev` has no TCX program and no TC classifier at all.
pub(crate) fn assert_no_programs(lab: &Lab, dev: &str) {
    let tcx = tc_programs(lab, dev);
    assert!(tcx.is_empty(), "no TCX program or cls_bpf filter on {dev}: {tcx:?}");
    for direction in ["ingress", "egress"] {
        let tc = lab.run(lab.srv(), &["tc", "filter", "show", "dev", dev, direction]).expect("tc");
        assert!(tc.trim().is_empty(), "no classifier on {dev} {direction}: {tc}");
    }
}

/// The programs named `name` attached to `dev`.
pub(crate) fn programs_named(lab: &Lab, dev: &str, name: &str) -> Vec<TcProgram> {
    tc_programs(lab, dev).into_iter().filter(|p| p.name == name).collect()
}

/// Asserts that exactly one alb program is attached to each slave's
/// ingress and to the master's egress, through the hook of this pass
/// ([`hook::expected`]); returns their ids by device.
pub(crate) fn assert_attached(lab: &Lab, master: &str, slaves: &[&str]) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    let hook = hook::expected();
    for (dev, name, kind) in
        slaves.iter().map(|s| (*s, "alb_rx", "ingress")).chain([(master, "alb_tx", "egress")])
    {
        let found = programs_named(lab, dev, name);
        assert_eq!(found.len(), 1, "one {name} on {dev}: {:?}", tc_programs(lab, dev));
        assert_eq!(found[0].direction, kind, "{name} on {dev}: {found:?}");
        assert_eq!(found[0].hook, hook, "{name} on {dev} through this pass's hook: {found:?}");
        ids.insert(dev.to_owned(), found[0].id);
    }
    ids
}

/// The slave index of every transmit bucket of `master`
/// (`ALB_TX_BUCKETS`, read through its pin).
pub(crate) fn tx_buckets(master: &str) -> Vec<u32> {
    let path = pin_dir(master).join(names::TX_BUCKETS);
    let data = MapData::from_pin(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let map = Map::from_map_data(data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let buckets: Array<MapData, TxBucket> =
        Array::try_from(map).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (0..TX_BUCKETS)
        .map(|b| buckets.get(&b, 0).unwrap_or_else(|e| panic!("bucket {b}: {e}")).slave)
        .collect()
}
