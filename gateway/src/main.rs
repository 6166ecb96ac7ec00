//! The `mcp-gateway` binary: CLI parsing, logging and signals. Everything
//! else lives in the library.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mcp_gateway::{
    Gateway,
    config::{Config, DEFAULT_CONFIG_PATH},
    telemetry::{self, LogFormat},
};

// mimalloc: allocation was a sixth of a call's instructions with glibc
// (docs/performance.md, "Idle RSS" and the allocator rows).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (mimalloc.h); the
/// Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[derive(Parser)]
#[command(
    name = "mcp-gateway",
    version,
    about = "One MCP endpoint in front of many gRPC tool providers"
)]
struct Cli {
    /// The providers.yaml to load [default: providers.yaml, or, when there
    /// is no such file, an embedded default: hello-rs on 127.0.0.1:50052].
    /// A file named here must exist.
    #[arg(short, long, env = "MCP_GATEWAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Serve MCP over stdin/stdout instead of HTTP.
    #[arg(long)]
    stdio: bool,
    /// Override the config's `listen` address.
    #[arg(long, env = "MCP_GATEWAY_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// Log lines as JSON (for services and log pipelines) or as text for a
    /// person (coloured when stderr is a terminal).
    #[arg(long, env = "MCP_GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config and the files it names, and exit: 0 when the
    /// gateway would start on it, 1 with every problem listed otherwise.
    Check,
    /// Write a development CA and certificates signed by it (provider server
    /// certificate for localhost/127.0.0.1, gateway client certificate).
    Certs {
        /// Directory to write ca.pem, server.pem/.key, client.pem/.key into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    // Freed pages go back to the OS in batches, 50 ms after they were freed:
    // an immediate purge cost a `madvise` every few calls (~8% of the
    // gateway's CPU at c=32), mimalloc's default second left RSS high for
    // longer. The trimmer (control/memory.rs) carries out what is due when
    // the process is idle. An operator's MIMALLOC_PURGE_DELAY wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide allocator option, which mimalloc
        // allows at any time from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 50) };
    }
    let cli = Cli::parse();
    if let Some(Command::Certs { out }) = &cli.command {
        let made = mcp_gateway::certs::generate(&Default::default()).and_then(|b| b.write(out));
        return match made {
            Ok(()) => {
                println!(
                    "wrote ca.pem ca.key server.pem server.key client.pem client.key to {}",
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mcp-gateway: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Check) = cli.command {
        return check(&cli);
    }
    let (config, watch) = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-gateway: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(endpoint) = &config.telemetry.otlp_endpoint
        && std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
    {
        // SAFETY: single-threaded here, before the runtime or any thread starts.
        unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint) };
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    // The OTLP exporter needs the runtime; declared after it, so the guard
    // flushes spans before the runtime goes away.
    let tracing_guard = {
        let _rt = rt.enter();
        telemetry::init_logging(cli.log_format)
    };
    let listen = config.listen;
    // Startup (discovery, compiling schemas) runs deep, and a main-thread
    // stack once touched stays resident; a thread's stack is returned to
    // the OS when the thread ends.
    let started = std::thread::scope(|s| {
        s.spawn(|| rt.block_on(Box::pin(Gateway::start(config))))
            .join()
            .expect("the startup thread panicked")
    });
    let served = match started {
        Ok(gateway) => rt.block_on(Box::pin(serve(cli.stdio, gateway, listen, watch))),
        Err(e) => Err(e.into()),
    };
    let code = match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "mcp-gateway failed");
            eprintln!("mcp-gateway: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Flushes spans (the last error's too) while the runtime still runs.
    drop(tracing_guard);
    // tokio reads stdin on a blocking thread that stays in read(2) until
    // the parent writes or closes it; a session that ended because stdout
    // closed must not wait for that.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

/// The config, and the file to watch for hot reload (none when running on
/// the embedded default).
fn load(cli: &Cli) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let (mut config, watch) = match &cli.config {
        Some(path) => (Config::load(path)?, Some(path.clone())),
        None => match Config::load_default()? {
            (c, true) => (c, Some(PathBuf::from(DEFAULT_CONFIG_PATH))),
            (c, false) => (c, None),
        },
    };
    if let Err(p) = override_listen(cli, &mut config) {
        anyhow::bail!("invalid config: {p}");
    }
    Ok((config, watch))
}

/// `--listen` (or `MCP_GATEWAY_LISTEN`) over the config's, re-validated:
/// the override may be a public address.
fn override_listen(cli: &Cli, config: &mut Config) -> Result<(), mcp_gateway::config::Problem> {
    let Some(listen) = cli.listen else {
        return Ok(());
    };
    config.listen = listen;
    if config.unauthenticated_public_bind() {
        return Err(mcp_gateway::config::Problem {
            field: "listen".into(),
            message: format!(
                "{listen} (from --listen) is not a loopback address and clients are not \
                 authenticated; bind 127.0.0.1 or set allow_unauthenticated_public_bind: true"
            ),
        });
    }
    Ok(())
}

/// `mcp-gateway check`: the file must exist (the embedded default needs no
/// checking), then everything start would refuse, all of it at once.
fn check(cli: &Cli) -> ExitCode {
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let problems = match Config::load(&path) {
        Ok(mut config) => {
            let mut problems: Vec<_> = override_listen(cli, &mut config)
                .err()
                .into_iter()
                .collect();
            problems.extend(mcp_gateway::preflight(&config));
            if problems.is_empty() {
                let names: Vec<_> = config.providers.iter().map(|p| p.name.as_str()).collect();
                println!(
                    "{}: OK ({} provider{}: {})\nnot checked: whether the providers answer, NATS \
                     is reachable, and managed provider commands start; /ready shows those",
                    path.display(),
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                );
                return ExitCode::SUCCESS;
            }
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(mcp_gateway::config::ConfigError::Invalid(problems)) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => {
            let mut line = e.to_string();
            if cli.config.is_none() {
                line.push_str(
                    " (without this file, `mcp-gateway` runs on its embedded default: \
                     hello-rs on 127.0.0.1:50052)",
                );
            }
            vec![line]
        }
    };
    eprintln!(
        "{}: {} problem{}:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        eprintln!("  {p}");
    }
    ExitCode::FAILURE
}

async fn serve(
    stdio: bool,
    gateway: Gateway,
    listen: SocketAddr,
    watch: Option<PathBuf>,
) -> anyhow::Result<()> {
    let stop_watching = tokio_util::sync::CancellationToken::new();
    if let Some(path) = watch {
        tokio::spawn(mcp_gateway::reload::watch(
            gateway.clone(),
            path,
            stop_watching.clone(),
        ));
    }
    let _stop_watching = stop_watching.drop_guard();
    if stdio {
        gateway.serve_stdio(shutdown_signal()).await?;
    } else {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        gateway.serve_http(listener, shutdown_signal()).await?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
