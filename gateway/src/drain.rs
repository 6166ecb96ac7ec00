//! In-flight counting for graceful shutdown: refuse new work, then wait for
//! what is running to finish.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Drain {
    active: AtomicUsize,
    draining: AtomicBool,
    idle: Notify,
}

/// Held while one unit of work runs.
pub struct Guard(Arc<Drain>);

impl Drain {
    /// Counts a unit of work, or `None` once draining has started.
    pub fn enter(self: &Arc<Self>) -> Option<Guard> {
        if self.is_draining() {
            return None;
        }
        Some(self.track())
    }

    /// Counts a unit of work even while draining (it was already accepted).
    pub fn track(self: &Arc<Self>) -> Guard {
        self.active.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }

    pub fn start(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Resolves when nothing is in flight.
    pub async fn idle(&self) {
        loop {
            // Created before the check so a wake-up in between is not lost.
            let notified = self.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
