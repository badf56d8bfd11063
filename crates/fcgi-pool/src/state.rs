//! The pool's state word: how many threads, how many of them idle, how many jobs queued, and
//! whether the pool is shutting down, packed into one `AtomicU64`.
//!
//! Every decision of the pool ("is there an idle thread?", "may I spawn?", "may I queue?",
//! "may I retire?") reads these counts and changes them in one compare-and-swap, so no decision
//! is ever made on a stale combination. The decisions themselves are pure functions of
//! [`Counts`] (tested on their own below); [`StateWord`] only runs them in a CAS loop.
//!
//! See DESIGN.md beside this crate's Cargo.toml for the invariants.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits per count in the state word.
const FIELD_BITS: u32 = 21;
/// The largest value a count can hold: the ceiling for `max_threads` and `queue_capacity`.
pub(crate) const FIELD_MAX: u64 = (1 << FIELD_BITS) - 1;
const THREADS_SHIFT: u32 = 0;
const IDLE_SHIFT: u32 = FIELD_BITS;
const QUEUED_SHIFT: u32 = 2 * FIELD_BITS;
const SHUTDOWN_BIT: u64 = 1 << 63;

/// The unpacked state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    /// Worker threads alive or reserved (being spawned). Never above the cap.
    pub(crate) threads: u64,
    /// Threads parked waiting for work that nobody has claimed yet (including spare threads
    /// still being spawned). A claim takes one away before its job is sent.
    pub(crate) idle: u64,
    /// Jobs in the channel that no thread has reserved yet. Never nonzero while `idle` is.
    pub(crate) queued: u64,
    /// Set once by `shutdown`; never cleared.
    pub(crate) shutdown: bool,
}

impl Counts {
    fn unpack(word: u64) -> Self {
        Counts {
            threads: (word >> THREADS_SHIFT) & FIELD_MAX,
            idle: (word >> IDLE_SHIFT) & FIELD_MAX,
            queued: (word >> QUEUED_SHIFT) & FIELD_MAX,
            shutdown: word & SHUTDOWN_BIT != 0,
        }
    }

    fn pack(self) -> u64 {
        debug_assert!(self.threads <= FIELD_MAX && self.idle <= FIELD_MAX);
        debug_assert!(self.queued <= FIELD_MAX && self.idle <= self.threads);
        (self.threads << THREADS_SHIFT)
            | (self.idle << IDLE_SHIFT)
            | (self.queued << QUEUED_SHIFT)
            | if self.shutdown { SHUTDOWN_BIT } else { 0 }
    }

    /// Threads that are not idle: running a job, or about to receive one.
    pub(crate) fn busy(self) -> u64 {
        self.threads - self.idle
    }
}

/// The knobs, as the state machine needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) min_spare: u64,
    pub(crate) max_spare: u64,
    /// `max_threads`, with "no cap" (0) already turned into [`FIELD_MAX`].
    pub(crate) cap: u64,
    pub(crate) queue_capacity: u64,
}

/// Why a job was refused, before it becomes a public [`crate::RejectReason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    AllBusy,
    QueueFull,
    ShuttingDown,
}

/// What `admit` decided for a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// An idle thread was claimed: send the job, then spawn `spares` idle threads (already
    /// counted) to bring the idle count back up to `min_spare`.
    Claimed { spares: u64 },
    /// No thread was idle but the cap left room: spawn `committed` threads (counted, not idle):
    /// one for this job, plus one for each queued job stranded by an earlier failed spawn
    /// (see `receiver_lost`); then `spares` idle ones (counted, idle).
    Spawn { committed: u64, spares: u64 },
    /// Every thread is busy: the job waits in the queue (counted in `queued`).
    Queued,
    /// Refused; nothing was changed.
    Refused(Refusal),
}

/// What a worker does after its job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterJob {
    /// It reserved a queued job: receive it (it is in the channel, or about to be).
    TakeQueued,
    /// It is counted idle again: wait for a claim.
    Idle,
    /// The pool is shutting down and nothing is queued: it has been uncounted; exit.
    Exit,
}

