//! Checks of the NIC guest and what they add up to. Each check is run
//! twice: with the agent's filter sync, where it must pass, and with
//! `--no-filter-sync`, where a check that depends on the filters must
//! fail (that failure is the proof that the filters matter) and every
//! other check must still pass.

use super::guest::Log;

/// Why a check needs the slaves' receive filters, or `None`.
pub(super) type Needs = Option<&'static str>;

/// One check's outcome.
pub(super) struct Check {
    pub(super) name: String,
    pub(super) passed: bool,
    /// It needs the filters and ran without them: it must fail.
    pub(super) must_fail: bool,
    pub(super) detail: String,
}

impl Check {
    /// Whether the outcome is the expected one.
    pub(super) fn as_expected(&self) -> bool {
        self.passed != self.must_fail
    }
}

/// Every check of one guest, printed and logged as it comes.
pub(super) struct Report {
    log: Log,
    pub(super) checks: Vec<Check>,
    /// (scenario.stream, outage in ms) with filter sync, for the summary.
    pub(super) outages: Vec<(String, u128)>,
}

impl Report {
    pub(super) fn new(log: Log) -> Self {
        Self { log, checks: Vec::new(), outages: Vec::new() }
    }

    /// Records one check; `sync` says whether the agent synced filters,
    /// `needs` why the check depends on them.
    pub(super) fn check(
        &mut self,
        sync: bool,
        name: &str,
        needs: Needs,
        passed: bool,
        detail: &str,
    ) {
        let must_fail = !sync && needs.is_some();
        let name = if sync { name.to_owned() } else { format!("nosync.{name}") };
        let check = Check { name, passed, must_fail, detail: detail.to_owned() };
        let (mark, note) = match (check.as_expected(), must_fail) {
            (true, false) => ("[ ok ]", String::new()),
            (true, true) => ("[ ok ]", " (fails without filter sync, as it must)".to_owned()),
            (false, false) => ("[FAIL]", String::new()),
            (false, true) => (
                "[FAIL]",
                format!(
                    " (passed without filter sync: {} should have mattered)",
                    needs.unwrap_or("")
                ),
            ),
        };
        println!("  {mark} {} {}{note}", check.name, check.detail);
        self.log.line(&format!(
            "@@ALB-RESULT {} {} {}{note}",
            if check.as_expected() { "PASS" } else { "FAIL" },
            check.name,
            check.detail
        ));
        self.checks.push(check);
    }

    /// The log the guest's console goes to as well.
    pub(super) fn log(&self) -> Log {
        self.log.clone()
    }

    /// An informational line (`@@ALB-INFO`), printed and logged.
    pub(super) fn info(&self, text: &str) {
        println!("         {text}");
        self.log.line(&format!("@@ALB-INFO {text}"));
    }

    pub(super) fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.as_expected()).count()
    }

    /// Expected failures: checks that failed without filter sync.
    pub(super) fn expected_failures(&self) -> usize {
        self.checks.iter().filter(|c| c.must_fail && !c.passed).count()
    }

    pub(super) fn failed(&self) -> Vec<&str> {
        self.checks.iter().filter(|c| !c.as_expected()).map(|c| c.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Check;

    fn check(passed: bool, must_fail: bool) -> Check {
        Check { name: String::new(), passed, must_fail, detail: String::new() }
    }

    #[test]
    fn a_check_that_needs_filters_must_fail_without_them() {
        assert!(check(true, false).as_expected());
        assert!(!check(false, false).as_expected());
        assert!(check(false, true).as_expected());
        assert!(!check(true, true).as_expected());
    }
}
