//! The one pipeline every front door (stdio, Streamable HTTP) goes through:
//! visibility-aware lookup → rate limit → validation → cache → guarded
//! provider call → result mapping → observation. Who sees what is in
//! `visibility`, accounting in `observe`, gRPC status mapping in `status`,
//! and the guard around the call in `crate::pipeline::guard`.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use mcp_gateway_proto::provider as pb;
use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, JsonObject, MetaObject, ReadResourceResult,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod input;
mod observe;
mod status;
mod visibility;

pub use input::{Answered, Asks, Round};
pub use visibility::Visibility;

use observe::CallFacts;

use crate::{
    control::drain::Drain,
    observe::analytics::Analytics,
    observe::audit::{self, AuditLog},
    pipeline::catalog::Catalog,
    pipeline::convert,
    pipeline::error::GatewayError,
    pipeline::naming::UriMap,
    pipeline::registry::Registry,
    security::ratelimit::RateLimits,
    security::redact::{LoggingConfig, Redactor},
    southbound::Upstream,
};

/// How long a result waits for its stream's trailers.
const TRAILERS_GRACE: Duration = Duration::from_millis(100);

/// Who is calling and how to reach back, for one request.
#[derive(Clone)]
pub struct RequestCx {
    pub correlation_id: String,
    /// The client's W3C trace parent (HTTP `traceparent` header or the
    /// request's `_meta.traceparent`), if it sent a valid one.
    pub traceparent: Option<String>,
    pub caller: pb::Caller,
    /// Fires when the client cancels or goes away.
    pub cancel: CancellationToken,
}

impl RequestCx {
    /// The request's server span when traces are exported, else none: the
    /// access log line carries the correlation id itself, and a span costs
    /// its fields' formatting and a registry entry per request.
    fn span(&self, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
        if !mcp_gateway_proto::trace::exporting() {
            return tracing::Span::none();
        }
        let span = make();
        self.adopt_parent(&span);
        span
    }

    /// Makes `span` a child of the client's trace, when it sent one.
    fn adopt_parent(&self, span: &tracing::Span) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        if let Some(tp) = &self.traceparent {
            let mut md = tonic::metadata::MetadataMap::new();
            if let Ok(v) = tp.parse() {
                md.insert(mcp_gateway_proto::trace::TRACEPARENT, v);
                let _ = span.set_parent(mcp_gateway_proto::trace::extract(&md));
            }
        }
    }
}

/// Receives provider progress: (progress, total, message).
pub type ProgressFn = Box<dyn Fn(f64, Option<f64>, String) -> BoxFuture<'static, ()> + Send + Sync>;

/// Receives a provider's log message for the caller: (level, logger,
/// data); resolves to whether it was sent (not below the client's level).
#[allow(deprecated)] // logging: deprecated by SEP-2577, served to clients that ask
pub type LogFn =
    Box<dyn Fn(rmcp::model::LoggingLevel, String, Value) -> BoxFuture<'static, bool> + Send + Sync>;

/// Where what a provider sends before its result goes: the calling
/// request's own stream, and nowhere else. `None`: the caller did not ask.
#[derive(Default)]
pub struct Relay {
    pub progress: Option<ProgressFn>,
    pub log: Option<LogFn>,
}

pub struct Dispatcher {
    registry: Arc<Registry>,
    max_payload: usize,
    drain: Arc<Drain>,
    audit: Option<AuditLog>,
    audit_stream: Option<crate::observe::audit_nats::AuditStream>,
    analytics: Arc<Analytics>,
    /// Who sees what (the policy in force), shared with the notifier.
    visibility: Arc<Visibility>,
    /// Swapped whole on reload (fresh buckets).
    limits: ArcSwap<RateLimits>,
    /// Whether and how arguments appear in logs; swapped on reload.
    redactor: ArcSwap<Redactor>,
}

impl Dispatcher {
    pub fn new(
        registry: Arc<Registry>,
        max_payload: usize,
        audit: Option<AuditLog>,
        audit_stream: Option<crate::observe::audit_nats::AuditStream>,
        analytics: Arc<Analytics>,
        visibility: Arc<Visibility>,
    ) -> Self {
        Self {
            registry,
            max_payload,
            drain: Arc::default(),
            audit,
            audit_stream,
            analytics,
            visibility,
            limits: ArcSwap::from_pointee(RateLimits::new(&Default::default())),
            redactor: Default::default(),
        }
    }

    pub fn with_logging(self, cfg: &LoggingConfig) -> Self {
        self.set_logging(cfg);
        self
    }

    /// Applies `logging` (at startup and on reload).
    pub fn set_logging(&self, cfg: &LoggingConfig) {
        self.redactor.store(Arc::new(Redactor::new(cfg)));
    }

