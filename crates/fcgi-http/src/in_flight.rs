//! The bound on a service's requests in flight: a count, and a permit per request that gives
//! its place back when dropped, on whatever thread the request ends.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Places for requests in flight; a thread that finds none waits for one.
pub(crate) struct InFlight {
    taken: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

impl InFlight {
    pub(crate) fn new(limit: usize) -> InFlight {
        InFlight { taken: Mutex::new(0), freed: Condvar::new(), limit }
    }

    fn taken(&self) -> MutexGuard<'_, usize> {
        self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place, once one is free: waits (on the pool thread) while all are taken, so that
    /// requests past the limit stay in fcgi-server's bounded queue.
    pub(crate) fn acquire(self: &Arc<Self>) -> Permit {
        let mut taken = self.taken();
        while *taken >= self.limit {
            taken = self.freed.wait(taken).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *taken += 1;
        Permit(Arc::clone(self))
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("taken", &*self.taken())
            .field("limit", &self.limit)
            .finish()
    }
}

/// One request's place; given back when dropped.
pub(crate) struct Permit(Arc<InFlight>);

impl Drop for Permit {
    fn drop(&mut self) {
        let mut taken = self.0.taken();
        *taken -= 1;
        drop(taken);
        self.0.freed.notify_one();
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
        assert_eq!(*places.taken(), 1);
    }
}