/// Decides what to do with a new job. `None` as the new state means "no change".
pub(crate) fn admit(c: Counts, limits: &Limits, may_queue: bool) -> (Option<Counts>, Admission) {
    if c.shutdown {
        return (None, Admission::Refused(Refusal::ShuttingDown));
    }
    if c.idle > 0 {
        let idle = c.idle - 1;
        let spares = limits.min_spare.saturating_sub(idle).min(limits.cap - c.threads);
        let next = Counts { threads: c.threads + spares, idle: idle + spares, ..c };
        return (Some(next), Admission::Claimed { spares });
    }
    if c.threads < limits.cap {
        // Queued jobs with room under the cap exist only after a failed spawn; give them
        // threads too, before any spare, so that no thread counted idle finds one of them.
        let room = limits.cap - c.threads - 1;
        let stranded = c.queued.min(room);
        let spares = if stranded < c.queued { 0 } else { limits.min_spare.min(room - stranded) };
        let next = Counts {
            threads: c.threads + 1 + stranded + spares,
            idle: spares,
            queued: c.queued - stranded,
            ..c
        };
        return (Some(next), Admission::Spawn { committed: 1 + stranded, spares });
    }
    if !may_queue {
        return (None, Admission::Refused(Refusal::AllBusy));
    }
    if c.queued < limits.queue_capacity {
        return (Some(Counts { queued: c.queued + 1, ..c }), Admission::Queued);
    }
    (None, Admission::Refused(Refusal::QueueFull))
}

/// What a thread that found work of its own in its source is (see `source.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SelfClaim {
    /// It took itself out of `idle`: spawn `spares` idle threads (already counted) to bring
    /// the idle count back up to `min_spare`; `idle` is what is left.
    Claimed { spares: u64, idle: u64 },
    /// No idle thread was left to take: every waiting thread, this one included, is owed a
    /// message already (a job, or an `Exit` once shutting down). Nothing was changed.
    Owed,
}

/// A thread waiting in its source found work: it claims itself as a submitter claims an idle
/// thread (`admit`), or, if none is left unclaimed, it is one of those owed a message.
/// Threads are interchangeable receivers, so which waiting thread is the owed one does not
/// matter, only how many there are.
pub(crate) fn claim_self(c: Counts, limits: &Limits) -> (Option<Counts>, SelfClaim) {
    if c.shutdown || c.idle == 0 {
        return (None, SelfClaim::Owed);
    }
    let idle = c.idle - 1;
    let spares = limits.min_spare.saturating_sub(idle).min(limits.cap - c.threads);
    let next = Counts { threads: c.threads + spares, idle: idle + spares, ..c };
    (Some(next), SelfClaim::Claimed { spares, idle: idle + spares })
}

/// A worker finished a job: take a queued one, else go idle (or exit when shutting down).
pub(crate) fn after_job(c: Counts) -> (Counts, AfterJob) {
    if c.queued > 0 {
        (Counts { queued: c.queued - 1, ..c }, AfterJob::TakeQueued)
    } else if c.shutdown {
        (Counts { threads: c.threads - 1, ..c }, AfterJob::Exit)
    } else {
        (Counts { idle: c.idle + 1, ..c }, AfterJob::Idle)
    }
}

/// An idle worker's grace period ran out: it retires if the idle threads are more than
/// `max_spare`. `None`: it stays (not surplus, or shutting down and its `Exit` is on the way).
pub(crate) fn retire(c: Counts, max_spare: u64) -> Option<Counts> {
    (!c.shutdown && c.idle > max_spare).then(|| Counts {
        threads: c.threads - 1,
        idle: c.idle - 1,
        ..c
    })
}

/// A thread that was going to receive a message is gone without receiving it (its spawn
/// failed, or it died). Whether it was counted idle or owed a message (spawned for a job, or
/// holding a queued reservation) makes no difference: threads are interchangeable receivers,
/// so one receive fewer is owed. If an unclaimed idle thread is left, it becomes the one that
/// receives the orphaned message (or stays the spare, if no message was owed): `idle` goes
/// down. Otherwise the message, already in the channel or about to be, becomes a queued job
/// for the next thread that finishes: `queued` goes up.
pub(crate) fn receiver_lost(c: Counts) -> Counts {
    if c.idle > 0 {
        Counts { threads: c.threads - 1, idle: c.idle - 1, ..c }
    } else {
        Counts { threads: c.threads - 1, queued: c.queued + 1, ..c }
    }
}

