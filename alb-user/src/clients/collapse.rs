//! Pacing of collapse corrections. A host broadcast ARP request reaches
//! every client of the server address, and each then points at the MAC the
//! request carried; the agent tells them their own slave again at once (the
//! kernel waits about 2 s). At most five corrections per server address per
//! second: the first broadcast is corrected at once, more within the next
//! 200 ms are merged into one correction when they end (a host that ARPs
//! many addresses at once would otherwise make the agent re-tell every
//! client for each of them).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use alb_common::wire::Ipv4;

/// A server address in its VLAN: a host broadcast reaches that VLAN only.
pub type Server = (Ipv4, u16);

const SPACING: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
pub struct Collapses {
    last: HashMap<Server, Instant>,
    pending: HashMap<Server, Instant>,
}

impl Collapses {
    /// A broadcast for `server`: true to correct now, else it is pending.
    pub fn note(&mut self, server: Server, now: Instant) -> bool {
        match self.last.get(&server) {
            Some(&last) if now.duration_since(last) < SPACING => {
                self.pending.entry(server).or_insert(last + SPACING);
                false
            }
            _ => {
                self.last.insert(server, now);
                true
            }
        }
    }

    /// Server addresses whose merged correction is due.
    pub fn due(&mut self, now: Instant) -> Vec<Server> {
        let due: Vec<Server> =
            self.pending.iter().filter(|(_, at)| **at <= now).map(|(ip, _)| *ip).collect();
        for server in &due {
            self.pending.remove(server);
            self.last.insert(*server, now);
        }
        due
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_within_the_spacing_merge_into_one_later_correction() {
        let server = ([198, 18, 0, 1], 0);
        let mut collapses = Collapses::default();
        let start = Instant::now();
        assert!(collapses.note(server, start), "the first is corrected at once");
        assert!(!collapses.note(server, start + Duration::from_millis(50)));
        assert!(!collapses.note(server, start + Duration::from_millis(90)));
        assert_eq!(collapses.next_due(), Some(start + SPACING));
        assert!(collapses.due(start + Duration::from_millis(100)).is_empty());
        assert_eq!(collapses.due(start + SPACING), [server]);
        assert_eq!(collapses.next_due(), None);
        assert!(collapses.note(server, start + SPACING * 2), "spaced: at once again");
    }
}
