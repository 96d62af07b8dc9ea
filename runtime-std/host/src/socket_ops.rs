//! What a driver does to a connected socket besides reading and writing it, for both
//! runtimes ([`SocketOps`]): shut both directions down at once, and bound how long a
//! blocked write may wait.

use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Shutting a socket down, bounding its writes.
pub trait SocketOps {
    /// Shuts both directions down at once (errors ignored: it may be shut already).
    fn shutdown_both(&self);
    /// Makes a blocking write that waits longer than `limit` fail.
    fn write_timeout(&self, limit: Duration);
}

macro_rules! socket_ops {
    ($($t:ty),*) => {$(
        impl SocketOps for $t {
            fn shutdown_both(&self) {
                let _ = self.shutdown(Shutdown::Both);
            }

            fn write_timeout(&self, limit: Duration) {
                let _ = self.set_write_timeout(Some(limit));
            }
        }
    )*};
}

socket_ops!(UnixStream, TcpStream);
