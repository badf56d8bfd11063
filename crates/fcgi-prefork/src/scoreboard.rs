//! The scoreboard: memory shared by the master and every worker, so that the status page counts
//! every worker whichever one answers it (PHP-FPM's scoreboard does the same for its
//! processes).
//!
//! One anonymous `MAP_SHARED` mapping, made by the master before it forks any worker, so that
//! every worker inherits the same pages. It holds a slot per worker and one more, slot 0, for
//! the totals of the workers that exited:
//!
//! - each worker writes its own counters ([`fcgi_server::Metrics`]) into the slot the master
//!   gave it, every time its heartbeat thread wakes (20 ms): a page read from another worker
//!   is at most that old for the others' counts, and live for its own;
//! - when a worker exits, the master adds its last counters into slot 0 and frees its slot,
//!   so that totals ("accepted conn", the histogram) never go down across recycling;
//! - a worker answering the status page reads every used slot.
//!
//! Each slot is guarded by a sequence number (a seqlock): the writer makes it odd, writes, and
//! makes it even again; a reader retries while it is odd or changed. Every word is an atomic,
//! so nothing is undefined however processes interleave; the seqlock only keeps a slot's
//! words consistent with each other.

use std::io;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

use fcgi_server::{Metrics, METRICS_WORDS};

use crate::sys::SharedWords;

/// Words per slot: the sequence number, then the metrics.
const SLOT_WORDS: usize = 1 + METRICS_WORDS;
/// How many times a reader retries a slot being written before it takes what it has: a
/// writer holds a slot for a few dozen stores, so a retry or two is the most ever needed.
const READ_RETRIES: usize = 100;

/// The shared mapping; cloned handles in one process share it, and forked children inherit it.
#[derive(Clone, Debug)]
pub(crate) struct Scoreboard {
    map: Arc<SharedWords>,
    slots: usize,
}

impl Scoreboard {
    /// A zeroed board for `workers` workers at once (plus the totals slot).
    pub(crate) fn new(workers: usize) -> io::Result<Scoreboard> {
        let slots = workers + 1;
        let words = slots
            .checked_mul(SLOT_WORDS)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(Scoreboard { map: Arc::new(SharedWords::new(words)?), slots })
    }

    /// Worker slots (slot 0, the totals, not counted).
    pub(crate) fn capacity(&self) -> usize {
        self.slots - 1
    }

    fn word(&self, slot: usize, index: usize) -> &AtomicU64 {
        assert!(slot < self.slots && index < SLOT_WORDS, "scoreboard index out of range");
        &self.map.words()[slot * SLOT_WORDS + index]
    }

    /// Writes `metrics` into `slot` (1 ..= capacity for a worker, 0 for the totals).
    pub(crate) fn write(&self, slot: usize, metrics: &Metrics) {
        let seq = self.word(slot, 0);
        let start = seq.load(Ordering::Relaxed);
        seq.store(start | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, value) in metrics.to_words().into_iter().enumerate() {
            self.word(slot, 1 + i).store(value, Ordering::Relaxed);
        }
        seq.store((start | 1) + 1, Ordering::Release);
    }

    /// What `slot` holds; a slot nobody wrote reads as pid 0.
    pub(crate) fn read(&self, slot: usize) -> Metrics {
        let mut words = [0; METRICS_WORDS];
        for _ in 0..READ_RETRIES {
            let before = self.word(slot, 0).load(Ordering::Acquire);
            for (i, word) in words.iter_mut().enumerate() {
                *word = self.word(slot, 1 + i).load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if before & 1 == 0 && self.word(slot, 0).load(Ordering::Relaxed) == before {
                break;
            }
        }
        Metrics::from_words(&words)
    }

    /// Frees a worker's slot.
    pub(crate) fn clear(&self, slot: usize) {
        self.write(slot, &Metrics::default());
    }

    /// The master, after a worker exited: adds its last counters to the totals and frees its
    /// slot.
    pub(crate) fn retire(&self, slot: usize) {
        let gone = self.read(slot);
        if gone.pid != 0 {
            let mut totals = self.read(0);
            totals.add(&gone.retired());
            self.write(0, &totals);
        }
        self.clear(slot);
    }
}

/// A worker's view of the board, for its status page.
#[derive(Debug)]
pub(crate) struct Peers {
    pub(crate) board: Scoreboard,
    pub(crate) model: &'static str,
}

impl fcgi_server::PeerSource for Peers {
    fn peers(&self) -> (Vec<Metrics>, Metrics) {
        let live = (1..=self.board.capacity())
            .map(|slot| self.board.read(slot))
            .filter(|m| m.pid != 0)
            .collect();
        (live, self.board.read(0))
    }

    fn process_manager(&self) -> &'static str {
        self.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_retired_workers_add_to_the_totals() {
        let board = Scoreboard::new(2).expect("mmap");
        assert_eq!(board.capacity(), 2);
        let worker = Metrics { pid: 10, accepted: 5, active: 2, ..Metrics::default() };
        board.write(1, &worker);
        assert_eq!(board.read(1), worker);
        board.retire(1);
        assert_eq!(board.read(1).pid, 0);
        let totals = board.read(0);
        assert_eq!((totals.accepted, totals.active), (5, 0));
        board.write(2, &Metrics { pid: 11, accepted: 1, ..Metrics::default() });
        board.retire(2);
        assert_eq!(board.read(0).accepted, 6);
    }

    #[test]
    fn a_forked_child_writes_where_the_parent_reads() {
        use crate::sys::{self, Forked};
        let board = Scoreboard::new(1).expect("mmap");
        // The child only writes to the mapping and exits at once: it takes no lock another
        // thread of the test harness may hold.
        match sys::fork().expect("fork") {
            Forked::Child => {
                board.write(1, &Metrics { pid: 99, served: 3, ..Metrics::default() });
                sys::exit_now(0)
            }
            Forked::Parent(pid) => {
                let status = sys::wait_for(pid).expect("the child exits");
                assert!(status.success(), "{status:?}");
            }
        }
        assert_eq!(board.read(1).served, 3);
    }
}