/// A thread leaves that owes nothing (it received `Exit`, or its spawn for a job failed before
/// the job was sent).
pub(crate) fn thread_left(c: Counts) -> Counts {
    Counts { threads: c.threads - 1, ..c }
}

/// Shutdown: refuse new jobs and claim every idle thread, to send each an `Exit`.
pub(crate) fn begin_shutdown(c: Counts) -> (Counts, u64) {
    (Counts { idle: 0, shutdown: true, ..c }, c.idle)
}

/// The deadline passed: shutdown takes every unreserved queued job, to drop it unrun.
pub(crate) fn take_queue(c: Counts) -> (Counts, u64) {
    (Counts { queued: 0, ..c }, c.queued)
}

/// The most messages the channel can hold at once: one owed to each thread, plus a full
/// queue. (A message moves from "owed" to "queued" when its thread is lost, so the sum never
/// grows past this; the model test checks it.)
pub(crate) fn channel_bound(limits: &Limits) -> u64 {
    limits.cap + limits.queue_capacity
}

/// The atomic state word.
#[derive(Debug)]
pub(crate) struct StateWord(AtomicU64);

impl StateWord {
    pub(crate) fn new(initial: Counts) -> Self {
        StateWord(AtomicU64::new(initial.pack()))
    }

    pub(crate) fn load(&self) -> Counts {
        Counts::unpack(self.0.load(Ordering::Acquire))
    }

