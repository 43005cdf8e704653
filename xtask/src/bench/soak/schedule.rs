//! The soak's fault schedule, drawn from a seed so that a run can be
//! replayed: faults come in decks, each deck holding every kind
//! [`FaultKind::weight`] times in a seeded order (so every kind comes
//! within a deck's worth of faults), each with its target, its hold and
//! the pause before it.

use rand::{Rng as _, SeedableRng as _, seq::SliceRandom as _};
use rand_chacha::ChaCha8Rng;

/// What a fault does. Slave faults name a slave, client faults a client,
/// agent faults concern every client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FaultKind {
    /// The slave's switch port goes down, and up after the hold (carrier
    /// loss on the slave).
    SwitchFlap,
    /// The slave itself is set down, and up after the hold.
    SlaveFlap,
    /// `alb slave del`, then `alb slave add` after the hold.
    SlaveDelAdd,
    /// SIGHUP with the config file edited to drop the slave (and other
    /// options changed), then SIGHUP with the slave back after the hold.
    Reload,
    /// The client changes its MAC.
    ClientMac,
    /// A new address appears on the client and pings the server.
    ClientAddr,
    /// SIGTERM to an agent running `--keep-datapath`, and a new agent
    /// (adopting the data path) after the hold.
    KeepRestart,
    /// `kill -9` of the agent, and a new agent (adoption) after the hold.
    Kill9,
}

/// What a fault acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// 0-based slave index.
    Slave(usize),
    /// 1-based client number.
    Client(usize),
    Agent,
}

impl FaultKind {
    pub(crate) const ALL: [Self; 8] = [
        Self::SwitchFlap,
        Self::SlaveFlap,
        Self::SlaveDelAdd,
        Self::Reload,
        Self::ClientMac,
        Self::ClientAddr,
        Self::KeepRestart,
        Self::Kill9,
    ];

    /// The name in benchmarks.json and the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::SwitchFlap => "switch_port_flap",
            Self::SlaveFlap => "slave_link_flap",
            Self::SlaveDelAdd => "slave_del_add",
            Self::Reload => "sighup_reload",
            Self::ClientMac => "client_mac_change",
            Self::ClientAddr => "client_new_address",
            Self::KeepRestart => "restart_keep_datapath",
            Self::Kill9 => "kill9_restart",
        }
    }

    /// How many of each kind a deck holds: port flaps are the commonest
    /// fault; each restart once a deck, so that an agent runs long enough
    /// between two for its memory to be followed.
    fn weight(self) -> usize {
        match self {
            Self::SwitchFlap => 3,
            Self::SlaveFlap | Self::SlaveDelAdd | Self::Reload | Self::ClientMac => 2,
            Self::ClientAddr => 2,
            Self::KeepRestart | Self::Kill9 => 1,
        }
    }

    /// The hold (seconds between the fault and its undoing) is drawn from
    /// this range.
    fn hold_s(self) -> (f64, f64) {
        match self {
            Self::SwitchFlap | Self::SlaveFlap => (0.2, 2.0),
            Self::SlaveDelAdd | Self::Reload => (0.5, 2.0),
            Self::ClientMac | Self::ClientAddr => (0.0, 0.0),
            Self::KeepRestart => (0.0, 0.5),
            Self::Kill9 => (0.0, 1.0),
        }
    }
}

/// One planned fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Planned {
    /// The pause before it, after the previous fault has settled.
    pub(crate) gap_s: f64,
    pub(crate) kind: FaultKind,
    pub(crate) target: Target,
    pub(crate) hold_s: f64,
}

/// The pause before each fault is drawn from this range (seconds).
pub(crate) const GAP_S: (f64, f64) = (2.0, 4.0);

/// The first `count` faults of seed `seed` in a lab of `slaves` slaves
/// and `clients` clients (the schedule goes on for as long as the soak
/// does: a longer soak is a longer prefix of the same sequence).
pub(crate) fn plan(seed: u64, count: usize, slaves: usize, clients: usize) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let mut deck: Vec<FaultKind> =
            FaultKind::ALL.iter().flat_map(|&k| std::iter::repeat_n(k, k.weight())).collect();
        deck.shuffle(&mut rng);
        for kind in deck {
            if out.len() == count {
                break;
            }
            let gap_s = rng.random_range(GAP_S.0..GAP_S.1);
            let target = match kind {
                FaultKind::SwitchFlap
                | FaultKind::SlaveFlap
                | FaultKind::SlaveDelAdd
                | FaultKind::Reload => Target::Slave(rng.random_range(0..slaves)),
                FaultKind::ClientMac | FaultKind::ClientAddr => {
                    Target::Client(rng.random_range(1..=clients))
                }
                FaultKind::KeepRestart | FaultKind::Kill9 => Target::Agent,
            };
            let (lo, hi) = kind.hold_s();
            let hold_s = if hi > lo { rng.random_range(lo..hi) } else { lo };
            out.push(Planned { gap_s, kind, target, hold_s });
        }
    }
    out
}

/// A seed for a run that was not given one: the clock's nanoseconds.
pub(crate) fn fresh_seed() -> u64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_secs() ^ u64::from(now.subsec_nanos()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_another_seed_differs() {
        let a = plan(42, 60, 3, 6);
        assert_eq!(a, plan(42, 60, 3, 6), "the same seed gives the same schedule");
        assert_ne!(a, plan(43, 60, 3, 6), "another seed, another schedule");
        assert_eq!(plan(42, 20, 3, 6), a[..20], "a shorter soak is a prefix of a longer one");
    }

    #[test]
    fn every_deck_holds_every_kind_with_targets_and_times_in_range() {
        let deck: usize = FaultKind::ALL.iter().map(|k| k.weight()).sum();
        let faults = plan(7, deck * 5, 3, 6);
        for chunk in faults.chunks(deck) {
            for kind in FaultKind::ALL {
                let n = chunk.iter().filter(|f| f.kind == kind).count();
                assert_eq!(n, kind.weight(), "{kind:?} in a deck: {chunk:?}");
            }
        }
        for f in &faults {
            assert!((GAP_S.0..GAP_S.1).contains(&f.gap_s), "{f:?}");
            let (lo, hi) = f.kind.hold_s();
            assert!(f.hold_s >= lo && (f.hold_s < hi || f.hold_s == lo), "{f:?}");
            match (f.kind, f.target) {
                (FaultKind::ClientMac | FaultKind::ClientAddr, Target::Client(n)) => {
                    assert!((1..=6).contains(&n), "{f:?}");
                }
                (FaultKind::KeepRestart | FaultKind::Kill9, Target::Agent) => {}
                (_, Target::Slave(i)) => assert!(i < 3, "{f:?}"),
                _ => panic!("a fault with the wrong kind of target: {f:?}"),
            }
        }
        // Over five decks every slave and several clients are hit.
        for slave in 0..3 {
            assert!(faults.iter().any(|f| f.target == Target::Slave(slave)), "slave {slave}");
        }
    }
}
