//! `mcp-bench soak`: hours-long behaviour in minutes of configuration. The
//! release gateway (audit on) in front of hello-rs, at a fixed rate of 25%
//! of the closed-loop capacity measured in the same run, on each revision
//! and with session churn, one fresh gateway per phase. Latency per slice
//! (a sixth of the run; the first is the warm-up), RSS every 30 s.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    client::{Client, Mcp, Mode},
    load::{self, Stats, Tally},
    procs::{Bins, Proc},
};

const SLICES: usize = 6;
const CLIENTS: usize = 32;
/// Calls a churning client makes before it leaves without DELETE.
const CHURN_CALLS: usize = 100;
/// Idle sessions expire this soon in the churn phase (the default is 5 min).
const CHURN_IDLE: &str = "60s";
const RSS_EVERY: Duration = Duration::from_secs(30);

/// Targets (issue 19).
const MAX_GROWTH: f64 = 0.05;
const MAX_P99_MS: f64 = 5.0;
const MAX_P999_MS: f64 = 25.0;
const MAX_AFTER_CHURN: f64 = 0.20;

#[derive(Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Session,
    Stateless,
    Churn,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Session => "2025-11-25 sessions",
            Phase::Stateless => "2026-07-28 stateless",
            Phase::Churn => "2025-11-25 churn (100 calls, no DELETE)",
        }
    }

    fn mode(self) -> Mode {
        match self {
            Phase::Stateless => Mode::Stateless,
            _ => Mode::Stateful,
        }
    }
}

#[derive(Serialize)]
struct PhaseReport {
    phase: Phase,
    rate: f64,
    slices: Vec<Stats>,
    /// (seconds since the phase began, RSS MB).
    rss: Vec<(f64, f64)>,
    rss_warm_mb: f64,
    rss_end_mb: f64,
    rss_peak_mb: f64,
    growth: f64,
    slope_mb_per_min: f64,
    /// Churn only: RSS once every session expired, over the warm-up's.
    after_expiry: Option<f64>,
    sessions_at_end: Option<u64>,
}

#[derive(Serialize)]
struct SoakReport {
    unix_time: u64,
    minutes: f64,
    capacity: Vec<(Mode, f64)>,
    phases: Vec<PhaseReport>,
    pass: bool,
}

pub const ALL: [Phase; 3] = [Phase::Session, Phase::Stateless, Phase::Churn];

