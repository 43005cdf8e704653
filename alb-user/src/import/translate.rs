//! A kernel bond's options, by the kernel's names, turned into alb's
//! settings: what maps (slaves, primary, primary_reselect, updelay and
//! downdelay as bonding rounds them, lp_interval, tlb_dynamic_lb), and a
//! note for everything else saying why it does not. No I/O.

use super::{Bond, BondOption, Note, Place};
use crate::config::{PrimaryReselect, Settings, validate::INT_MAX};

/// The translation of a bond.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    pub settings: Settings,
    /// Source order.
    pub notes: Vec<Note>,
}

/// Bonding's modes, by number (`mode 6` is `balance-alb`).
const MODES: [&str; 7] = [
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];

/// Why each bonding option alb has no equivalent for does not map.
const UNMAPPED: &[(&str, &str)] = &[
    ("arp_interval", ARP),
    ("arp_ip_target", ARP),
    ("arp_validate", ARP),
    ("arp_all_targets", ARP),
    ("arp_missed_max", ARP),
    ("missed_max", ARP),
    (
        "ns_ip6_target",
        "NS monitoring is ARP monitoring's IPv6 side, which bonding refuses in balance-alb",
    ),
    (
        "fail_over_mac",
        "active-backup only: in balance-alb every slave keeps its own MAC, as in alb",
    ),
    (
        "xmit_hash_policy",
        "alb spreads transmit traffic by destination and load, with no hash policy (bonding uses it in \
         balance-xor and 802.3ad, and in balance-alb only with tlb_dynamic_lb=0)",
    ),
    ("lacp_rate", LACP),
    ("lacp_active", LACP),
    ("ad_select", LACP),
    ("ad_actor_sys_prio", LACP),
    ("ad_actor_system", LACP),
    ("ad_user_port_key", LACP),
    ("min_links", LACP),
    ("packets_per_slave", "balance-rr only"),
    (
        "num_grat_arp",
        "alb sends its own announcements on a change of slave; their count is not set",
    ),
    (
        "num_unsol_na",
        "alb sends its own announcements on a change of slave; their count is not set",
    ),
    (
        "peer_notif_delay",
        "alb sends its own announcements on a change of slave; their count is not set",
    ),
    ("resend_igmp", "alb has no IGMP resend after a failover"),
    ("all_slaves_active", "alb drops what inactive slaves receive as bonding does by default"),
    ("use_carrier", "alb always follows each slave's carrier (netlink)"),
    ("coupled_control", LACP),
    ("active_slave", "a choice made while running: `alb set active IF`"),
    ("queue_id", "no slave queue ids in alb"),
    ("mtu", NOT_BOND),
    ("hwaddress", NOT_BOND),
];

const ARP: &str = "ARP monitoring, which bonding itself refuses in balance-alb; alb follows each \
                   slave's carrier (netlink)";
const LACP: &str = "802.3ad (LACP) only";
const NOT_BOND: &str =
    "not a bond option; alb's master takes it from no config (set it on the system)";

/// Bonding's default of each option sysfs shows whether it was set or not:
/// a running bond at its default says nothing worth a note.
pub const SYSFS_DEFAULTS: &[(&str, &str)] = &[
    ("arp_interval", "0"),
    ("arp_ip_target", ""),
    ("arp_validate", "none"),
    ("arp_all_targets", "any"),
    ("arp_missed_max", "2"),
    ("missed_max", "2"),
    ("ns_ip6_target", ""),
    ("fail_over_mac", "none"),
    ("xmit_hash_policy", "layer2"),
    ("lacp_rate", "slow"),
    ("lacp_active", "on"),
    ("ad_select", "stable"),
    ("ad_actor_sys_prio", "65535"),
    ("ad_actor_system", "00:00:00:00:00:00"),
    ("ad_user_port_key", "0"),
    ("min_links", "0"),
    ("packets_per_slave", "1"),
    ("num_grat_arp", "1"),
    ("num_unsol_na", "1"),
    ("peer_notif_delay", "0"),
    ("resend_igmp", "1"),
    ("all_slaves_active", "0"),
    ("use_carrier", "1"),
    ("coupled_control", "1"),
    ("active_slave", ""),
];

/// Bonding's mode number of `value` (`balance-alb`, `6`, or sysfs's
/// `balance-alb 6`).
pub fn mode_number(value: &str) -> Option<usize> {
    let word = value.split_whitespace().next()?;
    word.parse::<usize>()
        .ok()
        .filter(|n| *n < MODES.len())
        .or_else(|| MODES.iter().position(|m| *m == word))
}

