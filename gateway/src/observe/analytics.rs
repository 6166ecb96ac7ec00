//! Usage analytics over a recent window: counts, error rate and latency
//! percentiles per tool, provider and caller.
//!
//! Calls are aggregated per minute and per key (tool, provider, caller),
//! each cell with a mergeable latency histogram, so memory is bounded by
//! keys × minutes whatever the call rate, and a window of an hour covers
//! an hour. The minute being filled keeps live histograms; a closed minute
//! keeps only its histograms' non-empty bins.

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Minutes kept, besides the one being filled: the longest window.
pub const RETAINED_MINUTES: u64 = 60;
/// Distinct keys per minute. Past it, a minute's further new keys are
/// counted under [`OTHER`] in all three fields.
pub const MAX_KEYS: usize = 1_000;
/// The key of calls past [`MAX_KEYS`].
pub const OTHER: &str = "(other)";
static OTHER_KEY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{OTHER}{SEP}{OTHER}{SEP}{OTHER}"));
/// Latencies in microseconds, at two significant digits; longer calls count
/// as this long.
const MAX_US: u64 = 3_600_000_000;
const SEP: char = '\u{0}';

/// One key's calls in one minute.
struct Cell {
    count: u64,
    errors: u64,
    hist: Histogram<u32>,
}

/// A closed minute's cell: the histogram's non-empty bins, as
/// (highest value of the bin, count).
struct Closed {
    count: u64,
    errors: u64,
    bins: Box<[(u64, u64)]>,
}

struct Minute<C> {
    index: u64,
    /// Keyed by "tool\0provider\0caller".
    cells: HashMap<Box<str>, C>,
}

struct Inner {
    current: Minute<Cell>,
    /// Shared with a reader, which merges them after letting go of the lock.
    closed: VecDeque<Arc<Minute<Closed>>>,
}

pub struct Analytics {
    start: Instant,
    inner: Mutex<Inner>,
}

impl Default for Analytics {
    fn default() -> Self {
        Self::starting_at(Instant::now())
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Group {
    pub key: String,
    pub count: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub window_seconds: u64,
    pub total: u64,
    pub by_tool: Vec<Group>,
    pub by_provider: Vec<Group>,
    pub by_caller: Vec<Group>,
}

/// Sized on demand (auto-resizing) up to the largest latency recorded, so
/// a cell of sub-10 ms calls stays a few KB.
fn histogram<T: hdrhistogram::Counter>() -> Histogram<T> {
    Histogram::new(2).expect("valid precision")
}

impl Cell {
    fn close(&self) -> Closed {
        Closed {
            count: self.count,
            errors: self.errors,
            bins: self
                .hist
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value() as u64))
                .collect(),
        }
    }
}

