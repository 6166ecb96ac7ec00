//! What a handler knows about the call it is serving.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use mcp_gateway_proto::provider::{
    Caller, InvokeResponse, LogMessage, Progress, invoke_response::Event,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::ToolError;

/// Per-call context handed to every handler. Cheap to clone; clones share
/// the same cancellation token and progress channel.
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    caller: Caller,
    correlation_id: String,
    traceparent: Option<String>,
    meta: Option<serde_json::Value>,
    deadline: Option<Instant>,
    token: CancellationToken,
    vars: HashMap<String, String>,
    progress: Option<ProgressSink>,
    events: crate::Publisher,
    answers: crate::input::Answers,
}

/// A log message's severity, as MCP names them (RFC 5424).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
            Self::Alert => "alert",
            Self::Emergency => "emergency",
        }
    }
}

/// The Invoke stream's sender plus the last value sent, so progress stays
/// strictly increasing as the contract requires.
#[derive(Debug)]
pub(crate) struct ProgressSink {
    tx: mpsc::Sender<Result<InvokeResponse, Status>>,
    last: Mutex<Option<f64>>,
}

impl ProgressSink {
    pub(crate) fn new(tx: mpsc::Sender<Result<InvokeResponse, Status>>) -> Self {
        Self {
            tx,
            last: Mutex::new(None),
        }
    }
}

/// Everything the service learns from the request before calling a handler.
pub(crate) struct CallInfo {
    pub caller: Caller,
    pub correlation_id: String,
    pub traceparent: Option<String>,
    /// The caller's trace context, parent of this call's spans.
    pub parent: opentelemetry::Context,
    pub meta: Option<serde_json::Value>,
    pub deadline: Option<Instant>,
    pub token: CancellationToken,
    pub events: crate::Publisher,
    /// The request's input context (MRTR), if the gateway sent one.
    pub input: Option<mcp_gateway_proto::provider::InputContext>,
}

impl CallInfo {
    pub(crate) fn adopt_parent(&self, span: &tracing::Span) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let _ = span.set_parent(self.parent.clone());
    }
}

