//! How long to wait before replacing a worker that crashed: at once the first time, then
//! doubling while workers keep dying young.

use std::time::Duration;

/// A worker that lived at least this long before crashing was not crash-looping.
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(10);
/// The first doubled delay.
const BASE: Duration = Duration::from_millis(100);
/// The longest wait: a broken deployment retries twice a minute, not in a tight loop.
const MAX: Duration = Duration::from_secs(30);

/// Consecutive crashes of young workers, and the delay they earn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a crash of a worker that lived `lifetime`; returns how long to wait before the
    /// next spawn.
    pub(crate) fn crashed(&mut self, lifetime: Duration) -> Duration {
        self.failures = if lifetime >= STABLE_AFTER { 1 } else { self.failures.saturating_add(1) };
        self.delay()
    }

    /// The wait the crashes so far call for: none after one crash (a worker killed by an
    /// operator or the OOM killer is replaced at once), then 100 ms, 200 ms, ... up to 30 s.
    pub(crate) fn delay(&self) -> Duration {
        match self.failures {
            0 | 1 => Duration::ZERO,
            n => BASE.saturating_mul(1 << (n - 2).min(16)).min(MAX),
        }
    }

    /// Consecutive crashes so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_crash_is_free_then_doubles_to_the_cap() {
        let mut backoff = Backoff::default();
        let young = Duration::from_millis(10);
        assert_eq!(backoff.crashed(young), Duration::ZERO);
        assert_eq!(backoff.crashed(young), Duration::from_millis(100));
        assert_eq!(backoff.crashed(young), Duration::from_millis(200));
        assert_eq!(backoff.crashed(young), Duration::from_millis(400));
        for _ in 0..40 {
            backoff.crashed(young);
        }
        assert_eq!(backoff.delay(), MAX);
    }

    #[test]
    fn a_long_lived_worker_resets_the_count() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.crashed(Duration::ZERO);
        }
        assert_eq!(backoff.crashed(STABLE_AFTER), Duration::ZERO);
        assert_eq!(backoff.failures(), 1);
    }
}