thread_local! {
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Analytics {
    /// Minutes are counted from `start` (a test's synthetic clock).
    pub(crate) fn starting_at(start: Instant) -> Self {
        Self {
            start,
            inner: Mutex::new(Inner {
                current: Minute {
                    index: 0,
                    cells: HashMap::new(),
                },
                closed: VecDeque::new(),
            }),
        }
    }

    fn minute(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_secs() / 60
    }

    /// Records one tool call. `error` covers failed calls and `isError` results.
    pub fn record(&self, tool: &str, provider: &str, caller: &str, error: bool, duration_ms: f64) {
        self.record_at(Instant::now(), tool, provider, caller, error, duration_ms);
    }

    pub(crate) fn record_at(
        &self,
        at: Instant,
        tool: &str,
        provider: &str,
        caller: &str,
        error: bool,
        duration_ms: f64,
    ) {
        let minute = self.minute(at);
        let us = ((duration_ms * 1000.0) as u64).clamp(1, MAX_US);
        KEY.with_borrow_mut(|key| {
            key.clear();
            for (i, part) in [tool, provider, caller].into_iter().enumerate() {
                if i > 0 {
                    key.push(SEP);
                }
                key.push_str(part);
            }
            let mut inner = self.inner.lock().expect("analytics lock");
            inner.roll(minute);
            let cells = &mut inner.current.cells;
            let full = cells.len() >= MAX_KEYS && !cells.contains_key(key.as_str());
            let k = if full {
                OTHER_KEY.as_str()
            } else {
                key.as_str()
            };
            let cell = match cells.get_mut(k) {
                Some(c) => c,
                None => cells.entry(k.into()).or_insert_with(|| Cell {
                    count: 0,
                    errors: 0,
                    hist: histogram(),
                }),
            };
            cell.count += 1;
            cell.errors += u64::from(error);
            let _ = cell.hist.record(us);
        });
    }

    pub fn usage(&self, window: Duration) -> Usage {
        self.usage_of(window, |_, _, _| true)
    }

    /// Usage of the calls `keep(tool, provider, caller)` admits only.
    pub fn usage_of(&self, window: Duration, keep: impl Fn(&str, &str, &str) -> bool) -> Usage {
        self.usage_at(Instant::now(), window, keep)
    }

    /// The minute `now` falls in and as many whole minutes before it as
    /// `window` covers, rounded up (at most [`RETAINED_MINUTES`]): an hour
    /// reads 60 to 61 minutes.
    pub(crate) fn usage_at(
        &self,
        now: Instant,
        window: Duration,
        keep: impl Fn(&str, &str, &str) -> bool,
    ) -> Usage {
        let now_minute = self.minute(now);
        let minutes = window.as_secs().div_ceil(60).clamp(1, RETAINED_MINUTES);
        let first = now_minute.saturating_sub(minutes);
        // Calls wait on this lock: only the current minute's bins are copied
        // under it, and the merging is done after.
        let (closed, current) = {
            let mut inner = self.inner.lock().expect("analytics lock");
            inner.roll(now_minute);
            let closed: Vec<Arc<Minute<Closed>>> = inner
                .closed
                .iter()
                .filter(|m| m.index >= first)
                .cloned()
                .collect();
            let current: Vec<(Box<str>, Closed)> = inner
                .current
                .cells
                .iter()
                .map(|(k, c)| (k.clone(), c.close()))
                .collect();
            (closed, current)
        };
        let mut acc = Totals::default();
        let minutes = closed
            .iter()
            .flat_map(|m| m.cells.iter())
            .chain(current.iter().map(|(k, c)| (k, c)));
        for (key, c) in minutes {
            acc.add(key, c.count, c.errors, &keep, |h| {
                for &(v, n) in &c.bins {
                    let _ = h.record_n(v, n);
                }
            });
        }
        Usage {
            window_seconds: window.as_secs(),
            total: acc.total,
            by_tool: groups(acc.by_tool),
            by_provider: groups(acc.by_provider),
            by_caller: groups(acc.by_caller),
        }
    }
}

impl Inner {
    /// Closes the current minute when `minute` is a later one, and drops
    /// minutes older than the retained ones.
    fn roll(&mut self, minute: u64) {
        if minute <= self.current.index {
            return;
        }
        let done = std::mem::replace(
            &mut self.current,
            Minute {
                index: minute,
                cells: HashMap::new(),
            },
        );
        if !done.cells.is_empty() {
            let cells = done
                .cells
                .into_iter()
                .map(|(k, c)| (k, c.close()))
                .collect();
            self.closed.push_back(Arc::new(Minute {
                index: done.index,
                cells,
            }));
        }
        let oldest = minute.saturating_sub(RETAINED_MINUTES);
        while self.closed.front().is_some_and(|m| m.index < oldest) {
            self.closed.pop_front();
        }
    }
}

struct Agg {
    count: u64,
    errors: u64,
    hist: Histogram<u64>,
}

#[derive(Default)]
struct Totals<'a> {
    total: u64,
    by_tool: BTreeMap<&'a str, Agg>,
    by_provider: BTreeMap<&'a str, Agg>,
    by_caller: BTreeMap<&'a str, Agg>,
}

impl<'a> Totals<'a> {
    fn add(
        &mut self,
        key: &'a str,
        count: u64,
        errors: u64,
        keep: impl Fn(&str, &str, &str) -> bool,
        fill: impl Fn(&mut Histogram<u64>),
    ) {
        let mut parts = key.splitn(3, SEP);
        let (tool, provider, caller) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if !keep(tool, provider, caller) {
            return;
        }
        self.total += count;
        for (map, k) in [
            (&mut self.by_tool, tool),
            (&mut self.by_provider, provider),
            (&mut self.by_caller, caller),
        ] {
            let a = map.entry(k).or_insert_with(|| Agg {
                count: 0,
                errors: 0,
                hist: histogram(),
            });
            a.count += count;
            a.errors += errors;
            fill(&mut a.hist);
        }
    }
}

