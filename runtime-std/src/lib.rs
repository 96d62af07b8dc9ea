//! lonc-std: the blocking lonc daemon on std threads and sockets, and the daemon plumbing
//! both runtimes share. (Skeleton: built out by the lonc-std issue.)
#![warn(missing_docs)]
