//! In-flight counting for graceful shutdown: refuse new work, then wait for
//! what is running to finish. tokio-util's `TaskTracker` does the counting
//! (its tokens count work that is not a spawned task); closing it is the
//! start of the drain.

use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

#[derive(Default)]
pub struct Drain {
    tracker: TaskTracker,
}

/// Held while one unit of work runs.
pub struct Guard(#[allow(dead_code)] TaskTrackerToken);

impl Drain {
    /// Counts a unit of work, or `None` once draining has started.
    pub fn enter(&self) -> Option<Guard> {
        if self.is_draining() {
            return None;
        }
        Some(self.track())
    }

    /// Counts a unit of work even while draining (it was already accepted).
    pub fn track(&self) -> Guard {
        Guard(self.tracker.token())
    }

    pub fn start(&self) {
        self.tracker.close();
    }

    pub fn is_draining(&self) -> bool {
        self.tracker.is_closed()
    }

    pub fn active(&self) -> usize {
        self.tracker.len()
    }

    /// Resolves when nothing is in flight (and draining has started; before
    /// that, work counted later could not be waited for anyway).
    pub async fn idle(&self) {
        self.tracker.wait().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn draining_refuses_new_work_and_waits_for_the_rest() {
        let d = Drain::default();
        let running = d.enter().expect("open");
        assert_eq!(d.active(), 1);
        d.start();
        assert!(d.enter().is_none(), "no new work while draining");
        let late = d.track(); // accepted before the drain, counted after
        let idle = tokio::spawn(async move { d.idle().await });
        tokio::task::yield_now().await;
        assert!(!idle.is_finished());
        drop(running);
        tokio::task::yield_now().await;
        assert!(!idle.is_finished(), "still one in flight");
        drop(late);
        idle.await.unwrap();
    }
}
