//! The server at work: built and run ([`server`], or [`quick`] for one call), its threads'
//! shared event loop ([`reactor`]) and the thread that keeps time and drains ([`monitor`]),
//! and how it is told to stop ([`shutdown`]).

pub(crate) mod monitor;
pub(crate) mod quick;
pub(crate) mod reactor;
pub(crate) mod server;
pub(crate) mod shutdown;
