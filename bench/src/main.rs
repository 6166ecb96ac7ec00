//! `mcp-bench`: runs the gateway's performance scenarios against real
//! processes on loopback and prints one table (docs/performance.md).
//!
//! `mcp-bench run` needs the release binaries of `mcp-gateway` and
//! `hello-rs` next to itself (`make bench` builds them);
//! `mcp-bench synthetic` is the N-tool provider the catalog scenarios use.

mod client;
mod events;
mod link_order;
mod load;
mod procs;
mod report;
mod rmcp_echo;
mod soak;
mod synthetic;

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tonic::transport::{Channel, Endpoint};

use crate::{
    client::{Client, Grpc, Mcp, Mode, Op},
    load::Stats,
    procs::{Bins, Proc},
    report::{Report, Row},
};

#[derive(Parser)]
#[command(name = "mcp-bench", about = "MCP gateway benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every scenario, print the table, write JSON.
    Run(RunArgs),
    /// One closed-loop load against running processes (for profiling).
    Load {
        /// The gateway's HTTP address.
        #[arg(long)]
        gateway: SocketAddr,
        /// The provider's gRPC address (direct-gRPC mode).
        #[arg(long)]
        provider: Option<SocketAddr>,
        #[arg(long, value_enum, default_value = "stateless")]
        mode: Mode,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Call this exposed tool (provider-own name after the first dot);
        /// `tools/list` when absent.
        #[arg(long, default_value = ECHO_EXPOSED)]
        tool: String,
        #[arg(long)]
        list: bool,
    },
    /// Write the gateway's link order (`gateway/link-order.txt`) from a
    /// callgrind run: the functions run at start, under calls, at shutdown.
    LinkOrder {
        /// Where the release binaries are (default: next to mcp-bench).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        #[arg(long, default_value = "gateway/link-order.txt")]
        out: PathBuf,
    },
    /// The soak: fixed-rate echo at 25% of capacity on each revision and
    /// with session churn, latency per slice and RSS every 30 s.
    Soak {
        /// Where the release binaries are (default: next to mcp-bench).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Where the JSON report goes.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
        /// Minutes per phase (three phases); the first sixth is the warm-up.
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Which phases, in order (default: all three).
        #[arg(long, value_enum, value_delimiter = ',')]
        phases: Vec<soak::Phase>,
    },
    /// Serve a bare rmcp server with one `echo` tool at http://LISTEN/mcp.
    RmcpEcho {
        #[arg(long)]
        listen: String,
    },
    /// Serve a synthetic provider with N tools (`tool-00000.v1` ...).
    Synthetic {
        #[arg(long, default_value = "synth")]
        name: String,
        #[arg(long)]
        listen: String,
        #[arg(long, default_value_t = 10)]
        tools: usize,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Where the release binaries are (default: next to mcp-bench).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Measured seconds per load scenario.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Unrecorded warm-up seconds before each load scenario.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// RUST_LOG for the gateway (default: unset, i.e. its default `info`).
    #[arg(long)]
    gateway_log: Option<String>,
}

/// The gateway's default `pool_size` and calls per channel: the direct mode
/// spreads its clients over channels the same way the gateway's upstream
/// does, so the floor has the same connection fan-out.
const POOL: usize = 15;
const CALLS_PER_CHANNEL: usize = 16;
const ECHO_EXPOSED: &str = "hello-rs.echo.v1";
const ECHO_OWN: &str = "echo.v1";
const OPEN_LOOP_CLIENTS: usize = 64;
/// Scenario names of the other MCP servers' rows; report.rs judges the
/// agentgateway ones.
const RMCP_ECHO: &str = "echo, bare rmcp server";
pub(crate) const AGENTGATEWAY_ECHO: &str = "echo via agentgateway";