impl Context {
    pub(crate) fn new(
        call: CallInfo,
        vars: HashMap<String, String>,
        progress: Option<ProgressSink>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                caller: call.caller,
                correlation_id: call.correlation_id,
                traceparent: call.traceparent,
                meta: call.meta,
                deadline: call.deadline,
                token: call.token,
                vars,
                progress,
                events: call.events,
                answers: crate::input::Answers::new(call.input),
            }),
        }
    }

    /// Who is calling, as established by the gateway.
    pub fn caller(&self) -> &Caller {
        &self.inner.caller
    }

    /// The `x-correlation-id` the gateway sent, or `""`. Put it in your logs.
    /// The W3C `traceparent` the gateway sent, if any: the trace this call
    /// belongs to. The SDK's handler spans are already children of it when
    /// the process exports traces (see [`crate::telemetry`]).
    pub fn traceparent(&self) -> Option<&str> {
        self.inner.traceparent.as_deref()
    }

    pub fn correlation_id(&self) -> &str {
        &self.inner.correlation_id
    }

    /// The client's request `_meta` (Invoke only), if any.
    pub fn meta(&self) -> Option<&serde_json::Value> {
        self.inner.meta.as_ref()
    }

    /// When the gateway stops waiting (from `grpc-timeout`), if it set one.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// A variable matched by the resource template being read.
    pub fn template_var(&self, name: &str) -> Option<&str> {
        self.inner.vars.get(name).map(String::as_str)
    }

    /// Reports progress on the Invoke stream. `progress` must increase with
    /// every call; values that do not are dropped (with a warning) because
    /// MCP clients may reject them. A no-op outside tools or once the gateway
    /// has gone away. Awaiting applies back-pressure if the gateway is slow.
    pub fn progress(
        &self,
        progress: f64,
        total: Option<f64>,
        message: impl Into<String>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let message = message.into();
        let send = self.inner.progress.as_ref().and_then(|sink| {
            let mut last = sink.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|l| progress <= l) || !progress.is_finite() {
                tracing::warn!(progress, last = ?*last, "dropping non-increasing progress");
                return None;
            }
            *last = Some(progress);
            let event = Event::Progress(Progress {
                progress,
                total,
                message,
            });
            Some((sink.tx.clone(), InvokeResponse { event: Some(event) }))
        });
        async move {
            if let Some((tx, msg)) = send {
                // A closed channel means the call is over; nothing to report to.
                let _ = tx.send(Ok(msg)).await;
            }
        }
    }

    /// Sends a log message to the client that made this call, and no one
    /// else (MCP `notifications/message`): the gateway delivers it only if
    /// that client asked for `level` or more, on the call's own stream.
    /// `data` is any JSON value. A no-op outside tools or once the call is
    /// over. Awaiting applies back-pressure if the gateway is slow.
    pub fn log(
        &self,
        level: LogLevel,
        data: impl serde::Serialize,
    ) -> impl Future<Output = ()> + Send + 'static {
        let send = self.inner.progress.as_ref().map(|sink| {
            let event = Event::Log(LogMessage {
                level: level.as_str().to_string(),
                logger: String::new(),
                data: serde_json::to_vec(&data).unwrap_or_else(|_| b"null".to_vec()),
            });
            (sink.tx.clone(), InvokeResponse { event: Some(event) })
        });
        async move {
            if let Some((tx, msg)) = send {
                let _ = tx.send(Ok(msg)).await;
            }
        }
    }

    /// The MCP ClientCapabilities the client declared (`Null` if none).
    pub fn client_capabilities(&self) -> &serde_json::Value {
        &self.inner.answers.capabilities
    }

    /// Whether the client can answer `elicitation/create` (form mode).
    pub fn can_elicit(&self) -> bool {
        self.client_capabilities()
            .get("elicitation")
            .and_then(serde_json::Value::as_object)
            .is_some_and(|e| e.is_empty() || e.contains_key("form"))
    }

    /// Whether the client can answer `sampling/createMessage`.
    pub fn can_sample(&self) -> bool {
        self.client_capabilities()
            .get("sampling")
            .is_some_and(|s| s.is_object())
    }

    /// Whether the client can answer `roots/list`.
    pub fn can_list_roots(&self) -> bool {
        self.client_capabilities()
            .get("roots")
            .is_some_and(|s| s.is_object())
    }

    /// The client's answer to this round's `key` (explicit rounds).
    pub fn input_response(&self, key: &str) -> Option<&serde_json::Value> {
        self.inner.answers.responses.get(key)
    }

    /// Every answer to the previous round, by key.
    pub fn input_responses(&self) -> &std::collections::BTreeMap<String, serde_json::Value> {
        &self.inner.answers.responses
    }

    /// The state the previous round returned; empty in the first round.
    pub fn request_state(&self) -> &[u8] {
        &self.inner.answers.state
    }

    /// The client's answer to `ask`, under `key` (hidden rounds: see
    /// [`crate::input`]). Propagate the error with `?`: it is the round
    /// that asks.
    pub async fn ask(&self, key: &str, ask: crate::Ask) -> Result<serde_json::Value, ToolError> {
        self.inner.answers.get(key, ask)
    }

    /// Asks the user (form elicitation); `schema` is the requested schema.
    pub async fn elicit(
        &self,
        message: impl Into<String>,
        schema: serde_json::Value,
    ) -> Result<crate::Elicited, ToolError> {
        let key = self.inner.answers.key("elicit");
        let v = self
            .inner
            .answers
            .get(&key, crate::Ask::elicit(message, schema))?;
        Ok(crate::Elicited::from_json(&v))
    }

    /// Asks the client's model (sampling) one user message.
    pub async fn sample(
        &self,
        prompt: impl Into<String>,
        max_tokens: u32,
    ) -> Result<crate::Sampled, ToolError> {
        let key = self.inner.answers.key("sample");
        let v = self
            .inner
            .answers
            .get(&key, crate::Ask::sample(prompt, max_tokens))?;
        Ok(crate::Sampled::from_json(v))
    }

    /// The client's roots.
    pub async fn roots(&self) -> Result<Vec<crate::Root>, ToolError> {
        let key = self.inner.answers.key("roots");
        let v = self.inner.answers.get(&key, crate::Ask::roots())?;
        Ok(crate::Root::list_from_json(&v))
    }

    /// This provider's event publisher.
    pub fn events(&self) -> &crate::Publisher {
        &self.inner.events
    }

    /// True once the gateway cancelled the call or its deadline passed.
    pub fn is_cancelled(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// Resolves when the call is cancelled; use it in `tokio::select!`.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.token.clone().cancelled_owned()
    }

    /// The call's cancellation token, to hand to other tasks or libraries.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.token.clone()
    }
}
