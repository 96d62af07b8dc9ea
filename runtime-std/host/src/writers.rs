//! The accounting between a socket's write queue and its writer thread or task, shared by
//! both runtimes: how many bytes wait unwritten ([`Backlog`]), and which writers
//! of a peer are still flushing ([`Writers`], waited for at shutdown). Its primitives come
//! from the crate's `sync` facade, so `tests/loom.rs` can check every interleaving under
//! `--cfg loom`.

use std::time::{Duration, Instant};

use crate::sync::{Arc, AtomicUsize, Condvar, Mutex, Ordering};

/// Bytes queued for a writer and not yet written, shared by the queue and its writer.
/// Only counted here: what too many means is the core's call
/// (`lonc_core::limits::CLIENT_BACKLOG_LIMIT`), on what a driver reports.
#[derive(Debug, Clone, Default)]
pub struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    /// Counts `n` more bytes queued; returns how many were waiting before them (zero:
    /// the writer had caught up).
    pub fn add(&self, n: usize) -> usize {
        self.0.fetch_add(n, Ordering::AcqRel)
    }

    /// `n` bytes were written.
    pub fn written(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes waiting.
    pub fn waiting(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// The writers of one peer that are still flushing: the daemon waits for them (up to
/// `lonc_core::limits::CLOSE_LINGER`) before it exits, so replies finished in the grace
/// period are written.
#[derive(Debug, Clone, Default)]
pub struct Writers(Arc<(Mutex<usize>, Condvar)>);

/// Held by a running writer; dropping it marks the writer done.
#[derive(Debug)]
pub struct WriterGuard(Writers);

impl Writers {
    /// A writer starts.
    pub fn enter(&self) -> WriterGuard {
        let (count, _) = &*self.0;
        *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        WriterGuard(self.clone())
    }

    /// Waits until every writer is done or `limit` passes; true if all are done.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let (count, cv) = &*self.0;
        let deadline = Instant::now() + limit;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = match cv.wait_timeout(n, left) {
                Ok((n, _)) => n,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let (count, cv) = &*(self.0).0;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        cv.notify_all();
    }
}
