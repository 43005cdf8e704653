//! `ALB_TEST_TIME_SCALE`: one factor for every timeout of the lab and the
//! tests (a guest under QEMU's TCG runs the agent and the tools several
//! times slower than the host; `cargo xtask vm-test` sets it). The lab's
//! waits apply it themselves; a test's own timeout goes through
//! [`scaled`]. It lengthens how long a wait may take, never what a test
//! asserts.

use std::{sync::OnceLock, time::Duration};

/// The variable's name.
pub const TIME_SCALE_VAR: &str = "ALB_TEST_TIME_SCALE";

/// The factor: `ALB_TEST_TIME_SCALE`, a number from 1 up; 1 when unset.
/// Anything else is a mistake that would silently change every timeout:
/// it panics, naming the value.
pub fn time_scale() -> f64 {
    static SCALE: OnceLock<f64> = OnceLock::new();
    *SCALE.get_or_init(|| match std::env::var(TIME_SCALE_VAR) {
        Err(_) => 1.0,
        Ok(text) => parse(&text).unwrap_or_else(|| {
            panic!("{TIME_SCALE_VAR}={text:?}: expected a number from 1 up (a timeout factor)")
        }),
    })
}

fn parse(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 1.0)
}

/// `timeout` times [`time_scale`].
pub fn scaled(timeout: Duration) -> Duration {
    timeout.mul_f64(time_scale())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_factor_is_a_number_from_one_up() {
        assert_eq!(parse("4"), Some(4.0));
        assert_eq!(parse(" 2.5\n"), Some(2.5));
        assert_eq!(parse("1"), Some(1.0));
        assert_eq!(parse("0.5"), None);
        assert_eq!(parse("fast"), None);
        assert_eq!(parse("inf"), None);
        assert_eq!(parse(""), None);
    }
}
