//! Opening the daemon's own files (pid file, logs) without following a symbolic link
//! planted in their place (`O_NOFOLLOW`), and saying so plainly when one is found.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;

/// Opens `path` with `options`, adding `O_NOFOLLOW` and `O_NONBLOCK` (so a FIFO planted
/// there cannot block the open). A symbolic link at `path` is refused with
/// [`refused_link`]'s error instead of the kernel's "too many levels of symbolic links".
pub fn open_nofollow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    options
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) && is_symlink(path) {
                refused_link(path)
            } else {
                e
            }
        })
}

/// True if `path` itself (not what it points to) is a symbolic link.
pub fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// The error for a symbolic link found where the daemon keeps one of its own files.
pub fn refused_link(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link, which lonc does not follow: replace it with a \
             regular file or remove it",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_link_is_refused_and_a_file_is_opened() {
        let dir = tempfile::TempDir::new().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "keep\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_nofollow(OpenOptions::new().append(true).create(true), &link).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("link is a symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");

        let file = dir.path().join("file");
        let mut f = open_nofollow(OpenOptions::new().append(true).create(true), &file).unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "x");
        assert!(!is_symlink(&file) && is_symlink(&link));
    }

    #[test]
    fn a_fifo_does_not_block_the_open() {
        let dir = tempfile::TempDir::new().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No reader: a blocking open for writing would wait forever.
        assert!(open_nofollow(OpenOptions::new().append(true), &fifo).is_err());
    }
}
