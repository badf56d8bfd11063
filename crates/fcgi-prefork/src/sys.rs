//! Every system call fcgi-prefork makes that std does not, in one place: safe wrappers on
//! rustix, and the `unsafe` blocks the crate has, for what rustix has no safe form of:
//! `fork`, the signal mask and `signalfd`, the scoreboard's shared mapping, a new master's
//! setup between fork and exec, and `kill(2)` with a raw signal number.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, WaitOptions};

pub(crate) use rustix::process::Signal;

/// The two sides of a [`fork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// In the new process.
    Child,
    /// In the process that forked, with the child's pid.
    Parent(i32),
}

/// Forks the process.
///
/// The child has only the calling thread, so a lock that another thread held stays locked in
/// it forever: call it only from a process that has one thread (the master, which starts none
/// and requires that none runs before it), or have the child do nothing that may take a lock
/// (atomic stores and [`exit_now`], as a test does).
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory effects in the parent; in the child, the callers keep to the
    // rule above, so no code runs that needs another thread's lock. rustix has no fork for
    // programs on libc's runtime: libc's fork also runs the atfork handlers that keep libc's
    // own locks (malloc's) usable in the child.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => Ok(Forked::Child),
        pid if pid > 0 => Ok(Forked::Parent(pid)),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Ends the process at once, without running exit handlers nor flushing std's buffers: for a
/// forked child of a test harness, whose handlers are the parent's business.
#[cfg(test)]
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Sends `signal` to `target`, as `kill(2)` names it: a process, or the process group whose
/// id is `-target`. A failure is not reported: `ESRCH` means the target exited meanwhile,
/// which the reaping loop sees anyway; `EPERM` (a member of an orphan's group that runs as
/// another user) leaves the master nothing else to try; `EINVAL` cannot happen with a rustix
/// `Signal`.
pub(crate) fn kill(target: i32, signal: Signal) {
    let sent = match Pid::from_raw(target.checked_abs().unwrap_or(0)) {
        Some(pid) if target > 0 => rustix::process::kill_process(pid, signal),
        Some(group) if target < -1 => rustix::process::kill_process_group(group, signal),
        // 0 (this process's own group) and -1 (every process it may signal) are never meant:
        // the master's targets are its children and their groups.
        _ => return,
    };
    // Ignored on purpose: see above.
    let _ = sent;
}

/// `kill(pid, signal)` with `kill(2)`'s raw arguments, for the crate's public
/// [`send`](crate::send_signal): any pid (a group as a negative one, 0, -1) and any signal
/// number, real-time ones included, which rustix sends only through an unchecked `Signal`.
/// Its failure (the process is gone) is ignored, as that function documents.
pub(crate) fn kill_raw(pid: i32, signal: i32) {
    // SAFETY: kill(2) takes any numbers and touches no memory; bad ones fail with an error.
    let sent = unsafe { libc::kill(pid, signal) };
    // Ignored on purpose: a process already gone is not an error for the caller.
    let _ = sent;
}

/// This process's process group.
pub(crate) fn process_group() -> i32 {
    rustix::process::getpgrp().as_raw_nonzero().get()
}

/// Makes this process the subreaper of its descendants (Linux 3.4+): the orphans of a dead
/// worker come to it, not to init.
pub(crate) fn become_subreaper() -> io::Result<()> {
    // The kernel takes any non-zero argument as "set"; rustix passes the pid it is given.
    Ok(rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?)
}

/// A child that exited, reaped, with its pid and how it ended; `None` when no child has
/// exited (or there is none: `ECHILD`, or any other failure, ends this round of reaping,
/// and the next turn of the master's loop tries again).
pub(crate) fn reap_any() -> Option<(i32, ExitStatus)> {
    // `wait`, not `waitpid(None, ..)`, which is waitpid(0): only the children in this process
    // group, and a dead worker's programs lead groups of their own.
    match rustix::process::wait(WaitOptions::NOHANG) {
        Ok(Some((pid, status))) => {
            Some((pid.as_raw_nonzero().get(), ExitStatus::from_raw(status.as_raw())))
        }
        Ok(None) | Err(_) => None,
    }
}

