//! The mailbox between submitters and workers: a FIFO of messages, the idle workers parked on
//! it, and at most a few workers spinning for the next message.
//!
//! The messages travel in a crossbeam channel; waiting does not. A channel's blocking receive
//! wakes a sleeping receiver for every message, even when another receiver is spinning and
//! takes the message first. Measured on 2 cores with 32 kept connections, that was every
//! request: a futex wake, a context switch, and five `sched_yield`s of a thread that then went
//! back to sleep empty-handed. Parking at once instead, with no spinning at all, was worse
//! still (more sleeps, more wake-ups: about 30 % fewer requests per second).
//!
//! So, as Go's scheduler does with its spinning threads: a worker that finds no message spins
//! briefly (a short busy-wait, then a few yields), but only while fewer than `max_spinning`
//! others do; a sender wakes a parked worker only when nobody spins. A spinner that takes a
//! message and sees more behind it wakes a parked worker for them, so no message waits behind
//! a running job.
//!
//! Waking the most recently parked worker (a stack, not a queue) keeps the same few threads
//! warm under light load, so the others reach their idle grace and retire.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::pool::Message;

/// Busy-wait rounds (1, 2, 4, ... 64 spin hints), then yields, before a spinner parks: the
/// schedule of crossbeam's own `Backoff::snooze`, which measured best of the variations tried.
const SPIN_ROUNDS: u32 = 7;
const YIELD_ROUNDS: u32 = 4;

/// One thread's place in the list of parked workers.
#[derive(Debug)]
pub(crate) struct Waiter {
    thread: Thread,
    /// Set, under the mailbox's lock, when a sender took this waiter off the list; cleared,
    /// under the same lock, when the thread parks again. So `true` means "not on the list".
    woken: AtomicBool,
}

impl Waiter {
    /// A waiter for the calling thread.
    pub(crate) fn current() -> Arc<Waiter> {
        Arc::new(Waiter { thread: thread::current(), woken: AtomicBool::new(false) })
    }
}

#[derive(Default)]
struct Parked {
    /// Waiters to wake, the most recently parked last.
    waiters: Vec<Arc<Waiter>>,
    /// No message will come any more: the pool is gone.
    closed: bool,
}

/// Messages for workers, and the workers waiting for them.
pub(crate) struct Mailbox {
    sender: Sender<Message>,
    receiver: Receiver<Message>,
    parked: Mutex<Parked>,
    /// Workers looking for a message without sleeping (or about to stop looking).
    spinning: AtomicUsize,
    max_spinning: usize,
}

impl Mailbox {
    /// A mailbox over a channel the caller made (bounded so that it never fills). At most
    /// `max_spinning` workers spin at a time.
    pub(crate) fn new(
        (sender, receiver): (Sender<Message>, Receiver<Message>),
        max_spinning: usize,
    ) -> Mailbox {
        Mailbox {
            sender,
            receiver,
            parked: Mutex::new(Parked::default()),
            spinning: AtomicUsize::new(0),
            max_spinning,
        }
    }

    /// Half the processors, at least one: more spinners than that only take processor time
    /// from the threads that produce the messages (Go's rule for its spinning threads).
    pub(crate) fn default_spinners() -> usize {
        thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    }

    fn parked(&self) -> MutexGuard<'_, Parked> {
        // The list holds no invariant a panic could break.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Posts `message`, and wakes a parked worker unless one is spinning.
    pub(crate) fn send(&self, message: Message) {
        // Cannot fail: the mailbox holds a receiver. Cannot block: the channel never fills.
        let _ = self.sender.send(message);
        // Pairs with the fence in `recv`: either this sees the spinner, or the spinner, having
        // stopped, sees the message.
        fence(Ordering::SeqCst);
        if self.spinning.load(Ordering::SeqCst) == 0 {
            self.wake_one();
        }
    }

    /// Wakes the most recently parked worker, if any.
    fn wake_one(&self) {
        let waiter = {
            let mut parked = self.parked();
            let waiter = parked.waiters.pop();
            if let Some(waiter) = &waiter {
                waiter.woken.store(true, Ordering::SeqCst);
            }
            waiter
        };
        if let Some(waiter) = waiter {
            waiter.thread.unpark();
        }
    }

