//! Every user input in its bad forms (issue 20, item 2): each flag of `alb
//! run`, each control command, `alb down` and `alb config check`. Each is
//! refused with its documented exit status (2 for a command line clap
//! cannot parse, 1 for a refused or failed command) and one line starting
//! `alb: ` that names the problem, and changes nothing: no device, pin,
//! lock or undo record left, the slaves' sysctls as they were, a running
//! agent's slaves and active slave untouched. Config-file keys and reloads
//! have their table in config.rs and alb-user's config tests.
//!
//! Needs root and the `alb` binary; run one test at a time
//! (`--test-threads=1`).
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{
    fs,
    process::{Command, Output},
};

use alb_tests::{Lab, agent::state_path};
use common::{Agent, alb_as_nobody, alb_bin, leftovers, run_alb, slave_sysctls};

/// One bad input: the arguments (`{master}` stands for the lab's master),
/// the exit status and what the one line must say.
struct Case {
    args: &'static [&'static str],
    status: i32,
    says: &'static str,
}

/// The lab's master, in a case's arguments.
const M: &str = "{master}";

const fn case(args: &'static [&'static str], status: i32, says: &'static str) -> Case {
    Case { args, status, says }
}

fn argv(case: &Case, master: &str) -> Vec<String> {
    case.args.iter().map(|a| a.replace("{master}", master)).collect()
}

/// Checks `out` against `case`: its status and one `alb: ` line saying
/// `case.says`.
fn assert_one_line(case: &Case, argv: &[String], out: &Output) {
    let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let command = format!("alb {}", argv.join(" "));
    assert_eq!(out.status.code(), Some(case.status), "`{command}` exit status; it said:\n{text}");
    assert_eq!(text.lines().count(), 1, "`{command}` says one line, not:\n{text}");
    assert!(text.starts_with("alb: "), "`{command}` names the program: {text}");
    assert!(text.contains(case.says), "`{command}` should say {:?}: {text}", case.says);
}

/// Runs each case in the server namespace with no agent running, and
/// checks that it left nothing behind.
fn assert_refused_starts(lab: &Lab, cases: &[Case]) {
    let master = lab.master();
    let sysctls = slave_sysctls(lab);
    for case in cases {
        run_case(lab, lab.srv(), case);
        let argv = argv(case, master);
        let left = leftovers(lab, master);
        assert!(left.is_empty(), "`alb {}` left {left:?} behind", argv.join(" "));
        assert_eq!(slave_sysctls(lab), sysctls, "`alb {}`: slave sysctls", argv.join(" "));
        common::remove_lock_file(master);
    }
}

/// What clap refuses: status 2, one line.
#[test]
fn a_command_line_clap_cannot_parse_is_one_line_with_status_2() {
    let lab = common::lab(1, 2);
    assert_refused_starts(
        &lab,
        &[
            case(&["--iface", "veth17", "--updelay", "abc"], 2, "'abc' for '--updelay <MS>'"),
            case(&["--iface", "veth17", "--downdelay", "-5"], 2, "unexpected argument '-5'"),
            case(&["--iface", "veth17", "--lp-interval", "1s"], 2, "--lp-interval"),
            case(&["--iface", "veth17", "--rebalance-interval", "x"], 2, "--rebalance-interval"),
            case(&["--iface", "veth17", "--max-clients", "many"], 2, "--max-clients"),
            case(&["--iface", "veth17", "--client-sampling", "x"], 2, "--client-sampling"),
            case(&["--iface", "veth17", "--vm-ageing", "1.5"], 2, "--vm-ageing"),
            case(
                &["--iface", "veth17", "--primary-reselect", "sometimes"],
                2,
                "possible values: always, better, failure",
            ),
            case(&["--iface", "veth17", "--metrics-listen", "localhost"], 2, "--metrics-listen"),
            case(&["--iface", "veth17", "--keep-datapath", "maybe"], 2, "--keep-datapath"),
            case(&["--iface", "veth17", "--colour"], 2, "unexpected argument '--colour'"),
            case(&["--iface"], 2, "--iface"),
            case(&["frob"], 2, "unrecognized subcommand 'frob'"),
            case(&["slave", "add"], 2, "<IF>"),
            case(&["slave", "del", "veth17", "--forcefully"], 2, "--forcefully"),
            case(&["set", "active"], 2, "<IF>"),
            case(&["set", "primary", "veth17"], 2, "'primary'"),
            case(&["config", "check"], 2, "<PATH>"),
            case(&["status", "--master"], 2, "--master"),
            case(&["completions", "tcsh"], 2, "tcsh"),
            case(&["reload", "now"], 2, "unexpected argument 'now'"),
        ],
    );
}

