//! The run's rows, the targets judged against them, the printed table and
//! the JSON written to bench/results/.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{client::Mode, load::Stats, procs::Memory};

#[derive(Serialize)]
pub struct Row {
    pub scenario: String,
    pub mode: Option<Mode>,
    pub concurrency: Option<usize>,
    /// Requests per second offered, for fixed-rate rows.
    pub rate: Option<f64>,
    pub stats: Option<Stats>,
    pub gateway_memory: Option<Memory>,
    pub gateway_cpu_us_per_call: Option<f64>,
    pub value: Option<f64>,
    pub unit: Option<&'static str>,
}

#[derive(Serialize)]
pub struct Target {
    pub target: String,
    pub measured: Option<f64>,
    pub limit: String,
    /// `None` when the target's precondition did not hold.
    pub pass: Option<bool>,
    pub note: String,
}

#[derive(Serialize)]
pub struct Machine {
    pub cpu: String,
    pub nproc: usize,
    pub memory_gb: f64,
    pub kernel: String,
}

#[derive(Serialize)]
pub struct Report {
    pub unix_time: u64,
    pub machine: Machine,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    Machine {
        cpu,
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gb,
        kernel,
    }
}

impl Report {
    pub fn new() -> Self {
        Self {
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine: machine(),
            rows: Vec::new(),
            targets: Vec::new(),
        }
    }

    pub fn find(&self, scenario: &str, mode: Mode, concurrency: usize) -> Option<&Stats> {
        self.rows
            .iter()
            .find(|r| {
                r.scenario == scenario
                    && r.mode == Some(mode)
                    && r.concurrency == Some(concurrency)
                    && r.rate.is_none()
            })
            .and_then(|r| r.stats.as_ref())
    }

