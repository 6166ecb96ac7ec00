//! Which events were seen recently: two generations of 64-bit keyed hashes
//! of `source` + `id`. An event is a duplicate when either generation holds
//! its hash. The current generation becomes the previous one when it is a
//! `window` old or holds `capacity` hashes, so a key is remembered for at
//! least `window` unless more than `capacity` new keys arrive within it.
//! No allocation per event, and ~20 bytes per key (docs/events.md).

use std::{
    collections::HashSet,
    hash::{BuildHasher, Hasher},
    sync::Mutex,
    time::{Duration, Instant},
};

pub(crate) struct Seen {
    /// SipHash with this process's random keys: a sender cannot choose ids
    /// that collide with another's.
    keys: std::collections::hash_map::RandomState,
    window: Duration,
    capacity: usize,
    gens: Mutex<Gens>,
}

struct Gens {
    current: HashSet<u64>,
    previous: HashSet<u64>,
    since: Instant,
}

impl Seen {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        Self {
            keys: Default::default(),
            window,
            capacity: capacity.max(1),
            gens: Mutex::new(Gens {
                current: HashSet::new(),
                previous: HashSet::new(),
                since: Instant::now(),
            }),
        }
    }

    /// True the first time `source` + `id` is seen within the window.
    pub(crate) fn first(&self, source: &str, id: &str) -> bool {
        self.first_at(source, id, Instant::now())
    }

    pub(crate) fn first_at(&self, source: &str, id: &str, now: Instant) -> bool {
        let mut h = self.keys.build_hasher();
        h.write(source.as_bytes());
        h.write_u8(0xff);
        h.write(id.as_bytes());
        let hash = h.finish();
        let mut g = self.gens.lock().expect("dedup lock");
        let age = now.saturating_duration_since(g.since);
        if age >= self.window || g.current.len() >= self.capacity {
            let g = &mut *g;
            std::mem::swap(&mut g.current, &mut g.previous);
            // Keeps its allocation: after the first rotations no event
            // allocates.
            g.current.clear();
            // After a quiet spell both generations are older than a window.
            if age >= self.window * 2 {
                g.previous.clear();
            }
            g.since = now;
        }
        !g.previous.contains(&hash) && g.current.insert(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn duplicates_within_the_window_are_seen() {
        let t0 = Instant::now();
        let seen = Seen::new(10 * S, 1000);
        assert!(seen.first_at("src", "1", t0));
        assert!(!seen.first_at("src", "1", t0 + S));
        assert!(seen.first_at("src", "2", t0 + S));
        // Another source with the same id is another event; the separator
        // keeps "a"+"bc" apart from "ab"+"c".
        assert!(seen.first_at("other", "1", t0 + S));
        assert!(seen.first_at("a", "bc", t0 + S));
        assert!(seen.first_at("ab", "c", t0 + S));
        // Rotated once at 10 s: still remembered in the previous generation.
        assert!(!seen.first_at("src", "1", t0 + 11 * S));
        // Rotated again at 21 s: forgotten, more than a window later.
        assert!(seen.first_at("src", "1", t0 + 21 * S));
        // A quiet day later the next event rotates both generations away.
        let day = t0 + Duration::from_secs(86_400);
        assert!(seen.first_at("src", "2", day));
        assert!(seen.first_at("src", "1", day));
    }

    #[test]
    fn the_capacity_bounds_memory_and_keeps_the_last_keys() {
        let t0 = Instant::now();
        let seen = Seen::new(Duration::from_secs(600), 100);
        for i in 0..1000 {
            assert!(seen.first_at("s", &i.to_string(), t0));
        }
        let g = seen.gens.lock().unwrap();
        assert!(g.current.len() <= 100 && g.previous.len() <= 100);
        drop(g);
        // The most recent keys are still remembered.
        assert!(!seen.first_at("s", "999", t0));
        assert!(!seen.first_at("s", "950", t0));
    }
}
