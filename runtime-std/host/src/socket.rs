//! The per-peer Unix sockets in `lonSockDir/<peer id>` (PROTOCOL.md sections 1 and 7):
//! preparing `lonSockDir` and its `delayed/` spool, binding a peer's socket (replacing a
//! stale socket left by a crash, reporting and removing a stray file or symlink without
//! following it, refusing to steal a live one) and removing it.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// The mode of a peer socket: the daemon's user and group (lonnet runs as `www` too).
pub const SOCKET_MODE: u32 = 0o660;

/// The mode `lonSockDir` is created with when missing (less the umask): the daemon's
/// user writes, everyone may reach the sockets, whose own mode (0660) decides who may
/// connect.
pub const SOCKET_DIR_MODE: u32 = 0o755;

/// Makes sure `sock_dir` is a directory, creating it (and its parents) with
/// [`SOCKET_DIR_MODE`] if missing. A `sock_dir` that exists but is not a directory (a
/// regular file, say) is an error naming it. A symlink to a directory is accepted: the
/// path comes from the administrator's config.
pub fn prepare_socket_dir(sock_dir: &Path) -> io::Result<()> {
    match fs::metadata(sock_dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(not_a_directory(sock_dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(sock_dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", sock_dir.display()))),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("{}: {e}", sock_dir.display()),
        )),
    }
}

/// Makes sure the delayed spool `delayed` (in `sock_dir`) is a directory, creating it if
/// missing with the permission bits of `sock_dir` (so whoever may write the sockets'
/// directory, lonnet's group included, may queue messages). Returns true if it was
/// created. Something else at `delayed` is an error naming it.
pub fn prepare_delayed_dir(sock_dir: &Path, delayed: &Path) -> io::Result<bool> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", delayed.display()));
    match fs::metadata(delayed) {
        Ok(meta) if meta.is_dir() => return Ok(false),
        Ok(_) => return Err(not_a_directory(delayed)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(named(e)),
    }
    let mode = fs::metadata(sock_dir).map_err(named)?.permissions().mode() & 0o7777;
    match DirBuilder::new().mode(mode).create(delayed) {
        Ok(()) => {}
        // Created meanwhile (by lonnet, say): fine if it is a directory.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return if fs::metadata(delayed).is_ok_and(|m| m.is_dir()) {
                Ok(false)
            } else {
                Err(not_a_directory(delayed))
            };
        }
        Err(e) => return Err(named(e)),
    }
    // The exact bits, whatever the umask.
    fs::set_permissions(delayed, fs::Permissions::from_mode(mode)).map_err(named)?;
    Ok(true)
}

fn not_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{} exists and is not a directory", path.display()),
    )
}

/// What [`bind_peer_socket`] found at the socket's path and removed first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A socket nobody listens on (left by a crash): the usual case, not worth a word.
    StaleSocket,
    /// A symbolic link (to this target), removed, never followed.
    Symlink(std::path::PathBuf),
    /// Something else that is not a socket: `"a regular file"`, `"a FIFO"`, ...
    Other(&'static str),
}

impl Removed {
    /// Says what was removed, for the log: `a regular file`, `a symbolic link to /x`.
    pub fn describe(&self) -> String {
        match self {
            Removed::StaleSocket => "a stale socket".to_owned(),
            Removed::Symlink(target) => {
                format!("a symbolic link to {} (not followed)", target.display())
            }
            Removed::Other(what) => (*what).to_owned(),
        }
    }
}

/// A bound peer socket, and what was removed from its path to bind it.
#[derive(Debug)]
pub struct BoundSocket {
    /// The listener, in blocking mode.
    pub listener: UnixListener,
    /// What was at the path before, if anything.
    pub removed: Option<Removed>,
}

/// What kind of non-directory, non-socket file `t` is, in words.
fn kind_of(t: &fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device file"
    } else {
        "a file that is not a socket"
    }
}

/// Binds a listening Unix socket at `path` with mode 0660, creating its directory if
/// missing.
///
/// Whatever is at `path` already: a socket nobody listens on (left by a crash), a
/// symbolic link (never followed) or any other non-directory file is removed first and
/// reported in [`BoundSocket::removed`]; a socket a live process accepts on is
/// [`io::ErrorKind::AddrInUse`], a directory [`io::ErrorKind::AlreadyExists`].
pub fn bind_peer_socket(path: &Path) -> io::Result<BoundSocket> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut removed = None;
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
        Ok(meta) if meta.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a directory", path.display()),
            ));
        }
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_socket() {
                match UnixStream::connect(path) {
                    Ok(_) => return Err(in_use(path)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(in_use(path)),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                        ) => {}
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!(
                                "{} exists and cannot be checked for a listener: {e}",
                                path.display()
                            ),
                        ));
                    }
                }
                removed = Some(Removed::StaleSocket);
            } else if kind.is_symlink() {
                let target = fs::read_link(path).unwrap_or_default();
                removed = Some(Removed::Symlink(target));
            } else {
                removed = Some(Removed::Other(kind_of(&kind)));
            }
            // unlink(2) removes the link itself, never its target.
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            in_use(path)
        } else {
            e
        }
    })?;
    if let Err(e) = chmod_no_follow(path, SOCKET_MODE) {
        drop(listener);
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(BoundSocket { listener, removed })
}