/// Waits for the child `pid` to exit, and reaps it.
#[cfg(test)]
pub(crate) fn wait_for(pid: i32) -> io::Result<ExitStatus> {
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    match rustix::process::waitpid(Some(pid), WaitOptions::empty())? {
        Some((_, status)) => Ok(ExitStatus::from_raw(status.as_raw())),
        None => Err(io::Error::from(io::ErrorKind::WouldBlock)),
    }
}

/// Waits at most `timeout` for any of `fds` to be readable (or closed, or in error). An error
/// of poll itself (`ENOMEM`, `EINTR`) only ends the wait early: the master's loop looks at
/// everything after each wait anyway, and waits again.
pub(crate) fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Duration) {
    let mut polled: Vec<PollFd<'_>> =
        fds.iter().map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN)).collect();
    let timeout = Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // Ignored on purpose: see above.
    let _ = rustix::event::poll(&mut polled, Some(&timeout));
}

/// A pipe, both ends close-on-exec: the read end non-blocking (the master polls it), the write
/// end blocking (a worker's report waits for room rather than being lost).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&read, true)?;
    Ok((read, write))
}

/// `CLOCK_MONOTONIC` now, the clock systemd compares `MONOTONIC_USEC` with.
pub(crate) fn monotonic_now() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(now.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// A set of signals, as the signal mask and `signalfd` take it.
#[derive(Clone, Copy)]
pub(crate) struct SignalSet(libc::sigset_t);

impl std::fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalSet").finish_non_exhaustive()
    }
}

impl SignalSet {
    /// The set of `signals`.
    pub(crate) fn of(signals: &[Signal]) -> SignalSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given, and cannot fail on a valid
        // pointer.
        let mut set = SignalSet(unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            set.assume_init()
        });
        for &signal in signals {
            set.set(signal, true);
        }
        set
    }

    /// Adds `signal` to the set, or removes it.
    pub(crate) fn set(&mut self, signal: Signal, member: bool) {
        // SAFETY: the set is initialised; the calls only write it. Their one failure, EINVAL
        // for a number that is no signal, cannot happen with a rustix `Signal`.
        unsafe {
            if member {
                libc::sigaddset(&mut self.0, signal.as_raw());
            } else {
                libc::sigdelset(&mut self.0, signal.as_raw());
            }
        }
    }
}

