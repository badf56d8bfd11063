//! Every `unsafe` block and every libc call of fcgi-server, in one place, and the small
//! socket and descriptor calls several modules share. The rest call rustix directly where one
//! safe call does it: the event set (`epoll.rs`), the hand-off socket's `SCM_RIGHTS` messages
//! (`handoff.rs`), an accepted stream's writes (`listener/stream.rs`), the wait for room to
//! write (`writer.rs`).
//!
//! libc is left where rustix has no call (`TCP_INFO`, `sigaction`, `sched_setscheduler`,
//! the NSS look-ups), or where the call must take a bare descriptor number that nothing owns
//! yet (an inherited descriptor, looked at before it is taken).

mod fd;
mod nss;
mod process;
mod socket;

#[cfg(test)]
pub(crate) use fd::is_cloexec;
pub(crate) use fd::{claim_inherited, set_cloexec, set_nonblocking, Claim};
pub use nss::{group_id, user_id};
pub(crate) use process::{no_wakeup_preemption, signal_action, SignalAction};
pub(crate) use socket::{has_input, is_listening, socket_family, tcp_listen_queue};
