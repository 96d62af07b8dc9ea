//! The per-peer Unix sockets `lonSockDir/<peer id>` (PROTOCOL.md sections 1 and 7):
//! binding one (replacing a stale socket left by a crash, refusing to steal a live one)
//! and removing it.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// The mode of a peer socket: the daemon's user and group (lonnet runs as `www` too).
pub const SOCKET_MODE: u32 = 0o660;

/// Binds a listening Unix socket at `path` with mode 0660, creating its directory if
/// missing.
///
/// Whatever is at `path` already: a socket nobody listens on (left by a crash) or any
/// other non-directory file is removed first; a socket a live process accepts on is
/// [`io::ErrorKind::AddrInUse`], a directory [`io::ErrorKind::AlreadyExists`]. The
/// listener is in blocking mode.
pub fn bind_peer_socket(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
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
            if meta.file_type().is_socket() {
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
            }
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
    if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE)) {
        drop(listener);
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(listener)
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
        let listener = bind_peer_socket(&path).unwrap();
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
        let listener = bind_peer_socket(&path).unwrap();
        let _c = UnixStream::connect(&path).unwrap();
        listener.accept().unwrap();
    }

    #[test]
    fn a_stale_regular_file_or_symlink_is_replaced() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("p");
        fs::write(&path, "junk").unwrap();
        bind_peer_socket(&path).unwrap();

        let target = dir.path().join("target");
        fs::write(&target, "keep").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        bind_peer_socket(&link).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_socket());
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
        let l = bind_peer_socket(&path).unwrap();
        remove_peer_socket(&path);
        assert!(!path.exists());
        remove_peer_socket(&path);
        drop(l);
    }
}
