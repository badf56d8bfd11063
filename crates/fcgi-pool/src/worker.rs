//! The worker thread: starting one, and its body: wait for a message, run the job, account for
//! it, repeat.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{RecvTimeoutError, TryRecvError};

use crate::shared::{Job, Message, Shared};
use crate::source::{Source, Wait};
use crate::state::{self, AfterJob, SelfClaim};
use crate::stats::bump;

/// What a worker thread is, as far as the counts are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Counted in `idle`: waiting for a claim, or for its grace period to run out.
    Idle,
    /// Not counted in `idle`, but owed a message: it was spawned for a job, or it reserved a
    /// queued job. It waits for that message without a deadline: in the source if there is
    /// one (see `idle_in_source`), else on the channel.
    Committed,
    /// Holding a message: running a job, or about to exit.
    Busy,
    /// No longer counted at all: it is leaving.
    Gone,
}

/// Keeps the counts honest whatever happens to the thread: if it ever leaves while still
/// counted (only a bug in this crate could make it; a job's panic is caught before it gets
/// here), the drop puts the counts right. In every case it wakes a waiting `shutdown`.
struct Guard<'a> {
    shared: &'a Shared,
    role: Role,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        match self.role {
            Role::Idle | Role::Committed => self.shared.thread_gone(state::receiver_lost),
            Role::Busy => self.shared.thread_gone(state::thread_left),
            Role::Gone => self.shared.notify_exit(),
        }
    }
}

/// The body of worker thread number `number`, started in `role` (already counted by its
/// spawner).
pub(crate) fn run(shared: &Arc<Shared>, number: u64, role: Role) {
    let completed = shared.totals.completed(number);
    let source = shared.source();
    if let Some(source) = &source {
        source.thread_started();
    }
    let mut me = Guard { shared, role };
    loop {
        // IDLE (counted in `idle`) or COMMITTED (owed a message): wait.
        let message = match me.role {
            // IDLE in the source: work found there is handled on the spot. COMMITTED too: the
            // message it is owed may be taken by another thread (messages are not addressed),
            // and a thread blocked on the channel would then wait, unseen by the source, for
            // the next message.
            Role::Idle | Role::Committed if source.is_some() => {
                match source.as_deref().and_then(|source| idle_in_source(shared, source, &mut me)) {
                    Some(message) => message,
                    None => return,
                }
            }
            // A message already waiting is taken without setting up a timeout.
            Role::Idle => match shared
                .receiver
                .try_recv()
                .or_else(|_| shared.receiver.recv_timeout(shared.idle_grace))
            {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    if retire_if_surplus(&mut me) {
                        return;
                    }
                    // Not surplus. Wait with no deadline: if the idle count grows past
                    // `max_spare` later, the threads that then go idle retire, each with its
                    // own grace period (see DESIGN.md).
                    match shared.receiver.recv() {
                        Ok(message) => message,
                        Err(_) => return,
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            },
            Role::Committed => match shared.receiver.recv() {
                Ok(message) => message,
                Err(_) => return,
            },
            Role::Busy | Role::Gone => return,
        };

        // BUSY: whoever sent the message already took this thread out of `idle` (a claim, or
        // `shutdown`) or it reserved the message itself (a queued job).
        me.role = Role::Busy;
        match message {
            Message::Exit => {
                shared.exits_pending.fetch_sub(1, Ordering::SeqCst);
                me.role = Role::Gone;
                shared.state.apply(|c| (state::thread_left(c), ()));
                return;
            }
            Message::Run(job) => run_job(shared, completed, job),
        }
        // One CAS decides what comes next: the next queued job, IDLE, or exit (shutdown).
        match shared.state.apply(state::after_job) {
            AfterJob::TakeQueued => me.role = Role::Committed,
            AfterJob::Idle => me.role = Role::Idle,
            AfterJob::Exit => {
                me.role = Role::Gone;
                return;
            }
        }
    }
}

/// IDLE or COMMITTED with a source: waits there (and for messages) until a message comes for
/// this thread; work found in the source meanwhile is handled here, counted busy (see
/// `source.rs`). `None`: the thread leaves (its role says how it is counted).
///
/// It never blocks on the channel. Messages are not addressed: a thread that has just gone
/// idle may take the one another thread is owed (one it was claimed for, or a queued job it
/// reserved). The owed thread, waiting here, then takes a later one, or is counted idle again
/// after work of its own; either way every thread that waits, waits in the source, so that
/// the threads counted idle are never more than those there (a server's monitor trusts the
/// count to know whether anyone reads the source).
fn idle_in_source(
    shared: &Arc<Shared>,
    source: &dyn Source,
    me: &mut Guard<'_>,
) -> Option<Message> {
    // An owed thread waits without a deadline: it is not counted idle, so it cannot retire.
    let mut timeout = (me.role == Role::Idle).then_some(shared.idle_grace);
    loop {
        // A message first, handed to this thread or left for any.
        match shared.receiver.try_recv() {
            Ok(message) => {
                // Wakes merge: whoever takes a message passes the others on.
                if !shared.receiver.is_empty() {
                    source.wake();
                }
                return Some(message);
            }
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        match source.wait(timeout) {
            Wait::Woken => {}
            Wait::TimedOut => {
                if me.role == Role::Idle && retire_if_surplus(me) {
                    return None;
                }
                // Not surplus: no deadline from now on (see `run`).
                timeout = None;
            }
            Wait::Work(work) => match shared.state.update(|c| state::claim_self(c, &shared.limits))
            {
                SelfClaim::Claimed { spares, idle } => {
                    // BUSY with work of its own.
                    me.role = Role::Busy;
                    if spares > 0 {
                        spawn_more(shared, 0, spares);
                    }
                    if idle == 0 {
                        source.no_idle();
                    }
                    handle_quietly(shared, source, work, true);
                    match shared.state.apply(state::after_job) {
                        AfterJob::TakeQueued => {
                            // COMMITTED: the reserved job is in the channel or about to be
                            // (its send wakes the source).
                            me.role = Role::Committed;
                            timeout = None;
                        }
                        AfterJob::Idle => {
                            me.role = Role::Idle;
                            timeout = Some(shared.idle_grace);
                        }
                        AfterJob::Exit => {
                            me.role = Role::Gone;
                            return None;
                        }
                    }
                }
                SelfClaim::Owed => {
                    // COMMITTED already: handle it briefly, then look for what it is owed.
                    me.role = Role::Committed;
                    handle_quietly(shared, source, work, false);
                    timeout = None;
                }
            },
        }
    }
}

/// Handles work from the source, catching and counting a panic.
/// An idle thread whose grace period ran out retires if the pool has more than `max_spare`
/// idle threads (one CAS on the state word decides); true if it did.
fn retire_if_surplus(me: &mut Guard<'_>) -> bool {
    let shared = me.shared;
    let limit = shared.limits.max_spare;
    let retired = shared.state.update(|c| {
        let next = state::retire(c, limit);
        (next, next.is_some())
    });
    if retired {
        me.role = Role::Gone;
        bump(&shared.totals.retired);
    }
    retired
}

fn handle_quietly(shared: &Shared, source: &dyn Source, work: u64, may_run: bool) {
    if panic::catch_unwind(AssertUnwindSafe(|| source.handle(work, may_run))).is_err() {
        bump(&shared.totals.panicked);
    }
}

/// Runs one job, catching and counting a panic; after a shutdown deadline, drops it instead.
fn run_job(shared: &Shared, completed: &AtomicU64, job: Job) {
    if shared.abandon.load(Ordering::Relaxed) {
        drop_quietly(job);
        return;
    }
    match panic::catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => bump(completed),
        Err(payload) => {
            bump(&shared.totals.panicked);
            // A panic payload's destructor may panic too; that must not kill the thread.
            drop_quietly(payload);
        }
    }
}

/// Drops a value, catching a panic from its destructor.
pub(crate) fn drop_quietly<T>(value: T) {
    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(value)));
}

