//! What a running agent refuses: bad `alb slave` requests, a second
//! master taking a slave of the first, and anyone but root on the control
//! socket. Each refusal changes nothing.

use std::{
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    time::Duration,
};

use alb::datapath::layout;
use alb_tests::{
    agent::{pin_dir, socket_path},
    wait_until,
};

use super::{assert_refused, quiet_spare, summary};
use crate::common::{
    self, Agent, assert_all_clients_work,
    datapath::{assert_attached, assert_no_programs, silenced, sysctls_of},
    leftovers, resolve_all,
};

/// Bad runtime requests: each exits 1 with a one-line `alb: ...` message
/// and changes nothing.
#[test]
fn bad_runtime_requests_are_refused_and_change_nothing() {
    let lab = common::lab(2, 3);
    let master = lab.master().to_owned();
    let peer = format!("{master}p");
    quiet_spare(&lab, "veth21");
    let veth21_before = sysctls_of(&lab, "veth21");
    let mut agent = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    let before = summary(&agent.status());
    let other = format!("z{}", &master[1..]);
    let cases: [(&[&str], &str); 7] = [
        (&["slave", "add", "nosuch0", "--master", &master], "nosuch0"),
        (&["slave", "add", "veth17", "--master", &master], "already a slave"),
        (&["slave", "del", "veth21", "--master", &master], "not a slave"),
        (&["slave", "del", "nosuch0", "--master", &master], "not a slave"),
        (&["slave", "add", &master, "--master", &master], "master itself"),
        (&["slave", "add", &peer, "--master", &master], "master itself"),
        (&["slave", "add", "veth21", "--master", &other], &other),
    ];
    for (args, expect) in cases {
        let message = assert_refused(&lab, args, expect);
        println!("runtime: `alb {}` -> {message}", args.join(" "));
        assert!(agent.running(), "the agent survives `alb {}`:\n{}", args.join(" "), agent.log());
        assert_eq!(summary(&agent.status()), before, "`alb {}` changed the status", args.join(" "));
        assert_eq!(sysctls_of(&lab, "veth21"), veth21_before, "veth21 untouched");
        assert_no_programs(&lab, "veth21");
        assert!(silenced(&lab, "veth17") && silenced(&lab, "veth19"), "slaves still silenced");
    }
    assert_attached(&lab, &master, &["veth17", "veth19"]);
    let record = layout::link_dir(&pin_dir(&master)).join(layout::rx_record("veth21"));
    assert!(!record.exists(), "no pin for veth21");
    assert!(!pin_dir(&other).exists() && !socket_path(&other).exists(), "nothing for {other}");
    assert_all_clients_work(&lab, 10);
}

/// A device that is a slave of a running master cannot be taken by a
/// second master: the second agent is refused and leaves nothing; the
/// first keeps working.
#[test]
fn a_second_master_cannot_take_a_slave_of_the_first() {
    let lab = common::lab(2, 2);
    let master = lab.master().to_owned();
    let agent = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    resolve_all(&lab);
    let before = summary(&agent.status());
    let ids = assert_attached(&lab, &master, &["veth17", "veth19"]);

    let second = format!("z{}", &master[1..]);
    assert!(second.len() <= 14 && second != master, "{second}");
    let message = assert_refused(
        &lab,
        &["--master", &second, "--iface", "veth19"],
        "already a slave of another alb master",
    );
    assert!(message.contains("veth19"), "names the device: {message}");
    let left = leftovers(&lab, &second);
    common::remove_lock_file(&second);
    assert!(left.is_empty(), "the refused agent left {left:?}");
    assert!(!socket_path(&second).exists(), "no control socket for {second}");

    assert_eq!(summary(&agent.status()), before, "the first master's status unchanged");
    assert_eq!(assert_attached(&lab, &master, &["veth17", "veth19"]), ids, "same programs");
    assert!(silenced(&lab, "veth19"), "veth19 still silenced for the first master");
    assert_all_clients_work(&lab, 20);
}

/// The control socket is root-only: the socket is mode 0600 and owned by
/// root, in a directory of mode 0700; an unprivileged user cannot use it;
/// it goes with the agent.
#[test]
fn the_control_socket_is_root_only() {
    let lab = common::lab(1, 3);
    let master = lab.master().to_owned();
    let mut agent = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    let path = socket_path(&master);
    let meta =
        std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.file_type().is_socket(), "{} is a socket", path.display());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{} mode", path.display());
    assert_eq!(meta.uid(), 0, "{} owned by root", path.display());
    let dir = std::fs::metadata("/run/alb").expect("/run/alb");
    assert_eq!(dir.permissions().mode() & 0o7777, 0o700, "/run/alb mode");
    assert_eq!(dir.uid(), 0, "/run/alb owned by root");

    // nobody cannot reach it.
    let out = common::alb_as_nobody(&lab, &["slave", "add", "veth21", "--master", &master]);
    let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(!out.status.success(), "an unprivileged user is refused: {text}");
    assert!(
        text.starts_with("alb: ") && text.contains("only root may talk to the agent"),
        "{text}"
    );
    println!("runtime: `alb slave add` as nobody -> {text}");
    let names: Vec<String> = agent.status().slaves.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["veth17", "veth19"], "no slave added");
    assert_no_programs(&lab, "veth21");

    let status = agent.stop();
    assert!(status.success(), "alb stops cleanly: {status}\n{}", agent.log());
    assert!(!path.exists(), "{} removed with the agent", path.display());
    wait_until(Duration::from_secs(1), "no leftovers", || Ok(leftovers(&lab, &master).is_empty()))
        .unwrap_or_else(|e| panic!("{e:#}: {:?}", leftovers(&lab, &master)));
}
