//! Which slave is active: bonding's `primary` and `primary_reselect`
//! (`bond_choose_primary_or_current` and `bond_find_best_slave` in
//! drivers/net/bonding/bond_main.c), with alb's own preference for the
//! slave whose MAC the master carries (alb never moves MACs between
//! devices, so that slave is the natural home of the master's MAC).
//!
//! Pure: the agent says which slaves are usable, which is active now and
//! what is preferred, and applies the answer.

use core::{fmt, str::FromStr};

/// Bonding's `primary_reselect`: when a preferred slave (the primary, else
/// the slave that owns the master's MAC) that is up takes the active role
/// back from another slave that is up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reselect {
    /// Whenever it is up (bonding's default).
    #[default]
    Always,
    /// Only if it is faster, or as fast with a better duplex.
    Better,
    /// Only when the active slave fails.
    Failure,
}

impl Reselect {
    /// Every policy, in bonding's order.
    pub const ALL: [Self; 3] = [Self::Always, Self::Better, Self::Failure];

    /// Bonding's name of the policy.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Better => "better",
            Self::Failure => "failure",
        }
    }
}

impl fmt::Display for Reselect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`Reselect`] policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownReselect;

impl fmt::Display for UnknownReselect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown primary_reselect policy (always, better or failure)")
    }
}

impl core::error::Error for UnknownReselect {}

impl FromStr for Reselect {
    type Err = UnknownReselect;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|policy| policy.name() == name).ok_or(UnknownReselect)
    }
}

/// A slave's speed and duplex as ethtool reports them, for
/// [`Reselect::Better`]. Unknown counts as the slowest (the kernel stores
/// an unknown speed as `u32::MAX`, which makes it win; alb does not copy
/// that).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Speed {
    pub mbps: Option<u32>,
    pub full_duplex: Option<bool>,
}

impl Speed {
    /// Bonding's `better`: faster, or as fast with a better duplex.
    pub fn better_than(&self, other: &Self) -> bool {
        let key = |s: &Self| (s.mbps.unwrap_or(0), s.full_duplex.unwrap_or(false));
        key(self) > key(other)
    }
}

/// What the choice of the active slave depends on.
#[derive(Clone, Copy, Debug)]
pub struct Choice<'a> {
    /// Which slaves may carry traffic, in enslave order.
    pub usable: &'a [bool],
    /// Bonding's `primary`.
    pub primary: Option<usize>,
    /// The slave whose MAC the master carries.
    pub mac_owner: Option<usize>,
    /// The active slave now.
    pub current: Option<usize>,
    pub reselect: Reselect,
    /// Each slave's speed, for [`Reselect::Better`] (missing: unknown).
    pub speeds: &'a [Speed],
}

