use super::*;

const NO_DELAY: Delays = Delays { up_ms: 0, down_ms: 0 };
const LONG_UPDELAY: Delays = Delays { up_ms: 60_000, down_ms: 0 };

fn set_with(up: &[bool], delays: Delays, primary: Option<&str>, reselect: Reselect) -> SlaveSet {
    let slaves = up
        .iter()
        .enumerate()
        .map(|(i, &up)| SlaveState {
            ifindex: 10 + u32::try_from(i).unwrap(),
            mac: [2, 0, 0, 0, 0, u8::try_from(i).unwrap()],
            up,
        })
        .collect();
    let state = State {
        master_ifindex: 1,
        master_mac: [2, 0, 0, 0, 0, 0],
        slaves,
        active: None,
        client_sampling: 1,
    };
    let names = (0..up.len()).map(|i| format!("s{i}")).collect();
    SlaveSet::new(state, names, delays, (primary.map(str::to_owned), reselect), 0)
}

fn set(up: &[bool]) -> SlaveSet {
    set_with(up, NO_DELAY, None, Reselect::Always)
}

fn one(transitions: Vec<Transition>) -> Transition {
    assert_eq!(transitions.len(), 1, "one transition: {transitions:?}");
    transitions[0]
}

#[test]
fn active_moves_on_failure_and_back_to_the_mac_owner() {
    let mut slaves = set(&[true, true]);
    assert_eq!(slaves.state.active, Some(0));
    let down = one(slaves.carrier(0, false));
    assert_eq!((down.active_before, down.active_after), (Some(0), Some(1)));
    let up = one(slaves.carrier(0, true));
    assert_eq!(up.active_after, Some(0));
    assert!(up.active_changed());
    assert_eq!(slaves.failures(0), 1, "one link failure counted");
    assert_eq!(slaves.failures(1), 0);
}

#[test]
fn all_down_leaves_no_active_and_the_first_back_takes_over() {
    let mut slaves = set(&[true, true]);
    slaves.carrier(0, false);
    let last = one(slaves.carrier(1, false));
    assert_eq!(last.active_after, None);
    assert!(!slaves.any_up());
    let back = one(slaves.carrier(1, true));
    assert_eq!(back.active_after, Some(1));
}

#[test]
fn slaves_are_added_into_free_slots_and_removed() {
    let mut slaves = set(&[true, true]);
    let removed = one(slaves.remove(1));
    assert_eq!(removed.commit, Commit::Down);
    slaves.forget(1);
    assert_eq!(slaves.state.usable(), [0]);
    assert_eq!(slaves.failures(0) + slaves.failures(1), 0, "a removal is no link failure");
    let new = SlaveState { ifindex: 42, mac: [2, 0, 0, 0, 0, 42], up: true };
    let (index, added) = slaves.add("s9".to_owned(), new, Speed::default());
    assert_eq!(index, 1, "the free slot is reused");
    assert_eq!(one(added).commit, Commit::Up);
    assert_eq!(slaves.index_by_name("s9"), Some(1));
    assert_eq!(slaves.index_of(42), Some(1));
}

#[test]
fn a_slave_down_at_start_is_not_active() {
    let slaves = set(&[false, true]);
    assert_eq!(slaves.state.active, Some(1));
    assert_eq!(slaves.index_of(11), Some(1));
}

#[test]
fn updelay_is_waited_while_another_slave_is_usable() {
    let mut slaves = set_with(&[true, false], LONG_UPDELAY, None, Reselect::Always);
    assert!(slaves.carrier(1, true).is_empty(), "s1 waits its updelay");
    assert_eq!(slaves.link_state(1), "going back");
    assert!(slaves.next_due().is_some());
    assert!(slaves.tick().is_empty());
}

#[test]
fn updelay_is_skipped_when_no_slave_is_usable() {
    let mut slaves = set_with(&[false, false], LONG_UPDELAY, None, Reselect::Always);
    let first = one(slaves.carrier(1, true));
    assert_eq!(first.commit, Commit::Up);
    assert!(first.early_ms.is_some_and(|ms| ms > 50_000), "{first:?}");
    assert_eq!(first.active_after, Some(1));
    assert!(slaves.carrier(0, true).is_empty(), "the second one back waits its updelay");
    assert_eq!(slaves.link_state(0), "going back");
}

#[test]
fn the_last_usable_slave_failing_hurries_a_returning_one() {
    let mut slaves = set_with(&[true, false, false], LONG_UPDELAY, None, Reselect::Always);
    assert!(slaves.carrier(2, true).is_empty());
    let transitions = slaves.carrier(0, false);
    assert_eq!(transitions.len(), 2, "{transitions:?}");
    assert_eq!((transitions[0].slave, transitions[0].commit), (0, Commit::Down));
    let hurried = transitions[1];
    assert_eq!((hurried.slave, hurried.commit), (2, Commit::Up));
    assert!(hurried.early_ms.is_some_and(|ms| ms > 50_000), "{hurried:?}");
    assert_eq!(hurried.active_after, Some(2));
    assert_eq!(slaves.link_state(2), "up");
}

