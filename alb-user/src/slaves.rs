//! The slave set at run time: each slave's link state (with bonding's
//! updelay and downdelay), which slave is active (bonding's primary,
//! primary_reselect and active_slave), and which slaves new clients and
//! buckets may use. Pure bookkeeping; the agent applies what a
//! [`Transition`] or an [`ActiveChange`] says to the maps and the network.

use std::time::{Duration, Instant};

use alb_common::{
    active::{Choice, Reselect, Speed},
    link::{Commit, Delays, LinkMonitor, LinkState},
};

use crate::state::{SlaveState, State};

/// What changed when a slave's state was committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub slave: usize,
    pub commit: Commit,
    pub active_before: Option<usize>,
    pub active_after: Option<usize>,
    /// A slave taken up this many ms before its updelay ended, because no
    /// slave was usable (bonding does the same).
    pub early_ms: Option<u64>,
}

impl Transition {
    pub fn active_changed(&self) -> bool {
        self.active_before != self.active_after
    }
}

/// The active slave changed with no link change (a new primary or policy,
/// `alb set active`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveChange {
    pub before: Option<usize>,
    pub after: Option<usize>,
}

pub struct SlaveSet {
    /// What the data path is told.
    pub state: State,
    pub names: Vec<String>,
    links: Vec<LinkMonitor>,
    delays: Delays,
    /// Bonding's primary, by name: a primary released and enslaved again is
    /// the primary again, and a slot reused by another slave is not.
    primary: Option<String>,
    reselect: Reselect,
    /// The slave whose MAC the master carries: preferred as active, so the
    /// master's MAC lives on its own port whenever that port is up.
    mac_owner: Option<usize>,
    /// Each slave's speed and duplex, for `primary_reselect better`.
    speeds: Vec<Speed>,
    /// Bonding's link failure count: downs committed since it was enslaved.
    failures: Vec<u64>,
    epoch: Instant,
}