fn main() -> std::process::ExitCode {
    // One line, not anyhow's Debug with a backtrace.
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    // The MCP client in the events scenario speaks HTTP through rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Cmd::Synthetic {
            name,
            listen,
            tools,
        } => rt.block_on(synthetic::serve(&name, &listen, tools)),
        Cmd::LinkOrder { bin_dir, out } => rt.block_on(async move {
            let (bins, work) = bins(bin_dir, None)?;
            let result = link_order::write(&bins, &out).await;
            let _ = std::fs::remove_dir_all(&work);
            result
        }),
        Cmd::Soak {
            bin_dir,
            out,
            minutes,
            phases,
        } => rt.block_on(async move {
            anyhow::ensure!(minutes >= 1.0, "--minutes: at least 1");
            let (bins, work) = bins(bin_dir, None)?;
            let which = if phases.is_empty() {
                soak::ALL.to_vec()
            } else {
                phases
            };
            let result = soak::run(&bins, minutes, &which, &out).await;
            let _ = std::fs::remove_dir_all(&work);
            result
        }),
        Cmd::RmcpEcho { listen } => rt.block_on(rmcp_echo::serve(&listen)),
        Cmd::Run(args) => rt.block_on(run(args)),
        Cmd::Load {
            gateway,
            provider,
            mode,
            concurrency,
            seconds,
            tool,
            list,
        } => rt.block_on(async move {
            let op = if list {
                Op::ToolsList
            } else {
                let own = tool.split_once('.').map_or(tool.as_str(), |(_, o)| o);
                Op::Call {
                    own: own.to_string(),
                    exposed: tool.clone(),
                }
            };
            let provider = provider.unwrap_or(gateway);
            let cs = clients(mode, concurrency, gateway, provider).await?;
            let s = load::closed_loop(
                cs,
                op,
                Duration::from_millis(500),
                Duration::from_secs_f64(seconds),
            )
            .await;
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        }),
    }
}

struct Ctx {
    bins: Bins,
    warmup: Duration,
    measure: Duration,
    report: Report,
}

fn echo() -> Op {
    Op::Call {
        exposed: ECHO_EXPOSED.into(),
        own: ECHO_OWN.into(),
    }
}

fn channels(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Channel>> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true);
    Ok((0..n).map(|_| ep.connect_lazy()).collect())
}

async fn clients(
    mode: Mode,
    n: usize,
    gateway: SocketAddr,
    provider: SocketAddr,
) -> anyhow::Result<Vec<Client>> {
    match mode {
        Mode::Grpc => {
            let chans = channels(provider, n.div_ceil(CALLS_PER_CHANNEL).clamp(1, POOL))?;
            Ok((0..n)
                .map(|i| {
                    let c = (i / CALLS_PER_CHANNEL).min(chans.len() - 1);
                    Client::Grpc(Grpc::new(chans[c].clone()))
                })
                .collect())
        }
        _ => {
            load::connect_all(n, |_| async move {
                Ok(Client::Mcp(Box::new(Mcp::connect(gateway, mode).await?)))
            })
            .await
        }
    }
}

impl Ctx {
    fn measure_row(
        &mut self,
        scenario: &str,
        mode: Mode,
        concurrency: usize,
        rate: Option<f64>,
        stats: Stats,
        gw: Option<(&Proc, f64)>,
    ) {
        let (gateway_memory, gateway_cpu_us_per_call) = match gw {
            Some((p, cpu0)) => {
                let calls = stats.throughput * (self.warmup + self.measure).as_secs_f64();
                let cpu = (p.cpu_seconds() - cpu0) * 1e6 / calls.max(1.0);
                (Some(p.memory()), Some(cpu))
            }
            None => (None, None),
        };
        eprintln!(
            "  {scenario:<28} {:<26} c={concurrency:<4} {:>8.0}/s p50={:>8.1}µs p99={:>8.1}µs err={}",
            mode.label(),
            stats.throughput,
            stats.p50_us,
            stats.p99_us,
            stats.errors
        );
        if let Some(e) = &stats.first_error {
            eprintln!("    first error: {e}");
        }
        self.report.rows.push(Row {
            scenario: scenario.into(),
            mode: Some(mode),
            concurrency: Some(concurrency),
            rate,
            stats: Some(stats),
            gateway_memory,
            gateway_cpu_us_per_call,
            value: None,
            unit: None,
        });
    }