/// The refusal of a bond in another mode than balance-alb, or none given
/// (bonding's default is balance-rr); balance-tlb is taken, with a note.
/// Readers call it before they look further (a refused bond's slaves do
/// not matter).
pub fn mode(bond: &Bond) -> Result<Option<Note>, String> {
    let Some(mode) = bond.option("mode") else {
        let origin =
            bond.at.clone().unwrap_or_else(|| Place::new(std::path::Path::new(&bond.name), 1));
        return Err(format!(
            "{origin}: bond {} gives no mode: bonding's default is balance-rr; alb runs balance-alb (mode 6)",
            bond.name
        ));
    };
    let text = mode.value.clone().unwrap_or_default();
    match mode_number(&text) {
        Some(6) => Ok(None),
        Some(5) => Ok(Some(Note {
            at: mode.at.clone(),
            option: mode.written.clone(),
            why: "balance-tlb: alb runs balance-alb, which also spreads receive traffic (by ARP)"
                .to_owned(),
        })),
        Some(n) => Err(format!(
            "{}: bond {} is in mode {} ({n}): alb runs balance-alb (mode 6) only",
            mode.at, bond.name, MODES[n]
        )),
        None => Err(format!("{}: bond {}: {:?} is no bonding mode", mode.at, bond.name, text)),
    }
}

/// The translation of `bond`, or the one line refusing it: another mode
/// than balance-alb (or balance-tlb, which alb runs as balance-alb).
pub fn translate(bond: &Bond) -> Result<Translation, String> {
    let origin = bond.at.clone().unwrap_or_else(|| Place::new(std::path::Path::new(&bond.name), 1));
    let mut notes = bond.notes.clone();
    if let Some(tlb) = mode(bond)? {
        notes.push(tlb);
    }
    let mut note = |at: &Place, option: &str, why: String| {
        notes.push(Note { at: at.clone(), option: option.to_owned(), why });
    };
    if bond.slaves.is_empty() {
        return Err(format!("{origin}: bond {} has no slaves", bond.name));
    }
    let mut settings = Settings {
        master: Some(bond.name.clone()),
        slaves: Some(bond.slaves.clone()),
        ..Settings::default()
    };
    let miimon = bond.option("miimon").map(|option| (option, number(option)));
    match &miimon {
        None => note(&origin, "miimon", NO_MIIMON.to_owned()),
        Some((option, Ok(0))) => note(&option.at, &option.written, NO_MIIMON.to_owned()),
        Some((option, Ok(ms))) => note(
            &option.at,
            &option.written,
            format!(
                "alb follows each slave's carrier by netlink events instead of polling every {ms} ms"
            ),
        ),
        Some((option, Err(why))) => note(&option.at, &option.written, why.clone()),
    }
    let miimon_ms = match miimon {
        Some((_, Ok(ms))) => ms,
        _ => 0,
    };
    for option in &bond.options {
        let at = &option.at;
        let written = option.written.as_str();
        match option.kernel.as_str() {
            "mode" | "miimon" => {}
            "updelay" | "downdelay" => match number(option) {
                Err(why) => note(at, written, why),
                Ok(0) => {}
                Ok(_) if miimon_ms == 0 => note(
                    at,
                    written,
                    "bonding refuses a delay without miimon (no link monitoring): not imported"
                        .to_owned(),
                ),
                Ok(ms) => {
                    let rounded = ms / miimon_ms * miimon_ms;
                    if rounded != ms {
                        note(
                            at,
                            written,
                            format!(
                                "{ms} ms is not a multiple of miimon ({miimon_ms} ms): bonding rounds it \
                                 down to {rounded} ms, imported as {rounded}"
                            ),
                        );
                    }
                    if rounded > INT_MAX {
                        note(
                            at,
                            written,
                            format!("{rounded} ms is over bonding's limit ({INT_MAX})"),
                        );
                    } else if option.kernel == "updelay" {
                        settings.updelay = Some(rounded);
                    } else {
                        settings.downdelay = Some(rounded);
                    }
                }
            },
            "primary" => match &option.value {
                Ok(slave) if slave.is_empty() => {}
                Ok(slave) if bond.slaves.contains(slave) => settings.primary = Some(slave.clone()),
                Ok(slave) => {
                    note(at, written, format!("{slave} is not one of the slaves: not imported"))
                }
                Err(why) => note(at, written, why.clone()),
            },
            "primary_reselect" => {
                match option.value.as_deref().map(|v| v.split_whitespace().next()) {
                    Ok(Some("always" | "0")) => {
                        settings.primary_reselect = Some(PrimaryReselect::Always)
                    }
                    Ok(Some("better" | "1")) => {
                        settings.primary_reselect = Some(PrimaryReselect::Better)
                    }
                    Ok(Some("failure" | "2")) => {
                        settings.primary_reselect = Some(PrimaryReselect::Failure)
                    }
                    Ok(other) => note(
                        at,
                        written,
                        format!("{:?} is no primary_reselect policy", other.unwrap_or("")),
                    ),
                    Err(why) => note(at, written, why.clone()),
                }
            }
            "lp_interval" => match number(option) {
                Ok(seconds) if (1..=INT_MAX).contains(&seconds) => {
                    settings.lp_interval = Some(seconds)
                }
                Ok(seconds) => note(
                    at,
                    written,
                    format!("{seconds} s is out of bonding's range 1 - {INT_MAX}"),
                ),
                Err(why) => note(at, written, why),
            },
            "tlb_dynamic_lb" => match option.value.as_deref().map(str::trim) {
                // Without it bonding spreads by hash and never moves a flow by load.
                Ok("0") => settings.rebalance_interval = Some(0),
                Ok("1") => {}
                Ok(other) => note(at, written, format!("{other:?} is not 0 or 1")),
                Err(why) => note(at, written, why.clone()),
            },
            kernel => {
                let why = UNMAPPED
                    .iter()
                    .find(|(name, _)| *name == kernel)
                    .map_or("not a bonding option alb knows", |(_, why)| why);
                note(at, written, why.to_owned());
            }
        }
    }
    notes.sort_by(|a, b| (&a.at.path, a.at.line).cmp(&(&b.at.path, b.at.line)));
    Ok(Translation { settings, notes })
}

