//! Telling a client that has gone away from one that only stopped writing, for both
//! runtimes (PROTOCOL.md section 7: a request whose client can no longer receive the reply
//! is not sent).
//!
//! A client reader sees end of file in both cases. On Linux an `AF_UNIX` stream socket
//! whose other end closed both directions (closed it, or `shutdown(SHUT_RDWR)`) polls
//! `POLLHUP`; one whose other end only shut down writing polls `POLLRDHUP` and not
//! `POLLHUP`. `POLLHUP` is also reported once the daemon shut its own end down, which
//! is how a blocked [`wait_closed_both`] ends when the client's replies are done.

use std::os::fd::BorrowedFd;

use lonc_core::io::{ClientId, ConnId, Input};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// How a socket's read loop ended, in either runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// End of file.
    Eof,
    /// A read error.
    Failed,
    /// The receiver of the data (the peer's thread or task) is gone.
    Dropped,
}

impl ReadEnd {
    /// What the end of a client's reader tells its peer: nothing if the peer is gone;
    /// `ClientGone` after a read error or when the client closed both directions
    /// (`closed_both` is asked only at end of file), so its requests not yet sent are
    /// dropped; else `ClientEof` (a half-close: its replies are still owed, and the
    /// runtime then watches for the later close, [`wait_closed_both`]).
    pub fn client_input(
        self,
        client: ClientId,
        closed_both: impl FnOnce() -> bool,
    ) -> Option<Input> {
        match self {
            ReadEnd::Dropped => None,
            ReadEnd::Failed => Some(Input::ClientGone(client)),
            ReadEnd::Eof if closed_both() => Some(Input::ClientGone(client)),
            ReadEnd::Eof => Some(Input::ClientEof(client)),
        }
    }

    /// What the end of a connection's reader tells its peer: `ConnClosed`, unless the
    /// peer is gone.
    pub fn conn_input(self, conn: ConnId) -> Option<Input> {
        (self != ReadEnd::Dropped).then_some(Input::ConnClosed(conn))
    }
}

/// The events that mean nothing can be written to the socket any more.
fn hung_up(revents: PollFlags) -> bool {
    revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
}

/// Polls `fd` for a hang-up, waiting up to `timeout`; `None` if `poll` itself failed.
fn poll_hangup(fd: BorrowedFd<'_>, timeout: PollTimeout) -> Option<bool> {
    loop {
        // No event asked for: only POLLHUP, POLLERR and POLLNVAL are reported, so a
        // socket at end of file (always readable) does not wake the wait.
        let mut fds = [PollFd::new(fd, PollFlags::empty())];
        match poll(&mut fds, timeout) {
            Ok(0) => return Some(false),
            Ok(_) => return Some(fds[0].revents().is_some_and(hung_up)),
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Whether the other end of the socket `fd` closed both directions (or the socket was
/// shut down here): nothing written to it can be read any more. Does not block.
pub fn closed_both(fd: BorrowedFd<'_>) -> bool {
    poll_hangup(fd, PollTimeout::ZERO).unwrap_or(false)
}

/// Blocks until the socket `fd` is closed in both directions (by the other end, or shut
/// down here); true then, false if it cannot be watched.
pub fn wait_closed_both(fd: BorrowedFd<'_>) -> bool {
    loop {
        match poll_hangup(fd, PollTimeout::NONE) {
            Some(true) => return true,
            Some(false) => continue,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;

    fn at_eof(s: &mut UnixStream) -> bool {
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(0))
    }

    #[test]
    fn what_a_reader_s_end_tells_the_peer() {
        let c = ClientId(3);
        let never = || -> bool { panic!("asked only at end of file") };
        assert_eq!(ReadEnd::Dropped.client_input(c, never), None);
        assert_eq!(
            ReadEnd::Failed.client_input(c, never),
            Some(Input::ClientGone(c))
        );
        assert_eq!(
            ReadEnd::Eof.client_input(c, || true),
            Some(Input::ClientGone(c))
        );
        assert_eq!(
            ReadEnd::Eof.client_input(c, || false),
            Some(Input::ClientEof(c))
        );
        let conn = ConnId(1);
        assert_eq!(ReadEnd::Dropped.conn_input(conn), None);
        assert_eq!(ReadEnd::Eof.conn_input(conn), Some(Input::ConnClosed(conn)));
        assert_eq!(
            ReadEnd::Failed.conn_input(conn),
            Some(Input::ConnClosed(conn))
        );
    }

    #[test]
    fn closed_both_after_a_close_not_after_a_half_close() {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        assert!(!closed_both(ours.as_fd()));
        theirs.shutdown(Shutdown::Write).unwrap();
        assert!(at_eof(&mut ours));
        assert!(!closed_both(ours.as_fd()), "a half-close is not gone");
        // It can still read a reply.
        ours.write_all(b"reply\n").unwrap();
        drop(theirs);
        assert!(closed_both(ours.as_fd()), "closed: gone");
    }

    #[test]
    fn closed_both_after_a_shutdown_of_both_directions() {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        theirs.shutdown(Shutdown::Both).unwrap();
        assert!(at_eof(&mut ours));
        assert!(closed_both(ours.as_fd()));
    }

    #[test]
    fn closed_both_once_shut_down_here() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        ours.shutdown(Shutdown::Both).unwrap();
        assert!(closed_both(ours.as_fd()));
    }

    #[test]
    fn wait_closed_both_wakes_when_the_client_closes() {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        theirs.shutdown(Shutdown::Write).unwrap();
        assert!(at_eof(&mut ours));
        let start = Instant::now();
        let closer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            drop(theirs);
        });
        assert!(wait_closed_both(ours.as_fd()));
        assert!(start.elapsed() >= Duration::from_millis(90));
        closer.join().unwrap();
    }

    #[test]
    fn wait_closed_both_wakes_when_shut_down_here() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let ours = std::sync::Arc::new(ours);
        let other = ours.clone();
        let shutter = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            other.shutdown(Shutdown::Both).unwrap();
        });
        assert!(wait_closed_both(ours.as_fd()));
        shutter.join().unwrap();
    }
}
