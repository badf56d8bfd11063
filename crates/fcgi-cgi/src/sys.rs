//! Every system call fcgi-cgi makes that std does not, in one place: safe wrappers on rustix,
//! the `unsafe` block that prepares a program's process between fork and exec, and the one
//! call rustix has no safe form of (marking an inherited descriptor close-on-exec by number).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::Pid;

pub(crate) use rustix::io::Errno;
pub use rustix::process::Signal;

/// Makes `fd` non-blocking.
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, true)?)
}

/// Asks for a pipe buffer of `size` bytes for the pipe `fd` is an end of; returns the size
/// the kernel gave.
pub(crate) fn set_pipe_size(fd: impl AsFd, size: usize) -> io::Result<usize> {
    Ok(rustix::pipe::fcntl_setpipe_size(fd, size)?)
}

/// Sends `signal` to the process group `pgid` leads; an error (the group is gone) is ignored.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
    if let Some(pgid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pgid, signal);
    }
}

/// Marks the descriptor numbered `fd` close-on-exec; returns whether it was not already.
/// A number that is no open descriptor (closed meanwhile) fails, and returns false.
///
/// It takes a number, not a borrowed descriptor, because it is for descriptors nothing in this
/// process owns (inherited ones, found in `/proc/self/fd`), which may close under it; rustix
/// needs a `BorrowedFd`, whose promise that the descriptor stays open cannot be kept here.
pub(crate) fn mark_close_on_exec(fd: RawFd) -> bool {
    // SAFETY: fcntl F_GETFD/F_SETFD takes any number and touches no memory: on an open
    // descriptor it reads or sets one flag, on anything else it fails with EBADF.
    #[allow(unsafe_code)]
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || flags & libc::FD_CLOEXEC != 0 {
            return false;
        }
        libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
    }
    true
}

/// A wait as poll(2) counts it: whole milliseconds, truncated, except that a wait under one
/// millisecond is one, not zero, so that a caller waiting for a nearer deadline does not spin.
fn timespec(wait: Duration) -> Timespec {
    let mut ms = wait.as_millis();
    if ms == 0 && !wait.is_zero() {
        ms = 1;
    }
    let wait = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
    Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: i64::from(wait.subsec_nanos()) }
}

/// Waits at most `wait` for the pipe `fd` to have room to write (or an error to learn by
/// writing). Errors (EINTR) are ignored: the caller comes round again.
pub(crate) fn wait_writable(fd: BorrowedFd<'_>, wait: Duration) {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
    let _ = rustix::event::poll(&mut fds, Some(&timespec(wait)));
}

/// Waits at most `wait` for either of two pipes to be readable (input, the end of the stream,
/// or an error to read), and says which are. `None` is a pipe already closed: it is not
/// polled, and never ready. EINTR is an error of kind `Interrupted`.
pub(crate) fn poll_readable(
    pipes: [Option<BorrowedFd<'_>>; 2],
    wait: Duration,
) -> io::Result<[bool; 2]> {
    let wait = timespec(wait);
    let watch = |fd| PollFd::from_borrowed_fd(fd, PollFlags::IN);
    let readable =
        |fd: &PollFd<'_>| fd.revents().intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
    Ok(match pipes {
        [Some(first), Some(second)] => {
            let mut fds = [watch(first), watch(second)];
            rustix::event::poll(&mut fds, Some(&wait))?;
            [readable(&fds[0]), readable(&fds[1])]
        }
        [Some(fd), None] | [None, Some(fd)] => {
            let mut fds = [watch(fd)];
            rustix::event::poll(&mut fds, Some(&wait))?;
            let ready = readable(&fds[0]);
            [ready && pipes[0].is_some(), ready && pipes[1].is_some()]
        }
        [None, None] => {
            rustix::event::poll(&mut [], Some(&wait))?;
            [false, false]
        }
    })
}

/// In a child between fork and exec: SIGKILL when the thread that forked it ends
/// (`PR_SET_PDEATHSIG`), and ESRCH if `parent` is gone already. Async-signal-safe: system calls
/// only, and errors that are bare OS error numbers.
pub fn tie_to_parent(parent: Pid) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    // The parent died between the fork and the line above: nobody would send the signal.
    if rustix::process::getppid() != Some(parent) {
        return Err(Errno::SRCH.into());
    }
    Ok(())
}

/// Has `command`'s process [tied to this one](tie_to_parent).
pub(crate) fn die_with_parent(command: &mut Command) {
    let parent = rustix::process::getpid();
    let child = move || tie_to_parent(parent);
    // SAFETY: between fork and exec the closure makes only system calls (prctl, getppid) and
    // allocates nothing: its errors are bare OS error numbers.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::{AsRawFd, OwnedFd};

    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
    }

    #[test]
    fn polls_see_which_pipe_is_readable() {
        let (read_a, write_a) = pipe();
        let (read_b, write_b) = pipe();
        let both = [Some(read_a.as_fd()), Some(read_b.as_fd())];
        assert_eq!(poll_readable(both, Duration::ZERO).unwrap(), [false, false]);
        std::fs::File::from(write_b).write_all(b"x").unwrap();
        assert_eq!(poll_readable(both, Duration::from_secs(1)).unwrap(), [false, true]);
        let second_only = [None, Some(read_b.as_fd())];
        assert_eq!(poll_readable(second_only, Duration::ZERO).unwrap(), [false, true]);
        let first_only = [Some(read_a.as_fd()), None];
        assert_eq!(poll_readable(first_only, Duration::ZERO).unwrap(), [false, false]);
        drop(write_a);
        assert_eq!(poll_readable(first_only, Duration::ZERO).unwrap(), [true, false], "hang-up");
        assert_eq!(poll_readable([None, None], Duration::ZERO).unwrap(), [false, false]);
    }

    #[test]
    fn waits_round_as_poll_does() {
        let ms = |t: Timespec| (t.tv_sec, t.tv_nsec);
        assert_eq!(ms(timespec(Duration::ZERO)), (0, 0));
        assert_eq!(ms(timespec(Duration::from_micros(300))), (0, 1_000_000));
        assert_eq!(ms(timespec(Duration::from_micros(49_700))), (0, 49_000_000));
        assert_eq!(ms(timespec(Duration::from_millis(2_500))), (2, 500_000_000));
    }

    #[test]
    fn descriptors_get_their_flags() {
        let (read, write) = pipe();
        assert!(set_pipe_size(&read, 256 * 1024).unwrap() >= 256 * 1024);
        set_nonblocking(&read).unwrap();
        let mut buf = [0; 1];
        let e = rustix::io::read(&read, &mut buf).unwrap_err();
        assert_eq!(e, Errno::AGAIN, "a non-blocking read of an empty pipe");
        wait_writable(write.as_fd(), Duration::from_secs(1));
        let plain = std::fs::File::from(rustix::io::dup(&write).unwrap());
        assert!(mark_close_on_exec(plain.as_raw_fd()), "dup does not copy close-on-exec");
        assert!(!mark_close_on_exec(plain.as_raw_fd()), "marked already");
        assert!(rustix::io::fcntl_getfd(&plain).unwrap().contains(rustix::io::FdFlags::CLOEXEC));
        drop(plain);
        assert!(!mark_close_on_exec(-1), "no descriptor");
    }
}
