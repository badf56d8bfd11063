//! The dynamic model's decision, as a pure function of what the workers are doing.

/// What the current workers are doing, as the master last heard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Workers that report no request running and none served since their last report.
    pub idle: usize,
    /// Workers with requests running, or that served some since their last report.
    pub busy: usize,
    /// Workers forked that have not reported yet: spares soon.
    pub starting: usize,
}

/// The dynamic model's bounds (from [`Settings`](crate::Settings)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Fewer idle workers than this: start more.
    pub min_spare: usize,
    /// More idle workers than this: retire the surplus.
    pub max_spare: usize,
    /// Never more workers than this.
    pub max_workers: usize,
}

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start this many workers.
    Spawn(usize),
    /// This many idle workers are surplus (the master retires them one per second).
    Retire(usize),
    /// Nothing.
    Hold,
}

/// PHP-FPM's `pm = dynamic` rule: keep between `min_spare` and `max_spare` idle workers, and
/// never more than `max_workers` in all. Workers still starting count as spares, so a burst
/// does not fork a second round while the first is starting.
///
/// ```
/// use fcgi_prefork::policy::{decide, Bounds, Census, Decision};
///
/// let bounds = Bounds { min_spare: 1, max_spare: 3, max_workers: 8 };
/// assert_eq!(decide(Census { idle: 0, busy: 4, starting: 0 }, bounds), Decision::Spawn(1));
/// assert_eq!(decide(Census { idle: 5, busy: 0, starting: 0 }, bounds), Decision::Retire(2));
/// ```
pub fn decide(census: Census, bounds: Bounds) -> Decision {
    let total = census.idle + census.busy + census.starting;
    let spares = census.idle + census.starting;
    if spares < bounds.min_spare && total < bounds.max_workers {
        let wanted = bounds.min_spare - spares;
        return Decision::Spawn(wanted.min(bounds.max_workers - total));
    }
    if census.idle > bounds.max_spare {
        return Decision::Retire(census.idle - bounds.max_spare);
    }
    if total > bounds.max_workers && census.idle > 0 {
        // After a reload or TTOU lowered the cap: retire idle ones, as they come.
        return Decision::Retire((total - bounds.max_workers).min(census.idle));
    }
    Decision::Hold
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds { min_spare: 2, max_spare: 4, max_workers: 6 };

    fn census(idle: usize, busy: usize, starting: usize) -> Census {
        Census { idle, busy, starting }
    }

    #[test]
    fn starts_spares_up_to_the_cap() {
        assert_eq!(decide(census(0, 0, 0), BOUNDS), Decision::Spawn(2));
        assert_eq!(decide(census(1, 3, 0), BOUNDS), Decision::Spawn(1));
        assert_eq!(decide(census(0, 5, 0), BOUNDS), Decision::Spawn(1));
        assert_eq!(decide(census(0, 6, 0), BOUNDS), Decision::Hold);
    }

    #[test]
    fn starting_workers_count_as_spares() {
        assert_eq!(decide(census(0, 3, 2), BOUNDS), Decision::Hold);
        assert_eq!(decide(census(0, 3, 1), BOUNDS), Decision::Spawn(1));
    }

    #[test]
    fn retires_idle_surplus_only() {
        assert_eq!(decide(census(6, 0, 0), BOUNDS), Decision::Retire(2));
        assert_eq!(decide(census(4, 2, 0), BOUNDS), Decision::Hold);
        assert_eq!(decide(census(3, 0, 0), BOUNDS), Decision::Hold);
    }

    #[test]
    fn a_lowered_cap_retires_idle_workers() {
        let lowered = Bounds { min_spare: 1, max_spare: 4, max_workers: 3 };
        assert_eq!(decide(census(2, 3, 0), lowered), Decision::Retire(2));
        assert_eq!(decide(census(0, 5, 0), lowered), Decision::Hold);
    }

    #[test]
    fn every_census_within_bounds_converges() {
        // Applying the decision repeatedly to an idle pool ends inside the bounds.
        for start in 0..=10 {
            let mut idle = start;
            for _ in 0..20 {
                match decide(census(idle, 0, 0), BOUNDS) {
                    Decision::Spawn(n) => idle += n,
                    Decision::Retire(n) => idle -= n.min(1),
                    Decision::Hold => break,
                }
            }
            assert!((BOUNDS.min_spare..=BOUNDS.max_spare).contains(&idle), "from {start}: {idle}");
        }
    }
}
