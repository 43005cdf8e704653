//! The hook the agent attaches through (issue 21, item 3). The host has
//! TCX; `cargo xtask test` runs this binary, with seed, failover, runtime
//! and service, once on TCX and once with `ALB_TEST_HOOK=clsact`, where
//! every agent the lab starts gets the developer switch `ALB_HOOK=clsact`
//! (tests/src/hook.rs): the hook of kernels before 6.6. Each test asserts
//! the hook of its pass as the kernel reports it (TCX links, `tc filter
//! show`) and as `alb status` reports it, through a start, a `kill -9`
//! and an adopting restart, `alb down`, and a clsact qdisc that someone
//! else put on a slave before alb came.
//!
//! Needs root, the `alb` binary (`cargo build -p alb-user`), tc and ping;
//! run one test at a time (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::time::Duration;

use alb_tests::{
    Lab,
    agent::pin_dir,
    hook::{self, AGENT_HOOK_VAR, Hook},
};
use common::{
    Agent, assert_all_clients_work,
    datapath::{assert_attached, assert_no_programs, tc_programs},
    leftovers, resolve_all, run_alb,
};

/// Someone else's filter on veth17's clsact qdisc, after alb's in order
/// (tc runs lower priorities first): a u32 filter that matches everything
/// and classifies to 1:1, which on clsact lets the frame go on.
const THEIR_FILTER: [&str; 11] =
    ["pref", "49000", "protocol", "all", "u32", "match", "u32", "0", "0", "flowid", "1:1"];

/// The `u32` filters on `dev`'s ingress, as `tc -j filter show` lists
/// them (each with options: tc also prints the chain head without).
fn their_filters(lab: &Lab, dev: &str) -> usize {
    let out = lab
        .run(lab.srv(), &["tc", "-j", "filter", "show", "dev", dev, "ingress"])
        .unwrap_or_else(|e| panic!("tc filter show dev {dev}: {e:#}"));
    let filters: Vec<serde_json::Value> = if out.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("tc printed {out}: {e}"))
    };
    filters.iter().filter(|f| f["kind"] == "u32" && f["options"]["flowid"] == "1:1").count()
}

/// Whether `dev` has a clsact qdisc.
fn has_clsact(lab: &Lab, dev: &str) -> bool {
    let out = lab
        .run(lab.srv(), &["tc", "qdisc", "show", "dev", dev])
        .unwrap_or_else(|e| panic!("tc qdisc show dev {dev}: {e:#}"));
    out.lines().any(|line| line.starts_with("qdisc clsact "))
}

/// What the agent's log says it attached through, for this pass's hook.
fn attached_line(hook: Hook) -> &'static str {
    match hook {
        Hook::Tcx => "programs attached through tcx",
        Hook::Clsact if hook::forced() => "programs attached through clsact (ALB_HOOK=clsact)",
        Hook::Clsact => "programs attached through clsact (no TCX on this kernel)",
    }
}

/// The agent attaches through this pass's hook and says so: one alb
/// program per device through that hook and none through the other,
/// `alb status` (JSON and text) names it, the records under the pins are
/// of its kind, and the clients are served.
#[test]
fn the_agent_attaches_through_the_hook_of_the_pass() {
    let hook = hook::expected();
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let agent = Agent::start(&lab);
    resolve_all(&lab);
    assert_attached(&lab, &master, &["veth17", "veth19"]);
    assert!(agent.log().contains(attached_line(hook)), "log says {hook:?}:\n{}", agent.log());
    let status = agent.status();
    assert_eq!(status.hook.as_deref(), Some(hook.name()), "alb status --json: {status}");
    let out = run_alb(lab.srv(), &["status", "--master", &master]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("\nHook: {}\n", hook.name())), "alb status:\n{text}");
    let record = pin_dir(&master).join("links").join("tx");
    let is_dir = std::fs::symlink_metadata(&record)
        .unwrap_or_else(|e| panic!("{}: {e}", record.display()))
        .is_dir();
    assert_eq!(is_dir, hook == Hook::Clsact, "{} records a {hook:?} attachment", record.display());
    for slave in ["veth17", "veth19"] {
        assert_eq!(has_clsact(&lab, slave), hook == Hook::Clsact, "clsact qdisc on {slave}");
    }
    assert_all_clients_work(&lab, 10);
}