    fn figure(&self, scenario: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.scenario == scenario)
            .and_then(|r| r.value)
    }

    /// Judges every target of docs/performance.md against this run.
    pub fn evaluate(&mut self) {
        let mut t = Vec::new();
        let mut push = |target: String,
                        measured: Option<f64>,
                        limit: &str,
                        pass: Option<bool>,
                        note: String| {
            t.push(Target {
                target,
                measured,
                limit: limit.into(),
                pass,
                note,
            });
        };
        let gw_modes = [Mode::Stateful, Mode::Stateless];
        let short = |m: Mode| match m {
            Mode::Stateful => "session",
            Mode::Stateless => "stateless",
            Mode::Grpc => "grpc",
        };
        let direct32 = self.find("echo", Mode::Grpc, 32).cloned();
        let direct1 = self.find("echo", Mode::Grpc, 1).cloned();
        for m in gw_modes {
            let r = self
                .find("echo", m, 32)
                .zip(direct32.as_ref())
                .map(|(g, d)| g.throughput / d.throughput);
            push(
                format!("echo c=32 throughput ÷ direct gRPC ({})", short(m)),
                r,
                "≥ 0.5",
                r.map(|r| r >= 0.5),
                String::new(),
            );
        }
        for m in gw_modes {
            let agw = self.find(crate::AGENTGATEWAY_ECHO, m, 32);
            let r = self
                .find("echo", m, 32)
                .zip(agw)
                .map(|(g, a)| g.throughput / a.throughput);
            push(
                format!("echo c=32 throughput ÷ agentgateway ({})", short(m)),
                r,
                "≥ 2",
                r.map(|r| r >= 2.0),
                match agw {
                    Some(a) if a.errors > 0 => format!("agentgateway had {} errors", a.errors),
                    Some(_) => "agentgateway in front of the bare rmcp echo server".into(),
                    None => "n/a: AGENTGATEWAY_BIN not set".into(),
                },
            );
        }
        for m in gw_modes {
            let r = self
                .find("echo", m, 1)
                .zip(direct1.as_ref())
                .map(|(g, d)| g.p50_us / d.p50_us);
            push(
                format!("echo c=1 p50 ÷ direct gRPC p50 ({})", short(m)),
                r,
                "≤ 2.5",
                r.map(|r| r <= 2.5),
                String::new(),
            );
        }
        for m in gw_modes {
            let p99 = self.find("echo", m, 32).map(|s| s.p99_us / 1000.0);
            let floor = direct32.as_ref().map(|d| d.p99_us / 1000.0);
            let applies = floor.is_some_and(|f| f <= 0.5);
            push(
                format!("echo c=32 p99, ms ({})", short(m)),
                p99,
                "≤ 1 ms",
                if applies { p99.map(|v| v <= 1.0) } else { None },
                match floor {
                    Some(f) if !applies => format!("n/a: direct gRPC p99 {f:.2} ms > 0.5 ms"),
                    Some(f) => format!("direct gRPC p99 {f:.2} ms"),
                    None => String::new(),
                },
            );
        }
        for m in gw_modes {
            let r = self
                .find("call with 10,000 tools", m, 1)
                .zip(self.find("call with 10 tools", m, 1))
                .map(|(big, small)| big.p50_us / small.p50_us);
            push(
                format!("call p50, 10,000 ÷ 10 tools ({})", short(m)),
                r,
                "≤ 1.1",
                r.map(|r| r <= 1.1),
                String::new(),
            );
        }
        for m in gw_modes {
            let p50 = self
                .find("tools/list 10,000 tools", m, 1)
                .map(|s| s.p50_us / 1000.0);
            push(
                format!("tools/list 10,000 tools p50, ms ({})", short(m)),
                p50,
                "≤ 5 ms",
                p50.map(|v| v <= 5.0),
                String::new(),
            );
        }
        let v = self.figure("startup to ready, 10 providers");
        push(
            "startup to ready, 10 providers, ms".into(),
            v,
            "≤ 500 ms",
            v.map(|v| v <= 500.0),
            "median of 5: spawn → /ready lists 10 ready".into(),
        );
        let v = self.figure("idle RSS");
        push(
            "idle RSS, MB".into(),
            v,
            "≤ 15 MB",
            v.map(|v| v <= 15.0),
            String::new(),
        );
        let v = self.figure("event latency p99");
        push(
            "event publish → notification p99, ms".into(),
            v,
            "≤ 25 ms",
            v.map(|v| v <= 25.0),
            self.figure("event latency p50")
                .map(|p50| {
                    format!("p50 {p50:.2} ms; JetStream publish (acked) → resources/updated")
                })
                .unwrap_or_default(),
        );
        let v = self.figure("1,000 idle sessions RSS");
        push(
            "1,000 idle sessions RSS, MB".into(),
            v,
            "≤ 50 MB",
            v.map(|v| v <= 50.0),
            String::new(),
        );
        for m in gw_modes {
            let v = self.figure(match m {
                Mode::Stateful => "instructions per call (session)",
                _ => "instructions per call (stateless)",
            });
            push(
                format!("gateway instructions per echo tools/call ({})", short(m)),
                v,
                "≤ 120,000",
                v.map(|v| v <= 120_000.0),
                if v.is_some() {
                    "callgrind, c=4, counted during the load ÷ calls".into()
                } else {
                    "not measured: valgrind not installed".into()
                },
            );
        }
        let v = self.figure("session churn RSS after / before");
        push(
            "RSS after 2 × 5,000 sessions expired ÷ before".into(),
            v,
            "≤ 1.2",
            v.map(|v| v <= 1.2),
            match (
                self.figure("session churn peak RSS"),
                self.figure("session churn RSS after / cold idle"),
            ) {
                (Some(p), Some(c)) => format!(
                    "peak {p:.0} MB; before = after 20 sessions came and went; ÷ cold idle {c:.2}"
                ),
                _ => String::new(),
            },
        );
        self.targets = t;
    }

    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "mcp-gateway benchmark: {} × {} cores, {:.0} GB, Linux {} (gateway, provider and load generator share the cores)",
            m.cpu, m.nproc, m.memory_gb, m.kernel
        );
        let _ = writeln!(
            out,
            "{:<30} {:<25} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>8} {:>11}",
            "scenario",
            "mode",
            "conc",
            "req/s",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "err",
            "gw CPU",
            "gw RSS/peak"
        );
        let _ = writeln!(out, "{}", "-".repeat(148));
        for r in &self.rows {
            if let Some(s) = &r.stats {
                let scenario = match r.rate {
                    Some(rate) => format!("{} @{rate:.0}/s", r.scenario),
                    None => r.scenario.clone(),
                };
                let mem = r
                    .gateway_memory
                    .map(|m| format!("{:.0}/{:.0} MB", m.rss_mb, m.peak_mb))
                    .unwrap_or_else(|| "-".into());
                let cpu = r
                    .gateway_cpu_us_per_call
                    .map(|c| format!("{c:.0} µs"))
                    .unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    out,
                    "{:<30} {:<25} {:>5} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>5} {:>8} {:>11}",
                    scenario,
                    r.mode.map_or("", |m| m.label()),
                    r.concurrency.unwrap_or(0),
                    s.throughput,
                    s.p50_us,
                    s.p90_us,
                    s.p99_us,
                    s.p999_us,
                    s.max_us,
                    s.errors,
                    cpu,
                    mem
                );
            } else if let (Some(v), Some(u)) = (r.value, r.unit) {
                let _ = writeln!(
                    out,
                    "{:<30} {:<25} {:>15}",
                    r.scenario,
                    "",
                    format!("{v:.1} {u}")
                );
            }
        }
        let _ = writeln!(out, "{}", "-".repeat(148));
        let _ = writeln!(
            out,
            "{:<56} {:>15} {:>10}  {:<6} note",
            "target", "measured", "limit", "result"
        );
        for t in &self.targets {
            let _ = writeln!(
                out,
                "{:<56} {:>15} {:>10}  {:<6} {}",
                t.target,
                t.measured.map_or("-".into(), |v| format!("{v:.2}")),
                t.limit,
                match t.pass {
                    Some(true) => "PASS",
                    Some(false) => "MISS",
                    None => "n/a",
                },
                t.note
            );
        }
        out
    }
}
