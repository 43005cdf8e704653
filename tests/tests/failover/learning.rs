//! Learning frames (docs/bonding.md §3.5): what the captures saw, and the test that
//! every slave sends one every `--lp-interval`.

use std::{thread, time::Duration};

use super::{
    LEARNING_ETHERTYPE,
    rig::{Rig, rig},
};
use crate::common::capture::{Capture, Frame};

pub(super) fn mac_str(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A captured frame as (time, dst, src, ethertype, length).
pub(super) fn learning(frame: &Frame) -> Option<(Duration, String, String, usize)> {
    let data = &frame.data;
    if data.len() < 14 || u16::from_be_bytes([data[12], data[13]]) != LEARNING_ETHERTYPE {
        return None;
    }
    Some((frame.time, mac_str(&data[0..6]), mac_str(&data[6..12]), data.len()))
}

/// The learning frames in `frames` whose source and destination are both
/// `mac`.
pub(super) fn learning_frames_of(frames: &[Frame], mac: &str) -> Vec<Duration> {
    frames
        .iter()
        .filter_map(learning)
        .filter(|(_, dst, src, _)| dst == mac && src == mac)
        .map(|(t, ..)| t)
        .collect()
}

pub(super) fn describe_frames(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| match learning(f) {
            Some((t, dst, src, len)) => {
                format!("  {:.6} {src} -> {dst} 0x9000 {len} B", t.as_secs_f64())
            }
            None => format!("  {:.6} other frame, {} B", f.time.as_secs_f64(), f.data.len()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// docs/bonding.md §3.5: every slave sends a 60-byte learning frame (ethertype
/// 0x9000, source = destination = its own MAC) every `--lp-interval`
/// seconds; the switch port of veth17 sees veth17's, about 1 s apart.
#[test]
fn learning_frames_go_out_every_lp_interval() {
    let Rig { agent: _agent, lab } = rig(1, 2, &["--lp-interval", "1"]);
    let (veth17, veth19) = (lab.slave(0).clone(), lab.slave(1).clone());
    let on17 = Capture::start(&lab, lab.sw(), &veth17.port, "ether proto 0x9000");
    let on19 = Capture::start(&lab, lab.sw(), &veth19.port, "ether proto 0x9000");
    thread::sleep(Duration::from_millis(3300));
    let on17 = on17.finish();
    let on19 = on19.finish();

    for (slave, frames) in [(&veth17, &on17), (&veth19, &on19)] {
        let times = learning_frames_of(frames, &slave.mac);
        assert!(
            times.len() >= 3,
            "3.3 s on {} carried {} learning frames of {}:\n{}",
            slave.port,
            times.len(),
            slave.name,
            describe_frames(frames)
        );
        for frame in frames {
            let (_, dst, src, len) = learning(frame).expect("only 0x9000 frames captured");
            assert_eq!(
                (dst.as_str(), src.as_str()),
                (slave.mac.as_str(), slave.mac.as_str()),
                "{}: only {}'s own frames:\n{}",
                slave.port,
                slave.name,
                describe_frames(frames)
            );
            assert_eq!(len, 60, "learning frames are 60 bytes:\n{}", describe_frames(frames));
            assert!(
                frame.data[14..].iter().all(|&b| b == 0),
                "learning frames are zero-padded: {:02x?}",
                frame.data
            );
        }
        let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        println!(
            "failover: learning frames on {}: gaps {:?} s",
            slave.port,
            gaps.iter().map(|g| format!("{g:.3}")).collect::<Vec<_>>()
        );
        assert!(
            gaps.iter().all(|g| (0.8..=1.25).contains(g)),
            "{}: learning frames about 1 s apart: {gaps:?}",
            slave.port
        );
    }
}
