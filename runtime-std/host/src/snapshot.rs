//! What a peer's thread or task shows the rest of the daemon ([`Snapshot`]): the peer
//! publishes a whole new value after each step, the supervisor reads one for the status
//! file, and a reader sees a value as published, never a mix of two.
//!
//! Its primitives come from the crate's `sync` facade, so `tests/loom.rs` checks every
//! interleaving under `--cfg loom`.

use crate::sync::{Arc, Mutex};

/// A value published by one thread and read by others; clones share it.
#[derive(Debug, Default)]
pub struct Snapshot<T>(Arc<Mutex<T>>);

impl<T> Clone for Snapshot<T> {
    fn clone(&self) -> Self {
        Snapshot(self.0.clone())
    }
}

impl<T: Clone> Snapshot<T> {
    /// A snapshot showing `first`.
    pub fn new(first: T) -> Self {
        Snapshot(Arc::new(Mutex::new(first)))
    }

    /// Replaces the value, all at once.
    pub fn publish(&self, value: T) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// The value last published.
    pub fn read(&self) -> T {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