pub async fn run(
    bins: &Bins,
    minutes: f64,
    which: &[Phase],
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let total = Duration::from_secs_f64(minutes * 60.0);
    let slice = total / SLICES as u32;
    let hello = bins.hello().await?;
    let audit = bins.work.join("audit.jsonl");
    let extra = |idle: &str| {
        format!(
            "audit:\n  path: {}\nlimits:\n  session_idle_timeout: {idle}\n  max_sessions_per_client: 100000\n",
            audit.display()
        )
    };

    eprintln!("mcp-soak: capacity (closed loop, c={CLIENTS})");
    let (gw, _) = bins
        .gateway_with("gw-capacity", &[("hello-rs", hello.addr)], &extra("5m"))
        .await?;
    let mut capacity = Vec::new();
    for mode in [Mode::Stateful, Mode::Stateless] {
        let cs = crate::clients(mode, CLIENTS, gw.addr, hello.addr).await?;
        let s = load::closed_loop(
            cs,
            crate::echo(),
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
        .await;
        anyhow::ensure!(s.errors == 0, "capacity run failed: {:?}", s.first_error);
        eprintln!("  {:<26} {:>8.0}/s", mode.label(), s.throughput);
        capacity.push((mode, s.throughput));
    }
    gw.stop().await;

    let mut phases = Vec::new();
    for &phase in which {
        let cap = capacity
            .iter()
            .find(|(m, _)| *m == phase.mode())
            .map(|(_, c)| *c)
            .context("no capacity")?;
        let rate = (cap * 0.25 / 10.0).round().max(1.0) * 10.0;
        eprintln!(
            "mcp-soak: {} at {rate:.0}/s for {:.1} min",
            phase.label(),
            minutes
        );
        let idle = if phase == Phase::Churn {
            CHURN_IDLE
        } else {
            "5m"
        };
        let (gw, _) = bins
            .gateway_with("gw-soak", &[("hello-rs", hello.addr)], &extra(idle))
            .await?;
        let r = one_phase(&gw, phase, rate, slice).await?;
        gw.stop().await;
        let _ = std::fs::remove_file(&audit);
        // Printed as each phase ends: a long run shows what it has so far.
        print!("{}", phase_table(&r));
        phases.push(r);
    }
    hello.stop().await;

    let pass = phases.iter().all(|p| judge(p).iter().all(|(_, ok)| *ok));
    let report = SoakReport {
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        minutes,
        capacity,
        phases,
        pass,
    };
    println!("{}", table(&report));
    std::fs::create_dir_all(out)?;
    let path = out.join(format!("soak-{}.json", report.unix_time));
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

async fn one_phase(
    gw: &Proc,
    phase: Phase,
    rate: f64,
    slice: Duration,
) -> anyhow::Result<PhaseReport> {
    let cs = crate::clients(phase.mode(), CLIENTS, gw.addr, gw.addr).await?;
    let churn = (phase == Phase::Churn).then_some(gw.addr);
    let t0 = Instant::now();
    let pid = gw.pid();
    let every = RSS_EVERY.min(slice / 5);
    let rss = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let rss = rss.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let m = crate::procs::Memory::of(pid);
                rss.lock()
                    .expect("rss lock")
                    .push((t0.elapsed().as_secs_f64(), m.rss_mb));
            }
        })
    };
    let slices = sliced_open_loop(cs, rate, slice, churn).await;
    // One last sample at the end of the load.
    rss.lock()
        .expect("rss lock")
        .push((t0.elapsed().as_secs_f64(), gw.memory().rss_mb));
    sampler.abort();
    let rss = std::mem::take(&mut *rss.lock().expect("rss lock"));
    let warm_at = slice.as_secs_f64();
    let rss_warm_mb = rss
        .iter()
        .find(|(t, _)| *t >= warm_at - 1.0)
        .map(|(_, m)| *m)
        .filter(|m| *m > 0.0)
        .context("no RSS reading at the end of the warm-up")?;
    let rss_end_mb = rss.last().map(|(_, m)| *m).unwrap_or(0.0);
    let after: Vec<(f64, f64)> = rss
        .iter()
        .copied()
        .filter(|(t, _)| *t >= warm_at - 1.0)
        .collect();
    let rss_peak_mb = after.iter().map(|(_, m)| *m).fold(0.0, f64::max);
    let (after_expiry, sessions_at_end) = if phase == Phase::Churn {
        let live = sessions(gw.addr).await?;
        wait_no_sessions(gw.addr, Duration::from_secs(180)).await?;
        // The trimmer runs every second.
        tokio::time::sleep(Duration::from_secs(3)).await;
        (Some(gw.memory().rss_mb / rss_warm_mb), Some(live))
    } else {
        (None, None)
    };
    Ok(PhaseReport {
        phase,
        rate,
        slices,
        growth: rss_end_mb / rss_warm_mb - 1.0,
        slope_mb_per_min: slope(&after) * 60.0,
        rss,
        rss_warm_mb,
        rss_end_mb,
        rss_peak_mb,
        after_expiry,
        sessions_at_end,
    })
}

/// Least-squares slope of (t, y), per unit of t.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mt, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, y)| (a + t / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (t, y)| {
        (a + (t - mt) * (y - my), b + (t - mt) * (t - mt))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

