//! Which fault explains a lost ping: a loss is *explained* when it was sent
//! while a fault that concerned its client was applied or within
//! [`AFTER_S`] of its end; *beside a fault* when a fault was under way but
//! not one of its client's; *unexplained* (quiet) when no fault was near.
//! Both of the last two are losses no fault of the client accounts for.

use std::collections::BTreeMap;

/// How long after a fault's end a loss of a client it concerned is still
/// put down to it (seconds): a failover's repeated updates go out within
/// about a second of the change, and an adoption's in the first second.
pub(crate) const AFTER_S: f64 = 2.0;

/// How long before a fault's recorded start a loss may be put down to it:
/// the send time of a lost request is estimated to within a round trip.
const BEFORE_S: f64 = 0.05;

/// One applied fault, as the attribution sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Window {
    pub(crate) kind: &'static str,
    /// When it began and when it was undone (seconds since the epoch).
    pub(crate) from: f64,
    pub(crate) until: f64,
    /// The client numbers it concerned.
    pub(crate) clients: Vec<usize>,
}

impl Window {
    fn covers(&self, t: f64) -> bool {
        t >= self.from - BEFORE_S && t <= self.until + AFTER_S
    }
}

/// One client's losses, sorted out.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Attribution {
    /// Losses each kind of fault explains.
    pub(crate) explained: BTreeMap<&'static str, u32>,
    /// Sent while a fault of another client or slave was under way.
    pub(crate) beside_a_fault: u32,
    /// Sent with no fault near.
    pub(crate) quiet: u32,
    /// The losses no fault of the client explains (the last two kinds), as
    /// bursts: (first send time, requests lost in it), consecutive losses
    /// `burst_gap_s` apart or less forming one burst.
    pub(crate) unexplained_bursts: Vec<(f64, u32)>,
}

impl Attribution {
    pub(crate) fn explained_total(&self) -> u32 {
        self.explained.values().sum()
    }

    pub(crate) fn unexplained(&self) -> u32 {
        self.beside_a_fault + self.quiet
    }
}

/// Sorts out the losses of client `client`, sent at `lost` (seconds since
/// the epoch, in order), against the faults `windows`; losses of one burst
/// are at most `burst_gap_s` apart.
pub(crate) fn attribute(
    client: usize,
    lost: &[f64],
    windows: &[Window],
    burst_gap_s: f64,
) -> Attribution {
    let mut out = Attribution::default();
    let mut last_unexplained: Option<f64> = None;
    for &t in lost {
        let covering = || windows.iter().filter(move |w| w.covers(t));
        if let Some(w) = covering().find(|w| w.clients.contains(&client)) {
            *out.explained.entry(w.kind).or_default() += 1;
            continue;
        }
        if covering().next().is_some() {
            out.beside_a_fault += 1;
        } else {
            out.quiet += 1;
        }
        match (last_unexplained, out.unexplained_bursts.last_mut()) {
            (Some(prev), Some((_, n))) if t - prev <= burst_gap_s => *n += 1,
            _ => out.unexplained_bursts.push((t, 1)),
        }
        last_unexplained = Some(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(kind: &'static str, from: f64, until: f64, clients: &[usize]) -> Window {
        Window { kind, from, until, clients: clients.to_vec() }
    }

    #[test]
    fn losses_are_put_down_to_the_faults_of_their_client_only() {
        let windows = [
            window("switch_port_flap", 10.0, 11.0, &[2, 5]),
            window("kill9_restart", 20.0, 21.5, &[1, 2, 3]),
        ];
        // c2: during its slave's flap, within AFTER_S of its end, and in
        // the restart that concerns everyone; then once in quiet time.
        let a = attribute(2, &[10.5, 12.9, 20.1, 30.0], &windows, 0.1);
        assert_eq!(a.explained.get("switch_port_flap"), Some(&2));
        assert_eq!(a.explained.get("kill9_restart"), Some(&1));
        assert_eq!((a.beside_a_fault, a.quiet, a.explained_total()), (0, 1, 3));
        assert_eq!(a.unexplained_bursts, [(30.0, 1)]);

        // c3: the flap is not its fault (another slave's clients); just
        // past AFTER_S is no longer the flap's either.
        let a = attribute(3, &[10.5, 10.52, 10.54, 13.1], &windows, 0.1);
        assert_eq!(a.explained_total(), 0);
        assert_eq!((a.beside_a_fault, a.quiet, a.unexplained()), (3, 1, 4));
        assert_eq!(a.unexplained_bursts, [(10.5, 3), (13.1, 1)], "bursts by the gap");

        // A loss sent a moment before a fault's recorded start is its.
        let a = attribute(5, &[9.97], &windows, 0.1);
        assert_eq!(a.explained_total(), 1);
        let a = attribute(5, &[9.9], &windows, 0.1);
        assert_eq!(a.quiet, 1, "well before it is not");
        assert_eq!(attribute(1, &[], &windows, 0.1), Attribution::default());
    }
}