/// Blocks `signals` for the calling thread; returns the mask it had before.
pub(crate) fn block_signals(signals: &SignalSet) -> io::Result<SignalSet> {
    let mut old = SignalSet::of(&[]);
    // SAFETY: both sets are initialised and ours; pthread_sigmask reads one and writes the
    // other. rustix's sigprocmask is unsafe too, and for programs without libc's runtime.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &signals.0, &mut old.0) };
    match rc {
        0 => Ok(old),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Sets the calling thread's signal mask to `mask`.
///
/// It only makes the `rt_sigprocmask` system call, touching no lock and allocating nothing
/// (its error is a bare number), so a forked child may call it before exec.
pub(crate) fn set_signal_mask(mask: &SignalSet) -> io::Result<()> {
    // SAFETY: `mask` is an initialised set; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut()) };
    match rc {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// The size of one record read from a `signalfd`, whose first field (`ssi_signo`) is the
/// signal's number, a `u32` in native order.
pub(crate) const SIGNALFD_RECORD: usize = size_of::<libc::signalfd_siginfo>();

/// A new `signalfd` for `signals` (which must be blocked to arrive on it), close-on-exec and
/// non-blocking.
pub(crate) fn signalfd(signals: &SignalSet) -> io::Result<OwnedFd> {
    // SAFETY: the set is initialised and only read; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &signals.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd just made this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clears the close-on-exec flag of the descriptor numbered `fd`: how it crosses `exec`.
///
/// It takes a number, not a borrowed descriptor, because the listeners it is for show only
/// their number (`AsRawFd`); rustix needs a `BorrowedFd`, whose promise that the descriptor
/// stays open cannot be checked here.
fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_GETFD/F_SETFD takes any number and touches no memory: on an open
    // descriptor it reads or sets one flag, on anything else it fails with EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts `command` with the descriptors numbered `inherit` open across its exec (their
/// close-on-exec flag cleared in the child only, so the parent's own copies stay
/// close-on-exec) and, when given, `mask` as its signal mask. The caller keeps them open
/// until this returns; one that is not fails the start.
pub(crate) fn spawn_inheriting(
    command: &mut Command,
    inherit: Vec<RawFd>,
    mask: Option<SignalSet>,
) -> io::Result<Child> {
    let child = move || -> io::Result<()> {
        for &fd in &inherit {
            clear_cloexec(fd)?;
        }
        if let Some(mask) = &mask {
            set_signal_mask(mask)?;
        }
        Ok(())
    };
    // SAFETY: between fork and exec the closure makes only system calls (fcntl, and
    // rt_sigprocmask through pthread_sigmask) on values prepared before the fork, and
    // allocates nothing itself: its errors are bare OS error numbers.
    unsafe {
        command.pre_exec(child);
    }
    command.spawn()
}

/// Memory shared with every process forked after it is made: `len` zeroed atomic words, in
/// one anonymous `MAP_SHARED` mapping, unmapped when dropped.
#[derive(Debug)]
pub(crate) struct SharedWords {
    base: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: the words are only ever accessed as atomics, from any thread.
unsafe impl Send for SharedWords {}
// SAFETY: as above.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// A new mapping of `len` words, all zero.
    pub(crate) fn new(len: usize) -> io::Result<SharedWords> {
        let bytes = len
            .checked_mul(size_of::<AtomicU64>())
            .filter(|&bytes| bytes > 0)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
        // SAFETY: an anonymous mapping at an address the kernel picks: it overlaps nothing
        // this process uses.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                bytes,
                prot,
                rustix::mm::MapFlags::SHARED,
            )?
        };
        // A successful mmap never returns null.
        let base = NonNull::new(base.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))?;
        Ok(SharedWords { base, len })
    }

    /// The words.
    pub(crate) fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping holds `len` words, page-aligned, zero-filled by the kernel (and
        // zero is a valid AtomicU64), and lives as long as `self`; every access to it is
        // atomic, so sharing it with other threads and processes is defined.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by mmap with this length and is unmapped once, here;
        // no reference from `words` outlives `self`.
        let unmapped = unsafe {
            rustix::mm::munmap(self.base.as_ptr().cast(), self.len * size_of::<AtomicU64>())
        };
        // Ignored on purpose: munmap fails only for arguments that are not a mapping, which
        // these are; a drop has nobody to tell.
        let _ = unmapped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::sync::atomic::Ordering;

    /// Whether `fd` is open with its close-on-exec flag set.
    fn is_cloexec(fd: impl AsFd) -> io::Result<bool> {
        Ok(rustix::io::fcntl_getfd(fd)?.contains(rustix::io::FdFlags::CLOEXEC))
    }

    #[test]
    fn pipes_are_close_on_exec_and_only_their_read_end_does_not_block() {
        let (read, write) = pipe().expect("a pipe");
        assert!(is_cloexec(&read).expect("open") && is_cloexec(&write).expect("open"));
        let mut read = std::fs::File::from(read);
        let err = read.read(&mut [0; 1]).expect_err("nothing to read");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let getfl = |fd: &dyn AsFd| rustix::fs::fcntl_getfl(fd.as_fd()).expect("flags");
        assert!(!getfl(&write).contains(rustix::fs::OFlags::NONBLOCK), "the write end blocks");
        std::fs::File::from(write).write_all(b"x").expect("write");
        poll_readable(&[read.as_fd()], Duration::from_secs(5));
        assert_eq!(read.read(&mut [0; 1]).expect("a byte"), 1);
    }

    #[test]
    fn shared_words_start_at_zero_and_are_writable() {
        let map = SharedWords::new(3).expect("mmap");
        assert_eq!(map.words().len(), 3);
        assert!(map.words().iter().all(|w| w.load(Ordering::Relaxed) == 0));
        map.words()[2].store(7, Ordering::Relaxed);
        assert_eq!(map.words()[2].load(Ordering::Relaxed), 7);
        assert!(SharedWords::new(0).is_err(), "an empty mapping is refused");
    }

    #[test]
    fn the_clock_and_the_process_group_are_read() {
        let a = monotonic_now();
        assert!(a > Duration::ZERO && monotonic_now() >= a);
        assert!(process_group() > 0);
    }
}
