//! The load generator's clients. Each virtual client owns one keep-alive
//! connection and speaks real MCP: hyper's low-level HTTP/1.1 client keeps
//! the generator's own CPU cost small, which matters when the generator, the
//! gateway and the provider share two cores.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mcp_gateway_proto::provider::{
    self as pb, invoke_response::Event, provider_client::ProviderClient,
};
use tokio::net::TcpStream;
use tonic::transport::Channel;

pub const V_SESSION: &str = "2025-11-25";
pub const V_STATELESS: &str = "2026-07-28";

/// One HTTP/1.1 keep-alive connection.
pub struct Http {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Response> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.sender.send_request(req.body(Full::new(body))?).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }
}

/// Which protocol revision a virtual client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// 2025-11-25: initialize, then every request in its own session.
    Stateful,
    /// 2026-07-28: no initialize, `_meta` and SEP-2243 headers on every request.
    Stateless,
    /// The provider's `Invoke` over gRPC, no gateway: the floor.
    Grpc,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Stateful => "mcp 2025-11-25 session",
            Mode::Stateless => "mcp 2026-07-28 stateless",
            Mode::Grpc => "direct gRPC",
        }
    }
}

/// What one request asks for.
#[derive(Debug, Clone)]
pub enum Op {
    /// `tools/call` of the exposed name with a `{"message": ..}` argument;
    /// the provider's own name is used in direct-gRPC mode.
    Call {
        exposed: String,
        own: String,
    },
    ToolsList,
}

/// One MCP client on its own connection.
pub struct Mcp {
    http: Http,
    mode: Mode,
    session: Option<String>,
    next_id: u64,
}

