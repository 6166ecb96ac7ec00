//! What a managed provider's process is doing, as the launcher last saw it:
//! `/ready` shows it beside the provider's state, and discovery reads it to
//! tell "still starting" from "not answering".

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;

/// Stderr lines kept of a process's last run: its first ones (where the
/// error usually is) and its last ones (where a crash ends), each cut to
/// `LINE_MAX` bytes.
const HEAD_LINES: usize = 3;
const TAIL_LINES: usize = 5;
const LINE_MAX: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    Running,
    /// Exited, or could not be started; started again after the backoff.
    Restarting,
}

/// The report for one managed provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    pub state: ProcessState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Starts after the first one.
    pub restarts: u32,
    /// How the last run ended: `exit status: 1`, `signal: 9`, or why it
    /// could not start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_in_ms: Option<u64>,
    /// Its first and last lines on stderr in its last run, with `…` for
    /// what is left out between them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stderr: Vec<String>,
    #[serde(skip)]
    head: Vec<String>,
    #[serde(skip)]
    tail: VecDeque<String>,
    #[serde(skip)]
    skipped: bool,
    #[serde(skip)]
    since: Instant,
    #[serde(skip)]
    restart_at: Option<Instant>,
}

impl ProcessReport {
    /// How long it has been running (zero unless running).
    pub fn running_for(&self) -> Duration {
        match self.state {
            ProcessState::Running => self.since.elapsed(),
            ProcessState::Restarting => Duration::ZERO,
        }
    }

    /// For `last_error` while the process is not running; its first
    /// stderr line too with `output`.
    pub fn summary(&self, output: bool) -> Option<String> {
        (self.state == ProcessState::Restarting).then(|| {
            let mut s = format!(
                "the managed process is not running: {}; restarts so far: {}",
                self.last_exit.as_deref().unwrap_or("it ended"),
                self.restarts
            );
            if let Some(ms) = self.restart_in_ms {
                let wait = humantime::format_duration(Duration::from_millis(ms));
                s.push_str(&format!("; starting it again in {wait}"));
            }
            if let Some(line) = self.head.first().filter(|_| output) {
                s.push_str(&format!("; its first stderr line: {line}"));
            }
            s
        })
    }
}

/// Every managed provider's report, by provider name.
#[derive(Default)]
pub struct Processes(Mutex<HashMap<String, ProcessReport>>);

impl Processes {
    /// The report as of now (`restart_in_ms` counted down).
    pub fn get(&self, provider: &str) -> Option<ProcessReport> {
        let mut r = self
            .0
            .lock()
            .expect("processes lock")
            .get(provider)?
            .clone();
        r.restart_in_ms = r
            .restart_at
            .map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64);
        r.stderr = r.head.clone();
        if r.skipped {
            r.stderr.push("…".into());
        }
        r.stderr.extend(r.tail.iter().cloned());
        Some(r)
    }

    pub fn started(&self, provider: &str, pid: Option<u32>) {
        self.with(provider, |r| {
            if r.last_exit.is_some() {
                r.restarts += 1;
            }
            r.state = ProcessState::Running;
            r.pid = pid;
            r.since = Instant::now();
            r.restart_at = None;
            if pid.is_some() {
                // A new run: its own lines.
                r.head.clear();
                r.tail.clear();
                r.skipped = false;
            }
        });
    }

    /// It exited (or could not start); it is started again after `wait`.
    pub fn ended(&self, provider: &str, how: String, wait: Duration) {
        self.with(provider, |r| {
            r.state = ProcessState::Restarting;
            r.pid = None;
            r.last_exit = Some(how);
            r.since = Instant::now();
            r.restart_at = Some(Instant::now() + wait);
        });
    }

    pub fn stderr(&self, provider: &str, line: &str) {
        let mut end = line.len().min(LINE_MAX);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let line = line[..end].to_string();
        // Only while managed: a line read after the provider was forgotten
        // must not bring its report back.
        let mut all = self.0.lock().expect("processes lock");
        if let Some(r) = all.get_mut(provider) {
            if r.head.len() < HEAD_LINES {
                r.head.push(line);
                return;
            }
            if r.tail.len() == TAIL_LINES {
                r.tail.pop_front();
                r.skipped = true;
            }
            r.tail.push_back(line);
        }
    }

    /// The provider is no longer managed.
    pub fn forget(&self, provider: &str) {
        self.0.lock().expect("processes lock").remove(provider);
    }

    fn with(&self, provider: &str, f: impl FnOnce(&mut ProcessReport)) {
        let mut all = self.0.lock().expect("processes lock");
        let r = all
            .entry(provider.to_string())
            .or_insert_with(|| ProcessReport {
                state: ProcessState::Restarting,
                pid: None,
                restarts: 0,
                last_exit: None,
                restart_in_ms: None,
                stderr: Vec::new(),
                head: Vec::new(),
                tail: VecDeque::new(),
                skipped: false,
                since: Instant::now(),
                restart_at: None,
            });
        f(r);
    }
}

/// Shared by the launcher (writes) and the registry (reads).
pub type SharedProcesses = Arc<Processes>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_provider_stays_forgotten() {
        let p = Processes::default();
        p.started("a", Some(1));
        p.forget("a");
        p.stderr("a", "a late line");
        assert!(p.get("a").is_none());
    }

    #[test]
    fn a_crash_loop_is_counted_and_explained() {
        let p = Processes::default();
        p.started("a", None);
        p.started("a", Some(7));
        assert_eq!(p.get("a").unwrap().restarts, 0);
        assert!(p.get("a").unwrap().summary(true).is_none(), "running");
        p.stderr("a", "an earlier run's line");
        p.ended("a", "exit status: 3".into(), Duration::from_secs(2));
        p.started("a", Some(8));
        p.stderr("a", "error: no settings");
        p.ended("a", "exit status: 3".into(), Duration::from_secs(4));
        let r = p.get("a").unwrap();
        assert_eq!(
            (r.state, r.restarts, r.pid),
            (ProcessState::Restarting, 1, None)
        );
        assert!(
            r.restart_in_ms.is_some_and(|ms| ms > 3000 && ms <= 4000),
            "{r:?}"
        );
        assert!(!r.summary(false).unwrap().contains("stderr"));
        let s = r.summary(true).unwrap();
        assert!(s.starts_with("the managed process is not running: exit status: 3; restarts so far: 1; starting it again in 3s"), "{s}");
        assert!(
            s.ends_with("its first stderr line: error: no settings"),
            "{s}"
        );
        p.forget("a");
        assert!(p.get("a").is_none());
    }

    #[test]
    fn stderr_keeps_a_runs_first_and_last_lines_cut_on_a_char_boundary() {
        let p = Processes::default();
        p.started("a", Some(1));
        for i in 0..10 {
            p.stderr("a", &format!("line {i}"));
        }
        p.stderr("a", &"é".repeat(400));
        let lines = p.get("a").unwrap().stderr;
        assert_eq!(lines[..4], ["line 0", "line 1", "line 2", "…"]);
        assert_eq!(lines[4..8], ["line 6", "line 7", "line 8", "line 9"]);
        assert_eq!(lines.len(), HEAD_LINES + 1 + TAIL_LINES);
        assert_eq!(lines.last().unwrap().len(), LINE_MAX);
        // The next run starts afresh.
        p.started("a", Some(2));
        assert!(p.get("a").unwrap().stderr.is_empty());
    }
}
