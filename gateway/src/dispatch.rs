//! The one pipeline every front door (stdio, Streamable HTTP, later REST and
//! presets) goes through:
//! catalog lookup → validation → provider call → result mapping → logging.
//! Identity and policy slot in ahead of the lookup; a rule is written once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use mcp_gateway_proto::provider as pb;
use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, JsonObject, MetaObject, ReadResourceResult,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    catalog::Catalog, convert, drain::Drain, error::GatewayError, naming::UriMap,
    upstream::Registry, upstream::Upstream,
};

/// How long a result waits for its stream's trailers.
const TRAILERS_GRACE: Duration = Duration::from_millis(100);

/// Who is calling and how to reach back, for one request.
#[derive(Clone)]
pub struct RequestCx {
    pub correlation_id: String,
    pub caller: pb::Caller,
    /// Fires when the client cancels or goes away.
    pub cancel: CancellationToken,
}

/// Receives provider progress: (progress, total, message).
pub type ProgressFn = Box<dyn Fn(f64, Option<f64>, String) -> BoxFuture<'static, ()> + Send + Sync>;

pub struct Dispatcher {
    registry: Arc<Registry>,
    max_payload: usize,
    drain: Arc<Drain>,
}

impl Dispatcher {
    pub fn new(registry: Arc<Registry>, max_payload: usize) -> Self {
        Self {
            registry,
            max_payload,
            drain: Arc::default(),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn catalog(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.registry.catalog()
    }

    pub async fn call_tool(
        &self,
        cx: &RequestCx,
        name: &str,
        args: Option<JsonObject>,
        meta: Option<JsonObject>,
        progress: Option<ProgressFn>,
    ) -> Result<CallToolResult, GatewayError> {
        let span =
            tracing::info_span!("tools/call", correlation_id = %cx.correlation_id, tool = %name);
        self.observe(
            "tools/call",
            name,
            cx,
            self.call_tool_inner(cx, name, args, meta, progress),
        )
        .instrument(span)
        .await
    }

    async fn call_tool_inner(
        &self,
        cx: &RequestCx,
        name: &str,
        args: Option<JsonObject>,
        meta: Option<JsonObject>,
        progress: Option<ProgressFn>,
    ) -> Result<CallToolResult, GatewayError> {
        let entry = self.catalog().tool(name)?.clone();
        let exposed = entry.tool.name.clone();
        let args = Value::Object(args.unwrap_or_default());
        if let Err(msg) = entry.input.check(&args) {
            // A tool execution error, not a protocol error, so the model can
            // read it and correct itself (MCP 2025-11-25, tools/call).
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "Invalid arguments for tool '{exposed}': {msg}"
            ))]));
        }
        let arguments = serde_json::to_vec(&args).unwrap_or_default();
        self.check_size("tool arguments", arguments.len())?;
        let req = pb::InvokeRequest {
            tool: entry.name.clone(),
            arguments,
            caller: Some(cx.caller.clone()),
            meta: meta
                .map(|m| convert::object_to_bytes(&m))
                .unwrap_or_default(),
        };
        let up = &entry.upstream;
        let result = self
            .guarded(cx, up, async {
                let mut stream = up.invoke(req, &cx.correlation_id).await?;
                while let Some(msg) = stream.message().await? {
                    match msg.event {
                        Some(pb::invoke_response::Event::Progress(p)) => {
                            if let Some(report) = &progress {
                                report(p.progress, p.total, p.message).await;
                            }
                        }
                        Some(pb::invoke_response::Event::Result(r)) => {
                            // Read on to the trailers instead of dropping the
                            // stream: a dropped stream is reset (RST_STREAM),
                            // which costs frames on both sides, and enough
                            // resets make an h2 server close the connection
                            // (GOAWAY ENHANCE_YOUR_CALM, seen at ~30k calls/s).
                            // Bounded, so a provider that never closes cannot
                            // hold the result back.
                            let _ = tokio::time::timeout(TRAILERS_GRACE, stream.trailers()).await;
                            return Ok(r);
                        }
                        None => {}
                    }
                }
                Err(tonic::Status::internal(
                    "Invoke stream ended without a result",
                ))
            })
            .await;
        let result = match result {
            Err(GatewayError::Provider {
                code: tonic::Code::InvalidArgument,
                message,
                ..
            }) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "Invalid arguments for tool '{exposed}': {message}"
                ))]));
            }
            r => r?,
        };
        self.map_tool_result(
            &exposed,
            up.name(),
            &entry.uris,
            entry.output.as_deref(),
            result,
        )
    }

    fn map_tool_result(
        &self,
        tool: &str,
        provider: &str,
        uris: &UriMap,
        output: Option<&crate::schema::Schema>,
        r: pb::ToolResult,
    ) -> Result<CallToolResult, GatewayError> {
        let bad = |detail: String| GatewayError::BadProviderResponse {
            provider: provider.to_string(),
            detail,
        };
        let content = r
            .content
            .into_iter()
            .map(|c| convert::content(c, uris))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let structured = convert::json_opt(&r.structured_content)
            .map_err(|e| bad(format!("structured_content: {e}")))?;
        if let (Some(schema), false) = (output, r.is_error) {
            let Some(value) = &structured else {
                return Err(GatewayError::OutputSchema {
                    tool: tool.to_string(),
                    detail: "the tool declares an output schema but returned no structured content"
                        .into(),
                });
            };
            schema
                .check(value)
                .map_err(|detail| GatewayError::OutputSchema {
                    tool: tool.to_string(),
                    detail,
                })?;
        }
        let mut out = if r.is_error {
            CallToolResult::error(content)
        } else {
            CallToolResult::success(content)
        };
        out.structured_content = structured;
        out.meta = match convert::json_opt(&r.meta).map_err(|e| bad(format!("meta: {e}")))? {
            Some(Value::Object(m)) => Some(MetaObject(m)),
            _ => None,
        };
        Ok(out)
    }

    pub async fn read_resource(
        &self,
        cx: &RequestCx,
        uri: &str,
    ) -> Result<ReadResourceResult, GatewayError> {
        let span =
            tracing::info_span!("resources/read", correlation_id = %cx.correlation_id, uri = %uri);
        let work = async {
            let route = self.catalog().route(uri)?.clone();
            let req = pb::ReadResourceRequest {
                uri: route.uris.to_provider(uri).to_string(),
                caller: Some(cx.caller.clone()),
            };
            let up = &route.upstream;
            let resp = self
                .guarded(cx, up, up.read_resource(req, &cx.correlation_id))
                .await
                .map_err(|e| match e {
                    GatewayError::Provider {
                        code: tonic::Code::NotFound,
                        ..
                    } => GatewayError::UnknownResource(uri.to_string()),
                    e => e,
                })?;
            let contents = resp
                .contents
                .into_iter()
                .map(|c| convert::resource_contents(c, &route.uris))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|detail| GatewayError::BadProviderResponse {
                    provider: up.name().to_string(),
                    detail,
                })?;
            Ok(ReadResourceResult::new(contents))
        };
        self.observe("resources/read", uri, cx, work)
            .instrument(span)
            .await
    }

    pub async fn get_prompt(
        &self,
        cx: &RequestCx,
        name: &str,
        args: Option<JsonObject>,
    ) -> Result<GetPromptResult, GatewayError> {
        let span =
            tracing::info_span!("prompts/get", correlation_id = %cx.correlation_id, prompt = %name);
        let work = async {
            let entry = self.catalog().prompt(name)?.clone();
            let mut arguments = std::collections::HashMap::new();
            for (k, v) in args.unwrap_or_default() {
                let v = match v {
                    Value::String(s) => s,
                    other => {
                        return Err(GatewayError::InvalidParams(format!(
                            "prompt argument '{k}' must be a string, got {other}"
                        )));
                    }
                };
                arguments.insert(k, v);
            }
            let req = pb::GetPromptRequest {
                name: entry.name.clone(),
                arguments,
                caller: Some(cx.caller.clone()),
            };
            let up = &entry.upstream;
            let resp = self
                .guarded(cx, up, up.get_prompt(req, &cx.correlation_id))
                .await?;
            let messages = resp
                .messages
                .into_iter()
                .map(|m| convert::prompt_message(m, &entry.uris))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|detail| GatewayError::BadProviderResponse {
                    provider: up.name().to_string(),
                    detail,
                })?;
            let mut out = GetPromptResult::new(messages);
            if !resp.description.is_empty() {
                out = out.with_description(resp.description);
            }
            Ok(out)
        };
        self.observe("prompts/get", name, cx, work)
            .instrument(span)
            .await
    }

    /// Runs a provider call under the drain guard, the call deadline and the
    /// client's cancellation, and maps its gRPC status.
    async fn guarded<T>(
        &self,
        cx: &RequestCx,
        up: &Upstream,
        call: impl Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, GatewayError> {
        let _inflight = self.drain.enter().ok_or(GatewayError::ShuttingDown)?;
        let _on_upstream = up.track();
        let deadline = up.config.timeouts.invoke;
        let outcome = tokio::select! {
            // Dropping `call` resets the HTTP/2 stream: the provider sees the
            // RPC cancelled.
            _ = cx.cancel.cancelled() => return Err(GatewayError::Cancelled),
            r = tokio::time::timeout(deadline, call) => r,
        };
        match outcome {
            Err(_) => Err(deadline_error(up.name(), deadline)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(status)) => Err(self.status_error(up, status)),
        }
    }

    fn status_error(&self, up: &Upstream, status: tonic::Status) -> GatewayError {
        let name = up.name();
        let lost = matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal)
            && is_transport_failure(&status);
        if status.code() == tonic::Code::Cancelled && status.message().contains("Timeout expired") {
            return deadline_error(name, up.config.timeouts.invoke);
        }
        if lost || status.code() == tonic::Code::Unavailable {
            // Re-check now so a dead provider leaves the catalog promptly.
            self.registry.poke(name);
            let message = if lost {
                format!("connection to the provider was lost: {}", status.message())
            } else {
                format!("provider unavailable: {}", status.message())
            };
            return GatewayError::Provider {
                provider: name.to_string(),
                code: tonic::Code::Unavailable,
                message,
            };
        }
        if status.code() == tonic::Code::OutOfRange
            && status.message().contains("message length too large")
        {
            return GatewayError::PayloadTooLarge {
                what: "provider response",
                size: 0,
                limit: self.max_payload,
            };
        }
        GatewayError::from_status(name, status)
    }

    fn check_size(&self, what: &'static str, size: usize) -> Result<(), GatewayError> {
        if size > self.max_payload {
            return Err(GatewayError::PayloadTooLarge {
                what,
                size,
                limit: self.max_payload,
            });
        }
        Ok(())
    }

    /// Logs one line per request with its outcome and duration.
    async fn observe<T>(
        &self,
        method: &'static str,
        item: &str,
        cx: &RequestCx,
        work: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        let start = Instant::now();
        let r = work.await;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        match &r {
            Ok(_) => {
                tracing::info!(method, item, principal = %cx.caller.principal, duration_ms = ms, "ok")
            }
            Err(e) => {
                tracing::warn!(method, item, principal = %cx.caller.principal, duration_ms = ms, error.kind = e.kind(), error = %e, "failed")
            }
        }
        r
    }

    /// Refuses new calls and waits up to `grace` for in-flight ones.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.drain.start();
        tokio::time::timeout(grace, self.drain.idle()).await.is_ok()
    }

    /// Provider calls in flight.
    pub fn in_flight(&self) -> usize {
        self.drain.active()
    }
}

fn deadline_error(provider: &str, deadline: Duration) -> GatewayError {
    GatewayError::Provider {
        provider: provider.to_string(),
        code: tonic::Code::DeadlineExceeded,
        message: format!(
            "no answer within the {} deadline",
            humantime::format_duration(deadline)
        ),
    }
}

/// A status synthesized by tonic from a broken connection rather than sent by
/// the provider: only client-side statuses carry a source error, and a
/// decode failure is the provider's fault, not the connection's.
fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some() && !status.message().contains("decode")
}