/// Sets `path`'s mode, never through a symbolic link: if the path was swapped for a link
/// since it was made, this fails (EOPNOTSUPP) instead of changing what the link points at.
fn chmod_no_follow(path: &Path, mode: u32) -> io::Result<()> {
    let mode = nix::sys::stat::Mode::from_bits_truncate(mode as nix::libc::mode_t);
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        mode,
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

fn in_use(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "{} is in use: another process is listening on it (is another lonc running?)",
            path.display()
        ),
    )
}

/// Removes the socket file at `path`; a missing file, or any other failure, is ignored
/// (this runs while stopping, when nothing more can be done about it).
pub fn remove_peer_socket(path: &Path) {
    let _ = fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tempfile::TempDir;

    #[test]
    fn binds_in_a_new_dir_with_mode_0660() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("sockets/msul1");
        let bound = bind_peer_socket(&path).unwrap();
        assert_eq!(bound.removed, None);
        let listener = bound.listener;
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        let mut client = UnixStream::connect(&path).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"ping\n").unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping\n");
    }

    #[test]
    fn a_live_listener_is_not_stolen() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        let _live = UnixListener::bind(&path).unwrap();
        let err = bind_peer_socket(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("another process"), "{err}");
        assert!(path.exists());
    }

    #[test]
    fn a_stale_socket_is_replaced() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        drop(UnixListener::bind(&path).unwrap()); // leaves the file, nobody listens
        assert!(path.exists());
        let bound = bind_peer_socket(&path).unwrap();
        assert_eq!(bound.removed, Some(Removed::StaleSocket));
        let listener = bound.listener;
        let _c = UnixStream::connect(&path).unwrap();
        listener.accept().unwrap();
    }

    /// Item 9: a regular file or a symlink at a socket path is replaced and reported
    /// (for the log line), and a link is never followed.
    #[test]
    fn a_stale_regular_file_or_symlink_is_replaced_and_reported() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        fs::write(&path, "junk").unwrap();
        let bound = bind_peer_socket(&path).unwrap();
        assert_eq!(bound.removed, Some(Removed::Other("a regular file")));
        assert_eq!(bound.removed.unwrap().describe(), "a regular file");

        let target = dir.path().join("target");
        fs::write(&target, "keep").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let bound = bind_peer_socket(&link).unwrap();
        assert_eq!(bound.removed, Some(Removed::Symlink(target.clone())));
        let said = bound.removed.unwrap().describe();
        assert!(
            said.contains("symbolic link") && said.contains("target"),
            "{said}"
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_socket());

        let fifo = dir.path().join("f");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let bound = bind_peer_socket(&fifo).unwrap();
        assert_eq!(bound.removed, Some(Removed::Other("a FIFO")));
    }

    /// Item 6: a missing socket directory is created (0755 less the umask); one that is
    /// a regular file is an error naming it.
    #[test]
    fn socket_dir_is_created_or_refused() {
        let dir = TempDir::new().unwrap();
        let sock = dir.path().join("a/sockets");
        prepare_socket_dir(&sock).unwrap();
        assert!(sock.is_dir());
        prepare_socket_dir(&sock).unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let err = prepare_socket_dir(&file).unwrap_err();
        assert!(
            err.to_string()
                .contains("file exists and is not a directory"),
            "{err}"
        );
        let err = prepare_socket_dir(&file.join("below")).unwrap_err();
        assert!(err.to_string().contains("below"), "{err}");
    }

    /// Item 6: `delayed/` is created when missing, with the socket directory's
    /// permission bits whatever the umask; an existing one is left alone.
    #[test]
    fn delayed_dir_is_created_with_the_socket_dir_mode() {
        let dir = TempDir::new().unwrap();
        let sock = dir.path().join("sockets");
        fs::create_dir(&sock).unwrap();
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o2770)).unwrap();
        let delayed = sock.join("delayed");
        assert!(prepare_delayed_dir(&sock, &delayed).unwrap());
        let mode = fs::metadata(&delayed).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o2770);
        fs::set_permissions(&delayed, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!prepare_delayed_dir(&sock, &delayed).unwrap());
        let mode = fs::metadata(&delayed).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        let not_dir = sock.join("other");
        fs::write(&not_dir, "").unwrap();
        assert!(prepare_delayed_dir(&sock, &not_dir).is_err());
    }

    #[test]
    fn a_directory_is_an_error() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        fs::create_dir(&path).unwrap();
        let err = bind_peer_socket(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(path.is_dir());
    }

    #[test]
    fn a_too_long_path_is_an_error_not_a_panic() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("x".repeat(200));
        assert!(bind_peer_socket(&path).is_err());
    }

    #[test]
    fn remove_ignores_missing() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        let l = bind_peer_socket(&path).unwrap().listener;
        remove_peer_socket(&path);
        assert!(!path.exists());
        remove_peer_socket(&path);
        drop(l);
    }

    #[test]
    fn the_socket_mode_is_never_set_through_a_link() {
        let dir = tempfile::TempDir::new().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "x").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("peer");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(chmod_no_follow(&link, SOCKET_MODE).is_err());
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the link's target was changed");
        chmod_no_follow(&target, 0o640).unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}