fn groups(by: BTreeMap<&str, Agg>) -> Vec<Group> {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    by.into_iter()
        .map(|(k, a)| Group {
            key: k.to_string(),
            count: a.count,
            errors: a.errors,
            error_rate: a.errors as f64 / a.count.max(1) as f64,
            p50_ms: ms(&a.hist, 0.50),
            p95_ms: ms(&a.hist, 0.95),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.01
    }

    #[test]
    fn groups_and_percentiles() {
        let a = Analytics::default();
        for i in 1..=100 {
            a.record("p.t", "p", "alice", i % 10 == 0, i as f64);
        }
        a.record("q.u", "q", "bob", false, 5.0);
        let u = a.usage(Duration::from_secs(60));
        assert_eq!(u.total, 101);
        let t = &u.by_tool[0];
        assert_eq!((t.key.as_str(), t.count, t.errors), ("p.t", 100, 10));
        assert!(near(t.p50_ms, 50.0) && near(t.p95_ms, 95.0), "{t:?}");
        assert!((t.error_rate - 0.1).abs() < 1e-9);
        assert_eq!(u.by_caller[1].key, "bob");
        assert_eq!(u.by_provider.len(), 2);
    }

    /// 1,500 calls a second for three minutes on a synthetic clock: an
    /// hour's window still counts all of them an hour on, where a ring of
    /// the last 100,000 calls held 67 s, and then drops them.
    #[test]
    fn an_hour_means_an_hour_at_a_high_rate() {
        let t0 = Instant::now();
        let a = Analytics::starting_at(t0);
        let calls = 1_500 * 180u64;
        for i in 0..calls {
            let at = t0 + Duration::from_micros(i * 1_000_000 / 1_500);
            let ms = if i % 100 == 0 { 8.0 } else { 0.7 };
            a.record_at(at, "hello.echo", "hello", "alice", i % 1000 == 0, ms);
        }
        let hour = Duration::from_secs(3600);
        let all = |u: &Usage| (u.total, u.by_tool.first().map(|g| g.errors));
        let u = a.usage_at(t0 + 3 * MIN, hour, |_, _, _| true);
        assert_eq!(all(&u), (calls, Some(calls / 1000)));
        let g = &u.by_tool[0];
        assert!(near(g.p50_ms, 0.7), "{g:?}");
        assert!(near(g.p95_ms, 0.7) && g.p95_ms < 1.0, "{g:?}");
        // 60.5 minutes after the first call it still counts: an hour reads
        // the current minute and the 60 before it.
        let u = a.usage_at(t0 + 60 * MIN + Duration::from_secs(30), hour, |_, _, _| {
            true
        });
        assert_eq!(all(&u), (calls, Some(calls / 1000)));
        assert!(near(u.by_tool[0].p50_ms, 0.7));
        // A quarter of an hour on, the shorter window sees none of them.
        let quarter = Duration::from_secs(900);
        let u = a.usage_at(t0 + 18 * MIN, quarter, |_, _, _| true);
        assert_eq!(u.total, 0);
        // Past the hour, the first minute is gone, then all.
        let u = a.usage_at(t0 + 61 * MIN + Duration::from_secs(1), hour, |_, _, _| true);
        assert_eq!(u.total, calls - 1_500 * 60);
        let u = a.usage_at(t0 + 63 * MIN, hour, |_, _, _| true);
        assert_eq!(u.total, 0);
        assert!(a.inner.lock().unwrap().closed.is_empty());
    }

    #[test]
    fn keys_past_the_cap_are_counted_as_other() {
        let a = Analytics::default();
        for i in 0..MAX_KEYS + 5 {
            a.record(&format!("t{i}"), "p", "c", false, 1.0);
        }
        let u = a.usage(MIN);
        assert_eq!(u.total as usize, MAX_KEYS + 5);
        let other = u.by_tool.iter().find(|g| g.key == OTHER).expect("other");
        assert_eq!(other.count, 5);
        assert_eq!(u.by_tool.len(), MAX_KEYS + 1);
    }

    #[test]
    fn the_filter_sees_each_field() {
        let a = Analytics::default();
        a.record("p.t", "p", "alice", false, 1.0);
        a.record("p.t", "p", "bob", true, 1.0);
        let u = a.usage_of(MIN, |tool, provider, caller| {
            tool == "p.t" && provider == "p" && caller == "bob"
        });
        assert_eq!((u.total, u.by_caller[0].errors), (1, 1));
    }
}