    fn figure_row(&mut self, scenario: &str, value: f64, unit: &'static str) {
        eprintln!("  {scenario:<28} {value:.1} {unit}");
        self.report.rows.push(Row {
            scenario: scenario.into(),
            mode: None,
            concurrency: None,
            rate: None,
            stats: None,
            gateway_memory: None,
            gateway_cpu_us_per_call: None,
            value: Some(value),
            unit: Some(unit),
        });
    }

    async fn closed(
        &mut self,
        scenario: &str,
        mode: Mode,
        n: usize,
        op: &Op,
        gw: &Proc,
        provider: SocketAddr,
    ) -> anyhow::Result<()> {
        let cs = clients(mode, n, gw.addr, provider).await?;
        let cpu0 = gw.cpu_seconds();
        let stats = load::closed_loop(cs, op.clone(), self.warmup, self.measure).await;
        let gw = (mode != Mode::Grpc).then_some((gw, cpu0));
        self.measure_row(scenario, mode, n, None, stats, gw);
        Ok(())
    }
}

/// The binaries `mcp-bench` starts, and a fresh work directory for them.
fn bins(bin_dir: Option<PathBuf>, gateway_log: Option<String>) -> anyhow::Result<(Bins, PathBuf)> {
    let bin_dir = match bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("mcp-bench has no directory")?
            .to_path_buf(),
    };
    let work = std::env::temp_dir().join(format!("mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let gateway_env = match gateway_log {
        Some(level) => vec![("RUST_LOG", &*Box::leak(level.into_boxed_str()))],
        None => Vec::new(),
    };
    let bins = Bins {
        gateway: bin_dir.join("mcp-gateway"),
        hello: bin_dir.join("hello-rs"),
        me: std::env::current_exe()?,
        agentgateway: std::env::var_os("AGENTGATEWAY_BIN").map(PathBuf::from),
        work: work.clone(),
        gateway_env,
    };
    for b in [&bins.gateway, &bins.hello] {
        anyhow::ensure!(
            b.exists(),
            "{} not found: build with `cargo build --release -p mcp-gateway -p hello-rs`",
            b.display()
        );
    }
    Ok((bins, work))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (bins, work) = bins(args.bin_dir, args.gateway_log)?;
    let mut cx = Ctx {
        bins,
        warmup: Duration::from_secs_f64(args.warmup),
        measure: Duration::from_secs_f64(args.seconds),
        report: Report::new(),
    };
    let started = Instant::now();
    let result = scenarios(&mut cx).await;
    let _ = std::fs::remove_dir_all(&work);
    result?;
    cx.report.evaluate();
    println!("{}", cx.report.table());
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join(format!("bench-{}.json", cx.report.unix_time));
    std::fs::write(&path, serde_json::to_vec_pretty(&cx.report)?)?;
    eprintln!(
        "wrote {} ({:.0} s in all)",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Gateway instructions per echo `tools/call`, counted by callgrind during a
/// closed-loop load (c=4) and divided by the calls made: independent of the
/// machine's noise. Skipped, and said so, without valgrind.
async fn instructions(cx: &mut Ctx, hello: SocketAddr) -> anyhow::Result<()> {
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("valgrind") || !have("callgrind_control") {
        eprintln!("mcp-bench: valgrind not installed; instructions per call not measured");
        return Ok(());
    }
    eprintln!("mcp-bench: instructions per call (callgrind)");
    for mode in [Mode::Stateful, Mode::Stateless] {
        let out = cx.bins.work.join(format!("callgrind-{mode:?}.out"));
        let gw = cx
            .bins
            .gateway_callgrind("gw-callgrind", &[("hello-rs", hello)], &out)
            .await?;
        let control = |arg: &str| {
            std::process::Command::new("callgrind_control")
                .args([arg, &gw.pid().to_string()])
                .output()
        };
        let cs = clients(mode, 4, gw.addr, hello).await?;
        load::closed_loop(cs, echo(), Duration::ZERO, Duration::from_secs(2)).await;
        let cs = clients(mode, 4, gw.addr, hello).await?;
        control("-z")?;
        let stats = load::closed_loop(cs, echo(), Duration::ZERO, Duration::from_secs(5)).await;
        control("-d")?;
        let dump = std::path::PathBuf::from(format!("{}.1", out.display()));
        let mut total = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            total = std::fs::read_to_string(&dump).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("summary: "))
                    .and_then(|n| n.trim().parse::<f64>().ok())
            });
            if total.is_some() {
                break;
            }
        }
        gw.stop().await;
        let total = total.context("no callgrind dump")?;
        anyhow::ensure!(
            stats.requests > 0 && stats.errors == 0,
            "calls under callgrind failed"
        );
        let per_call = total / stats.requests as f64;
        let label = match mode {
            Mode::Stateful => "instructions per call (session)",
            _ => "instructions per call (stateless)",
        };
        cx.figure_row(label, per_call, "instr");
    }
    Ok(())
}