/// Options clap parses but alb refuses: status 1, one line, nothing left.
#[test]
fn a_refused_start_is_one_line_with_status_1_and_leaves_nothing() {
    let lab = common::lab(1, 2);
    let seventeen: Vec<String> = (0..17).map(|n| format!("s{n}")).collect();
    let mut many = vec!["--master".to_owned(), lab.master().to_owned()];
    for name in &seventeen {
        many.extend(["--iface".to_owned(), name.clone()]);
    }
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = run_alb(lab.srv(), &many);
    let too_many = case(&[], 1, "at most 16 slaves, 17 given");
    assert_one_line(&too_many, &[format!("--iface x17 ({})", seventeen.join(" "))], &out);

    assert_refused_starts(
        &lab,
        &[
            case(&["--master", M, "--iface", "nosuch0"], 1, "no network device named nosuch0"),
            case(&["--master", M, "--iface", "lo"], 1, "lo is not an Ethernet device"),
            case(&["--master", M, "--iface", "veth17", "--iface", M], 1, "is the master itself"),
            case(&["--master", "a/b", "--iface", "veth17"], 1, "\"a/b\" is not a valid"),
            case(&["--master", "averyveryverylong", "--iface", "veth17"], 1, "averyveryverylong"),
            case(&["--master", M, "--iface", "veth17", "--lp-interval", "0"], 1, "--lp-interval"),
            case(
                &["--master", M, "--iface", "veth17", "--client-sampling", "0"],
                1,
                "client_sampling 0 is out of range",
            ),
            case(
                &["--master", M, "--iface", "veth17", "--vm-ageing", "0"],
                1,
                "vm_ageing 0 is out of range",
            ),
            case(&["--master", M, "--iface", "veth17", "--max-clients", "0"], 1, "at least 1"),
            case(
                &["--master", M, "--iface", "veth17", "--updelay", "2147483648"],
                1,
                "updelay 2147483648 is out of range",
            ),
            case(
                &["--master", M, "--iface", "veth17", "--primary", "veth19"],
                1,
                "primary veth19 is not one of the slaves",
            ),
            case(
                &["--master", M, "--iface", "veth17", "--metrics-listen", "198.18.0.1:19470"],
                1,
                "not a loopback address",
            ),
            case(
                &["--master", M, "--iface", "veth17", "--metrics-allow-remote"],
                1,
                "needs metrics_listen (--metrics-listen)",
            ),
            case(
                &["--master", M, "--config", "/nonexistent/alb.toml", "--iface", "veth17"],
                1,
                "cannot read /nonexistent/alb.toml",
            ),
        ],
    );
}

/// Control requests a running agent must refuse, each changing nothing;
/// a second agent on the same master is refused too.
#[test]
fn a_bad_control_request_is_refused_and_changes_nothing() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    // Without an agent first: the socket is not there.
    run_case(
        &lab,
        lab.srv(),
        &case(&["slave", "add", "veth19", "--master", "{master}"], 1, "no alb agent"),
    );

    let mut agent = Agent::start_on(&lab, &["veth17"], &[]);
    lab.ip(lab.srv(), &["link", "set", "veth19", "down"]).expect("veth19 down");
    let before = agent.status();
    let sysctls = slave_sysctls(&lab);
    let cases = [
        case(&["slave", "add", "nosuch0", "--master", M], 1, "no network device named nosuch0"),
        case(&["slave", "add", "lo", "--master", M], 1, "lo is not an Ethernet device"),
        case(&["slave", "add", "veth17", "--master", M], 1, "veth17 is already a slave"),
        case(&["slave", "add", M, "--master", M], 1, "is the master itself"),
        case(&["slave", "del", "veth19", "--master", M], 1, "veth19 is not a slave"),
        case(&["slave", "del", "veth17", "--master", M], 1, "would leave no slave"),
        case(&["set", "active", "nosuch0", "--master", M], 1, "nosuch0 is not a slave"),
        case(&["slave", "add", "veth19", "--master", "nosuch9"], 1, "no alb agent runs master"),
        case(&["reload", "--master", M], 1, "started without a config file"),
        case(&["reload", "--master", "nosuch9"], 1, "no alb agent runs master"),
        case(&["--master", M, "--iface", "veth19"], 1, "another alb agent already runs master"),
    ];
    for case in &cases {
        run_case(&lab, lab.srv(), case);
        let argv = argv(case, &master);
        let now = agent.status();
        let slaves = |s: &alb_tests::Status| -> Vec<String> {
            s.slaves.iter().map(|x| x.name.clone()).collect()
        };
        assert_eq!(slaves(&now), slaves(&before), "`alb {}` kept the slaves", argv.join(" "));
        assert_eq!(now.active_slave, before.active_slave, "`alb {}`: active", argv.join(" "));
        assert_eq!(slave_sysctls(&lab), sysctls, "`alb {}`: slave sysctls", argv.join(" "));
        assert!(agent.running(), "`alb {}` stopped the agent:\n{}", argv.join(" "), agent.log());
    }
    // A slave whose link is down cannot be made active.
    let out = run_alb(lab.srv(), &["slave", "add", "veth19", "--master", &master]);
    assert!(out.status.success(), "veth19 added: {}", String::from_utf8_lossy(&out.stderr));
    lab.ip(lab.srv(), &["link", "set", "veth19", "down"]).expect("veth19 down again");
    agent.wait_status(std::time::Duration::from_secs(5), "veth19 down", |s| {
        s.slaves.iter().any(|x| x.name == "veth19" && !x.usable)
    });
    run_case(
        &lab,
        lab.srv(),
        &case(&["set", "active", "veth19", "--master", M], 1, "its link is down"),
    );
    assert_eq!(agent.status().active_slave.as_deref(), Some("veth17"), "veth17 stays active");
}

