//! The synchronisation primitives of the cross-thread handoffs ([`crate::writers`],
//! [`crate::inbox`], [`crate::signal_flags`], [`crate::snapshot`],
//! [`crate::chore_queue`]): std's, or loom's
//! under `--cfg loom` (`RUSTFLAGS="--cfg loom" cargo test -p lonc-host --test loom
//! --release`). `event-listener` switches itself under `--cfg loom` (its `loom` feature
//! is turned on for that build in `Cargo.toml`).

pub(crate) use event_listener::{Event, EventListener, Listener};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
