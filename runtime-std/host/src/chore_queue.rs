//! A peer's file work waiting for its worker ([`ChoreQueue`]), for a runtime that does
//! file work off the peer's own task (the smol daemon: the peer task queues, a worker
//! started on demand does the work in order and ends when the queue is empty, so an
//! idle peer holds no worker and no buffer). The handoff between the two is the point:
//! a chore queued while the worker is finding the queue empty is never left behind.
//!
//! Its primitives come from the crate's `sync` facade, so `tests/loom.rs` checks every
//! interleaving under `--cfg loom`.

use std::collections::VecDeque;

use crate::sync::{Arc, Mutex};

/// Work not done yet, in order, and whether a worker is on it; clones share it.
pub struct ChoreQueue<T>(Arc<Mutex<(VecDeque<T>, bool)>>);

impl<T> Clone for ChoreQueue<T> {
    fn clone(&self) -> Self {
        ChoreQueue(self.0.clone())
    }
}

impl<T> Default for ChoreQueue<T> {
    fn default() -> Self {
        ChoreQueue(Arc::new(Mutex::new((VecDeque::new(), false))))
    }
}

impl<T> ChoreQueue<T> {
    /// Queues `chore`; true if no worker is running, so the caller must start one.
    pub fn push(&self, chore: T) -> bool {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.0.push_back(chore);
        let start = !state.1;
        state.1 = true;
        start
    }

    /// The next chore for the worker; `None` (and the worker counts as gone, its buffer
    /// freed) once the queue is empty, decided under the same lock as [`Self::push`]
    /// looks at it.
    pub fn next(&self) -> Option<T> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let next = state.0.pop_front();
        if next.is_none() {
            state.1 = false;
            state.0 = VecDeque::new();
        }
        next
    }
}
