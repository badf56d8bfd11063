//! User and group names to ids, through the C library's NSS (`/etc/passwd`, `/etc/group`,
//! LDAP, ...): libc, as rustix does not read those databases.

use std::io;

/// The id of user `name` in the user database (`/etc/passwd`, or what NSS reads); a number
/// is taken as the id itself. For a socket's owner ([`ListenOptions::socket_owner`]).
///
/// [`ListenOptions::socket_owner`]: crate::ListenOptions::socket_owner
///
/// ```
/// assert_eq!(fcgi_server::user_id("root").unwrap(), 0);
/// assert_eq!(fcgi_server::user_id("1234").unwrap(), 1234);
/// assert!(fcgi_server::user_id("no-such-user-here").is_err());
/// ```
pub fn user_id(name: &str) -> io::Result<u32> {
    lookup_id(name, "user", |c_name, buf, found| {
        // SAFETY: an all-zero passwd is valid for getpwnam_r to fill.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        // SAFETY: the name is NUL-terminated, the record and the buffer are ours and sized as
        // given, and `result` points to our record or is null when the call returns.
        let rc = unsafe {
            libc::getpwnam_r(c_name, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut result)
        };
        *found = (!result.is_null()).then_some(entry.pw_uid);
        rc
    })
}

/// The id of group `name` in the group database (`/etc/group`, or what NSS reads); a number
/// is taken as the id itself. For a socket's group ([`ListenOptions::socket_owner`]).
///
/// [`ListenOptions::socket_owner`]: crate::ListenOptions::socket_owner
///
/// ```
/// assert_eq!(fcgi_server::group_id("root").unwrap(), 0);
/// assert!(fcgi_server::group_id("no-such-group-here").is_err());
/// ```
pub fn group_id(name: &str) -> io::Result<u32> {
    lookup_id(name, "group", |c_name, buf, found| {
        // SAFETY: an all-zero group is valid for getgrnam_r to fill.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        // SAFETY: as in `user_id`.
        let rc = unsafe {
            libc::getgrnam_r(c_name, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut result)
        };
        *found = (!result.is_null()).then_some(entry.gr_gid);
        rc
    })
}

/// `name` as a number, or looked up by `call` (a `get*nam_r`, which returns 0 or an errno and
/// sets the id it found), with a larger buffer while it says `ERANGE`.
fn lookup_id(
    name: &str,
    what: &str,
    mut call: impl FnMut(*const libc::c_char, &mut [u8], &mut Option<u32>) -> libc::c_int,
) -> io::Result<u32> {
    /// The records' strings fit in this many bytes but in odd databases; twice that is tried
    /// up to a mebibyte.
    const FIRST_BUFFER: usize = 1024;
    if let Ok(id) = name.parse() {
        return Ok(id);
    }
    let c_name = std::ffi::CString::new(name).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("the {what} name {name:?} has a NUL"))
    })?;
    let mut buf = vec![0u8; FIRST_BUFFER];
    loop {
        let mut found = None;
        match call(c_name.as_ptr(), &mut buf, &mut found) {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 => {
                return found.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("there is no {what} {name:?}"))
                })
            }
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}
