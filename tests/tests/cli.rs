//! The agent's command line contract: a refused start exits non-zero with
//! a one-line message and leaves nothing behind (no master device, no pin
//! directory, no lock holder, no changed sysctl); `alb status` of a master
//! that does not run fails clearly; SIGTERM and SIGINT stop a running agent
//! cleanly and put the slaves' sysctls back. In the guests of `cargo
//! xtask vm-test`: a kernel left without a hook (cls_bpf unloaded) is
//! refused in one line.
//!
//! Needs root and the `alb` binary (`cargo build -p alb-user`); run one
//! test at a time (`--test-threads=1`), as `cargo xtask test` does.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{process::Output, time::Duration};

use alb_tests::{
    Lab,
    agent::{lock_held, pin_dir},
    hook::{self, AGENT_HOOK_VAR},
};
use common::{Agent, leftovers, run_alb, slave_sysctls};
use nix::sys::signal::Signal;

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// Runs `alb --master <lab master> args...` in the server namespace,
/// expects a refusal whose one-line message contains `expect`, and checks
/// that nothing was left behind or changed.
fn assert_refused(lab: &Lab, args: &[&str], expect: &str) {
    let sysctls = slave_sysctls(lab);
    let master = lab.master();
    let mut argv = vec!["--master", master];
    argv.extend_from_slice(args);
    let out = run_alb(lab.srv(), &argv);
    let message = text(&out);
    assert!(!out.status.success(), "`alb {}` should fail; it printed:\n{message}", argv.join(" "));
    assert_eq!(out.status.code(), Some(1), "`alb {}` exit status: {message}", argv.join(" "));
    assert_eq!(message.lines().count(), 1, "a one-line message, not:\n{message}");
    assert!(message.starts_with("alb: "), "message names the program: {message}");
    assert!(message.contains(expect), "message should mention {expect:?}: {message}");
    let left = leftovers(lab, master);
    assert!(left.is_empty(), "`alb {}` left {left:?} behind", argv.join(" "));
    assert_eq!(slave_sysctls(lab), sysctls, "slave sysctls unchanged");
    common::remove_lock_file(master);
}

#[test]
fn an_unknown_interface_is_refused() {
    let lab = common::lab(1, 2);
    assert_refused(&lab, &["--iface", "veth17", "--iface", "nosuch0"], "nosuch0");
}

#[test]
fn the_same_interface_twice_is_refused() {
    let lab = common::lab(1, 2);
    assert_refused(&lab, &["--iface", "veth17", "--iface", "veth17"], "veth17");
}

#[test]
fn a_master_name_taken_by_another_device_is_refused() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    lab.ip(lab.srv(), &["link", "add", &master, "type", "bridge"]).expect("bridge");
    let sysctls = slave_sysctls(&lab);
    let out = run_alb(lab.srv(), &["--master", &master, "--iface", "veth17", "--iface", "veth19"]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(1), "refused: {message}");
    assert_eq!(message.lines().count(), 1, "a one-line message, not:\n{message}");
    assert!(message.contains(&master) && message.contains("bridge"), "{message}");
    // The bridge is not the agent's: it stays, untouched; nothing else
    // appears.
    let bridge = lab.ip(lab.srv(), &["-d", "-j", "link", "show", "dev", &master]).expect("bridge");
    assert!(bridge.contains("\"info_kind\":\"bridge\""), "{master} is still the bridge: {bridge}");
    assert!(!lab.link_exists(lab.srv(), &format!("{master}p")).expect("ip"), "no peer created");
    assert!(!pin_dir(&master).exists(), "no pins");
    assert!(!lock_held(&master), "no lock holder");
    assert_eq!(slave_sysctls(&lab), sysctls, "slave sysctls unchanged");
    for slave in ["veth17", "veth19"] {
        let tc =
            lab.run(lab.srv(), &["tc", "filter", "show", "dev", slave, "ingress"]).expect("tc");
        assert!(tc.trim().is_empty(), "no classifier left on {slave}: {tc}");
    }
    common::remove_lock_file(&master);
}

#[test]
fn a_bridge_port_is_refused() {
    let lab = common::lab(1, 2);
    lab.ip(lab.srv(), &["link", "add", "brx", "type", "bridge"]).expect("bridge");
    lab.ip(lab.srv(), &["link", "set", "veth19", "master", "brx"]).expect("enslave");
    assert_refused(&lab, &["--iface", "veth17", "--iface", "veth19"], "veth19");
    let veth19 = lab.link(lab.srv(), "veth19").expect("veth19");
    assert_eq!(veth19.master.as_deref(), Some("brx"), "veth19 stays on its bridge");
}

#[test]
fn a_bridge_as_slave_is_refused() {
    let lab = common::lab(1, 2);
    lab.ip(lab.srv(), &["link", "add", "brx", "type", "bridge"]).expect("bridge");
    assert_refused(&lab, &["--iface", "veth17", "--iface", "brx"], "brx");
}

