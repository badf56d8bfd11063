//! One connection's requests: records read and routed ([`connection`], with its decisions in
//! [`demux`]), each request's life until a thread takes it ([`slot`]), its body held in memory
//! or on disk within the budget ([`spool`], [`budget`]), and the peers refused before a
//! connection begins ([`refusals`]).

pub(crate) mod budget;
pub(crate) mod connection;
pub(crate) mod demux;
pub(crate) mod refusals;
pub(crate) mod slot;
pub(crate) mod spool;