/// [`load::open_loop`] over `SLICES` slices of `slice`, each with its own
/// latencies. With `churn`, each client leaves after `CHURN_CALLS` calls
/// (its connection closed, no DELETE) and a new one opens a session.
async fn sliced_open_loop(
    clients: Vec<Client>,
    rate: f64,
    slice: Duration,
    churn: Option<SocketAddr>,
) -> Vec<Stats> {
    let total = slice * SLICES as u32;
    let (start, rx, pacer) = load::pacer(rate, total);
    let slots: Arc<Vec<Mutex<Tally>>> =
        Arc::new((0..SLICES).map(|_| Mutex::new(Tally::new())).collect());
    let mut tasks = Vec::new();
    for mut client in clients {
        let (slots, rx) = (slots.clone(), rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut made = 0;
            loop {
                if let Some(addr) = churn
                    && made == CHURN_CALLS
                {
                    made = 0;
                    match Mcp::connect(addr, Mode::Stateful).await {
                        Ok(c) => client = Client::Mcp(Box::new(c)),
                        Err(e) => {
                            let i = (start.elapsed().as_secs_f64() / slice.as_secs_f64()) as usize;
                            slots[i.min(SLICES - 1)]
                                .lock()
                                .expect("slot lock")
                                .failed(&e);
                        }
                    }
                }
                let Some(at) = rx.lock().await.recv().await else {
                    break;
                };
                let r = client.run(&crate::echo()).await;
                made += 1;
                let took = at.elapsed();
                let i = ((at.saturating_duration_since(start)).as_secs_f64() / slice.as_secs_f64())
                    as usize;
                let mut s = slots[i.min(SLICES - 1)].lock().expect("slot lock");
                match r {
                    Ok(_) => s.ok(took),
                    Err(e) => s.failed(&e),
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = pacer.join();
    slots
        .iter()
        .map(|s| s.lock().expect("slot lock").stats(slice.as_secs_f64()))
        .collect()
}

async fn sessions(addr: SocketAddr) -> anyhow::Result<u64> {
    let mut http = crate::client::Http::connect(addr).await?;
    let r = http.get("/ready").await?;
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    v["sessions"].as_u64().context("/ready without sessions")
}

async fn wait_no_sessions(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if sessions(addr).await? == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("sessions did not expire within {within:?}")
}

/// Each target of a phase and whether it holds.
fn judge(p: &PhaseReport) -> Vec<(String, bool)> {
    // The warm-up slice is reported, not judged.
    let measured = || p.slices.iter().skip(1);
    let worst = |f: fn(&Stats) -> f64| measured().map(f).fold(0.0, f64::max) / 1000.0;
    let mut out = vec![
        (
            format!(
                "RSS growth after warm-up {:+.1}% (≤ {:.0}%)",
                p.growth * 100.0,
                MAX_GROWTH * 100.0
            ),
            p.growth <= MAX_GROWTH,
        ),
        (
            format!(
                "worst slice p99 {:.2} ms (≤ {MAX_P99_MS} ms)",
                worst(|s| s.p99_us)
            ),
            worst(|s| s.p99_us) <= MAX_P99_MS,
        ),
        (
            format!(
                "worst slice p99.9 {:.2} ms (≤ {MAX_P999_MS} ms)",
                worst(|s| s.p999_us)
            ),
            worst(|s| s.p999_us) <= MAX_P999_MS,
        ),
        (
            format!("errors {}", p.slices.iter().map(|s| s.errors).sum::<u64>()),
            p.slices.iter().all(|s| s.errors == 0),
        ),
    ];
    if let Some(a) = p.after_expiry {
        out.push((
            format!(
                "RSS after sessions expired {a:.2}× warm-up (≤ +{:.0}%)",
                MAX_AFTER_CHURN * 100.0
            ),
            a <= 1.0 + MAX_AFTER_CHURN,
        ));
    }
    out
}

fn table(r: &SoakReport) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nsoak: {:.1} min per phase, slices of {:.1} min (the first is the warm-up)\n",
        r.minutes,
        r.minutes / SLICES as f64
    );
    for p in &r.phases {
        t.push_str(&phase_table(p));
    }
    let _ = writeln!(
        t,
        "soak: {}",
        if r.pass {
            "every target PASS"
        } else {
            "some target MISS"
        }
    );
    t
}

/// One phase's slices, RSS and verdicts.
fn phase_table(p: &PhaseReport) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(t, "### {} at {:.0} calls/s\n", p.phase.label(), p.rate);
    let _ = writeln!(
        t,
        "| slice | calls | errors | p50 ms | p99 ms | p99.9 ms | max ms |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");
    for (i, s) in p.slices.iter().enumerate() {
        let _ = writeln!(
            t,
            "| {}{} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} |",
            i + 1,
            if i == 0 { " (warm-up)" } else { "" },
            s.requests,
            s.errors,
            s.p50_us / 1000.0,
            s.p99_us / 1000.0,
            s.p999_us / 1000.0,
            s.max_us / 1000.0
        );
    }
    let _ = writeln!(
        t,
        "\nRSS: {:.1} MB after warm-up, {:.1} MB at the end, peak {:.1} MB, slope {:+.3} MB/min",
        p.rss_warm_mb, p.rss_end_mb, p.rss_peak_mb, p.slope_mb_per_min
    );
    if let Some(n) = p.sessions_at_end {
        let _ = writeln!(t, "sessions live when the churn stopped: {n}");
    }
    let _ = writeln!(t);
    for (what, ok) in judge(p) {
        let _ = writeln!(t, "- {} {what}", if ok { "PASS" } else { "MISS" });
    }
    let _ = writeln!(t);
    t
}