    /// Takes the next message, spinning a little, then parking the calling thread (whose
    /// waiter `me` is) until one comes, or until `deadline`. Fails with `Timeout` at the
    /// deadline, having taken nothing, and with `Disconnected` once the mailbox is closed and
    /// empty.
    pub(crate) fn recv(
        &self,
        me: &Arc<Waiter>,
        deadline: Option<Instant>,
    ) -> Result<Message, RecvTimeoutError> {
        loop {
            if self.spinning.fetch_add(1, Ordering::SeqCst) < self.max_spinning {
                let taken = self.spin();
                self.spinning.fetch_sub(1, Ordering::SeqCst);
                // Pairs with the fence in `send` (see there).
                fence(Ordering::SeqCst);
                if let Some(message) = taken {
                    // Senders that saw this thread spinning woke nobody for what is left.
                    if !self.receiver.is_empty() {
                        self.wake_one();
                    }
                    return Ok(message);
                }
            } else {
                // Too many spin already. A sender that saw this thread counted for a moment
                // woke nobody: the check under the lock below finds its message.
                self.spinning.fetch_sub(1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
            }
            {
                let mut parked = self.parked();
                // Checked under the lock: a sender that comes after finds this thread listed.
                if let Ok(message) = self.receiver.try_recv() {
                    return Ok(message);
                }
                if parked.closed {
                    return Err(RecvTimeoutError::Disconnected);
                }
                me.woken.store(false, Ordering::SeqCst);
                parked.waiters.push(Arc::clone(me));
            }
            // Park until a sender takes this thread off the list. `park` may also return for an
            // unpark meant for an earlier round, or for no reason: only the flag counts.
            while !me.woken.load(Ordering::SeqCst) {
                match deadline {
                    None => thread::park(),
                    Some(deadline) => {
                        let now = Instant::now();
                        if now < deadline {
                            thread::park_timeout(deadline - now);
                            continue;
                        }
                        let mut parked = self.parked();
                        if me.woken.load(Ordering::SeqCst) {
                            // A sender took this thread off the list just now: look for its
                            // message, as if woken.
                            break;
                        }
                        parked.waiters.retain(|waiter| !Arc::ptr_eq(waiter, me));
                        return Err(RecvTimeoutError::Timeout);
                    }
                }
            }
        }
    }

    /// Looks for a message for a short while without sleeping.
    fn spin(&self) -> Option<Message> {
        for round in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            if let Ok(message) = self.receiver.try_recv() {
                return Some(message);
            }
            if round < SPIN_ROUNDS {
                for _ in 0..1u32 << round {
                    std::hint::spin_loop();
                }
            } else {
                thread::yield_now();
            }
        }
        None
    }

    /// Wakes every parked worker for good: once the channel is empty, `recv` fails with
    /// `Disconnected`. Called when the pool is dropped, for threads that still wait.
    pub(crate) fn close(&self) {
        let waiters = {
            let mut parked = self.parked();
            parked.closed = true;
            std::mem::take(&mut parked.waiters)
        };
        for waiter in waiters {
            waiter.woken.store(true, Ordering::SeqCst);
            waiter.thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn mailbox(max_spinning: usize) -> Arc<Mailbox> {
        Arc::new(Mailbox::new(crossbeam_channel::bounded(16), max_spinning))
    }

    #[test]
    fn a_parked_thread_is_woken_by_a_send() {
        let mailbox = mailbox(1);
        let receiver = {
            let mailbox = Arc::clone(&mailbox);
            thread::spawn(move || mailbox.recv(&Waiter::current(), None).is_ok())
        };
        thread::sleep(Duration::from_millis(50));
        mailbox.send(Message::Exit);
        assert!(receiver.join().unwrap());
    }

    #[test]
    fn a_deadline_passes_with_nothing_taken_and_leaves_the_list_clean() {
        let mailbox = mailbox(1);
        let me = Waiter::current();
        let started = Instant::now();
        let result = mailbox.recv(&me, Some(started + Duration::from_millis(30)));
        assert!(matches!(result, Err(RecvTimeoutError::Timeout)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(mailbox.parked().waiters.is_empty());
        assert_eq!(mailbox.spinning.load(Ordering::SeqCst), 0);
        // A later message is still there for the next receive.
        mailbox.send(Message::Exit);
        assert!(mailbox.recv(&me, Some(Instant::now())).is_ok());
    }

    #[test]
    fn close_releases_every_parked_thread() {
        let mailbox = mailbox(1);
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let mailbox = Arc::clone(&mailbox);
                thread::spawn(move || mailbox.recv(&Waiter::current(), None))
            })
            .collect();
        thread::sleep(Duration::from_millis(50));
        mailbox.close();
        for receiver in receivers {
            assert!(matches!(receiver.join().unwrap(), Err(RecvTimeoutError::Disconnected)));
        }
    }

    /// Every message reaches exactly one receiver, and none is left waiting while receivers
    /// sleep, whether senders find spinners or not.
    fn every_message_is_taken_once(max_spinning: usize, pause_every: u32) {
        let mailbox = mailbox(max_spinning);
        let (done, results) = crossbeam_channel::unbounded();
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let (mailbox, done) = (Arc::clone(&mailbox), done.clone());
                thread::spawn(move || {
                    let me = Waiter::current();
                    let mut taken = 0;
                    while mailbox.recv(&me, None).is_ok() {
                        taken += 1;
                        done.send(()).unwrap();
                    }
                    taken
                })
            })
            .collect();
        for sent in 1..=20_000 {
            mailbox.send(Message::Exit);
            if sent % pause_every == 0 {
                // Let the receivers run dry and park, so the next sends must wake them.
                for _ in 0..pause_every {
                    results.recv_timeout(Duration::from_secs(10)).expect("a message was stranded");
                }
            }
        }
        for _ in 0..20_000 % pause_every {
            results.recv_timeout(Duration::from_secs(10)).expect("a message was stranded");
        }
        mailbox.close();
        let taken: u32 = receivers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(taken, 20_000);
    }

    #[test]
    fn no_message_is_lost_or_stranded_with_one_spinner() {
        every_message_is_taken_once(1, 7);
    }

    #[test]
    fn no_message_is_lost_or_stranded_with_every_receiver_spinning() {
        every_message_is_taken_once(4, 3);
    }

    #[test]
    fn no_message_is_lost_or_stranded_with_no_spinner() {
        every_message_is_taken_once(0, 5);
    }
}