/// No slave on the command line and no config file: refused, naming both
/// ways to give slaves (not a clap usage error: a config file may give them).
#[test]
fn no_iface_is_refused() {
    let lab = common::lab(1, 2);
    assert_refused(&lab, &[], "--iface");
    assert_refused(&lab, &[], "slaves = [");
}

#[test]
fn status_of_a_master_that_does_not_run_fails_clearly() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    for json in [false, true] {
        let mut args = vec!["status", "--master", &master];
        if json {
            args.push("--json");
        }
        let out = run_alb(lab.srv(), &args);
        let message = text(&out);
        assert_eq!(out.status.code(), Some(1), "`alb {}` fails: {message}", args.join(" "));
        assert_eq!(message.lines().count(), 1, "a one-line message, not:\n{message}");
        assert!(message.starts_with("alb: ") && message.contains(&master), "{message}");
    }
    assert!(!pin_dir(&master).exists(), "status creates no pins");
}

/// A running agent stopped by `signal` exits 0 and removes its master and
/// pins, releases its lock, and restores the slaves' sysctls, including a
/// non-default value the administrator had set.
fn stops_cleanly_on(signal: Signal) {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    lab.sysctl(lab.srv(), "net.ipv4.conf.veth17.arp_ignore", "2").expect("sysctl");
    let before = slave_sysctls(&lab);
    assert!(before.contains(&("net.ipv4.conf.veth17.arp_ignore".into(), "2".into())), "{before:?}");

    let mut agent = Agent::start(&lab);
    // Running: slaves silenced, pins and lock in place.
    let running = slave_sysctls(&lab);
    for (key, value) in &running {
        let want = if key.ends_with("arp_ignore") { "8" } else { "1" };
        assert_eq!(value, want, "{key} while alb runs");
    }
    assert!(pin_dir(&master).is_dir(), "pins while running");
    assert!(lock_held(&master), "lock held while running");
    assert!(lab.link_exists(lab.srv(), &master).expect("ip"), "master while running");
    let c1 = lab.ping(&lab.client(1).ns, alb_tests::SERVER_IP4, 3, Duration::from_millis(10));
    assert_eq!(c1.expect("ping").lost(), 0, "the agent serves before it is stopped");

    let status = agent.stop_with(signal);
    assert!(status.success(), "alb exits 0 on {signal}: {status}\n{}", agent.log());
    let log = agent.log();
    assert!(log.contains(&format!("stopped; {master} removed")), "says it stopped:\n{log}");
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "left behind after {signal}: {left:?}\n{log}");
    // A clean stop is quiet: no warnings or errors on the way out.
    let complaints: Vec<String> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .map(|l| l.chars().take(160).collect())
        .collect();
    assert!(complaints.is_empty(), "alb complained while stopping on {signal}: {complaints:#?}");
    assert_eq!(slave_sysctls(&lab), before, "slave sysctls restored after {signal}");
    for slave in ["veth17", "veth19"] {
        let tc =
            lab.run(lab.srv(), &["tc", "filter", "show", "dev", slave, "ingress"]).expect("tc");
        assert!(tc.trim().is_empty(), "no classifier left on {slave}: {tc}");
        let link = lab.link(lab.srv(), slave).expect("slave");
        assert!(link.admin_up(), "{slave} stays up as the lab left it");
    }
}

#[test]
fn sigterm_stops_the_agent_cleanly() {
    stops_cleanly_on(Signal::SIGTERM);
}

#[test]
fn sigint_stops_the_agent_cleanly() {
    stops_cleanly_on(Signal::SIGINT);
}

/// Runs `wrapper... alb --master <lab master> args...` in the server
/// namespace and applies [`assert_refused`]'s checks to the result.
fn assert_refused_under(lab: &Lab, wrapper: &[&str], args: &[&str], expect: &str) {
    let sysctls = slave_sysctls(lab);
    let master = lab.master();
    let bin = common::alb_bin();
    let mut argv: Vec<&str> = wrapper.to_vec();
    argv.extend([bin.to_str().expect("UTF-8 path"), "--master", master]);
    argv.extend_from_slice(args);
    let mut proc = lab.spawn(lab.srv(), &argv).expect("spawn");
    let status = proc
        .wait_timeout(Duration::from_secs(20))
        .expect("wait")
        .unwrap_or_else(|| panic!("`{}` still runs after 20 s:\n{}", argv.join(" "), proc.log()));
    let log = proc.log();
    assert_eq!(status.code(), Some(1), "`{}` should fail with 1: {log}", argv.join(" "));
    // Log lines (INFO ...) may come first; the refusal is one `alb:` line.
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("alb: ")).collect();
    assert_eq!(errors.len(), 1, "one `alb:` line, not:\n{log}");
    assert!(errors[0].contains(expect), "message should mention {expect:?}: {log}");
    let left = leftovers(lab, master);
    assert!(left.is_empty(), "`{}` left {left:?} behind", argv.join(" "));
    assert_eq!(slave_sysctls(lab), sysctls, "slave sysctls unchanged");
    common::remove_lock_file(master);
}

