//! The server at work: built and run ([`server`], or by the one-call `serve` of
//! [`one_call`]), its threads' shared event loop ([`reactor`]) and the thread that keeps time
//! and drains ([`monitor`]), and how it is told to stop ([`shutdown`]).

pub(crate) mod monitor;
pub(crate) mod one_call;
pub(crate) mod reactor;
pub(crate) mod server;
pub(crate) mod shutdown;