/// A clsact qdisc with someone else's filter on a slave before alb: alb
/// attaches beside it (its own filter on the same qdisc on clsact, a TCX
/// link on TCX), a `kill -9` and an adopting restart keep exactly one alb
/// program per device, and `alb down` removes alb's attachments only: the
/// qdisc and the other filter stay, and the slave alb added a qdisc to
/// (veth19, on clsact) keeps neither filter nor qdisc.
#[test]
fn a_clsact_qdisc_that_was_there_keeps_its_filters() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    lab.run(lab.srv(), &["tc", "qdisc", "add", "dev", "veth17", "clsact"]).expect("qdisc");
    let mut add = vec!["tc", "filter", "add", "dev", "veth17", "ingress"];
    add.extend(THEIR_FILTER);
    lab.run(lab.srv(), &add).expect("their filter");
    assert_eq!(their_filters(&lab, "veth17"), 1, "their filter is there");

    let mut first = Agent::start(&lab);
    resolve_all(&lab);
    let ids_before = assert_attached(&lab, &master, &["veth17", "veth19"]);
    assert_eq!(their_filters(&lab, "veth17"), 1, "their filter beside alb's");
    assert_all_clients_work(&lab, 10);

    first.kill9();
    assert_eq!(
        assert_attached(&lab, &master, &["veth17", "veth19"]),
        ids_before,
        "the programs stay attached after kill -9"
    );
    let second = first.start_again(&lab);
    second
        .wait_log(0, "adopted the data path of an earlier agent", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("the new agent adopts: {e:#}"));
    let ids_after = assert_attached(&lab, &master, &["veth17", "veth19"]);
    for (dev, id) in &ids_after {
        assert_ne!(Some(id), ids_before.get(dev), "{dev} runs the new agent's program");
    }
    assert_eq!(their_filters(&lab, "veth17"), 1, "their filter after the adoption");
    assert_all_clients_work(&lab, 10);

    let mut second = second;
    second.kill9();
    let out = run_alb(lab.srv(), &["down", "--master", &master]);
    assert!(out.status.success(), "alb down: {}", String::from_utf8_lossy(&out.stdout));
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "alb down left {left:?}");
    let remaining = tc_programs(&lab, "veth17");
    assert!(remaining.is_empty(), "no alb program left on veth17: {remaining:?}");
    assert!(has_clsact(&lab, "veth17"), "the qdisc that was there stays");
    assert_eq!(their_filters(&lab, "veth17"), 1, "their filter stays");
    assert_no_programs(&lab, "veth19");
    assert!(!has_clsact(&lab, "veth19"), "the clsact qdisc alb added to veth19 goes with alb");
}

/// A filter someone attaches to a slave after alb came: on clsact it goes
/// on the qdisc alb added, which `alb down` then keeps (with that filter)
/// instead of removing it with alb's own; on TCX they bring the qdisc.
#[test]
fn a_qdisc_alb_added_stays_while_it_holds_another_filter() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let mut agent = Agent::start(&lab);
    resolve_all(&lab);
    assert_attached(&lab, &master, &["veth17", "veth19"]);
    if !has_clsact(&lab, "veth19") {
        lab.run(lab.srv(), &["tc", "qdisc", "add", "dev", "veth19", "clsact"]).expect("qdisc");
    }
    let mut add = vec!["tc", "filter", "add", "dev", "veth19", "ingress"];
    add.extend(THEIR_FILTER);
    lab.run(lab.srv(), &add).expect("their filter");
    assert_all_clients_work(&lab, 10);

    agent.kill9();
    let out = run_alb(lab.srv(), &["down", "--master", &master]);
    assert!(out.status.success(), "alb down: {}", String::from_utf8_lossy(&out.stderr));
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "alb down left {left:?}");
    let remaining = tc_programs(&lab, "veth19");
    assert!(remaining.is_empty(), "no alb program left on veth19: {remaining:?}");
    assert!(has_clsact(&lab, "veth19"), "the qdisc that holds their filter stays");
    assert_eq!(their_filters(&lab, "veth19"), 1, "their filter stays");
    assert!(!has_clsact(&lab, "veth17"), "veth17's qdisc, alb's alone, goes with alb");
}

/// `ALB_HOOK` set to something that names no hook: refused with one line
/// that names the variable, before anything changes.
#[test]
fn a_hook_switch_that_names_no_hook_is_refused() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    let (status, log) = common::refused_start(&lab, &[(AGENT_HOOK_VAR, "xdp")]);
    assert_eq!(status.code(), Some(1), "refused with exit 1: {log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("alb: ")).collect();
    assert_eq!(errors.len(), 1, "one `alb:` line, not:\n{log}");
    assert!(errors[0].contains("ALB_HOOK=\"xdp\" names no hook"), "names the switch: {log}");
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "a refused start leaves nothing: {left:?}");
    for slave in ["veth17", "veth19"] {
        assert_no_programs(&lab, slave);
    }
}

/// An agent adopts each attachment with the hook its record names, not
/// its own: a data path attached through TCX and adopted by an agent
/// started with `ALB_HOOK=clsact` stays on TCX (one program per device,
/// no filter beside it), and `alb status` still says `tcx`.
#[test]
fn an_adopting_agent_keeps_the_hook_of_the_records() {
    assert!(hook::kernel_has_tcx(), "this test needs TCX (Linux >= 6.6) for the first agent");
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let slaves = ["veth17", "veth19"];
    let on = |hook: Hook| Agent::command(&lab, &slaves).env(AGENT_HOOK_VAR, hook.name());
    let mut first = Agent::start_command(&lab, &on(Hook::Tcx));
    resolve_all(&lab);
    first.kill9();
    let second = Agent::start_command(&lab, &on(Hook::Clsact));
    second
        .wait_log(0, "adopted the data path of an earlier agent", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("the new agent adopts: {e:#}"));
    for (dev, name) in [("veth17", "alb_rx"), ("veth19", "alb_rx"), (master.as_str(), "alb_tx")] {
        let found = tc_programs(&lab, dev);
        assert!(
            found.len() == 1 && found[0].hook == Hook::Tcx && found[0].name == name,
            "{dev} keeps one {name} through TCX: {found:?}"
        );
    }
    let said = "programs attached through tcx (as an earlier agent's records say)";
    assert!(second.log().contains(said), "the log says so:\n{}", second.log());
    assert_eq!(second.status().hook.as_deref(), Some("tcx"), "alb status follows the records");
    assert_all_clients_work(&lab, 10);
}