impl Choice<'_> {
    fn usable(&self, index: usize) -> bool {
        self.usable.get(index).copied().unwrap_or(false)
    }

    fn speed(&self, index: usize) -> Speed {
        self.speeds.get(index).copied().unwrap_or_default()
    }

    /// The active slave: the first preferred slave (the primary, then the
    /// MAC owner) that is usable, weighed against a usable current one by
    /// the reselect policy; else the current one if usable; else the first
    /// usable slave; else none.
    pub fn active(&self) -> Option<usize> {
        let current = self.current.filter(|&c| self.usable(c));
        let preferred =
            [self.primary, self.mac_owner].into_iter().flatten().find(|&p| self.usable(p));
        match (preferred, current) {
            (Some(preferred), Some(current)) => Some(match self.reselect {
                Reselect::Always => preferred,
                Reselect::Failure => current,
                Reselect::Better if self.speed(preferred).better_than(&self.speed(current)) => {
                    preferred
                }
                Reselect::Better => current,
            }),
            (Some(preferred), None) => Some(preferred),
            (None, Some(current)) => Some(current),
            (None, None) => self.usable.iter().position(|&u| u),
        }
    }

    /// Whether slave `index` may be preferred over others (the primary or
    /// the MAC owner): its return is a moment to choose again, as bonding
    /// does when the primary comes back.
    pub fn preferred(&self, index: usize) -> bool {
        self.primary == Some(index) || self.mac_owner == Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_G: Speed = Speed { mbps: Some(10_000), full_duplex: Some(true) };
    const ONE_G: Speed = Speed { mbps: Some(1000), full_duplex: Some(true) };
    const ONE_G_HALF: Speed = Speed { mbps: Some(1000), full_duplex: Some(false) };

    fn choice<'a>(usable: &'a [bool], current: Option<usize>, reselect: Reselect) -> Choice<'a> {
        Choice { usable, primary: None, mac_owner: Some(0), current, reselect, speeds: &[] }
    }

    #[test]
    fn always_prefers_primary_then_mac_owner() {
        let both = [true, true];
        let primary = Choice { primary: Some(1), ..choice(&both, Some(0), Reselect::Always) };
        assert_eq!(primary.active(), Some(1));
        assert_eq!(choice(&both, Some(1), Reselect::Always).active(), Some(0), "MAC owner back");
        let owner_down = [false, true, true];
        assert_eq!(
            choice(&owner_down, Some(2), Reselect::Always).active(),
            Some(2),
            "current kept"
        );
        assert_eq!(
            choice(&owner_down, Some(0), Reselect::Always).active(),
            Some(1),
            "first usable"
        );
        let none = [false, false];
        let primary = Choice { primary: Some(1), ..choice(&none, Some(0), Reselect::Always) };
        assert_eq!(primary.active(), None);
    }

    #[test]
    fn failure_keeps_a_usable_current_slave() {
        let both = [true, true];
        let c = Choice { primary: Some(1), ..choice(&both, Some(0), Reselect::Failure) };
        assert_eq!(c.active(), Some(0), "the primary does not take over");
        let only_primary = [false, true];
        let c = Choice { primary: Some(1), ..choice(&only_primary, Some(0), Reselect::Failure) };
        assert_eq!(c.active(), Some(1), "the current one failed");
        let c = Choice { primary: Some(1), ..choice(&both, None, Reselect::Failure) };
        assert_eq!(c.active(), Some(1), "no active slave: the primary");
    }

    #[test]
    fn better_takes_over_only_when_faster_or_with_a_better_duplex() {
        let both = [true, true];
        let with = |speeds: &'static [Speed]| Choice {
            primary: Some(1),
            speeds,
            ..choice(&both, Some(0), Reselect::Better)
        };
        assert_eq!(with(&[ONE_G, TEN_G]).active(), Some(1), "faster primary");
        assert_eq!(with(&[TEN_G, ONE_G]).active(), Some(0), "slower primary");
        assert_eq!(with(&[TEN_G, TEN_G]).active(), Some(0), "as fast: the current one stays");
        assert_eq!(with(&[ONE_G_HALF, ONE_G]).active(), Some(1), "as fast, full duplex");
        assert_eq!(with(&[ONE_G, ONE_G_HALF]).active(), Some(0), "as fast, half duplex");
        assert_eq!(with(&[]).active(), Some(0), "both unknown");
        assert!(!Speed::default().better_than(&ONE_G), "unknown is the slowest");
    }

    #[test]
    fn policies_have_bondings_names() {
        for policy in Reselect::ALL {
            assert_eq!(policy.name().parse(), Ok(policy));
        }
        assert_eq!("sometimes".parse::<Reselect>(), Err(UnknownReselect));
        assert_eq!(Reselect::default(), Reselect::Always);
    }

    #[test]
    fn preferred_slaves_are_the_primary_and_the_mac_owner() {
        let c = Choice { primary: Some(2), ..choice(&[true; 3], None, Reselect::Always) };
        assert!(c.preferred(2) && c.preferred(0) && !c.preferred(1));
    }
}
