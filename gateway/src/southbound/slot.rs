//! Which provider connections a thread uses. The front door serves on a
//! thread per core, each with its own single-threaded runtime; a call made
//! on one uses connections of its own, driven by the same thread, so a call
//! never hands work to another thread. Every other thread (the shared
//! runtime: discovery, events, stdio) uses slot 0.

use std::{cell::Cell, sync::OnceLock};

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// How many front-door threads the process runs: one per core, or
/// `TOKIO_WORKER_THREADS` (which sizes the shared runtime too).
pub(crate) fn front_workers() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Marks the current thread as front-door thread `worker` (from 0).
pub(crate) fn enter_front_worker(worker: usize) {
    SLOT.with(|s| s.set(worker + 1));
}

/// The current thread's slot: 0, or 1 + its front-door thread's number.
pub(super) fn current() -> usize {
    SLOT.with(Cell::get)
}

/// Slots a pool keeps connections for.
pub(super) fn count() -> usize {
    front_workers() + 1
}
