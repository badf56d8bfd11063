//! The memory budget: one bound on what all unfinished requests together hold in memory.
//!
//! A peer that sends only valid records can still open thousands of requests and send each a
//! little of its params and body without ever ending them. Per-request limits do not bound
//! that; this does. Every byte a request holds on the server's behalf (a fixed cost per open
//! request, its params while they arrive, its body while it sits in memory) is a [`Charge`]
//! against one [`Budget`], taken before the bytes are kept and given back when they go.
//! Where the budget says no, a body goes to its spool file instead, and a new request is
//! answered `503`.
//!
//! Bodies may fill only [`BODY_SHARE`] of the budget: a peer that sends large bodies it never
//! ends pushes later bodies to disk, but cannot leave other peers' new requests without room.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What one open request costs before it holds any body: its slot, its spools' state, its
/// shared flags (about 1 KiB), and its first [`PARAMS_INCLUDED`] bytes of params. Charged so
/// that requests that never send a byte are bounded too, and charged once, so that a usual
/// request touches the shared count twice in all (when it begins, and when it is done).
pub(crate) const REQUEST_COST: usize = 1024 + PARAMS_INCLUDED;

/// Params bytes that [`REQUEST_COST`] pays for: nginx's `fastcgi_params` with a URI and a
/// few headers come to about 1 KiB.
pub(crate) const PARAMS_INCLUDED: usize = 3 * 1024;

/// The part of the budget that bodies in memory may fill, in quarters: the last quarter is
/// kept for params and new requests.
pub(crate) const BODY_SHARE: usize = 3;

/// A byte count shared by every connection of a server.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget { limit, used: AtomicUsize::new(0) })
    }

    /// Takes `bytes` if the total stays within `ceiling`, all or nothing.
    fn try_take(&self, bytes: usize, ceiling: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|next| *next <= ceiling) else {
                return false;
            };
            match self.used.compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes held against a [`Budget`], given back when the charge drops (or shrinks).
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Charge {
    /// An empty charge against `budget`.
    pub(crate) fn new(budget: &Arc<Budget>) -> Charge {
        Charge { budget: Arc::clone(budget), bytes: 0 }
    }

    /// Adds `bytes` to the charge if the budget has them; returns whether it did.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        self.grow_within(bytes, self.budget.limit)
    }

    /// [`grow`](Charge::grow) for a body kept in memory: only within the bodies' share.
    pub(crate) fn grow_body(&mut self, bytes: usize) -> bool {
        self.grow_within(bytes, self.budget.limit / 4 * BODY_SHARE)
    }

    fn grow_within(&mut self, bytes: usize, ceiling: usize) -> bool {
        let taken = self.budget.try_take(bytes, ceiling);
        if taken {
            self.bytes += bytes;
        }
        taken
    }

    /// Gives `bytes` of the charge back (no more than it holds).
    pub(crate) fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        if bytes > 0 {
            self.bytes -= bytes;
            self.budget.give(bytes);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.shrink(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_take_what_fits_and_give_it_back_when_dropped() {
        let budget = Budget::new(100);
        let mut a = Charge::new(&budget);
        let mut b = Charge::new(&budget);
        assert!(a.grow(60));
        assert!(!b.grow(41), "all or nothing: 41 does not fit in the 40 left");
        assert!(b.grow(40));
        assert_eq!(budget.used(), 100);
        a.shrink(1000);
        assert_eq!(budget.used(), 40, "a shrink gives back at most what the charge holds");
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(!Charge::new(&budget).grow(usize::MAX), "no overflow");
    }

    #[test]
    fn bodies_leave_a_quarter_for_requests() {
        let budget = Budget::new(400);
        let mut body = Charge::new(&budget);
        assert!(body.grow_body(300));
        assert!(!body.grow_body(1), "bodies fill three quarters at most");
        let mut request = Charge::new(&budget);
        assert!(request.grow(100), "the last quarter is for requests");
        assert!(!request.grow(1));
    }
}
