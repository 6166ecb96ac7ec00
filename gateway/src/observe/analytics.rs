//! Usage analytics over a recent window: counts, error rate and latency
//! percentiles per tool, provider and caller, from an in-memory ring of the
//! most recent calls (bounded, so memory is fixed whatever the traffic).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;

/// Enough for hours of a busy gateway; ~100 bytes each.
const CAPACITY: usize = 100_000;

struct Sample {
    at: Instant,
    tool: String,
    provider: String,
    caller: String,
    error: bool,
    duration_ms: f64,
}

#[derive(Default)]
pub struct Analytics {
    ring: Mutex<VecDeque<Sample>>,
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

impl Analytics {
    /// Records one tool call. `error` covers failed calls and `isError` results.
    pub fn record(&self, tool: &str, provider: &str, caller: &str, error: bool, duration_ms: f64) {
        let mut ring = self.ring.lock().expect("analytics lock");
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(Sample {
            at: Instant::now(),
            tool: tool.to_string(),
            provider: provider.to_string(),
            caller: caller.to_string(),
            error,
            duration_ms,
        });
    }

    pub fn usage(&self, window: Duration) -> Usage {
        self.usage_of(window, |_, _, _| true)
    }

    /// Usage of the calls `keep(tool, provider, caller)` admits only.
    pub fn usage_of(&self, window: Duration, keep: impl Fn(&str, &str, &str) -> bool) -> Usage {
        let ring = self.ring.lock().expect("analytics lock");
        let since = Instant::now().checked_sub(window);
        let recent: Vec<&Sample> = ring
            .iter()
            .filter(|s| since.is_none_or(|t| s.at >= t))
            .filter(|s| keep(&s.tool, &s.provider, &s.caller))
            .collect();
        Usage {
            window_seconds: window.as_secs(),
            total: recent.len() as u64,
            by_tool: groups(&recent, |s| &s.tool),
            by_provider: groups(&recent, |s| &s.provider),
            by_caller: groups(&recent, |s| &s.caller),
        }
    }
}

fn groups(samples: &[&Sample], key: impl Fn(&Sample) -> &str) -> Vec<Group> {
    let mut by: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by.entry(key(s)).or_default().push(s);
    }
    by.into_iter()
        .map(|(k, v)| {
            let mut d: Vec<f64> = v.iter().map(|s| s.duration_ms).collect();
            d.sort_by(f64::total_cmp);
            let errors = v.iter().filter(|s| s.error).count() as u64;
            let count = v.len() as u64;
            Group {
                key: k.to_string(),
                count,
                errors,
                error_rate: errors as f64 / count as f64,
                p50_ms: percentile(&d, 0.50),
                p95_ms: percentile(&d, 0.95),
            }
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!((t.p50_ms, t.p95_ms), (50.0, 95.0));
        assert!((t.error_rate - 0.1).abs() < 1e-9);
        assert_eq!(u.by_caller[1].key, "bob");
        assert_eq!(u.by_provider.len(), 2);
    }
}
