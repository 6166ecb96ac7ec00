//! Observation: the one place a finished request is accounted for (log
//! line, metrics, usage analytics, audit record), from what the pipeline
//! learned on the way ([`CallFacts`]).

use std::{future::Future, sync::OnceLock, time::Instant};

use serde_json::Value;

use rmcp::model::{CallToolResult, GetPromptResult, ReadResourceResult};

use super::{Dispatcher, RequestCx};
use crate::{
    observe::{audit, telemetry},
    pipeline::error::GatewayError,
};

/// What a request learned on the way, for its log line, metrics and audit
/// record. Set-once cells so the pipeline can fill them from inside `work`.
#[derive(Default)]
pub(super) struct CallFacts {
    /// The canonical exposed name (a short alias resolves to it), of a
    /// prompt (a tool's is its entry's).
    pub(super) item: OnceLock<String>,
    pub(super) provider: OnceLock<String>,
    pub(super) args_sha256: OnceLock<String>,
    /// Redacted arguments, when `logging.arguments` is on.
    pub(super) arguments: OnceLock<Value>,
    pub(super) cached: std::sync::atomic::AtomicBool,
    /// The tool called: its name, provider and metric series.
    pub(super) tool: OnceLock<std::sync::Arc<crate::pipeline::catalog::ToolEntry>>,
    /// Rounds of client input before this call (0: the first).
    pub(super) round: OnceLock<u32>,
}

/// Whether a successful answer is still a failure the caller should count.
pub trait Outcome {
    fn is_tool_error(&self) -> bool {
        false
    }
    /// The provider asked the client for input instead of answering.
    fn is_input_required(&self) -> bool {
        false
    }
}

impl<T: Outcome> Outcome for super::Answered<T> {
    fn is_tool_error(&self) -> bool {
        matches!(self, super::Answered::Done(t) if t.is_tool_error())
    }
    fn is_input_required(&self) -> bool {
        matches!(self, super::Answered::Asks(_))
    }
}

impl Outcome for CallToolResult {
    fn is_tool_error(&self) -> bool {
        self.is_error == Some(true)
    }
}
impl Outcome for ReadResourceResult {}
impl Outcome for GetPromptResult {}

impl Dispatcher {
    /// The one place a finished request is accounted for: a log line,
    /// metrics, usage analytics, and the audit record (written before the
    /// response is returned; see audit.rs for the exact guarantee). A
    /// request dropped before it finished (its client went away) is
    /// accounted for as cancelled.
    pub(super) async fn observe<T: Outcome>(
        &self,
        method: &'static str,
        requested: &str,
        cx: &RequestCx,
        trace: &CallFacts,
        work: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        let mut unfinished = Unfinished {
            dispatcher: self,
            method,
            requested,
            cx,
            trace,
            start: Instant::now(),
            done: false,
        };
        let r = work.await;
        unfinished.done = true;
        let outcome = match &r {
            Ok(v) if v.is_tool_error() => Finished::ToolError,
            Ok(v) if v.is_input_required() => Finished::InputRequired,
            Ok(_) => Finished::Ok,
            Err(e) => Finished::Failed(e),
        };
        let elapsed = unfinished.start.elapsed();
        if let Some(written) = self.account(method, requested, cx, trace, elapsed, outcome) {
            let _ = written.await;
        }
        r
    }

