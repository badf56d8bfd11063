//! How the suite runs, from two variables of the environment:
//!
//! - `FCGI_TEST_STRICT=1` (set by `.ci/run`): a test that cannot run here (not root, a package
//!   missing, no mount) fails instead of saying it skipped, so that a machine that lost a
//!   capability cannot pass CI by running less.
//! - `FCGI_TEST_TIME_SCALE=F` (default 1): every upper bound on time in the tests (waits for a
//!   condition, "answered within", socket timeouts) is multiplied by F, for slow or loaded
//!   machines (a sanitizer build, valgrind, a busy laptop). Lower bounds ("not before the
//!   timeout") and the times a test sets up on purpose (a server's own timeouts, a trickle's
//!   pace) are not scaled: they are what is tested.
//!
//! ```
//! use std::time::Duration;
//!
//! let bound = fcgi_tests::settings::scaled(Duration::from_secs(1));
//! assert!(bound >= Duration::from_secs(1) || fcgi_tests::settings::time_scale() < 1.0);
//! ```

use std::sync::OnceLock;
use std::time::Duration;

/// The variable that makes skips failures.
pub const STRICT_VAR: &str = "FCGI_TEST_STRICT";
/// The variable that scales upper bounds on time.
pub const TIME_SCALE_VAR: &str = "FCGI_TEST_TIME_SCALE";

/// Whether `FCGI_TEST_STRICT` is set to anything but empty or `0`.
pub fn strict() -> bool {
    std::env::var_os(STRICT_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// A test, or a part of one, cannot run on this machine: says so on standard error and
/// returns, for the caller to return too; under `FCGI_TEST_STRICT` it fails the test instead.
///
/// ```no_run
/// if !is_root() {
///     return fcgi_tests::settings::skip("switching users needs root");
/// }
/// # fn is_root() -> bool { true }
/// ```
#[track_caller]
pub fn skip(why: &str) {
    assert!(
        !strict(),
        "{STRICT_VAR} is set, so this test may not skip: {why} (run it as root on a machine set \
         up by `make deps`, or unset {STRICT_VAR})"
    );
    eprintln!("SKIPPED: {why}");
}

/// The factor of `FCGI_TEST_TIME_SCALE` (1 when unset); a value that is not a positive number
/// fails the test that reads it, rather than running with bounds nobody chose.
pub fn time_scale() -> f64 {
    static SCALE: OnceLock<Result<f64, String>> = OnceLock::new();
    let scale = SCALE.get_or_init(|| match std::env::var(TIME_SCALE_VAR) {
        Err(_) => Ok(1.0),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
            _ => Err(format!("{TIME_SCALE_VAR}={text:?} is not a positive number")),
        },
    });
    match scale {
        Ok(f) => *f,
        Err(why) => panic!("{why}"),
    }
}

/// `bound` times [`time_scale`]: an upper bound on how long something may take.
pub fn scaled(bound: Duration) -> Duration {
    bound.mul_f64(time_scale())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_fails_under_strict_and_says_so_otherwise() {
        // The one test of this binary that touches the variable.
        std::env::set_var(STRICT_VAR, "1");
        let failed = std::panic::catch_unwind(|| skip("a capability this machine lacks"));
        std::env::set_var(STRICT_VAR, "0");
        skip("the same, not strict");
        std::env::remove_var(STRICT_VAR);
        assert!(failed.is_err(), "a skip under {STRICT_VAR}=1 passed");
        assert!(!strict());
    }
}
