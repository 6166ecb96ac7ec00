//! W3C trace context across the contract: the gateway puts `traceparent`
//! (and `tracestate`) in each request's gRPC metadata; providers continue
//! the trace from it. These carry an OpenTelemetry context in and out of
//! tonic metadata through the globally installed propagator.

use opentelemetry::propagation::{Extractor, Injector};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

/// The metadata key of the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";

struct Inject<'a>(&'a mut MetadataMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct Extract<'a>(&'a MetadataMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Writes `cx`'s span context into `metadata`.
pub fn inject(cx: &opentelemetry::Context, metadata: &mut MetadataMap) {
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, &mut Inject(metadata)));
}

/// Reads the caller's span context from `metadata`.
pub fn extract(metadata: &MetadataMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extract(metadata)))
}

/// A syntactically valid W3C `traceparent` (version 00), else `None`.
pub fn valid_traceparent(v: &str) -> Option<&str> {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1] != "00000000000000000000000000000000"
        && parts[2] != "0000000000000000";
    ok.then_some(v)
}

/// Flushes and stops the trace exporter on drop.
#[cfg(feature = "otlp")]
pub struct TracingGuard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

#[cfg(feature = "otlp")]
impl TracingGuard {
    pub fn new(provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>) -> Self {
        Self(provider)
    }
}

#[cfg(feature = "otlp")]
impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.shutdown();
        }
    }
}

/// The tracer layer and its provider: `None` unless an OTLP endpoint is set.
#[cfg(feature = "otlp")]
pub type OtlpLayer<S> = (
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
    opentelemetry_sdk::trace::SdkTracerProvider,
);

/// Installs the W3C propagator always (so trace context is carried even when
/// this process exports nothing), and builds an OTLP tracer when the standard
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set; the
/// exporter reads the other `OTEL_*` variables itself.
#[cfg(feature = "otlp")]
pub fn otlp_tracer<S>(service: &str) -> Option<OtlpLayer<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    if !configured {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("OTLP trace exporter not started: {e}");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_string());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.clone())
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer(service);
    Some((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}

/// Whether log lines are text (set by [`init_logging_as`]).
static TEXT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The format log lines are written in.
pub fn log_format() -> LogFormat {
    if TEXT.load(std::sync::atomic::Ordering::Relaxed) {
        LogFormat::Text
    } else {
        LogFormat::Json
    }
}

/// Whether spans go to an OTLP exporter (set by [`init_logging`]).
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are exported. When not, hot paths make lean spans: the
/// JSON log formats every span field when a span is made and parses them
/// again for each event inside it, and attributes meant for a tracing
/// backend (`otel.*`, semantic-convention names) are then pure cost.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// How log lines look on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object a line: for services and log pipelines.
    #[default]
    Json,
    /// For a person at a terminal; coloured when stderr is one.
    Text,
}

/// [`init_logging_as`] with JSON lines.
#[cfg(feature = "otlp")]
pub fn init_logging(service: &str, default_filter: &str) -> TracingGuard {
    init_logging_as(service, default_filter, LogFormat::Json)
}

/// Process logging and tracing: lines on stderr in `format`, filtered by
/// `RUST_LOG` (else `default_filter`), plus OTLP traces when an endpoint is
/// set. The log level never switches traces off (per-layer filters). A
/// second call is a no-op. Keep the guard until exit.
#[cfg(feature = "otlp")]
pub fn init_logging_as(service: &str, default_filter: &str, format: LogFormat) -> TracingGuard {
    use std::io::IsTerminal as _;
    use tracing_subscriber::{
        EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt,
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let lines: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Json => Box::new(
            fmt::layer()
                .fmt_fields(fmt::format::JsonFields::new())
                .event_format(crate::logline::JsonLine)
                .with_writer(std::io::stderr),
        ),
        LogFormat::Text => Box::new(
            fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        ),
    };
    let (otel, provider) = match otlp_tracer(service) {
        Some((layer, provider)) => (Some(layer), Some(provider)),
        None => (None, None),
    };
    let exporting = otel.is_some();
    // Dependencies' TRACE events, and rmcp's DEBUG ones, dump raw JSON-RPC
    // messages and headers (tool arguments, tokens): never emitted,
    // whatever RUST_LOG says.
    let ours = service.replace('-', "_");
    // The hint lets tracing switch off, at the callsite, every event below
    // the configured level: without it each trace!/debug! in h2, hyper,
    // tonic and rmcp is evaluated on the hot path.
    let hint = filter.max_level_hint();
    let no_dependency_trace = tracing_subscriber::filter::filter_fn(move |m| {
        let level = *m.level();
        // Never more verbose than the level filter: keeps the hint true.
        if hint.is_some_and(|h| level > h) {
            return false;
        }
        let t = m.target();
        let own = t.starts_with("mcp_gateway")
            || t.starts_with("mcp_provider_sdk")
            || t.starts_with(&ours);
        own || level < tracing::Level::DEBUG
            || (level == tracing::Level::DEBUG && !t.starts_with("rmcp"))
    });
    let no_dependency_trace = match hint {
        Some(h) => no_dependency_trace.with_max_level_hint(h),
        None => no_dependency_trace,
    };
    let installed = tracing_subscriber::registry()
        .with(lines.with_filter(filter).with_filter(no_dependency_trace))
        .with(otel.with_filter(EnvFilter::new("info")))
        .try_init()
        .is_ok();
    if installed {
        EXPORTING.store(exporting, std::sync::atomic::Ordering::Relaxed);
        TEXT.store(
            format == LogFormat::Text,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    TracingGuard::new(provider)
}
