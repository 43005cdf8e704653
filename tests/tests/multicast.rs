//! IGMP/MLD memberships re-sent through a new active slave (issue 11, item
//! 6; bonding's resend_igmp): the master joins an IPv4 and an IPv6 group;
//! when the active slave fails, the agent reports both groups through the
//! new active slave (current-state records, which the kernel's own join
//! reports are not), and the lab switch, a Linux bridge that snoops
//! IGMP/MLD, registers the groups on the new slave's port, where it will
//! forward their streams. Needs root, ip, bridge and tcpdump.
#![expect(
    unused_crate_dependencies,
    reason = "a test crate sees every dependency of the package and uses a few; the library is checked"
)]

mod common;

use std::{thread, time::Duration};

use alb_tests::{Lab, wait_until};
use common::{Agent, capture::Capture, mac_of, port_of, set_port};

const GROUP4: [u8; 4] = [239, 1, 1, 1];
/// ff0e::1:2
const GROUP6: [u8; 16] = [0xff, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2];

/// (source MAC, group) of one current-state record.
type Joins<const N: usize> = Vec<([u8; 6], [u8; N])>;

/// The groups of each IGMPv3 (type 0x22) and MLDv2 (type 143) report in
/// `frames` whose records are all current-state MODE_IS_EXCLUDE (2), with
/// the source MAC.
fn current_state_reports(frames: &[common::capture::Frame]) -> (Joins<4>, Joins<16>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for frame in frames {
        let data = &frame.data;
        let src: [u8; 6] = data[6..12].try_into().expect("6 bytes");
        match (data.get(12..14), data.get(23), data.get(14)) {
            // IPv4 with options (IHL 6), IGMP.
            (Some([0x08, 0x00]), Some(2), Some(0x46)) if data.get(38) == Some(&0x22) => {
                let count = usize::from(u16::from_be_bytes([data[44], data[45]]));
                for record in data[46..].chunks_exact(8).take(count) {
                    if record[0] == 2 {
                        v4.push((src, record[4..8].try_into().expect("4 bytes")));
                    }
                }
            }
            // IPv6, hop-by-hop then ICMPv6 (at 62 with an 8-byte HBH).
            (Some([0x86, 0xdd]), _, _)
                if data.get(20) == Some(&0) && data.get(62) == Some(&143) =>
            {
                let count = usize::from(u16::from_be_bytes([data[68], data[69]]));
                for record in data[70..].chunks_exact(20).take(count) {
                    if record[0] == 2 {
                        v6.push((src, record[4..20].try_into().expect("16 bytes")));
                    }
                }
            }
            _ => {}
        }
    }
    (v4, v6)
}

/// `bridge mdb show` of the lab switch: (port, group) pairs.
fn mdb(lab: &Lab) -> Vec<(String, String)> {
    let out = lab.run(lab.sw(), &["bridge", "mdb", "show"]).expect("bridge mdb show");
    out.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at =
                |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1));
            Some(((*at("port")?).to_owned(), (*at("grp")?).to_owned()))
        })
        .collect()
}

fn parse_mac(text: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("hex");
    }
    mac
}

#[test]
fn memberships_are_reported_through_the_new_active_slave() {
    let lab = common::lab(1, 2);
    // The lab's switch floods multicast; this one snoops, as real ones do.
    lab.ip(lab.sw(), &["link", "set", alb_tests::BRIDGE, "type", "bridge", "mcast_snooping", "1"])
        .expect("snooping on");
    let agent = Agent::start_on(&lab, &["veth17", "veth19"], &[]);
    let master = lab.master().to_owned();
    let srv = lab.srv().to_owned();
    lab.ip(&srv, &["addr", "add", "2001:2::1/64", "dev", &master, "nodad"]).expect("IPv6");
    lab.ip(&srv, &["addr", "add", "239.1.1.1/32", "dev", &master, "autojoin"]).expect("join 4");
    lab.ip(&srv, &["addr", "add", "ff0e::1:2/128", "dev", &master, "autojoin"]).expect("join 6");
    let igmp = lab.run(&srv, &["cat", "/proc/net/igmp"]).expect("/proc/net/igmp");
    assert!(igmp.contains("010101EF") || igmp.contains("EF010101"), "joined 239.1.1.1:\n{igmp}");
    // The kernel's own join reports (state-change records) go out through
    // veth17 for a few seconds; the switch registers the groups there.
    let (old_port, new_port) = (port_of(&lab, "veth17"), port_of(&lab, "veth19"));
    wait_until(Duration::from_secs(5), "the switch registers 239.1.1.1 on veth17's port", || {
        Ok(mdb(&lab).contains(&(old_port.clone(), "239.1.1.1".to_owned())))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", mdb(&lab)));
    thread::sleep(Duration::from_secs(3));

    let capture = Capture::start(&lab, lab.sw(), &new_port, "igmp or ip6");
    set_port(&lab, &old_port, false);
    agent.wait_status(Duration::from_secs(3), "veth19 active", |s| {
        s.active_slave.as_deref() == Some("veth19")
    });
    let registered = wait_until(Duration::from_secs(3), "both groups on veth19's port", || {
        let entries = mdb(&lab);
        Ok(entries.contains(&(new_port.clone(), "239.1.1.1".to_owned()))
            && entries.contains(&(new_port.clone(), "ff0e::1:2".to_owned())))
    });
    let frames = capture.finish();
    let (v4, v6) = current_state_reports(&frames);
    let master_mac = parse_mac(&agent.status().master_mac);
    assert_eq!(master_mac, parse_mac(&mac_of(&lab, "veth17")), "the master has veth17's MAC");
    assert!(
        v4.contains(&(master_mac, GROUP4)),
        "an IGMPv3 current-state report for 239.1.1.1 from the master's MAC on veth19's port: {v4:?}"
    );
    assert!(
        v6.contains(&(master_mac, GROUP6)),
        "an MLDv2 current-state report for ff0e::1:2 on veth19's port: {v6:?}"
    );
    registered.unwrap_or_else(|e| panic!("{e:#}: the snooping switch has {:?}", mdb(&lab)));
}
