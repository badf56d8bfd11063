//! How many program processes to start or stop now: a pure decision from the [`Scale`] and
//! the counts, which the supervisor takes on each of its turns (tested as a table).

use std::time::Duration;

use crate::config::Scale;

/// Dynamic: idle processes above `max_spare` stop at most one per this long, as PHP-FPM's
/// dynamic manager does, so that a lull between bursts does not empty the pool.
pub(crate) const SCALE_DOWN_EVERY: Duration = Duration::from_secs(1);

/// What the pool looks like, for a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Processes that run and are not being stopped: idle and busy.
    pub(crate) alive: usize,
    /// Of those, the idle.
    pub(crate) idle: usize,
    /// Requests waiting for an idle process.
    pub(crate) waiting: usize,
    /// No process was started yet (the dynamic model starts `start` at first).
    pub(crate) first: bool,
}

/// What to do now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Processes to start.
    pub(crate) start: usize,
    /// Idle processes to stop, those idle longest first.
    pub(crate) stop: usize,
}

/// The plan for `counts` under `scale`; `idle_for` is how long each idle process has been
/// idle (any order), `since_stop` how long since the dynamic model last stopped one.
pub(crate) fn plan(
    scale: &Scale,
    counts: Counts,
    idle_for: &[Duration],
    since_stop: Duration,
) -> Plan {
    let Counts { alive, idle, waiting, first } = counts;
    let room = scale.max().saturating_sub(alive);
    match *scale {
        Scale::Static { processes } => Plan {
            start: processes.saturating_sub(alive),
            stop: alive.saturating_sub(processes).min(idle),
        },
        Scale::Dynamic { start, min_spare, max_spare, .. } => {
            let wanted = if first {
                start.max(min_spare)
            } else {
                min_spare.saturating_sub(idle).max(waiting.saturating_sub(idle))
            };
            let stop =
                usize::from(idle > max_spare && since_stop >= SCALE_DOWN_EVERY && waiting == 0);
            Plan { start: wanted.min(room), stop }
        }
        Scale::OnDemand { idle_timeout, .. } => Plan {
            start: waiting.saturating_sub(idle).min(room),
            stop: if waiting > 0 {
                0
            } else {
                idle_for.iter().filter(|d| **d >= idle_timeout).count()
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_as_a_table() {
        let s = Duration::from_secs;
        let fixed = Scale::Static { processes: 4 };
        let dynamic = Scale::Dynamic { start: 2, min_spare: 1, max_spare: 3, max: 8 };
        let ondemand = Scale::OnDemand { max: 4, idle_timeout: s(10) };
        let c = |alive, idle, waiting, first| Counts { alive, idle, waiting, first };
        let p = |start, stop| Plan { start, stop };
        // (scale, counts, idle_for, since_stop) -> plan
        let table: [(Scale, Counts, &[Duration], Duration, Plan); 17] = [
            // Static: always the count; a crashed one is replaced.
            (fixed, c(0, 0, 0, true), &[], s(0), p(4, 0)),
            (fixed, c(3, 1, 0, false), &[s(1)], s(0), p(1, 0)),
            (fixed, c(4, 0, 9, false), &[], s(0), p(0, 0)),
            // Dynamic: `start` at first, at least min_spare.
            (dynamic, c(0, 0, 0, true), &[], s(0), p(2, 0)),
            // An idle one short of min_spare: one more.
            (dynamic, c(2, 0, 0, false), &[], s(9), p(1, 0)),
            // Requests waiting: as many as wait, within max.
            (dynamic, c(2, 0, 3, false), &[], s(9), p(3, 0)),
            (dynamic, c(7, 0, 5, false), &[], s(9), p(1, 0)),
            (dynamic, c(8, 0, 5, false), &[], s(9), p(0, 0)),
            // Too many idle: one stops, once per second, never while requests wait.
            (dynamic, c(6, 5, 0, false), &[s(1); 5], s(1), p(0, 1)),
            (dynamic, c(6, 5, 0, false), &[s(1); 5], Duration::from_millis(300), p(0, 0)),
            (dynamic, c(5, 3, 0, false), &[s(1); 3], s(5), p(0, 0)),
            // On demand: nothing while idle...
            (ondemand, c(0, 0, 0, true), &[], s(0), p(0, 0)),
            // ...one per waiting request, within max...
            (ondemand, c(0, 0, 2, false), &[], s(0), p(2, 0)),
            (ondemand, c(3, 0, 5, false), &[], s(0), p(1, 0)),
            (ondemand, c(1, 1, 1, false), &[s(0)], s(0), p(0, 0)),
            // ...and those idle past the timeout stop.
            (ondemand, c(3, 2, 0, false), &[s(11), s(3)], s(0), p(0, 1)),
            (ondemand, c(3, 2, 1, false), &[s(11), s(3)], s(0), p(0, 0)),
        ];
        for (scale, counts, idle_for, since_stop, want) in table {
            assert_eq!(plan(&scale, counts, idle_for, since_stop), want, "{scale:?} {counts:?}");
        }
    }
}