    /// Rate limits (none by default).
    pub fn with_limits(self, limits: Arc<RateLimits>) -> Self {
        self.set_limits(limits);
        self
    }

    /// Replaces the rate limits, with fresh buckets (config reload).
    pub fn set_limits(&self, limits: Arc<RateLimits>) {
        self.limits.store(limits);
    }

    pub fn limits(&self) -> Arc<RateLimits> {
        self.limits.load_full()
    }

    /// Who sees what: every list, lookup and notification asks this.
    pub fn visibility(&self) -> &Arc<Visibility> {
        &self.visibility
    }

    pub fn analytics(&self) -> &Arc<Analytics> {
        &self.analytics
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
        meta: Vec<u8>,
        relay: Relay,
        round: Round,
    ) -> Result<Answered<CallToolResult>, GatewayError> {
        let span = cx.span(|| {
            tracing::info_span!(
                "tools/call",
                otel.name = %format!("tools/call {name}"),
                otel.kind = "server",
                mcp.method.name = "tools/call",
                gen_ai.tool.name = %name,
                correlation_id = %cx.correlation_id,
            )
        });
        let trace = CallFacts::default();
        // Boxed where it is made: the provider call's future is kilobytes, and
        // each move into the next wrapper (observe, instrument, the caller)
        // would copy all of it.
        if round.answered() {
            let _ = trace.round.set(round.number);
        }
        let work = Box::pin(self.call_tool_inner(cx, &trace, name, args, meta, relay, round));
        self.observe("tools/call", name, cx, &trace, work)
            .instrument(span)
            .await
    }