/// Starts the threads `admit` counted besides the job's own: `committed` for queued jobs
/// stranded by an earlier failed spawn, then `spares` idle ones. If one fails, it and the
/// rest are uncounted: the pool runs with fewer spares until a later job tops them up.
pub(crate) fn spawn_more(shared: &Arc<Shared>, committed: u64, spares: u64) {
    let roles = (0..committed).map(|_| Role::Committed).chain((0..spares).map(|_| Role::Idle));
    let mut failed = false;
    for role in roles {
        failed = failed || spawn(shared, role).is_err();
        if failed {
            shared.thread_gone(state::receiver_lost);
        }
    }
}

/// Starts one worker thread, already counted in `threads`, in the given role.
pub(crate) fn spawn(shared: &Arc<Shared>, role: Role) -> io::Result<()> {
    #[cfg(test)]
    if !spawn_failures::allowed() {
        return Err(io::Error::other("spawn failure injected by a test"));
    }
    let number = shared.names.fetch_add(1, Ordering::Relaxed) + 1;
    let mut builder = thread::Builder::new().name(format!("fcgi-worker-{number}"));
    if let Some(bytes) = shared.stack_size {
        builder = builder.stack_size(bytes);
    }
    let worker_shared = Arc::clone(shared);
    // Spawning under the lock means that once `shutdown` sees no thread counted, every
    // thread's handle is in the list.
    let mut handles = shared.handles();
    let handle = builder.spawn(move || run(&worker_shared, number, role))?;
    // Reap the handles of threads that retired, so the list stays as long as the pool.
    handles.retain(|handle| !handle.is_finished());
    handles.push(handle);
    drop(handles);
    bump(&shared.totals.spawned);
    Ok(())
}

/// Spawn failures on demand, for the tests of the pool's accounting when the system refuses a
/// thread.
#[cfg(test)]
pub(crate) mod spawn_failures {
    use std::cell::Cell;

    thread_local! {
        /// Spawns this thread may still make before they fail; `None`: no limit. Spawns
        /// happen on the submitting thread, so this injects failures into one test only.
        static SPAWNS_LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// Whether the next spawn on this thread may succeed (and one fewer may, after it).
    pub(super) fn allowed() -> bool {
        SPAWNS_LEFT.with(|left| match left.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                left.set(Some(n - 1));
                true
            }
        })
    }

    /// Lets this thread's next `n` spawns succeed and the ones after fail; `None`: all succeed.
    pub(crate) fn allow_spawns(n: Option<usize>) {
        SPAWNS_LEFT.with(|left| left.set(n));
    }
}