#[test]
fn reselect_failure_keeps_the_active_slave_when_the_primary_returns() {
    let mut slaves = set_with(&[true, true], NO_DELAY, Some("s1"), Reselect::Failure);
    assert_eq!(slaves.state.active, Some(1), "the primary at start, whatever the policy");
    slaves.carrier(1, false);
    assert_eq!(slaves.state.active, Some(0));
    let back = one(slaves.carrier(1, true));
    assert!(!back.active_changed(), "failure: s0 stays active: {back:?}");
    let always = slaves.set_reselect(Reselect::Always);
    assert_eq!(always, Some(ActiveChange { before: Some(0), after: Some(1) }));
}

#[test]
fn reselect_better_compares_speeds() {
    let mut slaves = set_with(&[true, true], NO_DELAY, Some("s1"), Reselect::Better);
    slaves.set_speed(0, Speed { mbps: Some(10_000), full_duplex: Some(true) });
    slaves.set_speed(1, Speed { mbps: Some(1000), full_duplex: Some(true) });
    slaves.carrier(1, false);
    assert!(!one(slaves.carrier(1, true)).active_changed(), "a slower primary stays backup");
    slaves.set_speed(1, Speed { mbps: Some(25_000), full_duplex: Some(true) });
    slaves.carrier(1, false);
    assert_eq!(one(slaves.carrier(1, true)).active_after, Some(1), "a faster one takes over");
}

#[test]
fn a_primary_set_at_run_time_is_forced_active() {
    let mut slaves = set_with(&[true, true], NO_DELAY, None, Reselect::Failure);
    assert_eq!(slaves.state.active, Some(0));
    let change = slaves.set_primary(Some("s1".to_owned()));
    assert_eq!(change, Some(ActiveChange { before: Some(0), after: Some(1) }));
    assert_eq!(slaves.primary(), Some("s1"));
    assert_eq!(slaves.set_primary(None), None, "no primary: the active one stays");
}

#[test]
fn set_active_refuses_a_slave_that_is_down_and_sticks_until_a_failover() {
    let mut slaves = set(&[true, true, false]);
    let refused = slaves.set_active(2).expect_err("s2 is down");
    assert!(refused.contains("s2") && refused.contains("down"), "{refused}");
    assert_eq!(slaves.set_active(0), Ok(None), "already active");
    let change = slaves.set_active(1).expect("s1 is up");
    assert_eq!(change, Some(ActiveChange { before: Some(0), after: Some(1) }));
    // A slave that is not preferred coming up does not undo the choice.
    assert!(!one(slaves.carrier(2, true)).active_changed());
    assert_eq!(slaves.state.active, Some(1));
    // The active one failing does.
    assert_eq!(one(slaves.carrier(1, false)).active_after, Some(0));
}

#[test]
fn a_released_primary_is_the_primary_again_when_it_returns() {
    let mut slaves = set_with(&[true, true], NO_DELAY, Some("s1"), Reselect::Always);
    slaves.remove(1);
    slaves.forget(1);
    assert_eq!(slaves.state.active, Some(0));
    let other = SlaveState { ifindex: 50, mac: [2, 0, 0, 0, 0, 50], up: true };
    let (index, added) = slaves.add("s5".to_owned(), other, Speed::default());
    assert_eq!(index, 1);
    assert!(!one(added).active_changed(), "another device in the primary's old slot");
    slaves.remove(1);
    slaves.forget(1);
    let primary = SlaveState { ifindex: 11, mac: [2, 0, 0, 0, 0, 1], up: true };
    let (_, added) = slaves.add("s1".to_owned(), primary, Speed::default());
    assert_eq!(one(added).active_after, Some(1), "the primary back by name");
}

#[test]
fn removing_the_last_usable_slave_is_a_problem() {
    let slaves = set(&[true, false]);
    let problem = slaves.removal_problem(&[0], 0, false).expect("s0 is the only usable slave");
    assert!(problem.contains("no usable slave") && problem.contains("s0"), "{problem}");
    assert_eq!(slaves.removal_problem(&[1], 0, false), None, "s1 is down: nothing is lost");
    assert_eq!(slaves.removal_problem(&[0], 1, true), None, "a joining slave with carrier");
    assert!(slaves.removal_problem(&[0], 1, false).is_some(), "a joining slave without carrier");
}

#[test]
fn removing_every_slave_is_a_problem_even_when_none_is_usable() {
    let slaves = set(&[false, false]);
    let problem = slaves.removal_problem(&[0, 1], 0, false).expect("no slave left");
    assert!(problem.contains("no slave") && problem.contains("s0, s1"), "{problem}");
    assert_eq!(slaves.removal_problem(&[0], 0, false), None, "s1 stays, down as s0 was");
    assert_eq!(slaves.removal_problem(&[0, 1], 1, false), None, "one joins");
}

#[test]
fn removing_some_of_several_usable_slaves_is_safe() {
    let slaves = set(&[true, true, true]);
    assert_eq!(slaves.removal_problem(&[0, 2], 0, false), None);
    assert!(slaves.removal_problem(&[0, 1, 2], 0, false).is_some());
}
