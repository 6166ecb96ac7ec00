//! Shared harness: a kitchen-sink provider built with our SDK on a real TCP
//! port, the real gateway on a real listener, and real rmcp clients.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use mcp_gateway::{Gateway, config::Config};
use mcp_provider_sdk::prelude::*;
use rmcp::{
    ClientHandler, RoleClient,
    model::{
        CallToolRequestParams, CallToolResult, ClientConfig, JsonObject, ProgressNotificationParam,
        ProtocolVersion,
    },
    service::{
        ClientLifecycleMode, NotificationContext, RunningService, serve_client_with_lifecycle,
    },
    transport::{StreamableHttpClientTransport, TokioChildProcess},
};
use serde_json::Value;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

/// A port that was free a moment ago, for "provider comes up later" tests.
pub async fn free_port() -> u16 {
    init();
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the slow tool saw, so tests can assert the provider side.
#[derive(Default)]
pub struct KitProbe {
    pub slow_started: Notify,
    pub slow_cancelled: AtomicBool,
    pub cancelled_notify: Notify,
}

#[derive(Deserialize, JsonSchema)]
pub struct Msg {
    pub message: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct SlowArgs {
    pub ms: u64,
}

#[derive(Deserialize, JsonSchema)]
pub struct BigArgs {
    pub bytes: usize,
}

/// The test provider: every feature the gateway must carry.
pub fn kit(probe: Arc<KitProbe>) -> ProviderBuilder {
    let p1 = probe.clone();
    Provider::builder("kit")
        .version("test")
        .tool(
            Tool::new("echo.v1", |a: Msg, _cx| async move {
                Ok(ToolOutput::text(a.message.clone())
                    .with_structured(serde_json::json!({ "message": a.message })))
            })
            .description("Echo")
            .output_schema(serde_json::json!({
                "type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]
            }))
            .read_only(true)
            .idempotent(true),
        )
        .tool(
            Tool::new("bad-output.v1", |_a: Msg, _cx| async move {
                Ok(ToolOutput::text("oops").with_structured(serde_json::json!({ "count": "three" })))
            })
            .output_schema(serde_json::json!({
                "type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]
            })),
        )
        .tool(Tool::new("kinds.v1", |_a: Msg, _cx| async move {
            let mut text = content::text("plain text");
            text.annotations = br#"{"audience":["user"],"priority":0.5}"#.to_vec();
            Ok(ToolOutput::new(vec![
                text,
                content::image(vec![0x89, b'P', b'N', b'G'], "image/png"),
                content::audio(vec![1, 2, 3, 4], "audio/wav"),
                content::resource_link("kit://items/7", "item 7"),
                content::embedded_text("kit://readme", "text/plain", "embedded words"),
                content::embedded_blob("kit://blob", "application/octet-stream", vec![0, 255, 1]),
            ])
            .with_structured(serde_json::json!({ "big": 9007199254740993u64, "ok": true })))
        }))
        .tool(Tool::new("progress.v1", |_a: Msg, cx: Context| async move {
            for i in 1..=3 {
                cx.progress(i as f64, Some(3.0), format!("step {i}")).await;
            }
            Ok(ToolOutput::text("finished"))
        }))
        .tool(Tool::new("slow.v1", move |a: SlowArgs, cx: Context| {
            let probe = p1.clone();
            async move {
                probe.slow_started.notify_waiters();
                tokio::select! {
                    _ = cx.cancelled() => {
                        probe.slow_cancelled.store(true, Ordering::SeqCst);
                        probe.cancelled_notify.notify_waiters();
                        Err(ToolError::new("cancelled"))
                    }
                    _ = tokio::time::sleep(Duration::from_millis(a.ms)) => Ok(ToolOutput::text("done")),
                }
            }
        }))
        .tool(Tool::new("whoami.v1", |_a: Msg, cx: Context| async move {
            Ok(ToolOutput::structured(&serde_json::json!({
                "correlation_id": cx.correlation_id(),
                "agent": cx.caller().agent,
                "principal": cx.caller().principal,
                "session": cx.caller().session_id,
                "meta": cx.meta(),
                "traceparent": cx.traceparent(),
            })))
        }))
        .tool(Tool::new("big.v1", |a: BigArgs, _cx| async move {
            Ok(ToolOutput::text("x".repeat(a.bytes)))
        }))
        .tool(Tool::new("fail.v1", |_a: Msg, _cx| async move {
            Err::<ToolOutput, _>(ToolError::new("the tool failed on purpose"))
        }))
        .resource(
            Resource::new("kit://readme", "readme", |_uri, _cx| async move {
                Ok(ResourceBody::text("kit readme"))
            })
            .mime_type("text/plain"),
        )
        .resource_template(
            ResourceTemplate::new("kit://items/{id}", "item", |_uri, cx: Context| async move {
                Ok(ResourceBody::text(format!("item {}", cx.template_var("id").unwrap_or("?"))))
            })
            .mime_type("text/plain"),
        )
        .prompt(
            Prompt::new("greet", |args: std::collections::HashMap<String, String>, _cx| async move {
                Ok(PromptReply::user(format!("Say hello to {}", args["name"])))
            })
            .description("Greets")
            .argument("name", "who", true),
        )
}

pub async fn spawn_kit(probe: Arc<KitProbe>) -> RunningProvider {
    spawn_on(kit(probe), "127.0.0.1:0").await
}

pub async fn spawn_on(builder: ProviderBuilder, addr: &str) -> RunningProvider {
    // Most tests start here; their HTTP clients need the rustls provider.
    init();
    let listener = TcpListener::bind(addr).await.unwrap();
    builder.spawn(listener).await.unwrap()
}

pub struct TestGateway {
    #[allow(dead_code)]
    pub gateway: Gateway,
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestGateway {
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = reqwest::get(format!("{}/metrics", self.base()))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// `GET /ready` as JSON.
    pub async fn ready(&self) -> Value {
        reqwest::get(format!("{}/ready", self.base()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Triggers graceful shutdown and waits for the server to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }

    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }
}

/// The provider list for a config: `(name, address)`.
pub fn config_yaml(providers: &[(&str, SocketAddr)], extra: &str) -> String {
    let mut y = String::from(
        "discovery:\n  retry_interval: 200ms\n  refresh_interval: 500ms\nshutdown_grace: 5s\n",
    );
    y.push_str(extra);
    y.push_str("providers:\n");
    for (name, addr) in providers {
        y.push_str(&format!(
            "  - name: {name}\n    endpoint: http://{addr}\n    pool_size: 2\n"
        ));
    }
    y
}

/// Process-wide test setup: logs, and the rustls provider (ring) for the
/// HTTP clients.
pub fn init() {
    // Captured per test by cargo, shown only for failing tests.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn start_gateway(yaml: &str) -> TestGateway {
    init();
    let config = Config::parse(yaml).expect("test config is valid");
    let gateway = Gateway::start(config).await.expect("gateway starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let g = gateway.clone();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        g.serve_http(listener, s.cancelled_owned()).await.unwrap();
    });
    TestGateway {
        gateway,
        addr,
        stop,
        task,
    }
}

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

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

pub fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-gateway"))
}

/// Writes `yaml` to a temp file that lives as long as the returned guard.
pub fn temp_config(yaml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, yaml.as_bytes()).unwrap();
    f
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

/// Polls `f` until it returns `Some` or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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

/// The gateway binary serving `yaml` (which listens on `port`), its output
/// captured; returns once `/ready` answers, with that answer. Keep the
/// config file alive as long as the process.
pub async fn gateway_process(
    yaml: &str,
    port: u16,
    env: &[(&str, &str)],
) -> (tokio::process::Child, tempfile::NamedTempFile, String) {
    let cfg = temp_config(yaml);
    let child = tokio::process::Command::new(gateway_bin())
        .arg("--config")
        .arg(cfg.path())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = eventually(Duration::from_secs(10), || {
        let url = format!("http://127.0.0.1:{port}/ready");
        async move { reqwest::get(url).await.ok()?.text().await.ok() }
    })
    .await
    .expect("gateway answers /ready");
    (child, cfg, ready)
}

/// Stops the process (SIGTERM) and returns all it logged.
pub async fn stop_and_logs(child: tokio::process::Child) -> String {
    unsafe { libc_kill(child.id().unwrap()) };
    let out = child.wait_with_output().await.unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

unsafe fn libc_kill(pid: u32) {
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}