const NO_MIIMON: &str = "0 or not given: bonding does no link monitoring; alb always follows each \
                         slave's carrier (netlink)";

/// An option's value as a whole number (of its kernel unit).
fn number(option: &BondOption) -> Result<u64, String> {
    let text = option.value.as_ref()?;
    text.trim().parse().map_err(|_not_a_number| format!("{text:?} is not a whole number"))
}

/// A source's key of a bonding option: its name there, the kernel's name,
/// and for a time span the unit of a bare number and the kernel's unit.
pub type Key = (&'static str, &'static str, Option<(Unit, Unit)>);

/// A unit a bare number of a time span is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Seconds,
}

/// A time span as systemd (systemd.time(7)) and netplan write them
/// (`100ms`, `1s`, `1min 30s`, `1.5s`), in whole `unit`s (rounded
/// down); a bare number is in `bare`.
pub fn time_span(text: &str, bare: Unit, unit: Unit) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a time span");
    let mut total_us: f64 = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().map_err(|_not_a_number| bad())?;
        rest = rest[digits..].trim_start();
        let letters = rest.find(|c: char| !c.is_alphabetic()).unwrap_or(rest.len());
        let scale_us = match &rest[..letters] {
            "" => match bare {
                Unit::Milliseconds => 1e3,
                Unit::Seconds => 1e6,
            },
            "us" | "usec" | "µs" => 1.0,
            "ms" | "msec" => 1e3,
            "s" | "sec" | "second" | "seconds" => 1e6,
            "m" | "min" | "minute" | "minutes" => 60e6,
            "h" | "hr" | "hour" | "hours" => 3600e6,
            _ => return Err(bad()),
        };
        total_us += value * scale_us;
        rest = rest[letters..].trim_start();
    }
    let per_unit = match unit {
        Unit::Milliseconds => 1e3,
        Unit::Seconds => 1e6,
    };
    Ok((total_us / per_unit).floor() as u64)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn option(kernel: &str, value: &str, line: usize) -> BondOption {
        BondOption {
            kernel: kernel.to_owned(),
            written: kernel.to_owned(),
            value: Ok(value.to_owned()),
            at: Place::new(Path::new("f"), line),
        }
    }

    fn bond(options: &[(&str, &str)]) -> Bond {
        Bond {
            name: "bond0".to_owned(),
            at: Some(Place::new(Path::new("f"), 1)),
            slaves: vec!["eth0".to_owned(), "eth1".to_owned()],
            options: options.iter().enumerate().map(|(i, (k, v))| option(k, v, i + 2)).collect(),
            notes: Vec::new(),
        }
    }

    fn notes(translation: &Translation) -> Vec<String> {
        translation.notes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn delays_are_rounded_down_to_miimon_as_bonding_does() {
        let t = translate(&bond(&[
            ("mode", "balance-alb"),
            ("miimon", "100"),
            ("updelay", "250"),
            ("downdelay", "300"),
        ]))
        .expect("translates");
        assert_eq!((t.settings.updelay, t.settings.downdelay), (Some(200), Some(300)));
        assert_eq!(
            notes(&t),
            [
                "f:3: miimon: alb follows each slave's carrier by netlink events instead of polling every 100 ms",
                "f:4: updelay: 250 ms is not a multiple of miimon (100 ms): bonding rounds it down to 200 ms, imported as 200",
            ]
        );
    }

    #[test]
    fn without_miimon_delays_are_not_imported_and_monitoring_is_noted() {
        let t = translate(&bond(&[("mode", "6"), ("updelay", "200")])).expect("translates");
        assert_eq!(t.settings.updelay, None);
        let notes = notes(&t);
        assert!(
            notes[0].starts_with("f:1: miimon: 0 or not given: bonding does no link monitoring"),
            "{notes:?}"
        );
        assert!(
            notes[1].starts_with("f:3: updelay: bonding refuses a delay without miimon"),
            "{notes:?}"
        );
    }

    #[test]
    fn what_maps_is_set_and_the_rest_noted() {
        let t = translate(&bond(&[
            ("mode", "balance-alb 6"),
            ("miimon", "100"),
            ("primary", "eth1"),
            ("primary_reselect", "failure 2"),
            ("lp_interval", "4"),
            ("tlb_dynamic_lb", "0"),
            ("arp_interval", "100"),
            ("lacp_rate", "fast"),
            ("frobnicate", "1"),
        ]))
        .expect("translates");
        let s = &t.settings;
        assert_eq!(s.master.as_deref(), Some("bond0"));
        assert_eq!(s.slaves.as_deref(), Some(&["eth0".to_owned(), "eth1".to_owned()][..]));
        assert_eq!(s.primary.as_deref(), Some("eth1"));
        assert_eq!(s.primary_reselect, Some(PrimaryReselect::Failure));
        assert_eq!((s.lp_interval, s.rebalance_interval), (Some(4), Some(0)));
        let notes = notes(&t);
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes[1].starts_with("f:8: arp_interval: ARP monitoring, which bonding itself refuses"),
            "{notes:?}"
        );
        assert_eq!(notes[2], "f:9: lacp_rate: 802.3ad (LACP) only");
        assert_eq!(notes[3], "f:10: frobnicate: not a bonding option alb knows");
    }

    #[test]
    fn a_primary_that_is_no_slave_is_noted_not_imported() {
        let t =
            translate(&bond(&[("mode", "balance-alb"), ("miimon", "100"), ("primary", "eth9")]))
                .expect("translates");
        assert_eq!(t.settings.primary, None);
        assert_eq!(notes(&t)[1], "f:4: primary: eth9 is not one of the slaves: not imported");
    }

    #[test]
    fn another_mode_or_none_is_refused() {
        let error = translate(&bond(&[("mode", "802.3ad")])).expect_err("refused");
        assert_eq!(
            error,
            "f:2: bond bond0 is in mode 802.3ad (4): alb runs balance-alb (mode 6) only"
        );
        let error = translate(&bond(&[("mode", "1")])).expect_err("refused");
        assert!(error.contains("mode active-backup (1)"), "{error}");
        let error = translate(&bond(&[("miimon", "100")])).expect_err("refused");
        assert!(
            error.starts_with("f:1: bond bond0 gives no mode: bonding's default is balance-rr"),
            "{error}"
        );
        let error = translate(&bond(&[("mode", "fast")])).expect_err("refused");
        assert_eq!(error, "f:2: bond bond0: \"fast\" is no bonding mode");
    }

    #[test]
    fn balance_tlb_is_taken_with_a_note() {
        let t =
            translate(&bond(&[("mode", "balance-tlb"), ("miimon", "100")])).expect("translates");
        assert!(
            notes(&t)[0].starts_with("f:2: mode: balance-tlb: alb runs balance-alb"),
            "{:?}",
            notes(&t)
        );
    }

    #[test]
    fn time_spans_read_as_systemd_and_netplan_write_them() {
        use Unit::{Milliseconds as Ms, Seconds as S};
        assert_eq!(time_span("100", Ms, Ms), Ok(100));
        assert_eq!(time_span("100ms", S, Ms), Ok(100));
        assert_eq!(time_span("1s", S, Ms), Ok(1000));
        assert_eq!(time_span("0.2s", S, Ms), Ok(200));
        assert_eq!(time_span("1min 30s", S, S), Ok(90));
        assert_eq!(time_span("2", S, S), Ok(2));
        assert_eq!(time_span("1500ms", S, S), Ok(1));
        assert_eq!(time_span("fast", S, Ms), Err("\"fast\" is not a time span".to_owned()));
        assert_eq!(time_span("", S, Ms), Err("\"\" is not a time span".to_owned()));
    }
}
