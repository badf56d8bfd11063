//! The sockets: listening ones, the event set every idle thread waits in, a connection's write
//! side, and the hand-over of sockets to another process. Bytes in and out; no FastCGI here
//! beyond framing what `conn` and `work` give it.

pub(crate) mod epoll;
pub(crate) mod handoff;
pub(crate) mod listener;
pub(crate) mod writer;
