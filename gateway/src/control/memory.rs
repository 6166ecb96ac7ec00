//! Giving freed memory back to the OS. glibc's malloc keeps freed chunks in
//! its arenas and returns only the top of a heap, so after thousands of
//! sessions end the process stays at its peak size although the memory is
//! free. Whoever frees a lot says so with [`freed`]; a background task then
//! calls `malloc_trim` at most once per [`PERIOD`].

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

const PERIOD: Duration = Duration::from_secs(2);

static DIRTY: AtomicBool = AtomicBool::new(false);
static STARTED: OnceLock<()> = OnceLock::new();

/// Notes that a sizeable amount of memory was just freed.
pub(crate) fn freed() {
    DIRTY.store(true, Ordering::Relaxed);
}

/// Starts the trimming task once per process (needs a tokio runtime).
pub(crate) fn start_trimming() {
    STARTED.get_or_init(|| {
        tokio::spawn(async {
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if DIRTY.swap(false, Ordering::Relaxed) {
                    // Walks every arena: off the async workers.
                    let _ = tokio::task::spawn_blocking(trim).await;
                }
            }
        });
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory; it takes the arena locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
