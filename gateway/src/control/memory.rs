//! Giving freed memory back to the OS. Allocators keep freed memory for
//! reuse: glibc's malloc returns only the top of a heap, and mimalloc (the
//! binary's allocator) keeps empty pages per thread, so after thousands of
//! sessions end an idle process stays near its peak size although the
//! memory is free. Whoever frees a lot says so with [`freed`]; a background
//! task then asks both allocators (`malloc_trim`, `mi_collect`) to give it
//! back, at most once per [`PERIOD`]. In between, the task lets mimalloc
//! carry out the purges it delayed: mimalloc only does so when it frees a
//! page, which an idle process never gets to.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

const PERIOD: Duration = Duration::from_secs(1);

/// Bumped by [`freed`]; each collector looks whether it moved since its last tick.
static FREED: AtomicU64 = AtomicU64::new(0);
static STARTED: OnceLock<()> = OnceLock::new();

/// Notes that a sizeable amount of memory was just freed.
pub(crate) fn freed() {
    FREED.fetch_add(1, Ordering::Relaxed);
}

/// A tick every [`PERIOD`], saying whether memory was freed since the last.
struct Ticks {
    tick: tokio::time::Interval,
    seen: u64,
}

impl Ticks {
    fn new() -> Self {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let seen = FREED.load(Ordering::Relaxed);
        Self { tick, seen }
    }

    async fn next(&mut self) -> bool {
        self.tick.tick().await;
        let now = FREED.load(Ordering::Relaxed);
        std::mem::replace(&mut self.seen, now) != now
    }
}

/// The same on the current thread's runtime, for a thread with a heap of
/// its own (a serving thread): mimalloc gives back a thread's empty pages
/// only when that thread collects.
pub(crate) fn collect_this_thread() {
    tokio::spawn(async {
        let mut ticks = Ticks::new();
        loop {
            let freed = ticks.next().await;
            // SAFETY: as in `trim`; `force` only after sessions ended.
            unsafe { libmimalloc_sys::mi_collect(freed) };
        }
    });
}

/// Starts the trimming task once per process (needs a tokio runtime).
pub(crate) fn start_trimming() {
    STARTED.get_or_init(|| {
        tokio::spawn(async {
            let mut ticks = Ticks::new();
            loop {
                if ticks.next().await {
                    // Walks every arena: off the async workers.
                    let _ = tokio::task::spawn_blocking(trim).await;
                } else {
                    // SAFETY: as in `trim`; without `force` it only purges
                    // what is due, and visits this thread's own pages.
                    unsafe { libmimalloc_sys::mi_collect(false) };
                }
            }
        });
    });
}

fn trim() {
    // SAFETY: malloc_trim only releases free memory; it takes the arena locks.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
    // SAFETY: mi_collect frees this thread's empty pages and purges every
    // arena's freed ranges now; callable from any thread at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
