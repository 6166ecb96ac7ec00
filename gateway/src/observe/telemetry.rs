//! Logs on stderr, JSON lines or text (stdout is the MCP channel under --stdio).
//! The level comes from `RUST_LOG` (default `info`, with rmcp at `warn`);
//! other crates' TRACE events and rmcp's DEBUG events are dropped (they
//! carry message bodies). Request spans carry the
//! correlation ID, so every line logged inside a request shows it.

/// rmcp logs every stateless request at info; operators want ours.
const DEFAULT_FILTER: &str = "info,rmcp=warn";

pub use mcp_gateway_proto::trace::TracingGuard;

/// Logs, plus OpenTelemetry traces over OTLP when the standard
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Keep the returned guard alive:
/// dropping it flushes the spans still buffered.
pub fn init_logging(format: LogFormat) -> TracingGuard {
    let format = match format {
        LogFormat::Json => mcp_gateway_proto::trace::LogFormat::Json,
        LogFormat::Text => mcp_gateway_proto::trace::LogFormat::Text,
    };
    mcp_gateway_proto::trace::init_logging_as("mcp-gateway", DEFAULT_FILTER, format)
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object a line (the default: for services and log pipelines).
    Json,
    /// For a person at a terminal; coloured when stderr is one.
    Text,
}

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds; covers a 100 µs cache hit to a 30 s deadline.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// How often recorded durations are folded into their buckets (the
/// exporter's own default when it runs the upkeep itself).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

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
        // `build_recorder` leaves upkeep to us: until it runs, every duration
        // recorded stays in the histogram's raw sample buffer, so without a
        // scrape of /metrics memory grew with each call (docs/performance.md,
        // the soak).
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// The labels of a request's duration and count (`outcome` is added to the
/// count's): one place, so a series made ahead of time is the series the
/// per-request path would find.
pub(crate) fn request_labels(
    method: &'static str,
    provider: &str,
    item: &str,
    error_kind: Option<&'static str>,
) -> Vec<(&'static str, String)> {
    let mut labels = vec![
        ("mcp_method_name", method.to_string()),
        ("provider", provider.to_string()),
    ];
    match method {
        "tools/call" => labels.push(("gen_ai_tool_name", item.to_string())),
        "prompts/get" => labels.push(("gen_ai_prompt_name", item.to_string())),
        _ => {}
    }
    if let Some(kind) = error_kind {
        labels.push(("error_type", kind.to_string()));
    }
    labels
}

/// One tool's series for calls that did not fail, registered on the first
/// call: looking a series up by its labels costs allocations and a hash
/// per request, and a catalog entry knows its labels.
#[derive(Default)]
pub(crate) struct ToolSeries(OnceLock<ToolHandles>);

pub(crate) struct ToolHandles {
    pub duration: metrics::Histogram,
    pub ok: metrics::Counter,
    pub tool_error: metrics::Counter,
}

impl ToolSeries {
    pub(crate) fn get(&self, provider: &str, tool: &str) -> &ToolHandles {
        self.0.get_or_init(|| {
            let labels = request_labels("tools/call", provider, tool, None);
            let count = |outcome: &str| {
                let mut l = labels.clone();
                l.push(("outcome", outcome.to_string()));
                metrics::counter!("mcp_gateway_requests_total", &l)
            };
            ToolHandles {
                duration: metrics::histogram!("mcp_server_operation_duration_seconds", &labels),
                ok: count("ok"),
                tool_error: count("tool_error"),
            }
        })
    }
}
