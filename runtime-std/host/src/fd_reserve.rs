//! The file descriptors kept free for clients, for both runtimes: a link to lond never
//! takes one of the last [`reserve_for`] descriptor numbers below the open-file limit.
//! When the limit is too low for every peer, the peers whose links are up go on
//! accepting their clients (one descriptor each), instead of every descriptor going to
//! links and no client getting in at all.
//!
//! The kernel hands out the lowest free descriptor number, so a link is allowed when its
//! new socket's number is below `limit - reserve`, checked before the socket connects
//! ([`crate::link_socket`]): one system call, however many descriptors are open.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};

/// How many descriptors are kept for clients (and log, spool and status files) under a
/// limit of `limit`: an eighth of it, at least 8 and at most 256.
pub fn reserve_for(limit: u64) -> u64 {
    (limit / 8).clamp(8, 256)
}

/// A link was not opened: its descriptor would have been one of those kept for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveReached {
    /// The lowest free descriptor number (every lower one is open).
    pub lowest_free: u64,
    /// The open-file limit.
    pub limit: u64,
    /// Descriptors kept free for clients.
    pub reserve: u64,
}

impl fmt::Display for ReserveReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at least {} of {} file descriptors open, the last {} are kept for clients",
            self.lowest_free, self.limit, self.reserve
        )
    }
}

impl std::error::Error for ReserveReached {}

/// Whether a link may take descriptor number `fd` under `limit`.
fn room(fd: u64, limit: u64) -> Result<(), ReserveReached> {
    let reserve = reserve_for(limit);
    if fd + reserve >= limit {
        Err(ReserveReached {
            lowest_free: fd,
            limit,
            reserve,
        })
    } else {
        Ok(())
    }
}

/// The soft open-file limit, if there is one.
fn limit() -> Option<u64> {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if soft != RLIM_INFINITY => Some(soft),
        _ => None,
    }
}

/// Whether a link's new socket, descriptor `fd`, leaves the reserve free (every lower
/// number is open, so `fd` is the lowest that was free). The error is a local resource
/// error ([`ReserveReached`] wrapped in an [`io::Error`]): close the socket.
pub fn check_link(fd: RawFd) -> io::Result<()> {
    match limit() {
        Some(limit) => check_fd(fd, limit),
        None => Ok(()),
    }
}

/// [`check_link`] under this `limit`.
pub(crate) fn check_fd(fd: RawFd, limit: u64) -> io::Result<()> {
    room(u64::try_from(fd).unwrap_or(0), limit).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_an_eighth_within_bounds() {
        assert_eq!(reserve_for(16), 8);
        assert_eq!(reserve_for(64), 8);
        assert_eq!(reserve_for(1024), 128);
        assert_eq!(reserve_for(4096), 256);
        assert_eq!(reserve_for(1 << 20), 256);
    }

    #[test]
    fn room_keeps_the_last_numbers_free() {
        assert!(room(10, 64).is_ok());
        assert!(room(55, 64).is_ok()); // 56..=63 stay free
        let e = room(56, 64).unwrap_err();
        assert_eq!(
            e,
            ReserveReached {
                lowest_free: 56,
                limit: 64,
                reserve: 8
            }
        );
        assert_eq!(
            e.to_string(),
            "at least 56 of 64 file descriptors open, the last 8 are kept for clients"
        );
        assert!(room(10_000, 1024).is_err());
    }

    #[test]
    fn a_low_descriptor_passes_under_the_test_limit() {
        // The test process's limit is far above descriptor 3.
        assert!(check_link(3).is_ok());
    }
}