/// `alb down` refuses what it cannot own: it needs root and a valid master
/// name, and a master set up in another network namespace (its record's
/// ifindexes name other devices here) is left alone; with nothing to
/// remove it says so and succeeds.
#[test]
fn alb_down_refuses_what_it_cannot_own() {
    let lab = common::lab(1, 2);
    let master = lab.master().to_owned();
    let nobody = alb_as_nobody(&lab, &["down", "--master", &master]);
    let not_root = case(&["down", "--master", "{master}"], 1, "alb down must run as root");
    assert_one_line(&not_root, &argv(&not_root, &master), &nobody);
    run_case(&lab, lab.srv(), &case(&["down", "--master", "a/b"], 1, "\"a/b\" is not a valid"));

    let out = run_alb(lab.srv(), &["down", "--master", &master]);
    assert!(out.status.success(), "nothing to remove is no error");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nothing to remove"), "{text}");

    // An agent that kept its data path in the server namespace; `alb down`
    // from the switch namespace must not act on its ifindexes.
    let mut agent = Agent::start_with(&lab, &["--keep-datapath"]);
    assert!(agent.stop().success(), "a clean stop:\n{}", agent.log());
    assert!(state_path(&master).exists(), "the record is kept with the data path");
    let elsewhere = case(&["down", "--master", "{master}"], 1, "another network namespace");
    run_case(&lab, lab.sw(), &elsewhere);
    assert!(lab.link_exists(lab.srv(), &master).expect("ip link"), "the master is still there");
    assert!(alb_tests::agent::pin_dir(&master).exists(), "its pins are still there");
    let out = run_alb(lab.srv(), &["down", "--master", &master]);
    assert!(
        out.status.success(),
        "alb down in its own namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = leftovers(&lab, &master);
    assert!(left.is_empty(), "alb down left {left:?}");
}

/// `alb config check` of a path that is no readable file: one line,
/// status 1 (a file's own errors are `PATH:LINE:` lines: config.rs).
#[test]
fn config_check_of_an_unreadable_path_is_one_line() {
    let dir = std::env::temp_dir().join(format!("alb-bad-input-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("a directory");
    let dir_name = dir.to_str().expect("UTF-8 path").to_owned();
    for (path, says) in
        [("/nonexistent/alb.toml", "No such file"), (dir_name.as_str(), "Is a directory")]
    {
        let out =
            Command::new(alb_bin()).args(["config", "check", path]).output().expect("run alb");
        let case = case(&[], 1, says);
        assert_one_line(&case, &["config".into(), "check".into(), path.into()], &out);
    }
    fs::remove_dir(&dir).expect("remove the directory");
}

/// Runs `case` in namespace `ns` and checks its one line.
fn run_case(lab: &Lab, ns: &str, case: &Case) {
    let argv = argv(case, lab.master());
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    assert_one_line(case, &argv, &run_alb(ns, &args));
}
