//! The socket file of a Unix listener: bound where nobody can swap a symlink in, given its
//! mode and owner there, moved into place without replacing anything, and removed only while
//! it is still ours.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fs::{RenameFlags, CWD};

use super::error::ListenError;
use super::options::ListenOptions;
use crate::ListenAddr;

/// Binds a Unix socket at `path`, with the mode and owner of `options`, and returns it with
/// the identity (device, inode) of its file. `after_bind` runs as soon as the socket exists:
/// the tests plant a symlink there.
///
/// Nothing is done by path at `path` once the socket is bound: in a directory others can
/// write, the file there can be swapped for a symlink at any time, and a `chmod` or `chown`
/// by path would follow it (a 0600 file of root's made 0666 and given away). So with a mode
/// or an owner to set, the socket is bound in a private directory made beside the target
/// (mode 0700, so only we can touch what is in it), its mode and owner are set there, and it
/// is moved into place with `rename`, which acts on the name itself and never follows a
/// symlink. `fchmod` is no help: on Linux it does not change a socket file's mode. The move
/// refuses to replace anything that appeared at the path since the stale socket was removed
/// (`RENAME_NOREPLACE`), so a live socket bound meanwhile, or a symlink planted there, makes
/// the bind fail instead of being replaced.
pub(super) fn bind_unix(
    path: &PathBuf,
    options: &ListenOptions,
    after_bind: impl FnOnce(&Path),
) -> Result<(UnixListener, (u64, u64)), ListenError> {
    let bind_error = |source| ListenError::Bind { addr: ListenAddr::Unix(path.clone()), source };
    remove_stale_socket(path)?;
    if options.socket_mode.is_none() && options.socket_owner == (None, None) {
        let unix = UnixListener::bind(path).map_err(bind_error)?;
        after_bind(path);
        // lstat: the identity of whatever is at the path, never of a symlink's target.
        let identity =
            std::fs::symlink_metadata(path).map(|m| (m.dev(), m.ino())).map_err(bind_error)?;
        return Ok((unix, identity));
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // A short name, as the socket's path in it must fit in sun_path (108 bytes) too.
    let private = tempfile::Builder::new()
        .prefix(PRIVATE_DIR_PREFIX)
        .rand_bytes(6)
        .tempdir_in(parent)
        .map_err(bind_error)?;
    let staged = private.path().join("s");
    let unix = UnixListener::bind(&staged).map_err(bind_error)?;
    after_bind(path);
    let chmod_error = |source| ListenError::Chmod { path: path.clone(), source };
    if let Some(mode) = options.socket_mode {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(chmod_error)?;
    }
    if options.socket_owner != (None, None) {
        let (uid, gid) = options.socket_owner;
        std::os::unix::fs::lchown(&staged, uid, gid).map_err(chmod_error)?;
    }
    // A rename keeps the inode: the identity read here is the file's at `path`.
    let identity =
        std::fs::symlink_metadata(&staged).map(|m| (m.dev(), m.ino())).map_err(bind_error)?;
    rename_noreplace(&staged, path).map_err(bind_error)?;
    // The directory is empty now; dropping it removes it.
    drop(private);
    Ok((unix, identity))
}

/// The private directory's name starts with this, then 6 random characters: short, hidden
/// from a plain `ls`, and telling whose it is if a crash leaves one behind.
const PRIVATE_DIR_PREFIX: &str = ".fcgi-";

/// Moves `from` to `to` unless something is at `to` (`renameat2` with `RENAME_NOREPLACE`);
/// on a file system without that flag, a plain rename, which does not follow a symlink at `to`
/// either.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => std::fs::rename(from, to),
        Err(e) => Err(e.into()),
    }
}

/// Removes a socket file nobody listens on; refuses a live socket or anything that is not a socket.
fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket { path: path.to_path_buf() });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenError::InUse { path: path.to_path_buf() }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|source| ListenError::Bind {
                addr: ListenAddr::Unix(path.to_path_buf()),
                source,
            }),
        Err(source) => {
            Err(ListenError::Bind { addr: ListenAddr::Unix(path.to_path_buf()), source })
        }
    }
}

/// Removes the socket file at `path` if it is still the one whose identity (device, inode)
/// is `identity`: a file put there since (a socket another process bound) is left alone. The
/// removal's failure is ignored on purpose: this runs as a listener is dropped, with no one to
/// tell, and a file left behind is removed as stale by the next bind.
pub(super) fn remove_if_ours(path: &Path, identity: (u64, u64)) {
    let still_ours = std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == identity);
    if still_ours {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::Listener;

    fn mode(meta: &std::fs::Metadata) -> u32 {
        meta.mode() & 0o7777
    }

    #[test]
    fn a_socket_is_bound_with_its_mode_and_nothing_is_left_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let root = rustix::process::geteuid().is_root();
        let owner = if root { (Some(65534), None) } else { (None, None) };
        let options =
            ListenOptions { socket_mode: Some(0o640), socket_owner: owner, ..Default::default() };
        let listener = Listener::bind(&ListenAddr::Unix(path.clone()), &options).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(mode(&meta), 0o640);
        if root {
            assert_eq!(meta.uid(), 65534);
        }
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "only the socket is left in the directory");
        assert!(UnixStream::connect(&path).is_ok(), "it listens at the path");
        drop(listener);
        assert!(!path.exists(), "the socket file is removed on drop");
    }

    /// The attack: in a directory others can write, the socket at the path is swapped for a
    /// symlink to a file of ours right after bind. Whatever the mode and owner asked, that file
    /// must stay as it was: nothing is done by path once the socket is bound.
    #[test]
    fn a_symlink_swapped_in_after_bind_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = std::fs::metadata(&victim).unwrap();
        let path = dir.path().join("app.sock");
        let root = rustix::process::geteuid().is_root();
        // As root, a real change of owner (to nobody); otherwise the group we are in already.
        let owner = if root { (Some(65534), Some(65534)) } else { (None, Some(before.gid())) };
        let options =
            ListenOptions { socket_mode: Some(0o666), socket_owner: owner, ..Default::default() };
        let result = bind_unix(&path, &options, |bound| {
            let _ = std::fs::remove_file(bound);
            symlink(&victim, bound).unwrap();
        });
        let after = std::fs::metadata(&victim).unwrap();
        assert_eq!(mode(&after), 0o600, "the symlink's target got the socket's mode");
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()), "and its owner");
        // Either the symlink made binding fail, or the socket replaced it: never followed.
        if let Ok((_unix, _)) = result {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.file_type().is_socket());
        }
    }
}
