//! `ProviderService`: the generated `Provider` trait, implemented over the
//! registered tools, resources and prompts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use mcp_gateway_proto::CORRELATION_ID_HEADER;
use mcp_gateway_proto::cloudevents::CloudEvent;
use mcp_gateway_proto::provider::provider_server::{Provider as ProviderRpc, ProviderServer};
use mcp_gateway_proto::provider::{
    Caller, GetPromptRequest, GetPromptResponse, InvokeRequest, InvokeResponse,
    ListCapabilitiesRequest, ListCapabilitiesResponse, ReadResourceRequest, ReadResourceResponse,
    StreamRequest, ToolResult, invoke_response::Event,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::context::{CallInfo, ProgressSink};
use crate::error::Kind;
use crate::prompt::Prompt;
use crate::resource::{ReadHandler, Resource, ResourceTemplate, UriTemplate};
use crate::tool::{PreparedCall, Tool};
use crate::{Context, ToolError, content};

/// Default cap on a single gRPC message in either direction, matching the
/// gateway's default.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// Progress messages buffered before `Context::progress` waits for the gateway.
const PROGRESS_BUFFER: usize = 16;

/// A built provider: implements the gRPC `Provider` service. Most people
/// call [`ProviderBuilder::serve`](crate::ProviderBuilder::serve) instead of
/// using this directly; use [`ProviderService::into_server`] to mount it on
/// your own `tonic` server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProviderService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub name: String,
    pub tools: HashMap<String, Tool>,
    pub resources: HashMap<String, Resource>,
    pub templates: Vec<(UriTemplate, ResourceTemplate)>,
    pub prompts: HashMap<String, Prompt>,
    /// Computed once: the lists never change after `build()`.
    pub capabilities: ListCapabilitiesResponse,
    pub max_message_size: usize,
    pub events: crate::Publisher,
}

