//! Structured JSON logs on stderr (stdout is the MCP channel under --stdio).
//! The level comes from `RUST_LOG` (default `info`, with rmcp at `warn`).
//! Request spans carry the
//! correlation ID, so every line logged inside a request shows it.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub fn init_logging() {
    // rmcp logs three lines per stateless request at info (service
    // initialized with a Debug dump of the client, input terminated, serve
    // finished): ~20% of the gateway's CPU per call. Our own one line per
    // request says what happened; `RUST_LOG=info` brings rmcp's back.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .try_init();
}
