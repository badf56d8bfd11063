//! One server's counters for the status page ([`Metrics`]), and their encoding as words for
//! memory shared between a prefork master and its workers.
//!
//! The fields are written once, in the [`metrics!`] list below, each with its kind; the words'
//! order, their count ([`METRICS_WORDS`]), how two processes' counters add up and what a gone
//! process leaves behind all follow from that list, so a new counter is one line.

use std::time::Duration;

/// Upper bounds, in seconds, of the request-duration histogram's buckets (a last one, `+Inf`,
/// takes the rest): Prometheus client libraries' default buckets, which span a fast handler's
/// milliseconds to a slow one's seconds, plus 30 s and 60 s for CGI programs and reports.
pub const DURATION_BUCKETS: [f64; 13] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Buckets in [`Metrics::duration_buckets`]: one per bound, and `+Inf`.
pub const DURATION_SLOTS: usize = DURATION_BUCKETS.len() + 1;

/// The bucket of [`Metrics::duration_buckets`] a duration falls in.
///
/// ```
/// use std::time::Duration;
/// use fcgi_server::{duration_bucket, DURATION_BUCKETS};
///
/// assert_eq!(duration_bucket(Duration::from_millis(3)), 0);
/// assert_eq!(duration_bucket(Duration::from_secs(3600)), DURATION_BUCKETS.len());
/// ```
pub fn duration_bucket(duration: Duration) -> usize {
    let secs = duration.as_secs_f64();
    DURATION_BUCKETS.iter().position(|bound| secs <= *bound).unwrap_or(DURATION_BUCKETS.len())
}

/// A field of [`Metrics`] as words: a `u64`, or an array of them.
trait Words: Copy {
    /// How many words it takes.
    const LEN: usize;
    /// Writes it into `out`, which is [`LEN`](Words::LEN) words long.
    fn put(&self, out: &mut [u64]);
    /// Reads it from `words`, which is [`LEN`](Words::LEN) words long.
    fn get(words: &[u64]) -> Self;
    /// Adds `other` to it, word by word.
    fn add(&mut self, other: &Self);
    /// Zero.
    fn zero() -> Self;
}

impl Words for u64 {
    const LEN: usize = 1;
    fn put(&self, out: &mut [u64]) {
        out[0] = *self;
    }
    fn get(words: &[u64]) -> Self {
        words[0]
    }
    fn add(&mut self, other: &Self) {
        *self += other;
    }
    fn zero() -> Self {
        0
    }
}

impl<const N: usize> Words for [u64; N] {
    const LEN: usize = N;
    fn put(&self, out: &mut [u64]) {
        out.copy_from_slice(self);
    }
    fn get(words: &[u64]) -> Self {
        let mut out = [0; N];
        out.copy_from_slice(words);
        out
    }
    fn add(&mut self, other: &Self) {
        for (mine, theirs) in self.iter_mut().zip(other) {
            *mine += theirs;
        }
    }
    fn zero() -> Self {
        [0; N]
    }
}

