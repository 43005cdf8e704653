//! `alb takeover BOND` and `alb handback BOND` (README "Moving from a
//! kernel bond"): a kernel bond in balance-alb over the server's slaves,
//! clients pinging it every 10 ms and one running an iperf3 TCP stream from
//! it; the takeover replaces the bond by alb's master of the same name,
//! the handback builds the bond again. Each way: the stream completes (no
//! reset), every client answers again, the device has the bond's MAC,
//! addresses and route, and the handback's bond has its definition. The
//! longest time without a reply is printed per client and direction
//! (docs/takeover.md records the figures; timing is not asserted).
//!
//! The tests that need a kernel bond run in the vm-test guests, where the
//! bonding module exists; the refusals that need none run here too.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{path::Path, process::Output, time::Duration};

use alb_tests::{Lab, SERVER_IP4, SERVER_IP6, require_bonding, scaled, wait_until};
use common::{
    alb_as_nobody, alb_bin, lab,
    pings::{PingRun, report, spawn_pings},
    run_alb,
};
use serde_json::Value;

/// A route through the bond the takeover and the handback must carry.
const ROUTE: &str = "198.19.0.0/24";
const ROUTE_VIA: &str = "198.18.0.11";

/// The pings' interval (the 10 ms).
const INTERVAL: Duration = Duration::from_millis(10);

