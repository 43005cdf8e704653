//! Link monitoring with bonding's `updelay` and `downdelay`: a carrier change
//! is committed only once it has lasted the delay (docs/bonding.md §4.1), so a link
//! that flaps inside the delay never changes the slave's state.
//!
//! Pure: the agent feeds carrier events and the clock, and applies what
//! comes back.

/// A slave's committed state and what is pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// Carrier lost at `since_ms`; goes down at `since_ms + downdelay`.
    Failing {
        since_ms: u64,
    },
    Down,
    /// Carrier back at `since_ms`; goes up at `since_ms + updelay`.
    Returning {
        since_ms: u64,
    },
}

/// A state change to apply to the data path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delays {
    pub up_ms: u64,
    pub down_ms: u64,
}

/// One slave's link monitor: its committed state and what is pending (a
/// state machine; the device itself is alb-user's `links::Link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkMonitor {
    pub state: LinkState,
}

impl LinkMonitor {
    pub const fn new(carrier: bool) -> Self {
        Self { state: if carrier { LinkState::Up } else { LinkState::Down } }
    }

    /// True while the data path may use the slave (committed up, including
    /// while a loss waits out `downdelay`).
    pub const fn usable(&self) -> bool {
        matches!(self.state, LinkState::Up | LinkState::Failing { .. })
    }

    /// Whether the carrier is there, as last reported (whatever the
    /// delays still pending).
    pub const fn has_carrier(&self) -> bool {
        matches!(self.state, LinkState::Up | LinkState::Returning { .. })
    }

    /// The carrier as the kernel reports it now.
    pub fn carrier(&mut self, carrier: bool, now_ms: u64, delays: Delays) -> Option<Commit> {
        self.state = match (self.state, carrier) {
            (LinkState::Up, false) => LinkState::Failing { since_ms: now_ms },
            (LinkState::Failing { .. }, true) => LinkState::Up,
            (LinkState::Down, true) => LinkState::Returning { since_ms: now_ms },
            (LinkState::Returning { .. }, false) => LinkState::Down,
            (state, _) => state,
        };
        self.tick(now_ms, delays)
    }

    /// Commits a pending change whose delay has passed.
    pub fn tick(&mut self, now_ms: u64, delays: Delays) -> Option<Commit> {
        match self.state {
            LinkState::Failing { since_ms }
                if now_ms >= since_ms.saturating_add(delays.down_ms) =>
            {
                self.state = LinkState::Down;
                Some(Commit::Down)
            }
            LinkState::Returning { since_ms }
                if now_ms >= since_ms.saturating_add(delays.up_ms) =>
            {
                self.state = LinkState::Up;
                Some(Commit::Up)
            }
            _ => None,
        }
    }

    /// Commits a pending return at once, before its `updelay` has passed
    /// (bonding does so for the slave closest to the end of its updelay
    /// when no slave is usable any more). Returns how many ms early.
    pub fn hurry_up(&mut self, now_ms: u64, delays: Delays) -> Option<u64> {
        let LinkState::Returning { since_ms } = self.state else { return None };
        self.state = LinkState::Up;
        Some(since_ms.saturating_add(delays.up_ms).saturating_sub(now_ms))
    }

    /// When the pending change, if any, is due.
    pub const fn due_ms(&self, delays: Delays) -> Option<u64> {
        match self.state {
            LinkState::Failing { since_ms } => Some(since_ms.saturating_add(delays.down_ms)),
            LinkState::Returning { since_ms } => Some(since_ms.saturating_add(delays.up_ms)),
            LinkState::Up | LinkState::Down => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Delays = Delays { up_ms: 0, down_ms: 0 };
    const SLOW: Delays = Delays { up_ms: 200, down_ms: 100 };

    #[test]
    fn without_delays_changes_commit_at_once() {
        let mut link = LinkMonitor::new(true);
        assert_eq!(link.carrier(false, 10, NONE), Some(Commit::Down));
        assert!(!link.usable());
        assert_eq!(link.carrier(true, 20, NONE), Some(Commit::Up));
        assert!(link.usable());
    }

    #[test]
    fn downdelay_keeps_the_slave_until_it_expires() {
        let mut link = LinkMonitor::new(true);
        assert_eq!(link.carrier(false, 1000, SLOW), None);
        assert!(link.usable());
        assert!(!link.has_carrier(), "usable while failing, but without carrier");
        assert_eq!(link.due_ms(SLOW), Some(1100));
        assert_eq!(link.tick(1099, SLOW), None);
        assert_eq!(link.tick(1100, SLOW), Some(Commit::Down));
    }

    #[test]
    fn a_flap_inside_updelay_never_commits() {
        let mut link = LinkMonitor::new(false);
        assert_eq!(link.carrier(true, 0, SLOW), None);
        assert!(link.has_carrier() && !link.usable(), "carrier back, not yet usable");
        assert_eq!(link.carrier(false, 150, SLOW), None);
        assert_eq!(link.tick(10_000, SLOW), None);
        assert_eq!(link.state, LinkState::Down);
        assert!(!link.usable());
    }

    #[test]
    fn a_return_can_be_hurried_only_while_it_waits() {
        let mut link = LinkMonitor::new(false);
        assert_eq!(link.carrier(true, 1000, SLOW), None);
        assert_eq!(link.hurry_up(1050, SLOW), Some(150), "150 ms before its updelay ended");
        assert!(link.usable());
        assert_eq!(link.tick(10_000, SLOW), None, "nothing left pending");
        assert_eq!(link.hurry_up(10_000, SLOW), None, "an up link is not hurried");
        assert_eq!(LinkMonitor::new(false).hurry_up(0, SLOW), None, "nor a down one");
    }

    #[test]
    fn repeated_reports_do_not_restart_the_delay() {
        let mut link = LinkMonitor::new(false);
        assert_eq!(link.carrier(true, 0, SLOW), None);
        assert_eq!(link.carrier(true, 150, SLOW), None);
        assert_eq!(link.tick(200, SLOW), Some(Commit::Up));
    }
}