fn is_sse(r: &Response) -> bool {
    r.headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// The JSON-RPC message in a JSON or SSE body. An SSE reply here is one
/// event (maybe after an empty priming event) whose data runs to the end, so
/// only the first few hundred bytes are scanned: splitting a 3 MB
/// tools/list into lines would put milliseconds of client work into the
/// measured latency.
fn json_body(r: &Response) -> &[u8] {
    if !is_sse(r) {
        return &r.body;
    }
    let body = r.body.trim_ascii_end();
    let head = &body[..body.len().min(512)];
    let mut at = 0;
    while let Some(i) = find(&head[at..], b"data:") {
        let start = at + i + 5;
        let rest = body[start..].trim_ascii_start();
        if rest.starts_with(b"{") {
            return rest;
        }
        at = start;
    }
    b""
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Mcp {
    /// Connects; in stateful mode also opens a session (initialize +
    /// notifications/initialized).
    pub async fn connect(addr: SocketAddr, mode: Mode) -> anyhow::Result<Self> {
        let mut c = Self {
            http: Http::connect(addr).await?,
            mode,
            session: None,
            next_id: 1,
        };
        if mode == Mode::Stateful {
            c.initialize().await?;
        }
        Ok(c)
    }

    async fn initialize(&mut self) -> anyhow::Result<()> {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{V_SESSION}","capabilities":{{}},"clientInfo":{{"name":"mcp-bench","version":"0.1.0"}}}}}}"#
        );
        let r = self
            .http
            .send(
                Method::POST,
                "/mcp",
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json, text/event-stream"),
                ],
                body.into(),
            )
            .await?;
        if r.status != StatusCode::OK || !contains(json_body(&r), b"\"result\"") {
            bail!(
                "initialize failed: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        let sid = r
            .headers
            .get("mcp-session-id")
            .context("initialize answered without Mcp-Session-Id")?
            .to_str()?
            .to_string();
        let r = self
            .http
            .send(
                Method::POST,
                "/mcp",
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json, text/event-stream"),
                    ("mcp-protocol-version", V_SESSION),
                    ("mcp-session-id", &sid),
                ],
                Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            )
            .await?;
        if !r.status.is_success() {
            bail!("notifications/initialized failed: {}", r.status);
        }
        self.session = Some(sid);
        Ok(())
    }

    /// Sends `op` and checks the answer is a successful result. Returns the
    /// size of the JSON-RPC response.
    pub async fn request(&mut self, op: &Op) -> anyhow::Result<usize> {
        let id = self.next_id;
        self.next_id += 1;
        let (method, name, params) = match op {
            Op::Call { exposed, .. } => (
                "tools/call",
                Some(exposed.as_str()),
                format!(r#""name":"{exposed}","arguments":{{"message":"hello"}}"#),
            ),
            Op::ToolsList => ("tools/list", None, String::new()),
        };
        let mut headers: Vec<(&'static str, &str)> = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        let body = match self.mode {
            Mode::Stateful => {
                headers.push(("mcp-protocol-version", V_SESSION));
                headers.push((
                    "mcp-session-id",
                    self.session
                        .as_deref()
                        .expect("stateful client has a session"),
                ));
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{{params}}}}}"#
                )
            }
            Mode::Stateless => {
                headers.push(("mcp-protocol-version", V_STATELESS));
                headers.push(("mcp-method", method));
                if let Some(n) = name {
                    headers.push(("mcp-name", n));
                }
                let sep = if params.is_empty() { "" } else { "," };
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{{params}{sep}"_meta":{{"io.modelcontextprotocol/protocolVersion":"{V_STATELESS}","io.modelcontextprotocol/clientInfo":{{"name":"mcp-bench","version":"0.1.0"}},"io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
                )
            }
            Mode::Grpc => unreachable!("gRPC mode has its own client"),
        };
        let r = self
            .http
            .send(Method::POST, "/mcp", &headers, body.into())
            .await?;
        let json = json_body(&r);
        // The result key comes first after jsonrpc and id, so a short prefix
        // tells success from a JSON-RPC error without parsing megabytes.
        let head = &json[..json.len().min(64)];
        if r.status != StatusCode::OK || !contains(head, b"\"result\"") {
            bail!(
                "{method} failed: {} {}",
                r.status,
                String::from_utf8_lossy(&json[..json.len().min(300)])
            );
        }
        if matches!(op, Op::Call { .. }) && contains(json, b"\"isError\":true") {
            bail!(
                "{method} returned isError: {}",
                String::from_utf8_lossy(json)
            );
        }
        Ok(json.len())
    }
}

/// A direct caller of the provider's `Invoke`.
pub struct Grpc {
    client: ProviderClient<Channel>,
}

impl Grpc {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: ProviderClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
        }
    }

    pub async fn invoke(&mut self, tool: &str) -> anyhow::Result<usize> {
        let req = pb::InvokeRequest {
            tool: tool.to_string(),
            arguments: br#"{"message":"hello"}"#.to_vec(),
            caller: Some(pb::Caller {
                principal: "mcp-bench".into(),
                ..Default::default()
            }),
            meta: Vec::new(),
            input: None,
        };
        let mut stream = self.client.invoke(req).await?.into_inner();
        while let Some(msg) = stream.message().await? {
            if let Some(Event::Result(r)) = msg.event {
                if r.is_error {
                    bail!("Invoke returned is_error");
                }
                // To the end of the stream, as the gateway does: dropping it
                // early resets it, and an h2 server answers many resets
                // with GOAWAY.
                stream.trailers().await?;
                return Ok(r.content.len());
            }
        }
        bail!("Invoke stream ended without a result")
    }
}

/// A virtual client of any mode.
pub enum Client {
    Mcp(Box<Mcp>),
    Grpc(Grpc),
}

impl Client {
    pub async fn run(&mut self, op: &Op) -> anyhow::Result<usize> {
        match (self, op) {
            (Client::Mcp(c), op) => c.request(op).await,
            (Client::Grpc(g), Op::Call { own, .. }) => g.invoke(own).await,
            (Client::Grpc(_), Op::ToolsList) => bail!("tools/list has no direct-gRPC form"),
        }
    }
}