impl SlaveSet {
    /// `state.slaves[i].up` must be slave `i`'s carrier at start. The
    /// primary, if up, is active whatever the policy (as bonding forces it
    /// when it is enslaved).
    pub fn new(
        state: State,
        names: Vec<String>,
        delays: Delays,
        (primary, reselect): (Option<String>, Reselect),
        mac_owner: usize,
    ) -> Self {
        let links = state.slaves.iter().map(|s| LinkMonitor::new(s.up)).collect();
        let count = state.slaves.len();
        let mut set = Self {
            state,
            names,
            links,
            delays,
            primary,
            reselect,
            mac_owner: Some(mac_owner),
            speeds: vec![Speed::default(); count],
            failures: vec![0; count],
            epoch: Instant::now(),
        };
        set.state.active = set.choose(Reselect::Always);
        set
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn primary_index(&self) -> Option<usize> {
        self.primary.as_deref().and_then(|name| self.index_by_name(name))
    }

    /// The active slave `reselect` picks now.
    fn choose(&self, reselect: Reselect) -> Option<usize> {
        let usable: Vec<bool> = self.state.slaves.iter().map(|s| s.up).collect();
        Choice {
            usable: &usable,
            primary: self.primary_index(),
            mac_owner: self.mac_owner,
            current: self.state.active,
            reselect,
            speeds: &self.speeds,
        }
        .active()
    }

    /// Chooses the active slave again; returns the change, if any.
    fn reselect_with(&mut self, reselect: Reselect) -> Option<ActiveChange> {
        let before = self.state.active;
        self.state.active = self.choose(reselect);
        (before != self.state.active).then_some(ActiveChange { before, after: self.state.active })
    }

    pub fn index_of(&self, ifindex: u32) -> Option<usize> {
        self.state.slaves.iter().position(|s| s.ifindex == ifindex)
    }

    pub fn index_by_name(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Whether slave `index` has carrier, as last reported.
    pub fn has_carrier(&self, index: usize) -> bool {
        self.links.get(index).is_some_and(LinkMonitor::has_carrier)
    }

    pub fn any_up(&self) -> bool {
        self.state.slaves.iter().any(|s| s.up)
    }

    /// A carrier report from the kernel for slave `index`. With no slave
    /// usable, a returning carrier is used at once: bonding skips updelay
    /// then (`ignore_updelay` in `bond_miimon_inspect`).
    pub fn carrier(&mut self, index: usize, carrier: bool) -> Vec<Transition> {
        let now = self.now_ms();
        let delays = self.delays;
        let none_usable = !self.any_up();
        let Some(link) = self.links.get_mut(index) else { return Vec::new() };
        let mut early = None;
        let mut commit = link.carrier(carrier, now, delays);
        if commit.is_none() && carrier && none_usable {
            early = link.hurry_up(now, delays);
            commit = early.map(|_| Commit::Up);
        }
        let Some(commit) = commit else { return Vec::new() };
        let mut transitions = vec![Transition { early_ms: early, ..self.commit(index, commit) }];
        transitions.extend(self.hurry_if_none_usable());
        transitions
    }

    /// Commits every change whose delay has passed.
    pub fn tick(&mut self) -> Vec<Transition> {
        let now = self.now_ms();
        let mut commits = Vec::new();
        for (index, link) in self.links.iter_mut().enumerate() {
            if let Some(commit) = link.tick(now, self.delays) {
                commits.push((index, commit));
            }
        }
        let mut transitions: Vec<Transition> =
            commits.into_iter().map(|(index, commit)| self.commit(index, commit)).collect();
        transitions.extend(self.hurry_if_none_usable());
        transitions
    }

    /// A committed change of a slave that is still enslaved: counted as a
    /// link failure when it goes down.
    fn commit(&mut self, index: usize, commit: Commit) -> Transition {
        if commit == Commit::Down {
            self.failures[index] = self.failures[index].saturating_add(1);
        }
        self.apply(index, commit)
    }

    /// When no slave is usable, the returning slave closest to the end of
    /// its updelay is used at once (bonding's `bond_find_best_slave`, which
    /// logs "making interface the new active one N ms earlier").
    fn hurry_if_none_usable(&mut self) -> Option<Transition> {
        if self.any_up() {
            return None;
        }
        let delays = self.delays;
        let index = (0..self.links.len())
            .filter(|&i| matches!(self.links[i].state, LinkState::Returning { .. }))
            .min_by_key(|&i| self.links[i].due_ms(delays))?;
        let now = self.now_ms();
        let early = self.links[index].hurry_up(now, delays)?;
        Some(Transition { early_ms: Some(early), ..self.apply(index, Commit::Up) })
    }

    /// When the next pending change is due.
    pub fn next_due(&self) -> Option<Instant> {
        let due = self.links.iter().filter_map(|l| l.due_ms(self.delays)).min()?;
        Some(self.epoch + Duration::from_millis(due))
    }

    /// Takes a new slave into the first empty slot (or a new one). Returns
    /// its index, and the transitions if it can carry traffic already.
    pub fn add(
        &mut self,
        name: String,
        slave: SlaveState,
        speed: Speed,
    ) -> (usize, Vec<Transition>) {
        let carrier = slave.up;
        let index = match self.state.slaves.iter().position(|s| s.ifindex == 0) {
            Some(free) => free,
            None => {
                self.state.slaves.push(SlaveState { up: false, ..slave });
                self.names.push(String::new());
                self.links.push(LinkMonitor::new(false));
                self.speeds.push(Speed::default());
                self.failures.push(0);
                self.state.slaves.len() - 1
            }
        };
        self.state.slaves[index] = SlaveState { up: false, ..slave };
        self.names[index] = name;
        self.links[index] = LinkMonitor::new(false);
        self.speeds[index] = speed;
        self.failures[index] = 0;
        (index, self.carrier(index, carrier))
    }

    /// Takes slave `index` out of service: it goes down (its clients and
    /// buckets move). Returns the transitions (none if it was down).
    /// [`Self::forget`] then empties the slot.
    pub fn remove(&mut self, index: usize) -> Vec<Transition> {
        self.links[index] = LinkMonitor::new(false);
        if !self.state.slaves[index].up {
            return Vec::new();
        }
        let mut transitions = vec![self.apply(index, Commit::Down)];
        transitions.extend(self.hurry_if_none_usable());
        transitions
    }

    /// Why removing the slaves `removed` would take the master off the
    /// network, while `joining` slaves join (of which `joining_usable`
    /// have carrier): no slave would be left, or none usable where one is
    /// usable now. `None` when the removal is safe. Bonding lets the last
    /// slave go; alb asks for `--force` first.
    pub fn removal_problem(
        &self,
        removed: &[usize],
        joining: usize,
        joining_usable: bool,
    ) -> Option<String> {
        let left: Vec<usize> = (0..self.state.slaves.len())
            .filter(|&i| self.state.slaves[i].ifindex != 0 && !removed.contains(&i))
            .collect();
        let names = |indices: &[usize]| {
            indices.iter().map(|&i| self.names[i].as_str()).collect::<Vec<_>>().join(", ")
        };
        if left.is_empty() && joining == 0 {
            return Some(format!("removing {} would leave no slave", names(removed)));
        }
        let usable_after = joining_usable || left.iter().any(|&i| self.state.slaves[i].up);
        let usable_removed: Vec<usize> =
            removed.iter().copied().filter(|&i| self.state.slaves[i].up).collect();
        if !usable_after && !usable_removed.is_empty() {
            return Some(format!(
                "removing {} would leave no usable slave (the last with carrier is {})",
                names(removed),
                names(&usable_removed)
            ));
        }
        None
    }

    /// Empties the slot of a removed slave, for a later `add` to reuse.
    pub fn forget(&mut self, index: usize) {
        self.state.slaves[index] = SlaveState { ifindex: 0, mac: [0; 6], up: false };
        self.names[index].clear();
        self.speeds[index] = Speed::default();
        if self.mac_owner == Some(index) {
            self.mac_owner = None;
        }
    }

    /// Commits `commit` for slave `index` and chooses the active slave
    /// again when bonding would (`bond_miimon_commit`): when the active
    /// slave went down, or a slave came up while none was active or it is
    /// preferred (the primary or the MAC owner).
    fn apply(&mut self, index: usize, commit: Commit) -> Transition {
        self.state.slaves[index].up = commit == Commit::Up;
        let active_before = self.state.active;
        let preferred = self.primary_index() == Some(index) || self.mac_owner == Some(index);
        let choose = match commit {
            Commit::Down => active_before == Some(index),
            Commit::Up => active_before.is_none() || preferred,
        };
        if choose {
            self.state.active = self.choose(self.reselect);
        }
        Transition {
            slave: index,
            commit,
            active_before,
            active_after: self.state.active,
            early_ms: None,
        }
    }

    /// Bonding's `primary` at run time: the new primary, if usable, becomes
    /// active whatever the policy (bonding's `force_primary`); none leaves
    /// the choice to the policy.
    pub fn set_primary(&mut self, primary: Option<String>) -> Option<ActiveChange> {
        self.primary = primary;
        let reselect = if self.primary.is_some() { Reselect::Always } else { self.reselect };
        self.reselect_with(reselect)
    }

    /// Bonding's `primary_reselect` at run time; the active slave is chosen
    /// again under the new policy.
    pub fn set_reselect(&mut self, reselect: Reselect) -> Option<ActiveChange> {
        self.reselect = reselect;
        self.reselect_with(reselect)
    }

    /// Bonding's `updelay` and `downdelay` at run time; a pending change
    /// is due by the new delay, counted from when it began.
    pub fn set_delays(&mut self, delays: Delays) {
        self.delays = delays;
    }

    /// Bonding's `active_slave`: refused for a slave that is not up.
    pub fn set_active(&mut self, index: usize) -> Result<Option<ActiveChange>, String> {
        let name = &self.names[index];
        if self.state.active == Some(index) {
            return Ok(None);
        }
        if self.links[index].state != LinkState::Up || !self.state.slaves[index].up {
            return Err(format!("cannot make {name} the active slave: its link is down"));
        }
        let before = self.state.active;
        self.state.active = Some(index);
        Ok(Some(ActiveChange { before, after: Some(index) }))
    }

    /// Each slave's share by its speed (receive dealing and transmit
    /// buckets weigh slaves by it, as bonding's transmit balancing does).
    pub fn capacity(&self) -> alb_common::assign::Capacity {
        let mbps: Vec<Option<u32>> = self.speeds.iter().map(|s| s.mbps).collect();
        alb_common::assign::Capacity::from_mbps(&mbps)
    }

    /// The speed and duplex ethtool reports for slave `index`.
    pub fn set_speed(&mut self, index: usize, speed: Speed) {
        if let Some(slot) = self.speeds.get_mut(index) {
            *slot = speed;
        }
    }

    pub fn primary(&self) -> Option<&str> {
        self.primary.as_deref()
    }

    pub fn reselect(&self) -> Reselect {
        self.reselect
    }

    pub fn delays(&self) -> Delays {
        self.delays
    }

    /// Slave `index`'s link failure count.
    pub fn failures(&self, index: usize) -> u64 {
        self.failures.get(index).copied().unwrap_or(0)
    }

    /// Slave `index`'s link state in bonding's words (its MII Status).
    pub fn link_state(&self, index: usize) -> &'static str {
        match self.links.get(index).map(|l| l.state) {
            Some(LinkState::Up) => "up",
            Some(LinkState::Failing { .. }) => "going down",
            Some(LinkState::Returning { .. }) => "going back",
            Some(LinkState::Down) | None => "down",
        }
    }
}

#[cfg(test)]
mod tests;