/// Standard output, then standard error unless it is the same (run_alb
/// merges them into both).
fn text(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.stderr != output.stdout {
        text.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    text
}

/// Asserts a refusal: exit status 1 and one line `alb: ...` that says `why`.
fn assert_refused(what: &str, output: &Output, why: &str) {
    let out = text(output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(output.status.code(), Some(1), "{what}: exits 1:\n{out}");
    assert_eq!(lines.len(), 1, "{what}: one line:\n{out}");
    assert!(
        lines[0].starts_with("alb: ") && lines[0].contains(why),
        "{what}: says {why:?}:\n{out}"
    );
}

fn kind(lab: &Lab, dev: &str) -> String {
    let out = lab.ip(lab.srv(), &["-d", "-j", "link", "show", "dev", dev]).expect("ip link show");
    let links: Value = serde_json::from_str(&out).expect("ip -j link");
    links[0]["linkinfo"]["info_kind"].as_str().unwrap_or("none").to_owned()
}

/// What a takeover and a handback must keep: MAC, addresses, the route.
fn assert_device_kept(lab: &Lab, mac: &str, what: &str) {
    let bond = lab.master();
    assert_eq!(lab.link_mac(lab.srv(), bond).expect("mac"), mac, "{what}: the bond's MAC");
    let addresses = lab.ip(lab.srv(), &["addr", "show", "dev", bond]).expect("ip addr");
    for address in [format!("{SERVER_IP4}/24"), format!("{SERVER_IP6}/64")] {
        assert!(addresses.contains(&address), "{what}: {address} on {bond}:\n{addresses}");
    }
    let routes = lab.ip(lab.srv(), &["route", "show", ROUTE]).expect("ip route");
    assert!(
        routes.contains(&format!("via {ROUTE_VIA} dev {bond}")),
        "{what}: the route {ROUTE} via {ROUTE_VIA}:\n{routes}"
    );
}

/// Waits until every client gets a reply from the server.
fn wait_for_clients(lab: &Lab, what: &str) {
    for client in lab.clients() {
        wait_until(scaled(Duration::from_secs(10)), &format!("{what}: c{}", client.number), || {
            let out = lab.exec(&client.ns, &["ping", "-c", "1", "-W", "1", SERVER_IP4])?;
            Ok(out.status.success())
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    }
}

fn bonding_file(sysfs: &Path, bond: &str, file: &str) -> String {
    let path = sysfs.join("class/net").join(bond).join("bonding").join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// The longest time without a reply of each run within [from, to]
/// (seconds since the epoch), as `c<n> <ms>`.
fn gaps(runs: &[PingRun], from: f64, to: f64) -> String {
    runs.iter()
        .map(|run| {
            let gap = run.longest_gap_within(from, to);
            format!("c{} {:.0} ms", run.number, gap.as_secs_f64() * 1000.0)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which slave each client's neighbour entry for the server names (its
/// MAC's last byte, `17` for veth17), in client order.
fn told(lab: &Lab) -> Vec<String> {
    lab.clients()
        .iter()
        .map(|client| {
            let mac = lab.neigh_mac(&client.ns, SERVER_IP4).expect("ip neigh").unwrap_or_default();
            let slave = lab.slaves().iter().find(|slave| slave.mac == mac);
            slave.map_or_else(|| format!("({mac})"), |slave| slave.name.clone())
        })
        .collect()
}

fn uname_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()
}

fn first_line(text: &str, start: &str) -> String {
    text.lines().find(|line| line.contains(start)).unwrap_or("").trim().to_owned()
}

#[test]
#[ignore = "guest: needs the bonding module; run by cargo xtask vm-test --tests takeover"]
fn takeover_and_handback_keep_the_clients_and_a_tcp_stream() {
    require_bonding().unwrap_or_else(|e| panic!("{e:#}"));
    let lab = lab(3, 2);
    let (srv, bond) = (lab.srv().to_owned(), lab.master().to_owned());
    lab.add_kernel_bond("balance-alb", &["miimon", "100", "updelay", "200"])
        .unwrap_or_else(|e| panic!("kernel bond: {e:#}"));
    lab.ip(&srv, &["route", "add", ROUTE, "via", ROUTE_VIA, "dev", &bond]).expect("route");
    let sysfs = lab.srv_sysfs().unwrap_or_else(|e| panic!("sysfs of the server: {e:#}"));
    let sysfs_root = sysfs.path().to_string_lossy().into_owned();
    wait_for_clients(&lab, "the kernel bond");
    let mac = lab.link_mac(&srv, &bond).expect("the bond's MAC");
    assert_eq!(kind(&lab, &bond), "bond");

    // The stream: from the server to c3 (-R), long enough for both ways.
    let mut server = lab.spawn(&srv, &["iperf3", "-s", "-1", "--forceflush"]).expect("iperf3 -s");
    wait_until(scaled(Duration::from_secs(5)), "iperf3 listening", || {
        Ok(server.log().contains("Server listening"))
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    let stream_s = scaled(Duration::from_secs(25)).as_secs().to_string();
    let client_ns = lab.client(3).ns.clone();
    let mut stream = lab
        .spawn(&client_ns, &["iperf3", "-c", SERVER_IP4, "-R", "-J", "-t", &stream_s])
        .expect("iperf3 -c");
    let pings = spawn_pings(&lab, &[1, 2, 3], Duration::from_secs(3600), INTERVAL);
    pings.wait_for_first_replies(scaled(Duration::from_secs(5)));
    let told_by_bond = told(&lab);

    let alb = alb_bin().to_string_lossy().into_owned();
    let took_at = common::pings::unix_now();
    let mut agent = lab
        .spawn(&srv, &[&alb, "takeover", "--sysfs-root", &sysfs_root, &bond])
        .expect("alb takeover");
    wait_until(scaled(Duration::from_secs(30)), "alb: took over", || {
        assert!(agent.exited()?.is_none(), "alb takeover ended:\n{}", agent.log());
        Ok(agent.log().contains("alb: took over"))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    assert_eq!(kind(&lab, &bond), "veth", "alb's master replaced the bond");
    assert_device_kept(&lab, &mac, "after the takeover");
    wait_for_clients(&lab, "alb's master");
    let told_by_alb = told(&lab);
    // The stream runs under alb for a while before it is handed back.
    std::thread::sleep(Duration::from_secs(2));

    let back_at = common::pings::unix_now();
    let handback = run_alb(&srv, &["handback", "--sysfs-root", &sysfs_root, &bond]);
    assert!(handback.status.success(), "alb handback:\n{}", text(&handback));
    let status = agent.wait_timeout(scaled(Duration::from_secs(10))).expect("wait");
    assert!(status.is_some_and(|s| s.success()), "the takeover's agent exits 0:\n{}", agent.log());
    assert_eq!(kind(&lab, &bond), "bond", "the kernel bond is back");
    assert_device_kept(&lab, &mac, "after the handback");
    assert_eq!(bonding_file(sysfs.path(), &bond, "mode"), "balance-alb 6");
    assert_eq!(bonding_file(sysfs.path(), &bond, "miimon"), "100");
    assert_eq!(bonding_file(sysfs.path(), &bond, "updelay"), "200");
    let slaves: Vec<String> = lab.slaves().iter().map(|s| s.name.clone()).collect();
    assert_eq!(bonding_file(sysfs.path(), &bond, "slaves"), slaves.join(" "));
    wait_for_clients(&lab, "the kernel bond again");
    let told_again = told(&lab);
    let handed_at = common::pings::unix_now();
    assert!(
        stream.exited().expect("iperf3").is_none(),
        "the stream ended before the handback was done: make it longer\n{}",
        stream.log()
    );

    let status = stream
        .wait_timeout(scaled(Duration::from_secs(60)))
        .expect("wait for iperf3")
        .unwrap_or_else(|| panic!("iperf3 still running:\n{}", stream.log()));
    let log = stream.log();
    assert!(status.success(), "the TCP stream completed (no reset):\n{log}");
    let result: Value = serde_json::from_str(&log).unwrap_or_else(|e| panic!("{e}:\n{log}"));
    assert!(result.get("error").is_none(), "iperf3: {}", result["error"]);
    let retransmits = result["end"]["sum_sent"]["retransmits"].as_u64();
    let bits = result["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0);
    drop(server.stop());

    let runs = pings.interrupt();
    report("takeover", "pings", &runs);
    for run in &runs {
        assert!(
            run.first_reply_after(handed_at).is_some(),
            "c{}: replies after the handback:\n{}",
            run.number,
            run.tail()
        );
    }
    // Straight to standard output, past libtest's capture: the guest's
    // console log (target/vm-logs/) keeps the figures of a passing run.
    let figures = format!(
        "takeover: kernel {}: longest gap without a reply, takeover: {}; handback: {}; \
         iperf3: {} retransmits, {:.0} Mbit/s; the server's MAC each client has (bond, alb, \
         bond again): {}; {}; {}\n",
        uname_release(),
        gaps(&runs, took_at, back_at),
        gaps(&runs, back_at, handed_at),
        retransmits.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        bits / 1e6,
        told_by_bond
            .iter()
            .zip(&told_by_alb)
            .zip(&told_again)
            .enumerate()
            .map(|(i, ((a, b), c))| format!("c{} {a} {b} {c}", i + 1))
            .collect::<Vec<_>>()
            .join(", "),
        first_line(&agent.log(), "alb: took over"),
        first_line(&text(&handback), "alb: handed back"),
    );
    std::io::Write::write_all(&mut std::io::stdout(), figures.as_bytes()).expect("stdout");
}

#[test]
#[ignore = "guest: needs the bonding module; run by cargo xtask vm-test --tests takeover"]
fn a_bond_of_another_mode_is_refused_and_left_as_it_was() {
    require_bonding().unwrap_or_else(|e| panic!("{e:#}"));
    let lab = lab(1, 2);
    let (srv, bond) = (lab.srv().to_owned(), lab.master().to_owned());
    lab.add_kernel_bond("active-backup", &["miimon", "100"])
        .unwrap_or_else(|e| panic!("kernel bond: {e:#}"));
    let sysfs = lab.srv_sysfs().unwrap_or_else(|e| panic!("sysfs of the server: {e:#}"));
    let sysfs_root = sysfs.path().to_string_lossy().into_owned();
    // Compared once miimon has given the bond its carrier: not a change of
    // the takeover's.
    wait_until(scaled(Duration::from_secs(5)), "the bond's carrier", || {
        Ok(lab.link(&srv, &bond)?.operstate == "UP")
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    let before = lab.ip(&srv, &["-d", "link", "show", "dev", &bond]).expect("ip link");
    let refused = run_alb(&srv, &["takeover", "--sysfs-root", &sysfs_root, &bond]);
    assert_refused("active-backup", &refused, "mode active-backup");
    assert_eq!(kind(&lab, &bond), "bond");
    assert_eq!(lab.ip(&srv, &["-d", "link", "show", "dev", &bond]).expect("ip link"), before);
    let slaves: Vec<String> = lab.slaves().iter().map(|s| s.name.clone()).collect();
    assert_eq!(bonding_file(sysfs.path(), &bond, "slaves"), slaves.join(" "));
    let not_root = alb_as_nobody(&lab, &["takeover", "--sysfs-root", &sysfs_root, &bond]);
    assert_refused("not root", &not_root, "must run as root");
    assert_eq!(kind(&lab, &bond), "bond");
}

/// A balance-alb bond alb cannot take: one whose slaves were released,
/// and one whose name's peer (`<bond>p`, alb's master is a veth pair) a
/// device already has. Each is refused in one line before anything
/// changes: the bond keeps its kind, its link and its addresses.
#[test]
#[ignore = "guest: needs the bonding module; run by cargo xtask vm-test --tests takeover"]
fn a_balance_alb_bond_alb_cannot_take_is_refused_and_left_as_it_was() {
    require_bonding().unwrap_or_else(|e| panic!("{e:#}"));
    let lab = lab(1, 2);
    let (srv, bond) = (lab.srv().to_owned(), lab.master().to_owned());
    lab.add_kernel_bond("balance-alb", &["miimon", "100"])
        .unwrap_or_else(|e| panic!("kernel bond: {e:#}"));
    let sysfs = lab.srv_sysfs().unwrap_or_else(|e| panic!("sysfs of the server: {e:#}"));
    let sysfs_root = sysfs.path().to_string_lossy().into_owned();
    let takeover = || run_alb(&srv, &["takeover", "--sysfs-root", &sysfs_root, &bond]);
    // What a refusal must keep: the bond's MAC, mode and slaves (bonding's
    // files), and its global addresses; not its operstate or the link-local
    // address's DAD, which the kernel changes on its own meanwhile.
    let snapshot = || {
        let mac = lab.link_mac(&srv, &bond).expect("mac");
        let mode = bonding_file(sysfs.path(), &bond, "mode");
        let slaves = bonding_file(sysfs.path(), &bond, "slaves");
        let addresses = lab
            .ip(&srv, &["-o", "addr", "show", "dev", &bond, "scope", "global"])
            .expect("ip addr")
            .lines()
            .filter_map(|line| line.split_whitespace().nth(3).map(str::to_owned))
            .collect::<Vec<_>>();
        (mac, mode, slaves, addresses)
    };

    let peer = format!("{bond}p");
    lab.ip(&srv, &["link", "add", &peer, "type", "bridge"]).expect("a device named as the peer");
    let before = snapshot();
    assert!(before.3.contains(&format!("{SERVER_IP4}/24")), "the bond's address: {before:?}");
    assert_refused("the peer's name taken", &takeover(), &format!("needs the name {peer}"));
    assert_eq!(kind(&lab, &bond), "bond");
    assert_eq!(snapshot(), before, "the bond as it was");
    assert_eq!(kind(&lab, &peer), "bridge", "the device of that name kept");
    lab.ip(&srv, &["link", "del", &peer]).expect("ip link del");

    for slave in lab.slaves() {
        lab.ip(&srv, &["link", "set", &slave.name, "nomaster"]).expect("release the slave");
    }
    let before = snapshot();
    assert_refused("no slaves", &takeover(), "has no slaves");
    assert_eq!(kind(&lab, &bond), "bond");
    assert_eq!(snapshot(), before, "the bond as it was");
    assert!(!Path::new(&format!("/run/alb/{bond}.takeover.json")).exists(), "no takeover record");
}

#[test]
fn takeover_and_handback_refuse_what_is_no_bond_of_theirs() {
    let lab = lab(1, 1);
    let (srv, name) = (lab.srv().to_owned(), lab.master().to_owned());
    let sysfs = lab.srv_sysfs().unwrap_or_else(|e| panic!("sysfs of the server: {e:#}"));
    let sysfs_root = sysfs.path().to_string_lossy().into_owned();
    let slave = lab.slave(0).name.clone();
    let no_bond = run_alb(&srv, &["takeover", "--sysfs-root", &sysfs_root, &name]);
    assert_refused("no such bond", &no_bond, &format!("{name} is not a kernel bond"));
    // A device that exists but is no bond: the slave.
    let no_bond = run_alb(&srv, &["takeover", "--sysfs-root", &sysfs_root, &slave]);
    assert_refused("a veth", &no_bond, &format!("{slave} is not a kernel bond"));
    let nothing = run_alb(&srv, &["handback", "--sysfs-root", &sysfs_root, &name]);
    assert_refused("no takeover", &nothing, &format!("no takeover of {name} to hand back"));
    let not_root = alb_as_nobody(&lab, &["handback", "--sysfs-root", &sysfs_root, &name]);
    assert_refused("not root", &not_root, "must run as root");
    assert!(!lab.link_exists(&srv, &name).expect("ip link"), "nothing was created");
    assert!(!Path::new(&format!("/run/alb/{name}.takeover.json")).exists());
}
