//! Real rmcp clients over Streamable HTTP and stdio, and what they record.

use super::*;

/// A client handler that records what the server pushes.
#[derive(Clone, Default)]
pub struct Recorder {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    pub tools_changed: Arc<Notify>,
    pub tools_changed_seen: Arc<AtomicBool>,
    /// `notifications/message` data, in arrival order.
    pub logs: Arc<Mutex<Vec<Value>>>,
    /// `notifications/resources/updated` URIs, in arrival order.
    pub updated: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }

    async fn on_progress(
        &self,
        p: ProgressNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(p);
    }

    async fn on_tool_list_changed(&self, _cx: NotificationContext<RoleClient>) {
        self.tools_changed_seen.store(true, Ordering::SeqCst);
        self.tools_changed.notify_waiters();
    }

    #[allow(deprecated)] // logging: deprecated in rmcp, valid in 2025-11-25
    async fn on_logging_message(
        &self,
        p: rmcp::model::LoggingMessageNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push(p.data);
    }

    async fn on_resource_updated(
        &self,
        p: rmcp::model::ResourceUpdatedNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(p.uri);
    }
}

pub type Client = RunningService<RoleClient, Recorder>;

/// The ways a client can reach the gateway.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// 2025-11-25 over Streamable HTTP, with a session.
    HttpSession,
    /// 2026-07-28 over Streamable HTTP: no initialize, `_meta` on each request.
    HttpStateless,
    /// 2025-11-25 over stdio (the real binary).
    Stdio,
    /// 2026-07-28 over stdio.
    StdioStateless,
}

pub const ALL_MODES: [Mode; 4] = [
    Mode::HttpSession,
    Mode::HttpStateless,
    Mode::Stdio,
    Mode::StdioStateless,
];

fn lifecycle(stateless: bool) -> ClientLifecycleMode {
    if stateless {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        }
    } else {
        ClientLifecycleMode::Initialize
    }
}

pub async fn http_client(url: &str, stateless: bool, recorder: Recorder) -> Client {
    init();
    let transport = StreamableHttpClientTransport::from_uri(url.to_string());
    serve_client_with_lifecycle(recorder, transport, lifecycle(stateless))
        .await
        .expect("client connects")
}

/// An HTTP client sending `Authorization: Bearer <token>` and `headers`.
pub async fn http_client_as(
    url: &str,
    stateless: bool,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Client {
    http_client_rec(url, stateless, token, headers, Recorder::default()).await
}

/// [`http_client_as`] with a recorder of what the server pushes.
pub async fn http_client_rec(
    url: &str,
    stateless: bool,
    token: Option<&str>,
    headers: &[(&str, &str)],
    recorder: Recorder,
) -> Client {
    init();
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(t) = token {
        cfg = cfg.auth_header(t.to_string());
    }
    cfg = cfg.custom_headers(
        headers
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect(),
    );
    let transport = StreamableHttpClientTransport::from_config(cfg);
    serve_client_with_lifecycle(recorder, transport, lifecycle(stateless))
        .await
        .expect("client connects")
}

/// A response body as JSON: the body itself, or the last SSE `data:` line
/// that is JSON; `Null` when neither.
pub fn json_or_last_event(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| {
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .unwrap_or(Value::Null)
    })
}

pub async fn stdio_client(config: &std::path::Path, stateless: bool, recorder: Recorder) -> Client {
    let mut cmd = tokio::process::Command::new(gateway_bin());
    cmd.arg("--stdio").arg("--config").arg(config);
    cmd.env("RUST_LOG", "warn");
    let transport = TokioChildProcess::new(cmd).expect("spawn gateway --stdio");
    serve_client_with_lifecycle(recorder, transport, lifecycle(stateless))
        .await
        .expect("stdio client connects")
}

/// Connects in `mode` to a gateway serving `yaml` (HTTP modes use `gw`).
pub async fn connect(
    mode: Mode,
    gw: &TestGateway,
    yaml: &str,
    rec: Recorder,
) -> (Client, Option<tempfile::NamedTempFile>) {
    match mode {
        Mode::HttpSession => (http_client(&gw.url(), false, rec).await, None),
        Mode::HttpStateless => (http_client(&gw.url(), true, rec).await, None),
        Mode::Stdio | Mode::StdioStateless => {
            let f = temp_config(yaml);
            let c = stdio_client(f.path(), matches!(mode, Mode::StdioStateless), rec).await;
            (c, Some(f))
        }
    }
}

pub fn args(v: Value) -> JsonObject {
    v.as_object().cloned().expect("object")
}

pub async fn call(
    client: &Client,
    tool: &str,
    a: Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(a)))
        .await
}

pub fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON-RPC error inside a client-side error, if it is one.
pub fn rpc_error(e: &rmcp::ServiceError) -> rmcp::model::ErrorData {
    match e {
        rmcp::ServiceError::McpError(d) => d.clone(),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// Asks for `notifications/message` (opt-in: a session gets log messages
/// only after `logging/setLevel`).
#[allow(deprecated)]
pub async fn opt_into_logs(c: &Client) {
    c.set_level(rmcp::model::SetLevelRequestParams::new(
        rmcp::model::LoggingLevel::Info,
    ))
    .await
    .expect("logging/setLevel");
}