#[test]
fn not_root_is_refused() {
    let lab = common::lab(1, 2);
    let nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    assert_refused_under(&lab, &nobody, &["--iface", "veth17"], "must run as root");
}

/// bpffs cannot be mounted when /sys/fs/bpf does not exist: the agent runs
/// in a private mount namespace whose /sys/fs is an empty tmpfs.
#[test]
fn bpffs_not_mountable_is_refused() {
    let lab = common::lab(1, 2);
    let hide_bpffs = ["unshare", "--mount", "--propagation", "private", "sh", "-c"];
    let script = "mount -t tmpfs none /sys/fs && exec \"$@\"";
    let mut wrapper = hide_bpffs.to_vec();
    wrapper.extend([script, "sh"]);
    assert_refused_under(&lab, &wrapper, &["--iface", "veth17"], "bpffs");
}

/// Two masters in two network namespaces may have slaves of the same
/// names, on either hook (on TCX only where the kernel has it: Debian's
/// 5.10 and 6.1 in the guests have clsact alone). A clsact record names only a device, so another
/// master's record counts only when its undo record was made in this
/// namespace (before, the second lab's start was refused: "veth17 is
/// already a slave of another alb master").
#[test]
fn masters_in_two_namespaces_may_have_slaves_of_the_same_names() {
    let labs = [common::lab(1, 2), common::lab(1, 2)];
    let hooks: &[&str] = if hook::kernel_has_tcx() { &["clsact", "tcx"] } else { &["clsact"] };
    for &hook in hooks {
        let agents: Vec<Agent> = labs
            .iter()
            .map(|lab| {
                let command = Agent::command(lab, &["veth17", "veth19"]).env("ALB_HOOK", hook);
                Agent::start_command(lab, &command)
            })
            .collect();
        for (lab, agent) in labs.iter().zip(&agents) {
            let status = agent.status();
            assert_eq!(status.hook.as_deref(), Some(hook), "{}: {status}", lab.master());
            common::resolve_all(lab);
            common::assert_all_clients_work(lab, 5);
        }
    }
}

/// Where the busybox guest of `cargo xtask vm-test` keeps its modules
/// (xtask/src/vm/initramfs.rs), to load `cls_bpf` again.
const GUEST_CLS_BPF: &str = "/modules/cls_bpf.ko";

/// Loads `cls_bpf` again when dropped (the other tests need it).
struct ClsBpfBack;

impl Drop for ClsBpfBack {
    fn drop(&mut self) {
        let status = std::process::Command::new("insmod").arg(GUEST_CLS_BPF).status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("cli: cannot load {GUEST_CLS_BPF} again: {status:?}");
        }
    }
}

/// With `cls_bpf` unloaded, a kernel without TCX (Debian's 5.10 and 6.1)
/// has no hook alb can attach through: the start is refused with one
/// line naming what is missing and leaves nothing. On a kernel with TCX
/// the start is made to need clsact (`ALB_HOOK=clsact`), and is refused
/// in one line too.
#[test]
#[ignore = "guest: needs cls_bpf as a module the test may unload; run by cargo xtask vm-test"]
fn a_kernel_without_a_hook_for_alb_is_refused_in_one_line() {
    assert!(
        std::path::Path::new("/sys/module/cls_bpf/initstate").exists()
            && std::path::Path::new(GUEST_CLS_BPF).exists(),
        "this test needs cls_bpf loaded as a module, and {GUEST_CLS_BPF} to load it again \
         (the busybox guest of cargo xtask vm-test)"
    );
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    let unload = std::process::Command::new("rmmod").arg("cls_bpf").output().expect("rmmod");
    assert!(unload.status.success(), "rmmod cls_bpf: {}", String::from_utf8_lossy(&unload.stderr));
    let _back = ClsBpfBack;
    let sysctls = slave_sysctls(&lab);
    let tcx = hook::kernel_has_tcx();
    let env: &[(&str, &str)] = if tcx { &[(AGENT_HOOK_VAR, "clsact")] } else { &[] };
    let (status, log) = common::refused_start(&lab, env);
    println!("cli: without cls_bpf (TCX: {tcx}): {status}: {log}");
    assert_eq!(status.code(), Some(1), "refused with exit 1: {log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("alb: ")).collect();
    assert_eq!(errors.len(), 1, "one `alb:` line, not:\n{log}");
    if !tcx {
        let missing = "lacks TCX links (Linux >= 6.6) or the clsact qdisc with cls_bpf \
                       (sch_ingress, cls_bpf), which alb needs";
        assert!(errors[0].contains(missing), "names what is missing: {log}");
    }
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "a refused start leaves nothing: {left:?}");
    assert_eq!(slave_sysctls(&lab), sysctls, "slave sysctls unchanged");
    common::remove_lock_file(&master);
}
