//! The synchronisation primitives of [`crate::writers`]: std's, or loom's under
//! `--cfg loom` (`RUSTFLAGS="--cfg loom" cargo test -p lonc-host --test loom --release`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex};
