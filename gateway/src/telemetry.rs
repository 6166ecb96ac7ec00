//! Structured JSON logs on stderr (stdout is the MCP channel under --stdio).
//! The level comes from `RUST_LOG` (default `info`, with rmcp at `warn`);
//! other crates' TRACE events and rmcp's DEBUG events are dropped (they
//! carry message bodies). Request spans carry the
//! correlation ID, so every line logged inside a request shows it.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// rmcp logs every stateless request at info; operators want ours.
const DEFAULT_FILTER: &str = "info,rmcp=warn";

pub fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr);
    // Dependencies' TRACE events, and rmcp's DEBUG ones, dump raw JSON-RPC
    // messages and headers (tool arguments, tokens): never emitted,
    // whatever RUST_LOG says.
    let no_dependency_trace = tracing_subscriber::filter::filter_fn(|m| {
        let ours = m.target().starts_with("mcp_gateway");
        let level = *m.level();
        ours || (level < tracing::Level::DEBUG
            || (level == tracing::Level::DEBUG && !m.target().starts_with("rmcp")))
    });
    // A second init (tests) is harmless.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(json.with_filter(no_dependency_trace))
        .try_init();
}

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds; covers a 100 µs cache hit to a 30 s deadline.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The process-wide Prometheus recorder. Metric names follow the
/// OpenTelemetry semantic conventions for MCP where they exist
/// (`mcp.server.operation.duration` with `mcp.method.name` and
/// `gen_ai.tool.name`), with dots as underscores as Prometheus requires.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may exist (embedding, tests): then ours only renders.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