impl ProviderService {
    pub(crate) fn new(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The provider's name, as given to `Provider::builder`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current capabilities revision.
    pub(crate) fn publisher(&self) -> crate::Publisher {
        self.inner.events.clone()
    }

    pub fn revision(&self) -> &str {
        &self.inner.capabilities.revision
    }

    /// The tonic service, with the message-size limits applied.
    pub fn into_server(self) -> ProviderServer<ProviderService> {
        let limit = self.inner.max_message_size;
        ProviderServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

type InvokeStream = Pin<Box<dyn Stream<Item = Result<InvokeResponse, Status>> + Send>>;
type EventStream = Pin<Box<dyn Stream<Item = Result<CloudEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ProviderRpc for ProviderService {
    async fn list_capabilities(
        &self,
        request: Request<ListCapabilitiesRequest>,
    ) -> Result<Response<ListCapabilitiesResponse>, Status> {
        let caps = &self.inner.capabilities;
        let known = &request.get_ref().known_revision;
        tracing::debug!(
            correlation_id = correlation_id(&request),
            known_revision = %known,
            revision = %caps.revision,
            "ListCapabilities"
        );
        if *known == caps.revision {
            return Ok(Response::new(ListCapabilitiesResponse {
                revision: caps.revision.clone(),
                unchanged: true,
                provider_version: caps.provider_version.clone(),
                ..Default::default()
            }));
        }
        Ok(Response::new(caps.clone()))
    }

    type InvokeStream = InvokeStream;

    async fn invoke(
        &self,
        request: Request<InvokeRequest>,
    ) -> Result<Response<InvokeStream>, Status> {
        let (call, req) = call_info(&self.inner.events, request, |r: &InvokeRequest| {
            r.caller.clone()
        });
        let span = tracing::info_span!("invoke", otel.name = %format!("invoke {}", req.tool), otel.kind = "server", tool = %req.tool, correlation_id = %call.correlation_id);
        call.adopt_parent(&span);
        let tool = self
            .inner
            .tools
            .get(&req.tool)
            .ok_or_else(|| Status::not_found(format!("unknown tool '{}'", req.tool)))?;
        let args = parse_arguments(&req.arguments)?;
        let meta = parse_meta(&req.meta)?;
        // Bad typed arguments fail here, before any stream exists.
        let prepared = (tool.handler)(args).map_err(|e| {
            span.in_scope(|| tracing::debug!(error = %e, "arguments rejected"));
            e.into_status()
        })?;

        let (tx, rx) = mpsc::channel(PROGRESS_BUFFER);
        let deadline = call.deadline;
        let guard = call.token.clone().drop_guard();
        let token = call.token.clone();
        let call = CallInfo {
            meta,
            input: req.input,
            ..call
        };
        let ctx = Context::new(call, HashMap::new(), Some(ProgressSink::new(tx.clone())));
        tokio::spawn(
            drive_tool(tool.name.clone(), prepared, ctx, tx, deadline, token).instrument(span),
        );
        Ok(Response::new(Box::pin(ResultStream {
            rx,
            done: false,
            _cancel_on_drop: guard,
        })))
    }

    async fn read_resource(
        &self,
        request: Request<ReadResourceRequest>,
    ) -> Result<Response<ReadResourceResponse>, Status> {
        let (call, req) = call_info(&self.inner.events, request, |r: &ReadResourceRequest| {
            r.caller.clone()
        });
        let uri = req.uri;
        let span = tracing::info_span!("read_resource", otel.kind = "server", %uri, correlation_id = %call.correlation_id);
        call.adopt_parent(&span);
        // Static resources win over templates; templates are tried in order.
        let (read, mime_type, vars): (&ReadHandler, &str, _) =
            if let Some(r) = self.inner.resources.get(&uri) {
                (&r.read, &r.meta.mime_type, HashMap::new())
            } else if let Some((t, vars)) = self
                .inner
                .templates
                .iter()
                .find_map(|(parsed, t)| parsed.matches(&uri).map(|vars| (t, vars)))
            {
                (&t.read, &t.meta.mime_type, vars)
            } else {
                return Err(Status::not_found(format!("unknown resource '{uri}'")));
            };
        let read = Arc::clone(read);
        let mime_type = mime_type.to_owned();
        let deadline = call.deadline;
        let _cancel_on_drop = call.token.clone().drop_guard();
        let call = CallInfo {
            input: req.input,
            ..call
        };
        let ctx = Context::new(call, vars, None);
        let what = format!("resource '{uri}'");
        let body = run_unary(what, deadline, ctx.cancellation_token(), {
            let uri = uri.clone();
            async move { read(uri, ctx).await }
        })
        .instrument(span)
        .await?;
        Ok(Response::new(match body {
            Ok(body) => ReadResourceResponse {
                contents: body.into_contents(&uri, &mime_type),
                input_required: None,
            },
            Err(asked) => ReadResourceResponse {
                input_required: Some(asked),
                ..Default::default()
            },
        }))
    }

    async fn get_prompt(
        &self,
        request: Request<GetPromptRequest>,
    ) -> Result<Response<GetPromptResponse>, Status> {
        let (call, req) = call_info(&self.inner.events, request, |r: &GetPromptRequest| {
            r.caller.clone()
        });
        let span = tracing::info_span!("get_prompt", otel.kind = "server", name = %req.name, correlation_id = %call.correlation_id);
        call.adopt_parent(&span);
        let prompt = self
            .inner
            .prompts
            .get(&req.name)
            .ok_or_else(|| Status::not_found(format!("unknown prompt '{}'", req.name)))?;
        if let Some(missing) = prompt.missing_argument(&req.arguments) {
            return Err(Status::invalid_argument(format!(
                "missing required argument '{missing}' for prompt '{}'",
                req.name
            )));
        }
        let handler = Arc::clone(&prompt.handler);
        let deadline = call.deadline;
        let _cancel_on_drop = call.token.clone().drop_guard();
        let call = CallInfo {
            input: req.input,
            ..call
        };
        let ctx = Context::new(call, HashMap::new(), None);
        let what = format!("prompt '{}'", req.name);
        let args = req.arguments;
        let reply = run_unary(what, deadline, ctx.cancellation_token(), async move {
            handler(args, ctx).await
        })
        .instrument(span)
        .await?;
        Ok(Response::new(match reply {
            Ok(reply) => reply.into_proto(),
            Err(asked) => GetPromptResponse {
                input_required: Some(asked),
                ..Default::default()
            },
        }))
    }

    type StreamStream = EventStream;

    /// Every event published from now on, until the gateway hangs up.
    async fn stream(
        &self,
        request: Request<StreamRequest>,
    ) -> Result<Response<EventStream>, Status> {
        tracing::debug!(correlation_id = correlation_id(&request), "Stream opened");
        let rx = self.inner.events.subscribe();
        let events = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|item| {
            futures::future::ready(match item {
                Ok(ev) => Some(Ok(ev)),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "gateway reads events too slowly; some were dropped"
                    );
                    None
                }
            })
        });
        let closed = self.inner.events.closed();
        Ok(Response::new(Box::pin(events.take_until(closed))))
    }
}

/// Runs a tool in its own task and puts exactly one terminal message (a
/// result or a status) on the stream after any progress.
async fn drive_tool(
    name: String,
    prepared: PreparedCall,
    ctx: Context,
    tx: mpsc::Sender<Result<InvokeResponse, Status>>,
    deadline: Option<Instant>,
    token: CancellationToken,
) {
    tracing::debug!("tool started");
    let task = tokio::spawn(async move { prepared(ctx).await });
    let terminal = match await_with_deadline(task, deadline, &token).await {
        Some(Ok(Ok(output))) => Ok(result(output.into_proto())),
        Some(Ok(Err(ToolError(Kind::Failed(message))))) => {
            tracing::debug!(%message, "tool returned an error result");
            Ok(result(ToolResult {
                content: vec![content::text(message)],
                is_error: true,
                ..Default::default()
            }))
        }
        Some(Ok(Err(ToolError(Kind::Status(status))))) => Err(status),
        Some(Ok(Err(ToolError(Kind::Input(asked))))) => Ok(InvokeResponse {
            event: Some(Event::InputRequired(asked)),
        }),
        Some(Err(join_error)) => Err(join_failure(&format!("tool '{name}'"), join_error)),
        None => Err(Status::deadline_exceeded(format!(
            "tool '{name}' exceeded its deadline"
        ))),
    };
    tracing::debug!(
        ok = terminal.is_ok(),
        cancelled = token.is_cancelled(),
        "tool finished"
    );
    // Fails only when the gateway has gone away, which is fine.
    let _ = tx.send(terminal).await;
}

