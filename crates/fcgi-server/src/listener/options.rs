//! How a listening socket is made: its backlog, and a Unix socket file's mode and owner.

/// How to create a listening socket.
///
/// ```
/// use fcgi_server::ListenOptions;
///
/// let options = ListenOptions { socket_mode: Some(0o660), ..ListenOptions::default() };
/// assert_eq!(options.backlog, ListenOptions::DEFAULT_BACKLOG);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// Connections the kernel queues before `accept` (capped by `net.core.somaxconn`).
    pub backlog: i32,
    /// Permissions of a Unix socket file; `None` keeps what the umask gives. Set (as the owner
    /// is) before the file appears at its path: see [`Listener::bind`].
    pub socket_mode: Option<u32>,
    /// Owner (user id, group id) of a Unix socket file; `None` in either keeps it as created.
    /// Changing the user needs privileges; changing the group needs membership in it.
    pub socket_owner: (Option<u32>, Option<u32>),
}

impl ListenOptions {
    /// 1,024: enough for a burst from nginx opening connections faster than we accept, and the
    /// kernel's own cap (`somaxconn`, 4,096 on current kernels) bounds it anyway.
    pub const DEFAULT_BACKLOG: i32 = 1024;
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: Self::DEFAULT_BACKLOG,
            socket_mode: None,
            socket_owner: (None, None),
        }
    }
}
