//! Closed-loop and fixed-rate (open-loop) drivers. Every loop is bounded by
//! time and stops by itself.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::{Client, Op};

/// Latencies in nanoseconds, 1 ns to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub throughput: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl Stats {
    pub fn from(
        h: &Histogram<u64>,
        errors: u64,
        seconds: f64,
        first_error: Option<String>,
    ) -> Self {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            requests: h.len(),
            errors,
            seconds,
            throughput: h.len() as f64 / seconds,
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: h.max() as f64 / 1000.0,
            first_error,
        }
    }
}

/// Latencies and errors of one run (or one client, or one slice).
pub struct Tally {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            hist: histogram(),
            errors: 0,
            first_error: None,
        }
    }

    pub fn ok(&mut self, took: Duration) {
        let _ = self.hist.record(took.as_nanos() as u64);
    }

    pub fn failed(&mut self, e: &anyhow::Error) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| format!("{e:#}"));
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.hist.add(&other.hist);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn stats(&self, seconds: f64) -> Stats {
        Stats::from(&self.hist, self.errors, seconds, self.first_error.clone())
    }
}

/// Connects `n` clients one after another (a storm of 256 handshakes
/// would measure the accept queue, not the gateway).
pub async fn connect_all<F, Fut>(n: usize, connect: F) -> anyhow::Result<Vec<Client>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Client>>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(connect(i).await?);
    }
    Ok(out)
}

/// Each client sends its next request as soon as the previous one is
/// answered. Requests started during `warmup` are not recorded.
pub async fn closed_loop(
    clients: Vec<Client>,
    op: Op,
    warmup: Duration,
    measure: Duration,
) -> Stats {
    let (hist, errors, first_error) = closed_loop_raw(clients, op, warmup, measure).await;
    Stats::from(&hist, errors, measure.as_secs_f64(), first_error)
}

/// [`closed_loop`]'s histogram and error count, to merge several rounds.
pub async fn closed_loop_hist(
    clients: Vec<Client>,
    op: Op,
    warmup: Duration,
    measure: Duration,
) -> (Histogram<u64>, u64) {
    let (hist, errors, _) = closed_loop_raw(clients, op, warmup, measure).await;
    (hist, errors)
}

async fn closed_loop_raw(
    clients: Vec<Client>,
    op: Op,
    warmup: Duration,
    measure: Duration,
) -> (Histogram<u64>, u64, Option<String>) {
    let shared = Arc::new(Mutex::new(Tally::new()));
    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + measure;
    let mut tasks = Vec::new();
    for mut client in clients {
        let shared = shared.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let r = client.run(&op).await;
                let took = t.elapsed();
                if t < warm_end {
                    continue;
                }
                match r {
                    Ok(_) => tally.ok(took),
                    Err(e) => {
                        tally.failed(&e);
                        // A broken client must not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            shared.lock().expect("stats lock").merge(tally);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let s = shared.lock().expect("stats lock");
    (s.hist.clone(), s.errors, s.first_error.clone())
}

/// The receiving end of a fixed-rate schedule.
pub type Schedule = Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>>;

/// A thread that releases `rate` send times a second for `length` (precise
/// `thread::sleep`, unlike tokio's 1 ms timer); idle clients take them from
/// the schedule. Returns when the schedule starts.
pub fn pacer(rate: f64, length: Duration) -> (Instant, Schedule, std::thread::JoinHandle<()>) {
    let total = (length.as_secs_f64() * rate) as u64;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let start = Instant::now() + Duration::from_millis(20);
    let thread = std::thread::spawn(move || {
        let interval = Duration::from_secs_f64(1.0 / rate);
        for i in 0..total {
            let at = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send(at).is_err() {
                break;
            }
        }
    });
    (start, Arc::new(tokio::sync::Mutex::new(rx)), thread)
}

/// Sends at a fixed `rate` regardless of how fast answers come back, and
/// measures each latency from the request's *scheduled* send time, so a
/// stall is charged to every request it delays (no coordinated omission).
pub async fn open_loop(
    clients: Vec<Client>,
    op: Op,
    rate: f64,
    warmup: Duration,
    measure: Duration,
) -> Stats {
    let (start, rx, pacer) = pacer(rate, warmup + measure);
    let warm_end = start + warmup;
    let shared = Arc::new(Mutex::new(Tally::new()));
    let mut tasks = Vec::new();
    for mut client in clients {
        let (shared, rx, op) = (shared.clone(), rx.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            loop {
                let Some(at) = rx.lock().await.recv().await else {
                    break;
                };
                let r = client.run(&op).await;
                let took = at.elapsed();
                if at < warm_end {
                    continue;
                }
                match r {
                    Ok(_) => tally.ok(took),
                    Err(e) => tally.failed(&e),
                }
            }
            shared.lock().expect("stats lock").merge(tally);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = pacer.join();
    let s = shared.lock().expect("stats lock");
    s.stats(measure.as_secs_f64())
}