    /// Logs, counts and audits one request; the receiver resolves once the
    /// audit record is on disk (per `audit.fsync`).
    fn account(
        &self,
        method: &'static str,
        requested: &str,
        cx: &RequestCx,
        trace: &CallFacts,
        elapsed: std::time::Duration,
        finished: Finished<'_>,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let (outcome, error_kind) = match finished {
            Finished::ToolError => ("tool_error", None),
            Finished::InputRequired => ("input_required", None),
            Finished::Ok => ("ok", None),
            Finished::Failed(e) => ("error", Some(e.kind())),
            Finished::Dropped => ("error", Some("cancelled")),
        };
        // Resource URIs are the item themselves; names the client made up are
        // not, and must not become metric labels (unbounded cardinality).
        let tool = trace.tool.get();
        let item = match (tool, trace.item.get(), method) {
            (Some(t), _, _) => &*t.tool.name,
            (None, Some(i), _) => i.as_str(),
            (None, None, "resources/read") => requested,
            (None, None, _) => "",
        };
        // Known from the lookup, or from the error (a provider that is down).
        let provider = match (tool, trace.provider.get(), &finished) {
            (Some(t), _, _) => t.upstream.name(),
            (None, Some(p), _) => p.as_str(),
            (None, None, Finished::Failed(GatewayError::Provider { provider, .. })) => {
                provider.as_str()
            }
            _ => "",
        };
        let principal = cx.caller.principal.as_str();
        let correlation_id = cx.correlation_id.as_str();
        let arguments = trace.arguments.get().map(crate::security::redact::for_log);
        match &finished {
            Finished::Failed(e) => {
                tracing::warn!(method, item = requested, provider, principal, correlation_id, duration_ms = ms, error.kind = e.kind(), error = %e, arguments, "failed")
            }
            Finished::Dropped => tracing::info!(
                method,
                item = requested,
                provider,
                principal,
                correlation_id,
                duration_ms = ms,
                error.kind = "cancelled",
                arguments,
                "cancelled: the client went away"
            ),
            Finished::Ok | Finished::ToolError | Finished::InputRequired => tracing::info!(
                method,
                item,
                provider,
                principal,
                correlation_id,
                duration_ms = ms,
                outcome,
                arguments,
                message = match finished {
                    Finished::ToolError => "tool_error: the tool answered with isError",
                    Finished::InputRequired =>
                        "input_required: the provider asked the client for input",
                    _ => "ok",
                }
            ),
        }

        let seconds = elapsed.as_secs_f64();
        match (trace.tool.get(), error_kind) {
            (Some(tool), None) => {
                let series = tool.series.get(provider, item);
                series.duration.record(seconds);
                match outcome {
                    "ok" | "input_required" => series.ok.increment(1),
                    _ => series.tool_error.increment(1),
                }
            }
            _ => {
                let mut labels = telemetry::request_labels(method, provider, item, error_kind);
                metrics::histogram!("mcp_server_operation_duration_seconds", &labels)
                    .record(seconds);
                labels.push(("outcome", outcome.to_string()));
                metrics::counter!("mcp_gateway_requests_total", &labels).increment(1);
            }
        }

        if method == "tools/call" && !item.is_empty() {
            self.analytics.record(
                item,
                provider,
                principal,
                !matches!(outcome, "ok" | "input_required"),
                ms,
            );
        }
        if self.audit.is_none() && self.audit_stream.is_none() {
            return None;
        }
        let record = audit::Record {
            time: audit::now_rfc3339(),
            method,
            item: if item.is_empty() { requested } else { item }.to_string(),
            provider: (!provider.is_empty()).then(|| provider.to_string()),
            principal: principal.to_string(),
            agent: cx.caller.agent.clone(),
            session: cx.caller.session_id.clone(),
            correlation_id: cx.correlation_id.clone(),
            args_sha256: trace.args_sha256.get().cloned(),
            arguments: trace.arguments.get().cloned(),
            outcome,
            error_kind,
            duration_ms: ms,
            cached: trace.cached.load(std::sync::atomic::Ordering::Relaxed),
            round: trace.round.get().copied().filter(|r| *r > 0),
        };
        if let Some(js) = &self.audit_stream {
            js.send(serde_json::to_vec(&record).expect("records serialize"));
        }
        self.audit.as_ref().and_then(|log| log.queue(&record))
    }
}

/// How a request ended.
enum Finished<'e> {
    Ok,
    ToolError,
    InputRequired,
    Failed(&'e GatewayError),
    /// Dropped before it finished.
    Dropped,
}

/// Accounts for a request whose future is dropped before it finishes.
struct Unfinished<'a> {
    dispatcher: &'a Dispatcher,
    method: &'static str,
    requested: &'a str,
    cx: &'a RequestCx,
    trace: &'a CallFacts,
    start: Instant,
    done: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.done {
            let elapsed = self.start.elapsed();
            // Nobody waits for the record: it is queued all the same.
            let _ = self.dispatcher.account(
                self.method,
                self.requested,
                self.cx,
                self.trace,
                elapsed,
                Finished::Dropped,
            );
        }
    }
}
