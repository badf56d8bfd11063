//! A request on a pool thread: the job that runs it, the handler it meets ([`handler`]) and
//! what that fails with ([`error`]), the request and response it holds ([`request`],
//! [`response`]), and its end ([`exchange`]): the answer, the counts, its access record
//! ([`access`]). [`context`] is what every request of a server shares.

pub(crate) mod access;
pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod exchange;
pub(crate) mod handler;
pub(crate) mod job;
pub(crate) mod request;
pub(crate) mod response;