/// Declares [`Metrics`] from its field list. Each field has a kind:
/// - `id`: which process (kept as this one's when counters add up);
/// - `count`: a total since the start, which adds up and outlives its process;
/// - `gauge`: the state now, which adds up across processes running side by side and is zero
///   for a process that is gone.
macro_rules! metrics {
    ($(#[$meta:meta])* pub struct Metrics {
        $($(#[doc = $doc:literal])* $field:ident: $ty:ty => $kind:ident,)*
    }) => {
        $(#[$meta])*
        pub struct Metrics {
            $($(#[doc = $doc])* pub $field: $ty,)*
        }

        /// How many words [`Metrics::to_words`] writes.
        pub const METRICS_WORDS: usize = 0 $(+ <$ty as Words>::LEN)*;

        impl Metrics {
            /// The counters as words, in a fixed order, for memory shared between processes.
            ///
            /// ```
            /// use fcgi_server::Metrics;
            ///
            /// let metrics = Metrics { served: 3, ..Metrics::default() };
            /// assert_eq!(Metrics::from_words(&metrics.to_words()), metrics);
            /// ```
            pub fn to_words(&self) -> [u64; METRICS_WORDS] {
                let mut out = [0; METRICS_WORDS];
                let mut at = 0;
                $(
                    self.$field.put(&mut out[at..at + <$ty as Words>::LEN]);
                    at += <$ty as Words>::LEN;
                )*
                debug_assert_eq!(at, METRICS_WORDS);
                out
            }

            /// The counters from [`to_words`](Metrics::to_words)'s words.
            // The last field's step is never read.
            #[allow(unused_assignments)]
            pub fn from_words(words: &[u64; METRICS_WORDS]) -> Metrics {
                let mut at = 0;
                // Struct fields are evaluated in the order written: the words' order.
                Metrics {
                    $($field: {
                        let value = <$ty as Words>::get(&words[at..at + <$ty as Words>::LEN]);
                        at += <$ty as Words>::LEN;
                        value
                    },)*
                }
            }

            /// Adds `other`'s counts to these: totals add up, and so do the gauges of
            /// processes that run side by side (threads, running requests); a maximum adds up
            /// too, as FPM's pool-wide "max active processes" is the most that ran at once
            /// across its processes, which is at most the sum. The `id` fields stay this one's.
            ///
            /// ```
            /// use fcgi_server::Metrics;
            ///
            /// let mut total = Metrics { pid: 1, served: 3, ..Metrics::default() };
            /// total.add(&Metrics { pid: 2, served: 4, ..Metrics::default() });
            /// assert_eq!((total.pid, total.served), (1, 7));
            /// ```
            pub fn add(&mut self, other: &Metrics) {
                $(metrics!(@add $kind, self.$field, other.$field);)*
            }

            /// The totals of a process that is gone, kept so that a pool's counts never go
            /// down: its gauges (running, threads, queue) are zero.
            ///
            /// ```
            /// use fcgi_server::Metrics;
            ///
            /// let gone = Metrics { served: 3, active: 1, ..Metrics::default() }.retired();
            /// assert_eq!((gone.served, gone.active), (3, 0));
            /// ```
            pub fn retired(&self) -> Metrics {
                Metrics { $($field: metrics!(@retired $kind, $ty, self.$field),)* }
            }
        }
    };
    (@add id, $mine:expr, $theirs:expr) => {};
    (@add $kind:ident, $mine:expr, $theirs:expr) => { Words::add(&mut $mine, &$theirs) };
    (@retired gauge, $ty:ty, $value:expr) => { <$ty as Words>::zero() };
    (@retired $kind:ident, $ty:ty, $value:expr) => { $value };
}

metrics! {
    /// The counters of one server (one process), for the status page: what PHP-FPM's
    /// scoreboard counts, and what fcgi-rs knows beyond it. Each field is a `u64` or an array of
    /// them, so that a prefork worker can copy them word by word into memory shared with the
    /// others ([`Metrics::to_words`]).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Metrics {
        /// The process's id.
        pid: u64 => id,
        /// When the server started serving, in seconds since the Unix epoch.
        start_unix: u64 => id,
        /// Requests handed to a thread (FPM's "accepted conn").
        accepted: u64 => count,
        /// Requests whose handler returned.
        served: u64 => count,
        /// Requests that ran past `--slow-request` (FPM's "slow requests").
        slow: u64 => count,
        /// Most requests running at once since the start (FPM's "max active processes").
        max_active: u64 => count,
        /// Requests that found every thread busy, and queued or were refused (FPM's "max
        /// children reached": the times the pool was at its cap when work came).
        max_children_reached: u64 => count,
        /// Requests answered `503` by the server itself: queue full, memory budget, too many on
        /// a connection or too many connections.
        overloaded: u64 => count,
        /// Of those, requests that waited in the queue past the queue timeout.
        queue_timeouts: u64 => count,
        /// Bytes of request bodies written to spool files (bodies past the in-memory threshold
        /// or the memory budget).
        spooled_bytes: u64 => count,
        /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
        status_classes: [u64; 5] => count,
        /// Requests by duration, one count per bucket of [`DURATION_BUCKETS`] (not cumulative).
        duration_buckets: [u64; DURATION_SLOTS] => count,
        /// The sum of all durations, in microseconds.
        duration_sum_us: u64 => count,
        /// Requests running now.
        active: u64 => gauge,
        /// Pool threads waiting for a request now.
        idle: u64 => gauge,
        /// Pool threads alive now.
        threads: u64 => gauge,
        /// The pool's thread cap.
        max_threads: u64 => gauge,
        /// Requests waiting for a thread now.
        queued: u64 => gauge,
        /// Requests that may wait for a thread.
        queue_capacity: u64 => gauge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_their_bucket() {
        let table =
            [(0, 0), (5_000, 0), (5_001, 1), (999_000, 7), (60_000_000, 12), (61_000_000, 13)];
        for (micros, bucket) in table {
            assert_eq!(duration_bucket(Duration::from_micros(micros)), bucket, "{micros} us");
        }
    }

    /// Metrics whose every word differs from every other's.
    fn distinct() -> Metrics {
        let words: Vec<u64> = (1..=METRICS_WORDS as u64).collect();
        Metrics::from_words(&words.try_into().unwrap())
    }

    #[test]
    fn every_word_round_trips_in_its_own_place() {
        let metrics = distinct();
        let words = metrics.to_words();
        assert_eq!(words.to_vec(), (1..=METRICS_WORDS as u64).collect::<Vec<_>>());
        assert_eq!(Metrics::from_words(&words), metrics);
        assert_eq!(METRICS_WORDS, 17 + 5 + DURATION_SLOTS);
    }

    #[test]
    fn counts_add_up_and_outlive_their_process_and_gauges_do_not() {
        let one = distinct();
        let gone = one.retired();
        let mut total = one;
        total.add(&gone);
        // Two ids, two counts, three gauges.
        let fields = |m: &Metrics| {
            [m.pid, m.start_unix, m.served, m.max_active, m.active, m.threads, m.queue_capacity]
        };
        let [pid, start, served, max_active, active, threads, capacity] = fields(&one);
        assert_eq!(
            fields(&total),
            [pid, start, 2 * served, 2 * max_active, active, threads, capacity],
            "one process's counters with a gone one's added"
        );
        assert_eq!(fields(&gone), [pid, start, served, max_active, 0, 0, 0], "a gone process");
        assert_eq!(total.status_classes[1], 2 * one.status_classes[1]);
        assert_eq!(gone.duration_buckets, one.duration_buckets);
    }
}
