//! systemd's readiness protocol (`sd_notify(3)`), spoken without libsystemd: one datagram of
//! `NAME=VALUE` lines per state change, sent to the Unix socket named by `$NOTIFY_SOCKET`.
//!
//! A `Type=notify` unit is "started" only when the service says `READY=1`, so `systemctl start`
//! returns (and units ordered after it start) once the workers serve, not when the binary was
//! executed. The master says:
//!
//! | when | what |
//! |---|---|
//! | the first generation of workers serves | `READY=1`, `STATUS=` |
//! | SIGHUP, before the new workers start | `RELOADING=1`, `MONOTONIC_USEC=`, `STATUS=` |
//! | the new generation serves (or the reload failed) | `READY=1`, `STATUS=` |
//! | SIGTERM, SIGINT, SIGQUIT | `STOPPING=1`, `STATUS=` |
//!
//! `MONOTONIC_USEC` (the `CLOCK_MONOTONIC` time of the reload) is what systemd 253's
//! `Type=notify-reload` requires with `RELOADING=1`; older versions ignore the field.
//!
//! `$NOTIFY_SOCKET` is a path, or an abstract socket when it starts with `@`. It is read, never
//! unset (libsystemd's `unset_environment` would hide it from the workers; they say nothing,
//! but an upgraded master started from the same environment needs it). Without the variable
//! every call does nothing, so a server started by hand or by another supervisor is unaffected.
//! A failed send is returned for the caller to log: a lost notification makes systemd time the
//! start out, which is its business, never a reason to stop serving.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable that names the service manager's socket.
pub const ENV_SOCKET: &str = "NOTIFY_SOCKET";

/// The service's state, as systemd names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Serving: `READY=1`.
    Ready,
    /// Reloading its configuration: `RELOADING=1` with `MONOTONIC_USEC=`.
    Reloading,
    /// Stopping: `STOPPING=1`.
    Stopping,
    /// Only a new `STATUS=` line.
    Status,
}

/// Where notifications go: the socket `$NOTIFY_SOCKET` names, or nowhere.
///
/// ```
/// use fcgi_prefork::notify::{Notifier, State};
///
/// let notifier = Notifier::from_env()?; // does nothing outside a Type=notify unit
/// notifier.notify(State::Ready, "4 workers serving")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    addr: Option<SocketAddr>,
}

impl Notifier {
    /// The notifier for this process's environment; one that does nothing when
    /// `$NOTIFY_SOCKET` is unset or empty. An error when it names no usable address.
    pub fn from_env() -> io::Result<Notifier> {
        match std::env::var_os(ENV_SOCKET) {
            Some(value) if !value.is_empty() => {
                let value = value.into_string().map_err(|v| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{ENV_SOCKET}={v:?}"))
                })?;
                Ok(Notifier { addr: Some(address(&value)?) })
            }
            _ => Ok(Notifier::default()),
        }
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.addr.is_some()
    }

    /// Tells the service manager `state`, with `status` as the one-line `STATUS=`.
    pub fn notify(&self, state: State, status: &str) -> io::Result<()> {
        let Some(addr) = &self.addr else { return Ok(()) };
        let monotonic = (state == State::Reloading).then(monotonic_usec);
        let message = message(state, status, monotonic);
        let socket = UnixDatagram::unbound()?;
        let sent = socket.send_to_addr(message.as_bytes(), addr)?;
        if sent != message.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "notification cut short"));
        }
        Ok(())
    }
}

/// The socket address `$NOTIFY_SOCKET` names: a path, or `@name` for an abstract socket.
pub fn address(value: &str) -> io::Result<SocketAddr> {
    match value.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None if value.starts_with('/') => SocketAddr::from_pathname(value),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ENV_SOCKET}={value:?} is neither an absolute path nor @abstract"),
        )),
    }
}

/// The datagram for `state`: its field, `MONOTONIC_USEC` when given, then `STATUS=` with any
/// line break turned into a space (a newline would end the field and start a bogus one).
pub fn message(state: State, status: &str, monotonic_usec: Option<u64>) -> String {
    let mut text = String::new();
    match state {
        State::Ready => text.push_str("READY=1\n"),
        State::Reloading => text.push_str("RELOADING=1\n"),
        State::Stopping => text.push_str("STOPPING=1\n"),
        State::Status => {}
    }
    if let Some(usec) = monotonic_usec {
        text.push_str(&format!("MONOTONIC_USEC={usec}\n"));
    }
    text.push_str("STATUS=");
    text.extend(status.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
    text.push('\n');
    text
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    u64::try_from(crate::sys::monotonic_now().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let cases = [
            (State::Ready, "serving", None, "READY=1\nSTATUS=serving\n"),
            (State::Reloading, "re", Some(42), "RELOADING=1\nMONOTONIC_USEC=42\nSTATUS=re\n"),
            (State::Stopping, "a\nb\rc", None, "STOPPING=1\nSTATUS=a b c\n"),
            (State::Status, "x", None, "STATUS=x\n"),
        ];
        for (state, status, usec, expected) in cases {
            assert_eq!(message(state, status, usec), expected, "{state:?}");
        }
    }

    #[test]
    fn addresses() {
        let path = address("/run/systemd/notify").expect("a path");
        assert_eq!(path.as_pathname(), Some(std::path::Path::new("/run/systemd/notify")));
        let abstract_ = address("@/org/freedesktop/systemd1/notify").expect("abstract");
        assert_eq!(abstract_.as_abstract_name(), Some(&b"/org/freedesktop/systemd1/notify"[..]));
        assert!(address("relative").is_err());
    }

    #[test]
    fn datagrams_reach_a_path_socket() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bound");
        let notifier =
            Notifier { addr: Some(address(path.to_str().expect("utf-8")).expect("a path")) };
        notifier.notify(State::Reloading, "reloading").expect("sent");
        let mut buf = [0; 256];
        let n = socket.recv(&mut buf).expect("received");
        let text = std::str::from_utf8(&buf[..n]).expect("utf-8");
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
        assert!(Notifier::default().notify(State::Ready, "x").is_ok(), "no socket: nothing");
    }

    #[test]
    fn monotonic_is_the_kernels_clock() {
        let a = monotonic_usec();
        let b = monotonic_usec();
        assert!(a > 0 && b >= a);
    }
}
