//! Opening one TCP link to lond, for both runtimes ([`open_tcp`]): the socket is created
//! first and its descriptor checked against the reserve kept for clients
//! ([`crate::fd_reserve`]) before anything goes on the wire, so a link that would not fit
//! is never half opened (lond sees nothing); then a connect bounded in time. The smol
//! daemon uses the same first step ([`start_connect`]) and waits for the socket on its
//! reactor instead of in `poll()`.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, connect, getsockopt, setsockopt, socket,
    sockopt,
};

use crate::fd_reserve;
use crate::local_error::is_local_resource_error;

/// Resolves `host` and connects to the first address that answers within `timeout`,
/// with TCP keepalive and no Nagle delay.
///
/// A connection whose descriptor would be one of those kept for clients
/// ([`crate::fd_reserve`]) is not opened: that error, like running out of descriptors or
/// memory, is a local resource error ([`is_local_resource_error`]).
pub fn open_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = no_address(host);
    for addr in (host, port).to_socket_addrs()? {
        match connect_checked(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            // Another address would meet the same shortage.
            Err(e) if is_local_resource_error(&e) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The error for a host name that resolved to no address.
pub fn no_address(host: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))
}

/// Connects to `addr` within `timeout` (at least 1 ms) on a socket whose descriptor
/// leaves the reserve free. The stream is blocking, close-on-exec, with keepalive and no
/// Nagle delay.
pub fn connect_checked(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let (stream, in_progress) = start_connect(addr)?;
    if in_progress {
        wait_connected(stream.as_fd(), timeout.max(Duration::from_millis(1)))?;
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Starts a connect to `addr` on a new non-blocking, close-on-exec socket with keepalive
/// and no Nagle delay, whose descriptor leaves the reserve free (else a local resource
/// error, and nothing went on the wire). True if the connect is still in progress: wait
/// until the socket is writable, then ask [`connect_result`].
pub fn start_connect(addr: &SocketAddr) -> io::Result<(TcpStream, bool)> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    fd_reserve::check_link(fd.as_raw_fd())?;
    let _ = setsockopt(&fd, sockopt::KeepAlive, &true);
    let _ = setsockopt(&fd, sockopt::TcpNoDelay, &true);
    let in_progress = match connect(fd.as_raw_fd(), &SockaddrStorage::from(*addr)) {
        Ok(()) => false,
        Err(Errno::EINPROGRESS) => true,
        Err(e) => return Err(e.into()),
    };
    Ok((TcpStream::from(fd), in_progress))
}

/// How a connect started by [`start_connect`] ended, once its socket is writable.
pub fn connect_result(fd: BorrowedFd<'_>) -> io::Result<()> {
    match getsockopt(&fd, sockopt::SocketError)? {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// The error of a connect that did not finish in time.
pub fn connect_timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
}

/// Waits for a non-blocking connect on `fd` to finish, `timeout` at most.
fn wait_connected(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(connect_timed_out());
        }
        // Rounded up, so the wait never ends just before the deadline.
        let ms = left.as_millis().saturating_add(1);
        let wait = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
        match poll(&mut fds, wait) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => return connect_result(fd),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn connects_and_carries_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut stream = connect_checked(&addr, Duration::from_secs(5)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        stream.write_all(b"ping\n").unwrap();
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping\n");
        // Blocking: a read waits for data rather than failing with WouldBlock.
        let reader = std::thread::spawn(move || {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).map(|()| b)
        });
        std::thread::sleep(Duration::from_millis(50));
        server.write_all(b"ok").unwrap();
        assert_eq!(&reader.join().unwrap().unwrap(), b"ok");
    }

    #[test]
    fn a_refused_connect_says_so() {
        // Bound and closed: nothing listens there now.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = connect_checked(&addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    }

    #[test]
    fn a_connect_that_gets_no_answer_times_out() {
        // A listener whose queue is full drops further SYNs: the connect hangs.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        let start = Instant::now();
        let err = loop {
            match connect_checked(&addr, Duration::from_millis(200)) {
                Ok(s) => held.push(s),
                Err(e) => break e,
            }
            assert!(held.len() < 10_000, "the listen queue never filled");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(start.elapsed() < Duration::from_secs(30));
    }
}
