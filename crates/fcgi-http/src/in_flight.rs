//! The bound on a service's requests in flight: a count, and a permit per request that gives
//! its place back when dropped, on whatever thread the request ends.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Places for requests in flight; a thread that finds none waits for one.
///
/// A place is taken and given back with one atomic operation each: the lock and the condition
/// variable are for the threads that wait, and a place given back wakes one only when some
/// wait (a notify costs a system call whether or not anyone waits).
pub(crate) struct InFlight {
    taken: AtomicUsize,
    /// Threads waiting for a place; changed only under `lock`.
    waiting: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
    limit: usize,
}

impl InFlight {
    pub(crate) fn new(limit: usize) -> InFlight {
        InFlight {
            taken: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a place if one is free.
    fn try_take(&self) -> bool {
        let mut taken = self.taken.load(SeqCst);
        while taken < self.limit {
            match self.taken.compare_exchange_weak(taken, taken + 1, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => taken = now,
            }
        }
        false
    }

    /// A place, once one is free: waits (on the pool thread) while all are taken, so that
    /// requests past the limit stay in fcgi-server's bounded queue.
    pub(crate) fn acquire(self: &Arc<Self>) -> Permit {
        if !self.try_take() {
            let mut guard = self.lock();
            // Counted before the last look: a place given back after it sees the count, and
            // wakes this thread (under the lock, so not before it waits).
            self.waiting.fetch_add(1, SeqCst);
            while !self.try_take() {
                guard = self.freed.wait(guard).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            self.waiting.fetch_sub(1, SeqCst);
        }
        Permit(Arc::clone(self))
    }

    fn give_back(&self) {
        self.taken.fetch_sub(1, SeqCst);
        if self.waiting.load(SeqCst) > 0 {
            let _guard = self.lock();
            self.freed.notify_one();
        }
    }

    #[cfg(test)]
    fn taken(&self) -> usize {
        self.taken.load(SeqCst)
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("taken", &self.taken.load(SeqCst))
            .field("limit", &self.limit)
            .finish()
    }
}

/// One request's place; given back when dropped.
pub(crate) struct Permit(Arc<InFlight>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_thread_past_the_limit_waits_until_a_place_is_given_back() {
        let places = Arc::new(InFlight::new(2));
        let first = places.acquire();
        let _second = places.acquire();
        let (sender, received) = std::sync::mpsc::channel();
        let waiting = Arc::clone(&places);
        let third = std::thread::spawn(move || {
            let permit = waiting.acquire();
            sender.send(()).expect("the test waits");
            permit
        });
        // Still waiting: both places are taken.
        assert!(received.recv_timeout(Duration::from_millis(50)).is_err());
        drop(first);
        received.recv().expect("the third took the place given back");
        drop(third.join().expect("the thread ends"));
        assert_eq!(places.taken(), 1);
    }
}