/// The same echo load on a bare rmcp server, and on agentgateway in front
/// of it when `AGENTGATEWAY_BIN` names a build of it (the row is skipped,
/// and the target says so, otherwise).
async fn other_mcp_servers(cx: &mut Ctx) -> anyhow::Result<()> {
    eprintln!("mcp-bench: echo on a bare rmcp server");
    let op = Op::Call {
        exposed: rmcp_echo::TOOL.into(),
        own: rmcp_echo::TOOL.into(),
    };
    let rmcp = cx.bins.rmcp_echo().await?;
    for n in [1, 32] {
        for mode in [Mode::Stateful, Mode::Stateless] {
            cx.closed(RMCP_ECHO, mode, n, &op, &rmcp, rmcp.addr).await?;
        }
    }
    let Some(bin) = cx.bins.agentgateway.clone() else {
        eprintln!("mcp-bench: agentgateway skipped (set AGENTGATEWAY_BIN to a release build)");
        return Ok(());
    };
    anyhow::ensure!(
        bin.exists(),
        "AGENTGATEWAY_BIN: {} not found",
        bin.display()
    );
    eprintln!("mcp-bench: echo through agentgateway");
    for (mode, stateful_mode) in [(Mode::Stateful, "stateful"), (Mode::Stateless, "stateless")] {
        let agw = cx.bins.agentgateway(&bin, rmcp.addr, stateful_mode).await?;
        for n in [1, 32] {
            cx.closed(AGENTGATEWAY_ECHO, mode, n, &op, &agw, rmcp.addr)
                .await?;
        }
        agw.stop().await;
    }
    rmcp.stop().await;
    Ok(())
}

