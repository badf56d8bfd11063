//! How long to wait before replacing a worker that crashed: at once the first time, then
//! doubling while the workers of the same place keep dying young.
//!
//! The pool is a row of places (0, 1, ... up to the workers wanted), each held by one worker.
//! A crash delays only the respawn into its own place: a request that kills whichever worker
//! serves it (a "request of death") spreads its crashes over every place, and a place-wide
//! count would soon hold every respawn back at once. With one count per place, and this rule,
//! the pool is never empty for longer than one respawn:
//!
//! - when no worker of the pool is alive, one place whose last worker died *serving* (it had
//!   started, so the deployment works) is filled at once, whatever its delay;
//! - a worker that died while starting (a broken build, a bad configuration) gets its delay in
//!   full, so a deployment that cannot start retries at most twice a minute, not in a loop.

use std::time::{Duration, Instant};

/// A worker that lived at least this long before crashing was not crash-looping.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// The first doubled delay.
const BASE: Duration = Duration::from_millis(100);
/// The longest wait: a broken deployment retries twice a minute, not in a tight loop.
const MAX: Duration = Duration::from_secs(30);

/// Consecutive crashes of young workers, and the delay they earn (also what `fcgi-exec`
/// waits before restarting a program that keeps dying).
///
/// ```
/// use std::time::Duration;
/// use fcgi_prefork::backoff::Backoff;
///
/// let mut backoff = Backoff::default();
/// assert_eq!(backoff.crashed(Duration::ZERO), Duration::ZERO);
/// assert_eq!(backoff.crashed(Duration::ZERO), Duration::from_millis(100));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a crash of a worker that lived `lifetime`; returns how long to wait before the
    /// next spawn.
    pub fn crashed(&mut self, lifetime: Duration) -> Duration {
        self.failures = if lifetime >= STABLE_AFTER { 1 } else { self.failures.saturating_add(1) };
        self.delay()
    }

    /// The wait the crashes so far call for: none after one crash (a worker killed by an
    /// operator or the OOM killer is replaced at once), then 100 ms, 200 ms, ... up to 30 s.
    pub fn delay(&self) -> Duration {
        match self.failures {
            0 | 1 => Duration::ZERO,
            n => BASE.saturating_mul(1 << (n - 2).min(16)).min(MAX),
        }
    }

    /// Consecutive crashes so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets the crashes: what crashed has since worked (a program served a request).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// One place of the pool, as the master remembers it between its workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Place {
    /// Consecutive crashes of the workers that held it.
    pub(crate) backoff: Backoff,
    /// Not to be filled before this instant (after a crash).
    pub(crate) not_before: Option<Instant>,
    /// Its last worker died after it had started serving.
    pub(crate) died_serving: bool,
}

impl Place {
    /// The worker that held this place crashed after `lifetime`, serving or still starting;
    /// returns the delay before the place is filled again (before the empty-pool rule).
    pub(crate) fn crashed(&mut self, lifetime: Duration, serving: bool, now: Instant) -> Duration {
        let delay = self.backoff.crashed(lifetime);
        self.not_before = Some(now + delay);
        self.died_serving = serving;
        delay
    }

    fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }
}

/// Which of the `free` places (index, state; lowest first) to fill now: at most `wanted`, those
/// whose delay is over, and, when `alive` is 0 and none is, the first whose last worker died
/// serving (see the module docs). The second value says the empty-pool rule was used.
pub(crate) fn places_to_fill(
    free: &[(usize, Place)],
    alive: usize,
    wanted: usize,
    now: Instant,
) -> (Vec<usize>, bool) {
    let ready: Vec<usize> =
        free.iter().filter(|(_, p)| p.ready(now)).map(|&(i, _)| i).take(wanted).collect();
    if !ready.is_empty() || alive > 0 || wanted == 0 {
        return (ready, false);
    }
    match free.iter().find(|(_, p)| p.died_serving) {
        Some(&(i, _)) => (vec![i], true),
        None => (Vec::new(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_filled_when_its_delay_is_over_or_the_pool_is_empty() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let waiting = Place {
            backoff: Backoff { failures: 8 },
            not_before: Some(now + ms(12_800)),
            died_serving: true,
        };
        let waiting_started = Place { died_serving: false, ..waiting };
        let over = Place { not_before: Some(now), ..waiting };
        let fresh = Place::default();
        // (free places, alive, wanted) -> (filled, by the empty-pool rule)
        type Case<'a> = (&'a [(usize, Place)], usize, usize, (Vec<usize>, bool));
        let cases: [Case<'_>; 9] = [
            (&[], 0, 1, (vec![], false)),
            (&[(0, fresh)], 0, 1, (vec![0], false)),
            (&[(0, fresh), (1, fresh)], 0, 1, (vec![0], false)),
            (&[(0, fresh), (1, fresh)], 2, 2, (vec![0, 1], false)),
            // A place in back-off holds back only itself.
            (&[(0, waiting), (1, fresh)], 1, 2, (vec![1], false)),
            (&[(0, waiting)], 3, 1, (vec![], false)),
            (&[(0, over)], 3, 1, (vec![0], false)),
            // Nobody alive: the place whose worker died serving is filled at once...
            (&[(0, waiting_started), (1, waiting)], 0, 2, (vec![1], true)),
            // ...but not one whose worker never started: that is a broken deployment.
            (&[(0, waiting_started)], 0, 1, (vec![], false)),
        ];
        for (free, alive, wanted, expected) in cases {
            assert_eq!(places_to_fill(free, alive, wanted, now), expected, "{free:?} {alive}");
        }
    }

    #[test]
    fn a_crash_delays_its_place_and_remembers_how_it_died() {
        let now = Instant::now();
        let mut place = Place::default();
        assert_eq!(place.crashed(Duration::ZERO, true, now), Duration::ZERO);
        assert_eq!(place.crashed(Duration::ZERO, false, now), Duration::from_millis(100));
        assert_eq!(place.not_before, Some(now + Duration::from_millis(100)));
        assert!(!place.died_serving);
    }

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