fn result(r: ToolResult) -> InvokeResponse {
    InvokeResponse {
        event: Some(Event::Result(r)),
    }
}

/// Runs a resource or prompt handler in its own task (so a panic becomes a
/// status instead of killing the connection) and applies the deadline.
/// `Ok(Err(_))`: the handler asks the client for input first.
async fn run_unary<T: Send + 'static>(
    what: String,
    deadline: Option<Instant>,
    token: CancellationToken,
    fut: impl Future<Output = Result<T, ToolError>> + Send + 'static,
) -> Result<Result<T, mcp_gateway_proto::provider::InputRequired>, Status> {
    let task = tokio::spawn(fut);
    match await_with_deadline(task, deadline, &token).await {
        Some(Ok(Ok(t))) => Ok(Ok(t)),
        Some(Ok(Err(ToolError(Kind::Input(asked))))) => Ok(Err(asked)),
        Some(Ok(Err(e))) => Err(e.into_status()),
        Some(Err(join_error)) => Err(join_failure(&what, join_error)),
        None => Err(Status::deadline_exceeded(format!(
            "{what} exceeded its deadline"
        ))),
    }
}

/// `None` when the deadline passed first: the token is cancelled so the
/// handler can stop, and the handler's task is left to wind down on its own.
async fn await_with_deadline<T>(
    task: tokio::task::JoinHandle<T>,
    deadline: Option<Instant>,
    token: &CancellationToken,
) -> Option<Result<T, tokio::task::JoinError>> {
    let Some(deadline) = deadline else {
        return Some(task.await);
    };
    match tokio::time::timeout_at(deadline, task).await {
        Ok(r) => Some(r),
        Err(_) => {
            token.cancel();
            None
        }
    }
}

fn join_failure(what: &str, e: tokio::task::JoinError) -> Status {
    if e.is_panic() {
        tracing::error!("{what} panicked");
        Status::internal(format!("{what} panicked"))
    } else {
        Status::internal(format!("{what} was aborted"))
    }
}

/// The Invoke response stream: ends right after the terminal message, and
/// cancels the call when tonic drops it (the gateway cancelled the RPC or
/// the connection died).
struct ResultStream {
    rx: mpsc::Receiver<Result<InvokeResponse, Status>>,
    done: bool,
    _cancel_on_drop: DropGuard,
}

impl Stream for ResultStream {
    type Item = Result<InvokeResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = std::task::ready!(self.rx.poll_recv(cx));
        // Progress and log messages come before the result; the result ends it.
        let before_result = matches!(
            &item,
            Some(Ok(InvokeResponse {
                event: Some(Event::Progress(_) | Event::Log(_)),
            }))
        );
        self.done = !before_result;
        Poll::Ready(item)
    }
}

/// Pulls caller, correlation ID and deadline out of a request.
fn call_info<T>(
    events: &crate::Publisher,
    request: Request<T>,
    caller: impl FnOnce(&T) -> Option<Caller>,
) -> (CallInfo, T) {
    let correlation_id = correlation_id(&request).to_owned();
    let traceparent = request
        .metadata()
        .get(mcp_gateway_proto::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|t| mcp_gateway_proto::trace::valid_traceparent(t).is_some())
        .map(str::to_string);
    // Continue the gateway's trace (a no-op unless traces are exported).
    let parent = mcp_gateway_proto::trace::extract(request.metadata());
    let deadline = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|d| Instant::now() + d);
    let req = request.into_inner();
    let info = CallInfo {
        caller: caller(&req).unwrap_or_default(),
        correlation_id,
        traceparent,
        parent,
        meta: None,
        deadline,
        token: CancellationToken::new(),
        events: events.clone(),
        input: None,
    };
    (info, req)
}

fn correlation_id<T>(request: &Request<T>) -> &str {
    request
        .metadata()
        .get(CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `grpc-timeout` per the gRPC HTTP/2 protocol: up to 8 digits and a unit.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Empty bytes mean `{}`; anything else must be a JSON object.
fn parse_arguments(bytes: &[u8]) -> Result<Value, Status> {
    if bytes.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Status::invalid_argument("arguments must be a JSON object")),
        Err(e) => Err(Status::invalid_argument(format!(
            "arguments are not valid JSON: {e}"
        ))),
    }
}

fn parse_meta(bytes: &[u8]) -> Result<Option<Value>, Status> {
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("meta is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }

    #[test]
    fn arguments_empty_means_empty_object() {
        assert_eq!(parse_arguments(b"").unwrap(), serde_json::json!({}));
        assert_eq!(
            parse_arguments(b"[1]").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            parse_arguments(b"{").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
