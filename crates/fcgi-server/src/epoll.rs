//! The system calls of the shared event set, in one place: one epoll set that every waiting
//! thread waits in, and an eventfd to wake one of them.
//!
//! Connections and listeners are registered **one-shot**: an event disarms its socket until the
//! thread that took it re-arms it ([`Epoll::rearm`]), so exactly one thread at a time handles a
//! socket, with no lock held while it waits. Re-arming looks at the socket again: bytes that
//! arrived meanwhile (or were left unread on purpose, for fairness) are reported at once, to
//! whichever thread waits, behind the events already pending.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::{EventfdFlags, Timespec};

/// One event as the kernel reports it, for [`Epoll::wait`] to fill ([`event_of`] reads it).
pub(crate) type RawEvent = epoll::Event;

/// An event slot before the kernel fills it.
pub(crate) const NO_EVENT: RawEvent =
    RawEvent { flags: EventFlags::empty(), data: EventData::new_u64(0) };

/// What a socket is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Bytes to read (or the peer's end).
    Read,
    /// Bytes to read, or room to write answers that are waiting.
    ReadWrite,
    /// Room to write answers that are waiting, and not the bytes to read: a connection whose
    /// web server is sent answers faster than it reads them is not read until they drain.
    /// (A hang-up or an error is reported all the same.)
    Write,
}

/// One event, as the set reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) token: u64,
    pub(crate) writable: bool,
    /// The peer hung up, or the socket failed: read to the end.
    pub(crate) closing: bool,
}

/// Bits of a token that carry an event's flags through [`fcgi_pool::Wait::Work`]: tokens are
/// counted from 0 and never come near them.
const WRITABLE_BIT: u64 = 1 << 62;
const CLOSING_BIT: u64 = 1 << 61;

impl Event {
    /// The event as one number.
    pub(crate) fn pack(self) -> u64 {
        self.token
            | if self.writable { WRITABLE_BIT } else { 0 }
            | if self.closing { CLOSING_BIT } else { 0 }
    }

    pub(crate) fn unpack(work: u64) -> Event {
        Event {
            token: work & !(WRITABLE_BIT | CLOSING_BIT),
            writable: work & WRITABLE_BIT != 0,
            closing: work & CLOSING_BIT != 0,
        }
    }
}

/// An epoll set.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

fn one_shot(interest: Interest) -> EventFlags {
    let read = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
    match interest {
        Interest::Read => read,
        Interest::ReadWrite => read | EventFlags::OUT,
        Interest::Write => EventFlags::OUT | EventFlags::ONESHOT,
    }
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        Ok(Epoll { fd: epoll::create(CreateFlags::CLOEXEC)? })
    }

    /// Watches `fd` for one event.
    pub(crate) fn add(&self, fd: impl AsFd, token: u64, interest: Interest) -> io::Result<()> {
        Ok(epoll::add(&self.fd, fd, EventData::new_u64(token), one_shot(interest))?)
    }

    /// Watches `fd` for its next event, after one was taken.
    pub(crate) fn rearm(&self, fd: impl AsFd, token: u64, interest: Interest) -> io::Result<()> {
        Ok(epoll::modify(&self.fd, fd, EventData::new_u64(token), one_shot(interest))?)
    }

    /// Watches `fd`, an eventfd, for every write to it (edge-triggered, never re-armed).
    pub(crate) fn add_waker(&self, fd: impl AsFd, token: u64) -> io::Result<()> {
        let flags = EventFlags::IN | EventFlags::ET;
        Ok(epoll::add(&self.fd, fd, EventData::new_u64(token), flags)?)
    }

    pub(crate) fn delete(&self, fd: impl AsFd) -> io::Result<()> {
        Ok(epoll::delete(&self.fd, fd)?)
    }

    /// Waits for events, at most `timeout` (`None`: without a limit); fills `events` from the
    /// start and returns how many. Interrupted by a signal: none.
    pub(crate) fn wait(
        &self,
        events: &mut [RawEvent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        // Whole milliseconds, as epoll_wait takes them, rounded up: a wait of 0.3 ms must not
        // be a busy poll; at most i32::MAX of them, which rustix passes on as they are.
        let timeout = timeout.map(|t| {
            let millis = i64::try_from(t.as_micros().div_ceil(1000))
                .unwrap_or(i64::MAX)
                .min(i64::from(i32::MAX));
            Timespec { tv_sec: millis / 1000, tv_nsec: millis % 1000 * 1_000_000 }
        });
        match epoll::wait(&self.fd, &mut *events, timeout.as_ref()) {
            Ok(n) => Ok(n),
            Err(rustix::io::Errno::INTR) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

/// What an event from [`Epoll::wait`] says.
pub(crate) fn event_of(raw: &RawEvent) -> Event {
    // By value: the kernel's struct is packed, its fields are not to be borrowed.
    let (flags, data) = (raw.flags, raw.data);
    let closing = EventFlags::RDHUP | EventFlags::HUP | EventFlags::ERR;
    Event {
        token: data.u64(),
        writable: flags.contains(EventFlags::OUT),
        closing: flags.intersects(closing),
    }
}

/// An eventfd: writing it wakes one thread waiting in the set it is registered in.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        let flags = EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC;
        Ok(EventFd { fd: rustix::event::eventfd(0, flags)? })
    }

    /// Wakes a waiter. The counter is never read: the set is edge-triggered, every write is an
    /// edge, and a counter that would overflow (after 2^64 writes) is reset.
    pub(crate) fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        if rustix::io::write(&self.fd, &one).is_err() {
            // The counter is full: reading resets it, and the write after it wakes. Both
            // results are ignored on purpose: a waker has no one to report to, and a wake
            // lost here only delays a waiter until its timeout.
            let mut count = [0u8; 8];
            let _ = rustix::io::read(&self.fd, &mut count);
            let _ = rustix::io::write(&self.fd, &one);
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_travel_as_one_number() {
        for token in [0, 1, 7, 1 << 40] {
            for (writable, closing) in [(false, false), (true, false), (false, true), (true, true)]
            {
                let event = Event { token, writable, closing };
                assert_eq!(Event::unpack(event.pack()), event);
            }
        }
    }

    #[test]
    fn a_one_shot_socket_reports_once_until_rearmed() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let epoll = Epoll::new().unwrap();
        epoll.add(&b, 9, Interest::Read).unwrap();
        let mut events = [NO_EVENT; 4];
        std::io::Write::write_all(&mut &a, b"x").unwrap();
        assert_eq!(epoll.wait(&mut events, Some(Duration::from_secs(5))).unwrap(), 1);
        assert_eq!(event_of(&events[0]).token, 9);
        // Still readable, but disarmed.
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        // Re-arming reports the byte left unread.
        epoll.rearm(&b, 9, Interest::Read).unwrap();
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
    }

    #[test]
    fn every_wake_is_an_edge() {
        let epoll = Epoll::new().unwrap();
        let waker = EventFd::new().unwrap();
        epoll.add_waker(&waker, 0).unwrap();
        let mut events = [NO_EVENT; 4];
        for _ in 0..3 {
            waker.wake();
            assert_eq!(epoll.wait(&mut events, Some(Duration::from_secs(5))).unwrap(), 1);
            assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        }
    }
}