    async fn call_tool_inner(
        &self,
        cx: &RequestCx,
        trace: &CallFacts,
        name: &str,
        args: Option<JsonObject>,
        meta: Vec<u8>,
        relay: Relay,
        round: Round,
    ) -> Result<Answered<CallToolResult>, GatewayError> {
        let entry = self.visibility.visible_tool(&cx.caller, name)?;
        let _ = trace.tool.set(entry.clone());
        let exposed = entry.tool.name.clone();
        self.limits
            .load()
            .check_tool(&exposed)
            .map_err(|retry_after| GatewayError::RateLimited {
                scope: format!("tool '{exposed}'"),
                retry_after,
            })?;
        let args = Value::Object(args.unwrap_or_default());
        // Before validation, so a rejected call's arguments show too.
        let redactor = self.redactor.load();
        if redactor.enabled() {
            let _ = trace.arguments.set(redactor.apply(&args));
        }
        if let Err(msg) = entry.input.check(&args) {
            // A tool execution error, not a protocol error, so the model can
            // read it and correct itself (MCP 2025-11-25, tools/call).
            return Ok(Answered::Done(CallToolResult::error(vec![
                ContentBlock::text(format!("Invalid arguments for tool '{exposed}': {msg}")),
            ])));
        }
        let arguments = serde_json::to_vec(&args).unwrap_or_default();
        self.check_size("tool arguments", arguments.len())?;
        if self.audit.is_some() || self.audit_stream.is_some() {
            let _ = trace.args_sha256.set(audit::digest(&arguments));
        }
        // An answer that may depend on the client's input is not shared.
        let cache_key = entry.cache.as_ref().filter(|_| !round.answered()).map(|c| {
            (
                c,
                crate::southbound::cache::key(&exposed, &cx.caller, &args),
            )
        });
        if let Some((cache, key)) = &cache_key {
            let labels = [
                ("provider", entry.upstream.name().to_string()),
                ("gen_ai_tool_name", exposed.to_string()),
            ];
            if let Some(hit) = cache.get(key) {
                metrics::counter!("mcp_gateway_cache_hits_total", &labels).increment(1);
                trace
                    .cached
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Ok(Answered::Done(
                    self.visibility
                        .without_hidden(&cx.caller, CallToolResult::clone(&hit)),
                ));
            }
            metrics::counter!("mcp_gateway_cache_misses_total", &labels).increment(1);
        }
        let req = pb::InvokeRequest {
            tool: entry.name.clone(),
            arguments,
            caller: Some(cx.caller.clone()),
            meta,
            input: round.context(),
        };
        let up = &entry.upstream;
        // Safe to repeat only if the tool says so and the client has not
        // seen any of this attempt (a relayed progress or log message).
        let hints = entry.tool.annotations.as_ref();
        let repeatable = hints
            .is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true));
        let progressed = std::sync::atomic::AtomicBool::new(false);
        let (req, relay, progressed_ref) = (&req, &relay, &progressed);
        let result = self
            .guarded(
                cx,
                up,
                || repeatable && !progressed_ref.load(std::sync::atomic::Ordering::SeqCst),
                || async move {
                    let mut stream = up
                        .invoke(req, &cx.correlation_id, cx.traceparent.as_deref())
                        .await?;
                    while let Some(msg) = stream.message().await? {
                        match msg.event {
                            Some(pb::invoke_response::Event::Progress(p)) => {
                                if let Some(report) = &relay.progress {
                                    progressed_ref.store(true, std::sync::atomic::Ordering::SeqCst);
                                    report(p.progress, p.total, p.message).await;
                                }
                            }
                            Some(pb::invoke_response::Event::Log(l)) => {
                                if let (Some(send), Some(level)) =
                                    (&relay.log, crate::pipeline::convert::log_level(&l.level))
                                {
                                    let data =
                                        serde_json::from_slice(&l.data).unwrap_or_else(|_| {
                                            Value::String(
                                                String::from_utf8_lossy(&l.data).into_owned(),
                                            )
                                        });
                                    // Only what the client saw makes it unsafe to repeat.
                                    if send(level, l.logger, data).await {
                                        progressed_ref
                                            .store(true, std::sync::atomic::Ordering::SeqCst);
                                    }
                                }
                            }
                            Some(pb::invoke_response::Event::Result(r)) => {
                                // Read on to the trailers instead of dropping
                                // the stream: a dropped stream is reset
                                // (RST_STREAM), which costs frames on both
                                // sides, and enough resets make an h2 server
                                // close the connection (GOAWAY
                                // ENHANCE_YOUR_CALM, seen at ~30k calls/s).
                                // Bounded, so a provider that never closes
                                // cannot hold the result back.
                                let _ =
                                    tokio::time::timeout(TRAILERS_GRACE, stream.trailers()).await;
                                return Ok(Invoked::Result(r));
                            }
                            Some(pb::invoke_response::Event::InputRequired(asked)) => {
                                let _ =
                                    tokio::time::timeout(TRAILERS_GRACE, stream.trailers()).await;
                                return Ok(Invoked::Asks(asked));
                            }
                            None => {}
                        }
                    }
                    Err(tonic::Status::internal(
                        "Invoke stream ended without a result",
                    ))
                },
            )
            .await;
        let result = match result {
            Err(GatewayError::Provider {
                code: tonic::Code::InvalidArgument,
                message,
                ..
            }) => {
                return Ok(Answered::Done(CallToolResult::error(vec![
                    ContentBlock::text(format!(
                        "Invalid arguments for tool '{exposed}': {message}"
                    )),
                ])));
            }
            r => r?,
        };
        let result = match result {
            Invoked::Result(r) => r,
            Invoked::Asks(asked) => {
                let caps = &round.input.client_capabilities;
                return input::check(up.name(), asked, caps).map(Answered::Asks);
            }
        };
        let mapped = self.map_tool_result(
            &exposed,
            up.name(),
            &entry.uris,
            entry.output.as_deref(),
            result,
        )?;
        // Only answers that succeeded are worth repeating.
        if let Some((cache, key)) = cache_key
            && mapped.is_error != Some(true)
        {
            cache.insert(key, mapped.clone());
        }
        Ok(Answered::Done(
            self.visibility.without_hidden(&cx.caller, mapped),
        ))
    }

    fn map_tool_result(
        &self,
        tool: &str,
        provider: &str,
        uris: &UriMap,
        output: Option<&crate::pipeline::schema::Schema>,
        r: pb::ToolResult,
    ) -> Result<CallToolResult, GatewayError> {
        let bad = |detail: String| GatewayError::BadProviderResponse {
            provider: provider.to_string(),
            detail,
        };
        let content = convert_all(provider, r.content, |c| convert::content(c, uris), |_| true)?;
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
        round: Round,
    ) -> Result<Answered<ReadResourceResult>, GatewayError> {
        let span = cx.span(|| {
            tracing::info_span!(
                "resources/read",
                otel.name = "resources/read",
                otel.kind = "server",
                mcp.method.name = "resources/read",
                mcp.resource.uri = %uri,
                correlation_id = %cx.correlation_id,
            )
        });
        let trace = CallFacts::default();
        if round.answered() {
            let _ = trace.round.set(round.number);
        }
        let work = Box::pin(async {
            let route = self.catalog().route(uri)?.clone();
            if !self
                .visibility
                .visible_resource(&cx.caller, route.upstream.name(), uri)
            {
                return Err(GatewayError::UnknownResource(uri.to_string()));
            }
            let _ = trace.provider.set(route.upstream.name().to_string());
            let req = pb::ReadResourceRequest {
                uri: route.uris.to_provider(uri).to_string(),
                caller: Some(cx.caller.clone()),
                input: round.context(),
            };
            let up = &route.upstream;
            let resp = self
                .guarded(
                    cx,
                    up,
                    || true,
                    || up.read_resource(&req, &cx.correlation_id, cx.traceparent.as_deref()),
                )
                .await
                .map_err(|e| match e {
                    GatewayError::Provider {
                        code: tonic::Code::NotFound,
                        ..
                    } => GatewayError::UnknownResource(uri.to_string()),
                    e => e,
                })?;
            if let Some(asked) = resp.input_required {
                let caps = &round.input.client_capabilities;
                return input::check(up.name(), asked, caps).map(Answered::Asks);
            }
            let contents = convert_all(
                up.name(),
                resp.contents,
                |c| convert::resource_contents(c, &route.uris),
                |c| self.visibility.sees_contents(&cx.caller, c),
            )?;
            Ok(Answered::Done(ReadResourceResult::new(contents)))
        });
        self.observe("resources/read", uri, cx, &trace, work)
            .instrument(span)
            .await
    }

    pub async fn get_prompt(
        &self,
        cx: &RequestCx,
        name: &str,
        args: Option<JsonObject>,
        round: Round,
    ) -> Result<Answered<GetPromptResult>, GatewayError> {
        let span = cx.span(|| {
            tracing::info_span!(
                "prompts/get",
                otel.name = %format!("prompts/get {name}"),
                otel.kind = "server",
                mcp.method.name = "prompts/get",
                gen_ai.prompt.name = %name,
                correlation_id = %cx.correlation_id,
            )
        });
        let trace = CallFacts::default();
        if round.answered() {
            let _ = trace.round.set(round.number);
        }
        let work = Box::pin(async {
            let entry = self.visibility.visible_prompt(&cx.caller, name)?;
            let _ = trace.item.set(entry.exposed.to_string());
            let _ = trace.provider.set(entry.upstream.name().to_string());
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
                input: round.context(),
            };
            let up = &entry.upstream;
            let resp = self
                .guarded(
                    cx,
                    up,
                    || true,
                    || up.get_prompt(&req, &cx.correlation_id, cx.traceparent.as_deref()),
                )
                .await?;
            if let Some(asked) = resp.input_required {
                let caps = &round.input.client_capabilities;
                return input::check(up.name(), asked, caps).map(Answered::Asks);
            }
            let messages = convert_all(
                up.name(),
                resp.messages,
                |m| convert::prompt_message(m, &entry.uris),
                |m| self.visibility.shows(&cx.caller, &m.content),
            )?;
            let mut out = GetPromptResult::new(messages);
            if !resp.description.is_empty() {
                out = out.with_description(resp.description);
            }
            Ok(Answered::Done(out))
        });
        self.observe("prompts/get", name, cx, &trace, work)
            .instrument(span)
            .await
    }

    /// Runs a provider call under the drain guard, the bulkhead, the circuit
    /// breaker, the call deadline and the client's cancellation; retries it
    /// while `repeatable()` says it is safe; maps its gRPC status.
    async fn guarded<T, F, Fut>(
        &self,
        cx: &RequestCx,
        up: &Upstream,
        repeatable: impl Fn() -> bool,
        call: F,
    ) -> Result<T, GatewayError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let _inflight = self.drain.enter().ok_or(GatewayError::ShuttingDown)?;
        // Counted per upstream so calls fill channels in order (see upstream).
        let _on_upstream = up.track();
        let limits = crate::pipeline::guard::CallLimits {
            provider: up.name(),
            correlation_id: &cx.correlation_id,
            slots: &up.slots,
            max_concurrency: up.config.max_concurrency,
            breaker: &up.breaker,
            budget: up.config.timeouts.invoke,
            retries: &up.config.retries,
        };
        crate::pipeline::guard::run(
            limits,
            &cx.cancel,
            repeatable,
            |status| self.status_error(up, status),
            call,
        )
        .await
    }

    fn check_size(&self, what: &'static str, size: usize) -> Result<(), GatewayError> {
        if size > self.max_payload {
            return Err(GatewayError::PayloadTooLarge {
                what,
                size: Some(size),
                limit: self.max_payload,
            });
        }
        Ok(())
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

/// How an Invoke stream ended.
enum Invoked {
    Result(pb::ToolResult),
    Asks(pb::InputRequired),
}

/// A provider's items in MCP form, keeping those `keep` admits; one that
/// does not convert makes the whole answer a bad provider response.
fn convert_all<P, T>(
    provider: &str,
    items: Vec<P>,
    convert: impl Fn(P) -> Result<T, String>,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>, GatewayError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let item = convert(item).map_err(|detail| GatewayError::BadProviderResponse {
            provider: provider.to_string(),
            detail,
        })?;
        if keep(&item) {
            out.push(item);
        }
    }
    Ok(out)
}