async fn scenarios(cx: &mut Ctx) -> anyhow::Result<()> {
    eprintln!("mcp-bench: starting providers");
    let hello = cx.bins.hello().await?;
    let synth10 = cx.bins.synthetic("synth-10", 10).await?;
    let synth10k = cx.bins.synthetic("synth-10k", 10_000).await?;

    // Idle RSS and 1,000 idle sessions, on a gateway that has served nothing.
    eprintln!("mcp-bench: idle memory and sessions");
    let (gw, _) = cx
        .bins
        .gateway("gw-sessions", &[("hello-rs", hello.addr)])
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cx.figure_row("idle RSS", gw.memory().rss_mb, "MB");
    let mut held = Vec::with_capacity(1000);
    for _ in 0..1000 {
        held.push(Mcp::connect(gw.addr, Mode::Stateful).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = gw.memory();
    cx.figure_row("1,000 idle sessions RSS", m.rss_mb, "MB");
    drop(held);
    gw.stop().await;

    instructions(cx, hello.addr).await?;

    // Memory comes back after sessions end: two rounds of 5,000 bare
    // `initialize`s that expire, against the gateway's RSS after a warm-up.
    eprintln!("mcp-bench: session churn");
    let (gw, _) = cx
        .bins
        .gateway_with(
            "gw-churn",
            &[],
            "limits:\n  session_idle_timeout: 2s\n  max_sessions_per_client: 10000\n",
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cold = gw.memory().rss_mb;
    open_bare_sessions(gw.addr, 20).await?;
    wait_no_sessions(gw.addr).await?;
    let warm = gw.memory().rss_mb;
    let mut peak: f64 = 0.0;
    for _ in 0..2 {
        open_bare_sessions(gw.addr, 5000).await?;
        peak = peak.max(gw.memory().rss_mb);
        wait_no_sessions(gw.addr).await?;
    }
    // The trimmer runs every second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = gw.memory().rss_mb;
    cx.figure_row("session churn peak RSS", peak, "MB");
    cx.figure_row("session churn RSS after / before", after / warm, "x");
    cx.figure_row("session churn RSS after / cold idle", after / cold, "x");
    gw.stop().await;

    // Echo through the gateway and directly, modes interleaved so drift in
    // the machine's load hits them alike.
    eprintln!("mcp-bench: echo.v1");
    let (gw, _) = cx
        .bins
        .gateway("gw-echo", &[("hello-rs", hello.addr)])
        .await?;
    let modes = [Mode::Grpc, Mode::Stateful, Mode::Stateless];
    for n in [1, 32, 256] {
        for mode in modes {
            cx.closed("echo", mode, n, &echo(), &gw, hello.addr).await?;
        }
    }
    // Fixed rate at half the gateway's closed-loop capacity at c=32.
    let cap = cx
        .report
        .find("echo", Mode::Stateful, 32)
        .map(|s| s.throughput)
        .unwrap_or(1000.0)
        .min(
            cx.report
                .find("echo", Mode::Stateless, 32)
                .map(|s| s.throughput)
                .unwrap_or(1000.0),
        );
    let rate = ((cap / 2.0) / 100.0).floor().max(1.0) * 100.0;
    for mode in modes {
        let cs = clients(mode, OPEN_LOOP_CLIENTS, gw.addr, hello.addr).await?;
        let cpu0 = gw.cpu_seconds();
        let stats = load::open_loop(cs, echo(), rate, cx.warmup, cx.measure).await;
        let g = (mode != Mode::Grpc).then_some((&gw, cpu0));
        cx.measure_row(
            "echo fixed rate",
            mode,
            OPEN_LOOP_CLIENTS,
            Some(rate),
            stats,
            g,
        );
    }
    gw.stop().await;
    other_mcp_servers(cx).await?;

    // Catalog size: the same tool with 10 and with 10,000 tools around it,
    // the two gateways alternated in short rounds.
    eprintln!("mcp-bench: catalog size");
    let (gw10, _) = cx.bins.gateway("gw-10", &[("synth", synth10.addr)]).await?;
    let (gw10k, _) = cx
        .bins
        .gateway("gw-10k", &[("synth", synth10k.addr)])
        .await?;
    let tool = format!("synth.{}", synthetic::tool_name(5));
    let op = Op::Call {
        exposed: tool,
        own: synthetic::tool_name(5),
    };
    // Many short rounds: other load on the machine drifts, and finely
    // interleaved rounds let both gateways see the same drift.
    let rounds = 10;
    let round = cx.measure.mul_f64(2.0 / rounds as f64);
    for mode in [Mode::Stateful, Mode::Stateless] {
        let mut h = [load::histogram(), load::histogram()];
        let mut errors = [0, 0];
        for _ in 0..rounds {
            for (i, gw) in [&gw10, &gw10k].into_iter().enumerate() {
                let cs = clients(mode, 1, gw.addr, synth10.addr).await?;
                let (hist, err) =
                    load::closed_loop_hist(cs, op.clone(), cx.warmup / 4, round).await;
                h[i].add(&hist).expect("same bounds");
                errors[i] += err;
            }
        }
        let secs = round.as_secs_f64() * rounds as f64;
        for (i, label) in ["call with 10 tools", "call with 10,000 tools"]
            .into_iter()
            .enumerate()
        {
            let stats = Stats::from(&h[i], errors[i], secs, None);
            cx.measure_row(label, mode, 1, None, stats, None);
        }
    }
    for mode in [Mode::Stateful, Mode::Stateless] {
        cx.closed(
            "tools/list 10,000 tools",
            mode,
            1,
            &Op::ToolsList,
            &gw10k,
            synth10k.addr,
        )
        .await?;
    }
    gw10.stop().await;
    gw10k.stop().await;

    // Startup with 10 providers: spawn → /ready shows all 10 ready.
    eprintln!("mcp-bench: startup with 10 providers");
    let mut ten = Vec::new();
    for i in 0..10 {
        ten.push(cx.bins.synthetic(&format!("p{i}"), 10).await?);
    }
    let names: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    let providers: Vec<(&str, SocketAddr)> = names
        .iter()
        .zip(&ten)
        .map(|(n, p)| (n.as_str(), p.addr))
        .collect();
    let mut times = Vec::new();
    for _ in 0..5 {
        let (gw, took) = cx.bins.gateway("gw-startup", &providers).await?;
        times.push(took.as_secs_f64() * 1000.0);
        gw.stop().await;
    }
    times.sort_by(f64::total_cmp);
    cx.figure_row(
        "startup to ready, 10 providers",
        times[times.len() / 2],
        "ms",
    );
    for p in ten {
        p.stop().await;
    }

    // Event latency: JetStream publish → notifications/resources/updated.
    eprintln!("mcp-bench: event latency (NATS JetStream)");
    let nats = events::Nats::start(&cx.bins.work).await?;
    let (gw, _) = cx
        .bins
        .gateway_with(
            "gw-events",
            &[("hello-rs", hello.addr)],
            &events::gateway_yaml(&nats.url),
        )
        .await?;
    let mut lat = events::latencies(gw.addr, &nats.url, 20, 300).await?;
    lat.sort_unstable();
    let pct = |q: f64| {
        lat[((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1] as f64 / 1000.0
    };
    cx.figure_row("event latency p50", pct(0.50), "ms");
    cx.figure_row("event latency p99", pct(0.99), "ms");
    gw.stop().await;
    nats.stop().await;
    hello.stop().await;
    synth10.stop().await;
    synth10k.stop().await;
    Ok(())
}

/// `n` bare 2025-11-25 `initialize`s (no `notifications/initialized`), on 4
/// connections.
async fn open_bare_sessions(addr: std::net::SocketAddr, n: usize) -> anyhow::Result<()> {
    let body = bytes::Bytes::from(
        serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": client::V_SESSION, "capabilities": {},
            "clientInfo": {"name": "mcp-bench", "version": "1"}}})
        .to_string(),
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut http = client::Http::connect(addr).await?;
            for _ in 0..n / 4 {
                let r = http
                    .send(
                        http::Method::POST,
                        "/mcp",
                        &[
                            ("content-type", "application/json"),
                            ("accept", "application/json, text/event-stream"),
                        ],
                        body.clone(),
                    )
                    .await?;
                anyhow::ensure!(r.status == 200, "initialize answered {}", r.status);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Until `/ready` counts no session (they expire after 2 s idle).
async fn wait_no_sessions(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut http = client::Http::connect(addr).await?;
    for _ in 0..300 {
        let r = http.get("/ready").await?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        if v["sessions"] == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("sessions did not expire within 30 s")
}
