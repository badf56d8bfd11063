//! Process limits a server needs raised before it serves.

/// Raises the soft limit on open descriptors to the hard limit, as Go's runtime does: every
/// idle kept connection costs a descriptor, and the usual soft limit of 1,024 would cap a
/// server that can otherwise hold 10,000 connections. Returns the limit now in force.
pub(crate) fn raise_nofile() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}