    /// Runs `decide` on the current counts and installs its new counts (if any) in one CAS,
    /// retrying on contention. Returns what `decide` returned with the counts it installed.
    pub(crate) fn update<R>(&self, mut decide: impl FnMut(Counts) -> (Option<Counts>, R)) -> R {
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            let (next, result) = decide(Counts::unpack(word));
            let Some(next) = next else { return result };
            match self.0.compare_exchange_weak(
                word,
                next.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return result,
                Err(actual) => word = actual,
            }
        }
    }

    /// [`StateWord::update`] for a transition that always changes the counts.
    pub(crate) fn apply<R>(&self, mut step: impl FnMut(Counts) -> (Counts, R)) -> R {
        self.update(|c| {
            let (next, result) = step(c);
            (Some(next), result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits { min_spare: 2, max_spare: 4, cap: 16, queue_capacity: 8 };

    fn counts(threads: u64, idle: u64, queued: u64) -> Counts {
        Counts { threads, idle, queued, shutdown: false }
    }

    #[test]
    fn pack_round_trips_extremes() {
        for c in [
            Counts::default(),
            Counts { threads: FIELD_MAX, idle: FIELD_MAX, queued: FIELD_MAX, shutdown: true },
            counts(3, 1, 0),
        ] {
            assert_eq!(Counts::unpack(c.pack()), c);
        }
    }

    #[test]
    fn claiming_an_idle_thread_tops_the_spares_up() {
        assert_eq!(
            admit(counts(2, 2, 0), &LIMITS, false),
            (Some(counts(3, 2, 0)), Admission::Claimed { spares: 1 })
        );
        // Enough spares left: no spawn.
        assert_eq!(
            admit(counts(5, 4, 0), &LIMITS, false),
            (Some(counts(5, 3, 0)), Admission::Claimed { spares: 0 })
        );
        // At the cap: no spawn.
        assert_eq!(
            admit(counts(16, 1, 0), &LIMITS, false),
            (Some(counts(16, 0, 0)), Admission::Claimed { spares: 0 })
        );
    }

    #[test]
    fn no_idle_thread_spawns_one_for_the_job_plus_spares() {
        assert_eq!(
            admit(counts(3, 0, 0), &LIMITS, false),
            (Some(counts(6, 2, 0)), Admission::Spawn { committed: 1, spares: 2 })
        );
        assert_eq!(
            admit(counts(15, 0, 0), &LIMITS, false),
            (Some(counts(16, 0, 0)), Admission::Spawn { committed: 1, spares: 0 })
        );
        // A job stranded in the queue by a failed spawn gets a thread of its own first.
        assert_eq!(
            admit(counts(0, 0, 1), &LIMITS, false),
            (Some(counts(4, 2, 0)), Admission::Spawn { committed: 2, spares: 2 })
        );
        assert_eq!(
            admit(counts(13, 0, 5), &LIMITS, true),
            (Some(counts(16, 0, 3)), Admission::Spawn { committed: 3, spares: 0 })
        );
    }

    #[test]
    fn at_the_cap_try_refuses_and_execute_queues() {
        let full = counts(16, 0, 0);
        assert_eq!(admit(full, &LIMITS, false), (None, Admission::Refused(Refusal::AllBusy)));
        assert_eq!(admit(full, &LIMITS, true), (Some(counts(16, 0, 1)), Admission::Queued));
        assert_eq!(
            admit(counts(16, 0, 8), &LIMITS, true),
            (None, Admission::Refused(Refusal::QueueFull))
        );
        let closed = Counts { shutdown: true, ..counts(4, 4, 0) };
        assert_eq!(admit(closed, &LIMITS, true), (None, Admission::Refused(Refusal::ShuttingDown)));
    }

    #[test]
    fn a_thread_that_found_work_claims_itself_unless_it_is_owed_a_message() {
        // (threads, idle, shutdown) -> what it is, and the counts after; min_spare is 2
        let table = [
            // One of three idle: two stay idle, nothing to spawn.
            ((3, 3, false), SelfClaim::Claimed { spares: 0, idle: 2 }, counts(3, 2, 0)),
            // Two idle: a spare is spawned to keep two.
            ((3, 2, false), SelfClaim::Claimed { spares: 1, idle: 2 }, counts(4, 2, 0)),
            // One below the cap: one spare, as many as the cap allows.
            ((15, 1, false), SelfClaim::Claimed { spares: 1, idle: 1 }, counts(16, 1, 0)),
            // The last idle one at the cap: no spare, no idle thread left.
            ((16, 1, false), SelfClaim::Claimed { spares: 0, idle: 0 }, counts(16, 0, 0)),
            // Every waiting thread is owed a job: this one is too.
            ((3, 0, false), SelfClaim::Owed, counts(3, 0, 0)),
        ];
        for ((threads, idle, shutdown), want, after) in table {
            let c = Counts { threads, idle, queued: 0, shutdown };
            let (next, got) = claim_self(c, &LIMITS);
            assert_eq!(got, want, "{c:?}");
            assert_eq!(next.unwrap_or(c), after, "{c:?}");
        }
        // Shutting down: its Exit is on the way.
        let c = Counts { threads: 3, idle: 0, queued: 0, shutdown: true };
        assert_eq!(claim_self(c, &LIMITS), (None, SelfClaim::Owed));
    }

    #[test]
    fn retire_only_the_surplus_and_never_while_shutting_down() {
        assert_eq!(retire(counts(6, 5, 0), 4), Some(counts(5, 4, 0)));
        assert_eq!(retire(counts(6, 4, 0), 4), None);
        assert_eq!(retire(Counts { shutdown: true, ..counts(6, 5, 0) }, 4), None);
    }

    #[test]
    fn after_job_prefers_the_queue_then_idles_or_exits() {
        assert_eq!(after_job(counts(4, 0, 2)), (counts(4, 0, 1), AfterJob::TakeQueued));
        assert_eq!(after_job(counts(4, 1, 0)), (counts(4, 2, 0), AfterJob::Idle));
        let closing = Counts { shutdown: true, ..counts(4, 0, 0) };
        assert_eq!(after_job(closing).1, AfterJob::Exit);
        assert_eq!(after_job(closing).0.threads, 3);
    }

    /// A model of the whole pool, driven by the same transition functions: threads with their
    /// roles, and the channel as a FIFO of messages. Checks the pairing invariant of DESIGN.md
    /// after every step, and that nothing is left stranded once every step that can happen
    /// has happened.
    #[derive(Debug, Default)]
    struct Model {
        counts: Counts,
        channel: std::collections::VecDeque<Msg>,
        /// Messages decided on but not sent yet (a submitter between its CAS and its send).
        unsent: std::collections::VecDeque<Msg>,
        threads: Vec<Thread>,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Msg {
        Job,
        Exit,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Thread {
        /// Counted, not started yet; `true` if it starts idle, `false` if committed.
        Spawning(bool),
        /// Waiting in `recv`; `true` if idle (may time out), `false` if committed.
        Waiting(bool),
        Busy,
    }

    #[derive(Clone, Debug)]
    enum Op {
        Submit {
            may_queue: bool,
            spawn_fails: bool,
        },
        Start(usize),
        SpawnFails(usize),
        Deliver(usize),
        Finish(usize),
        Timeout(usize),
        /// An idle thread finds work in its source (see `source.rs`).
        FindWork(usize),
        Shutdown,
        Send,
    }

    fn op() -> impl Strategy<Value = Op> {
        let any_thread = 0..32usize;
        prop_oneof![
            4 => (any::<bool>(), proptest::bool::weighted(0.1))
                .prop_map(|(may_queue, spawn_fails)| Op::Submit { may_queue, spawn_fails }),
            3 => any_thread.clone().prop_map(Op::Start),
            1 => any_thread.clone().prop_map(Op::SpawnFails),
            3 => any_thread.clone().prop_map(Op::Deliver),
            3 => any_thread.clone().prop_map(Op::Finish),
            1 => any_thread.clone().prop_map(Op::Timeout),
            2 => any_thread.prop_map(Op::FindWork),
            1 => Just(Op::Shutdown),
            4 => Just(Op::Send),
        ]
    }

    impl Model {
        fn new() -> Self {
            let n = LIMITS.min_spare;
            Model {
                counts: counts(n, n, 0),
                threads: (0..n).map(|_| Thread::Spawning(true)).collect(),
                ..Model::default()
            }
        }

        fn nth(&self, i: usize, want: impl Fn(Thread) -> bool) -> Option<usize> {
            let matching: Vec<usize> =
                (0..self.threads.len()).filter(|&t| want(self.threads[t])).collect();
            (!matching.is_empty()).then(|| matching[i % matching.len()])
        }

        fn step(&mut self, op: Op) {
            let c = self.counts;
            match op {
                Op::Submit { may_queue, spawn_fails } => {
                    let (next, admission) = admit(c, &LIMITS, may_queue);
                    self.counts = next.unwrap_or(c);
                    match admission {
                        Admission::Claimed { spares } => {
                            self.unsent.push_back(Msg::Job);
                            self.spawn(0, spares);
                        }
                        Admission::Spawn { committed, spares } if spawn_fails => {
                            self.counts = thread_left(self.counts);
                            for _ in 1..committed {
                                self.counts = receiver_lost(self.counts);
                            }
                            for _ in 0..spares {
                                self.counts = receiver_lost(self.counts);
                            }
                        }
                        Admission::Spawn { committed, spares } => {
                            self.unsent.push_back(Msg::Job);
                            self.spawn(committed, spares);
                        }
                        Admission::Queued => self.unsent.push_back(Msg::Job),
                        Admission::Refused(_) => {}
                    }
                }
                Op::Start(i) => {
                    if let Some(t) = self.nth(i, |t| matches!(t, Thread::Spawning(_))) {
                        let Thread::Spawning(idle) = self.threads[t] else { unreachable!() };
                        self.threads[t] = Thread::Waiting(idle);
                    }
                }
                Op::SpawnFails(i) => {
                    if let Some(t) = self.nth(i, |t| matches!(t, Thread::Spawning(_))) {
                        self.threads.remove(t);
                        self.counts = receiver_lost(c);
                    }
                }
                Op::Deliver(i) => {
                    if self.channel.is_empty() {
                        return;
                    }
                    if let Some(t) = self.nth(i, |t| matches!(t, Thread::Waiting(_))) {
                        match self.channel.pop_front() {
                            Some(Msg::Job) => self.threads[t] = Thread::Busy,
                            _ => {
                                self.threads.remove(t);
                                self.counts = thread_left(c);
                            }
                        }
                    }
                }
                Op::Finish(i) => {
                    if let Some(t) = self.nth(i, |t| t == Thread::Busy) {
                        let (next, after) = after_job(c);
                        self.counts = next;
                        match after {
                            AfterJob::TakeQueued => self.threads[t] = Thread::Waiting(false),
                            AfterJob::Idle => self.threads[t] = Thread::Waiting(true),
                            AfterJob::Exit => drop(self.threads.remove(t)),
                        }
                    }
                }
                Op::Timeout(i) => {
                    // Only if no message is waiting (one not sent yet does not stop it).
                    if !self.channel.is_empty() {
                        return;
                    }
                    if let Some(t) = self.nth(i, |t| t == Thread::Waiting(true)) {
                        if let Some(next) = retire(c, LIMITS.max_spare) {
                            self.counts = next;
                            self.threads.remove(t);
                        }
                    }
                }
                Op::FindWork(i) => {
                    if let Some(t) = self.nth(i, |t| t == Thread::Waiting(true)) {
                        let (next, claim) = claim_self(c, &LIMITS);
                        self.counts = next.unwrap_or(c);
                        match claim {
                            // Busy with its work, then `Finish` as after a job.
                            SelfClaim::Claimed { spares, .. } => {
                                self.threads[t] = Thread::Busy;
                                self.spawn(0, spares);
                            }
                            // Handles its work briefly, then receives what it is owed.
                            SelfClaim::Owed => self.threads[t] = Thread::Waiting(false),
                        }
                    }
                }
                Op::Send => self.channel.extend(self.unsent.pop_front()),
                Op::Shutdown => {
                    let (next, idle) = begin_shutdown(c);
                    self.counts = next;
                    self.unsent.extend((0..idle).map(|_| Msg::Exit));
                }
            }
        }

        fn spawn(&mut self, committed: u64, spares: u64) {
            self.threads.extend((0..committed).map(|_| Thread::Spawning(false)));
            self.threads.extend((0..spares).map(|_| Thread::Spawning(true)));
        }

        fn check(&self) -> Result<(), TestCaseError> {
            let c = self.counts;
            prop_assert_eq!(c.threads, self.threads.len() as u64, "{:?}", self);
            prop_assert!(c.threads <= LIMITS.cap);
            prop_assert!(c.idle <= c.threads);
            prop_assert!(c.idle == 0 || c.queued == 0, "idle and queued at once: {:?}", c);
            // Pairing: receivers still to come, minus messages, is idle minus queued.
            let receivers = self.threads.iter().filter(|&&t| t != Thread::Busy).count() as i64;
            let messages = (self.channel.len() + self.unsent.len()) as i64;
            prop_assert_eq!(receivers - messages, c.idle as i64 - c.queued as i64, "{:?}", self);
            // The channel never holds more than `channel_bound` messages.
            prop_assert!(messages as u64 <= channel_bound(&LIMITS), "{:?}", self);
            Ok(())
        }

        /// Runs every start, delivery and finish until nothing moves (no timeouts, no
        /// failures): what the real pool does when left alone.
        fn settle(&mut self) -> Result<(), TestCaseError> {
            loop {
                let before =
                    (self.counts, self.channel.len(), self.unsent.len(), self.threads.clone());
                for i in 0..self.threads.len().max(1) {
                    for op in [Op::Send, Op::Start(i), Op::Deliver(i), Op::Finish(i)] {
                        self.step(op);
                        self.check()?;
                    }
                }
                let after =
                    (self.counts, self.channel.len(), self.unsent.len(), self.threads.clone());
                if before == after {
                    return Ok(());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// Whatever the order of events, the counts keep the invariants of DESIGN.md, and
        /// once the pool settles no message is stranded while a thread could take it.
        #[test]
        fn the_pool_model_keeps_its_invariants(ops in proptest::collection::vec(op(), 0..300)) {
            let mut model = Model::new();
            model.check()?;
            for op in ops {
                model.step(op);
                model.check()?;
            }
            model.settle()?;
            let c = model.counts;
            // Settled: every message found a thread, unless no thread is left at all (a
            // failed spawn stranded a job; the next submission gives it a thread).
            prop_assert!(model.channel.is_empty() || c.threads == 0, "{:?}", model);
            prop_assert!(model.threads.iter().all(|&t| t != Thread::Busy));
            if model.channel.is_empty() {
                prop_assert_eq!(c.queued, 0);
            }
            if c.shutdown {
                prop_assert_eq!(c.idle, 0);
            }
        }
    }
}
