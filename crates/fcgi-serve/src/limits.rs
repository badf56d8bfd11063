//! Process limits a server needs raised before it serves.

/// Raises the soft limit on open descriptors to the hard limit, as Go's runtime does: every
/// idle kept connection costs a descriptor, and the usual soft limit of 1,024 would cap a
/// server that can otherwise hold 10,000 connections. Returns the limit now in force.
pub(crate) fn raise_nofile() -> std::io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    // No limit at all counts as the most a count can say.
    Ok(limit.current.unwrap_or(u64::MAX))
}
