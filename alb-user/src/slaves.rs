//! The slave set at run time: each slave's link state (with bonding's
//! updelay and downdelay), which slave is active, and which slaves new
//! clients and buckets may use. Pure bookkeeping; the agent applies what a
//! [`Transition`] says to the maps and the network.

use std::time::{Duration, Instant};

use alb_common::{
    assign::choose_active,
    link::{Commit, Delays, Link},
};

use crate::state::{SlaveState, State};

/// What changed when a slave's state was committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub slave: usize,
    pub commit: Commit,
    pub active_before: Option<usize>,
    pub active_after: Option<usize>,
}

impl Transition {
    pub fn active_changed(&self) -> bool {
        self.active_before != self.active_after
    }
}

pub struct SlaveSet {
    /// What the data path is told.
    pub state: State,
    pub names: Vec<String>,
    links: Vec<Link>,
    delays: Delays,
    primary: Option<usize>,
    /// The slave whose MAC the master carries: preferred as active, so the
    /// master's MAC lives on its own port whenever that port is up.
    mac_owner: usize,
    epoch: Instant,
}

impl SlaveSet {
    /// `state.slaves[i].up` must be slave `i`'s carrier at start.
    pub fn new(
        mut state: State,
        names: Vec<String>,
        delays: Delays,
        primary: Option<usize>,
        mac_owner: usize,
    ) -> Self {
        let links = state.slaves.iter().map(|s| Link::new(s.up)).collect();
        let up: Vec<bool> = state.slaves.iter().map(|s| s.up).collect();
        state.active = choose_active(&up, primary, mac_owner, state.active);
        Self { state, names, links, delays, primary, mac_owner, epoch: Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn index_of(&self, ifindex: u32) -> Option<usize> {
        self.state.slaves.iter().position(|s| s.ifindex == ifindex)
    }

    /// Whether slave `index` has carrier, as last reported.
    pub fn has_carrier(&self, index: usize) -> bool {
        self.links.get(index).is_some_and(Link::has_carrier)
    }

    pub fn any_up(&self) -> bool {
        self.state.slaves.iter().any(|s| s.up)
    }

    /// A carrier report from the kernel for slave `index`.
    pub fn carrier(&mut self, index: usize, carrier: bool) -> Option<Transition> {
        let now = self.now_ms();
        let commit = self.links.get_mut(index)?.carrier(carrier, now, self.delays)?;
        Some(self.apply(index, commit))
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
        commits.into_iter().map(|(index, commit)| self.apply(index, commit)).collect()
    }

    /// When the next pending change is due.
    pub fn next_due(&self) -> Option<Instant> {
        let due = self.links.iter().filter_map(|l| l.due_ms(self.delays)).min()?;
        Some(self.epoch + Duration::from_millis(due))
    }

    /// Takes a new slave into the first empty slot (or a new one). Returns
    /// its index, and the transition if it can carry traffic already.
    pub fn add(&mut self, name: String, slave: SlaveState) -> (usize, Option<Transition>) {
        let carrier = slave.up;
        let index = match self.state.slaves.iter().position(|s| s.ifindex == 0) {
            Some(free) => free,
            None => {
                self.state.slaves.push(SlaveState { up: false, ..slave });
                self.names.push(String::new());
                self.links.push(Link::new(false));
                self.state.slaves.len() - 1
            }
        };
        self.state.slaves[index] = SlaveState { up: false, ..slave };
        self.names[index] = name;
        self.links[index] = Link::new(false);
        (index, self.carrier(index, carrier))
    }

    /// Takes slave `index` out of service: it goes down (its clients and
    /// buckets move). Returns the transition if it was up. [`Self::forget`]
    /// then empties the slot.
    pub fn remove(&mut self, index: usize) -> Option<Transition> {
        self.links[index] = Link::new(false);
        self.state.slaves[index].up.then(|| self.apply(index, Commit::Down))
    }

    /// Empties the slot of a removed slave, for a later `add` to reuse.
    pub fn forget(&mut self, index: usize) {
        self.state.slaves[index] = SlaveState { ifindex: 0, mac: [0; 6], up: false };
        self.names[index].clear();
    }

    pub fn index_by_name(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    fn apply(&mut self, index: usize, commit: Commit) -> Transition {
        self.state.slaves[index].up = commit == Commit::Up;
        let up: Vec<bool> = self.state.slaves.iter().map(|s| s.up).collect();
        let active_before = self.state.active;
        self.state.active = choose_active(&up, self.primary, self.mac_owner, active_before);
        Transition { slave: index, commit, active_before, active_after: self.state.active }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(up: &[bool]) -> SlaveSet {
        let slaves = up
            .iter()
            .enumerate()
            .map(|(i, &up)| SlaveState {
                ifindex: 10 + u32::try_from(i).unwrap(),
                mac: [2, 0, 0, 0, 0, u8::try_from(i).unwrap()],
                up,
            })
            .collect();
        let state =
            State { master_ifindex: 1, master_mac: [2, 0, 0, 0, 0, 0], slaves, active: None };
        let names = (0..up.len()).map(|i| format!("s{i}")).collect();
        SlaveSet::new(state, names, Delays { up_ms: 0, down_ms: 0 }, None, 0)
    }

    #[test]
    fn active_moves_on_failure_and_back_to_the_mac_owner() {
        let mut slaves = set(&[true, true]);
        assert_eq!(slaves.state.active, Some(0));
        let down = slaves.carrier(0, false).expect("committed");
        assert_eq!((down.active_before, down.active_after), (Some(0), Some(1)));
        let up = slaves.carrier(0, true).expect("committed");
        assert_eq!(up.active_after, Some(0));
        assert!(up.active_changed());
    }

    #[test]
    fn all_down_leaves_no_active_and_the_first_back_takes_over() {
        let mut slaves = set(&[true, true]);
        slaves.carrier(0, false);
        let last = slaves.carrier(1, false).expect("committed");
        assert_eq!(last.active_after, None);
        assert!(!slaves.any_up());
        let back = slaves.carrier(1, true).expect("committed");
        assert_eq!(back.active_after, Some(1));
    }

    #[test]
    fn slaves_are_added_into_free_slots_and_removed() {
        let mut slaves = set(&[true, true]);
        let removed = slaves.remove(1).expect("it was up");
        assert_eq!(removed.commit, Commit::Down);
        slaves.forget(1);
        assert_eq!(slaves.state.usable(), [0]);
        let new = SlaveState { ifindex: 42, mac: [2, 0, 0, 0, 0, 42], up: true };
        let (index, added) = slaves.add("s9".to_owned(), new);
        assert_eq!(index, 1, "the free slot is reused");
        assert_eq!(added.map(|t| t.commit), Some(Commit::Up));
        assert_eq!(slaves.index_by_name("s9"), Some(1));
        assert_eq!(slaves.index_of(42), Some(1));
    }

    #[test]
    fn a_slave_down_at_start_is_not_active() {
        let slaves = set(&[false, true]);
        assert_eq!(slaves.state.active, Some(1));
        assert_eq!(slaves.index_of(11), Some(1));
    }
}
