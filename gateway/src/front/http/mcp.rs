//! `/mcp`: Streamable HTTP for both revisions on one endpoint.
//! - 2025-11-25 (and older): `initialize` opens a session (`Mcp-Session-Id`);
//!   requests name it; `GET` opens its stream of server messages (primed,
//!   resumable with `Last-Event-ID`); `DELETE` ends it.
//! - 2026-07-28: every POST stands alone, with the version in a header and
//!   in `_meta`, and `Mcp-Method`/`Mcp-Name` headers matching the body;
//!   `subscriptions/listen` is a POST answered with a stream.
//!
//! An answer is JSON unless notifications (progress) come before it; then
//! the response is an SSE stream ending with the answer.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{AppState, refusal::Refusal};
use crate::front::engine::{self, Answer, Call, Engine, Exchange, Reply};
use crate::front::jsonrpc::{self, Message};
use crate::front::session::{Owner, Session};
use crate::security::auth::Identity;

use super::names;
/// Reconnection delay offered to SSE clients.
const RETRY: Duration = Duration::from_secs(3);
/// Comment lines that keep idle streams open through proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) async fn mcp(State(s): State<AppState>, req: Request) -> Response {
    if let Err(r) = s.admission.check(req.uri(), req.headers()) {
        return r.into_response();
    }
    match *req.method() {
        Method::POST | Method::DELETE => exchange(s, req).await,
        // A session's stream: open by design, closed at shutdown rather
        // than waited for.
        Method::GET => get(s, req).await,
        _ => Refusal::method_not_allowed("GET, POST, DELETE").into_response(),
    }
}

/// A POST or DELETE: answered within `limits.request_timeout` (504 after
/// it), and counted for draining until its response body is sent.
async fn exchange(s: AppState, req: Request) -> Response {
    let guard = s.exchanges.track();
    let limit = s.gateway.config().limits.request_timeout;
    let work = async {
        if req.method() == Method::POST {
            post(s.clone(), req).await
        } else {
            delete(s.clone(), req)
        }
    };
    let resp = match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Refusal::timeout(format!(
            "no answer within limits.request_timeout ({})",
            humantime::format_duration(limit)
        ))
        .into_response(),
    };
    resp.map(|body| Body::new(super::body::WithGuard::new(body, guard)))
}

fn owner(s: &AppState, req: &Request) -> Owner {
    let anonymous = Identity::anonymous();
    let identity = req.extensions().get::<Identity>().unwrap_or(&anonymous);
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    Owner::new(s.gateway.auth().config().mode, identity, client)
}

fn header<'h>(h: &'h http::HeaderMap, name: &http::HeaderName) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The session a request names, if it is the caller's; otherwise the same
/// 404 whether it never existed, ended, or is somebody else's.
fn named_session(s: &AppState, req: &Request) -> Result<Option<Arc<Session>>, Refusal> {
    let Some(id) = req.headers().get(names::SESSION) else {
        return Ok(None);
    };
    let owner = owner(s, req);
    id.to_str()
        .ok()
        .and_then(|id| s.sessions.get(id, &owner))
        .map(Some)
        .ok_or_else(Refusal::no_session)
}

/// The version header, if present, must be one this gateway speaks.
fn version_header(req_headers: &http::HeaderMap) -> Result<Option<&str>, Refusal> {
    match req_headers.get(names::VERSION) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(v) if engine::known(v) => Ok(Some(v)),
            Ok(v) => Err(Refusal::bad_request(&format!(
                "unsupported MCP-Protocol-Version: {v}"
            ))),
            Err(_) => Err(Refusal::bad_request("MCP-Protocol-Version is not text")),
        },
    }
}

async fn post(s: AppState, req: Request) -> Response {
    if let Err(r) = super::admission::post_media(req.headers()) {
        return r.into_response();
    }
    let session = match named_session(&s, &req) {
        Ok(session) => session,
        Err(r) => return r.into_response(),
    };
    let limit = s.gateway.config().limits.max_payload_bytes;
    let (parts, body) = req.into_parts();
    let bytes = match super::body::read(body, limit).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let header_version = header(&parts.headers, &names::VERSION);
    let per_request = header_version == Some(engine::PER_REQUEST);
    let message = match jsonrpc::decode(&bytes, per_request) {
        Ok(m) => m,
        Err(rejected) => return Refusal::rejected(&rejected).into_response(),
    };
    let request = match message {
        Message::Request(r) => r,
        Message::Notification { method, params } => {
            if session.is_none() && !per_request {
                return Refusal::session_required().into_response();
            }
            s.engine.notification(session.as_ref(), &method, params);
            return StatusCode::ACCEPTED.into_response();
        }
        // An answer to the gateway's own request (elicitation, sampling,
        // roots), for the request waiting on it.
        Message::Response { id, answer } => {
            let delivered = session
                .as_ref()
                .is_some_and(|s| s.outbound.answer(id, answer));
            if !delivered {
                tracing::debug!("a response to no open request of this session");
            }
            return StatusCode::ACCEPTED.into_response();
        }
    };
    let call = Call::new(request);
    let req_version = call.meta_version().map(str::to_string);
    // With a per-request `_meta`, `initialize` is a method 2026-07-28
    // removed: the engine answers it as unknown.
    if call.method == "initialize" && req_version.is_none() {
        return initialize(&s, &parts, call).await;
    }
    let stateless = req_version.is_some() || call.method == "server/discover" || per_request;
    if let Err(r) = check_version(&parts.headers, &call, stateless) {
        return r.into_response();
    }
    if stateless {
        if let Err(r) = super::standard_headers::check(&s, &parts.headers, &call) {
            return r.into_response();
        }
    } else if session.is_none() {
        return Refusal::session_required().into_response();
    }
    let identity = parts
        .extensions
        .get::<Identity>()
        .cloned()
        .unwrap_or_else(Identity::anonymous);
    let x = Exchange {
        identity: Arc::new(identity),
        correlation_id: header(&parts.headers, &names::CORRELATION_ID)
            .map(str::to_string)
            .unwrap_or_else(crate::new_correlation_id),
        traceparent: header(&parts.headers, &names::TRACEPARENT).map(str::to_string),
        session: if stateless { None } else { session },
        early: None,
        cancel: CancellationToken::new(),
    };
    let ends = match &x.session {
        Some(session) => session.ended.clone(),
        None => s.stop.clone(),
    };
    // A listen stream has no end of its own: it ends when draining starts,
    // so that shutdown does not wait out the grace period for it.
    let listen_ends = s.draining.clone();
    answer(s.engine.clone(), x, call, stateless, ends, listen_ends).await
}

/// Per-request version rules: a `_meta` version needs the header, equal to
/// it, and a complete `_meta`; it must be a version this gateway speaks.
fn check_version(h: &http::HeaderMap, call: &Call, stateless: bool) -> Result<(), Refusal> {
    let header_version = header(h, &names::VERSION);
    match (call.meta_version(), header_version) {
        (Some(_), None) => {
            return Err(Refusal::header_mismatch(
                call,
                "a request with _meta protocolVersion needs the MCP-Protocol-Version header",
            ));
        }
        (Some(m), Some(hv)) if m != hv => {
            return Err(Refusal::header_mismatch(
                call,
                &format!(
                    "MCP-Protocol-Version header ({hv}) does not match _meta protocolVersion ({m})"
                ),
            ));
        }
        (None, _) => {
            version_header(h)?;
        }
        _ => {}
    }
    if !stateless {
        return Ok(());
    }
    let missing = call.missing_meta();
    if !missing.is_empty() {
        return Err(Refusal::bad_params(
            call,
            &format!(
                "request _meta is missing or has malformed required fields: {}",
                missing.join(", ")
            ),
        ));
    }
    match call.meta_version() {
        Some(v) if v == engine::PER_REQUEST => Ok(()),
        Some(v) => Err(Refusal::unsupported_version(call, v)),
        None => Ok(()),
    }
}

async fn initialize(s: &AppState, parts: &http::request::Parts, call: Call) -> Response {
    let asked = call
        .params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(h) = header(&parts.headers, &names::VERSION)
        && h != asked
    {
        return Refusal::invalid_request(
            &call,
            &format!("MCP-Protocol-Version header ({h}) does not match initialize params.protocolVersion ({asked})"),
        )
        .into_response();
    }
    if let Some(m) = header(&parts.headers, &names::METHOD)
        && m != "initialize"
    {
        return Refusal::header_mismatch(
            &call,
            &format!("Mcp-Method header `{m}` does not match body method `initialize`"),
        )
        .into_response();
    }
    let anonymous = Identity::anonymous();
    let identity = parts.extensions.get::<Identity>().unwrap_or(&anonymous);
    let client = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let owner = Owner::new(s.gateway.auth().config().mode, identity, client);
    let session = match s.sessions.open(owner, Engine::negotiate(&asked)) {
        Ok(session) => session,
        Err(refused) => {
            tracing::warn!(reason = %refused, "new session refused");
            return Refusal::json_rpc(
                StatusCode::SERVICE_UNAVAILABLE,
                -32000,
                &refused.to_string(),
            )
            .into_response();
        }
    };
    tracing::debug!(session = %session.reference, version = %session.version, "session opened");
    let a = s.engine.initialize(&call, &session, identity);
    let mut resp = json(StatusCode::OK, a.body);
    if let Ok(v) = HeaderValue::from_str(session.id()) {
        resp.headers_mut().insert(names::SESSION, v);
    }
    resp
}

/// Runs the request and writes its answer: JSON, or SSE when notifications
/// precede it or it is a listen stream.
async fn answer(
    engine: Arc<Engine>,
    mut x: Exchange,
    call: Call,
    stateless: bool,
    ends: CancellationToken,
    listen_ends: CancellationToken,
) -> Response {
    // Progress, log messages the client asked for, or the gateway's own
    // requests for input may come first.
    let wants_early = call.wants_progress()
        || (call.method == "tools/call" && engine::log_rank(&x, call.meta.as_ref()).is_some())
        || engine::may_ask(x.session.as_deref(), &call.method);
    let ends = Some(ends);
    // Runs in the connection's own task. A client that goes away drops it:
    // the provider call is reset (the provider sees the cancellation) and
    // the audit log records the call as cancelled.
    let reply = if !wants_early {
        engine.request(x, call).await
    } else {
        let (tx, mut rx) = mpsc::channel(32);
        x.early = Some(tx);
        let mut work: Pending = Box::pin(async move { engine.request(x, call).await });
        let reply = tokio::select! {
            biased;
            Some(first) = rx.recv() => return sse(stream_then_answer(first, rx, work), ends),
            r = &mut work => r,
        };
        // Notifications the call sent just before it finished go first.
        let mut pending = Vec::new();
        while let Ok(m) = rx.try_recv() {
            pending.push(Event::Message(m));
        }
        match reply {
            Reply::Answer(a) if !pending.is_empty() => {
                pending.push(Event::Message(a.body));
                return sse(futures::stream::iter(pending), ends);
            }
            r => r,
        }
    };
    match reply {
        Reply::Answer(a) => answer_response(a, stateless),
        Reply::Listen(l) => {
            let engine::Listen {
                first,
                rx,
                registration,
            } = l;
            let stream = futures::stream::once(async move { Event::Message(first) })
                .chain(tokio_stream::wrappers::ReceiverStream::new(rx).map(Event::Message))
                .map(move |e| {
                    let _keep = &registration;
                    e
                });
            sse(stream, Some(listen_ends))
        }
    }
}

/// A request still running while its notifications are streamed.
type Pending = std::pin::Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Notifications, then the answer when the call finishes. Dropping the
/// stream (the client left) drops the call.
fn stream_then_answer(
    first: Bytes,
    rx: mpsc::Receiver<Bytes>,
    work: Pending,
) -> impl futures::Stream<Item = Event> + Send + 'static {
    let queue = std::collections::VecDeque::from([first]);
    futures::stream::unfold(
        (Some(work), rx, queue),
        |(mut work, mut rx, mut queue)| async move {
            loop {
                if let Some(m) = queue.pop_front() {
                    return Some((Event::Message(m), (work, rx, queue)));
                }
                let running = work.as_mut()?;
                tokio::select! {
                    biased;
                    Some(m) = rx.recv() => queue.push_back(m),
                    reply = running => {
                        // What the call sent before it finished, then its answer.
                        while let Ok(m) = rx.try_recv() {
                            queue.push_back(m);
                        }
                        if let Reply::Answer(a) = reply {
                            queue.push_back(a.body);
                        }
                        work = None;
                    }
                }
            }
        },
    )
}

fn json(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The HTTP status of an answer: errors of the request itself are 4xx on
/// the 2026-07-28 path; in a session every answer is a 200.
fn answer_response(a: Answer, stateless: bool) -> Response {
    let status = match a.error {
        Some(code) if stateless => crate::pipeline::error::http_status_for(code),
        _ => StatusCode::OK,
    };
    json(status, a.body)
}

enum Event {
    /// A JSON-RPC message; with the id it has on a resumable stream.
    Message(Bytes),
    Numbered(u64, Bytes),
    /// A reconnection hint, with the id it resumes from.
    Prime(u64),
}

fn sse_frame(e: Event) -> Bytes {
    let mut out = Vec::new();
    match e {
        Event::Message(b) => {
            out.extend_from_slice(b"event: message\ndata: ");
            out.extend_from_slice(&b);
            out.extend_from_slice(b"\n\n");
        }
        Event::Numbered(id, b) => {
            out.extend_from_slice(format!("id: {id}\nevent: message\ndata: ").as_bytes());
            out.extend_from_slice(&b);
            out.extend_from_slice(b"\n\n");
        }
        Event::Prime(id) => {
            out.extend_from_slice(
                format!("id: {id}\nretry: {}\ndata: \n\n", RETRY.as_millis()).as_bytes(),
            );
        }
    }
    Bytes::from(out)
}

/// An SSE response of `events`, with keep-alive comments, until the events
/// end, `ends` fires (the session ended) or the gateway shuts down.
fn sse(
    events: impl futures::Stream<Item = Event> + Send + 'static,
    ends: Option<CancellationToken>,
) -> Response {
    let frames = events.map(sse_frame);
    let keep_alive = futures::stream::unfold((), |()| async {
        tokio::time::sleep(KEEP_ALIVE).await;
        Some((Bytes::from_static(b":\n\n"), ()))
    });
    let merged = futures::stream::select(
        frames
            .map(Some)
            .chain(futures::stream::once(async { None })),
        keep_alive.map(Some),
    )
    .take_while(|f| std::future::ready(f.is_some()))
    .filter_map(|f| async move { f });
    let ends = ends.unwrap_or_default();
    let body = merged
        .take_until(async move { ends.cancelled().await })
        .map(Ok::<_, Infallible>);
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// A session's stream of server messages (2025-11-25).
async fn get(s: AppState, req: Request) -> Response {
    if let Err(r) = super::admission::get_media(req.headers()) {
        return r.into_response();
    }
    match version_header(req.headers()) {
        Err(r) => return r.into_response(),
        Ok(Some(engine::PER_REQUEST)) => {
            return Refusal::method_not_allowed("POST").into_response();
        }
        Ok(_) => {}
    }
    let session = match named_session(&s, &req) {
        Ok(Some(session)) => session,
        Ok(None) => return Refusal::session_required().into_response(),
        Err(r) => return r.into_response(),
    };
    let after = header(req.headers(), &names::LAST_EVENT_ID).and_then(|v| v.parse::<u64>().ok());
    let attached = session.state.outbox.attach(after);
    let streaming = session.streaming(attached.generation);
    let primed = attached.from;
    let stream = futures::stream::once(async move { Event::Prime(primed) }).chain(
        tokio_stream::wrappers::ReceiverStream::new(attached.rx).map(move |(id, m)| {
            let _keep = &streaming;
            Event::Numbered(id, m)
        }),
    );
    sse(stream, Some(session.ended.clone()))
}

fn delete(s: AppState, req: Request) -> Response {
    match version_header(req.headers()) {
        Err(r) => return r.into_response(),
        Ok(Some(engine::PER_REQUEST)) => {
            return Refusal::method_not_allowed("POST").into_response();
        }
        Ok(_) => {}
    }
    match named_session(&s, &req) {
        Ok(Some(session)) => {
            s.sessions.close(session.id());
            tracing::debug!(session = %session.reference, "session ended by the client");
            // Done, and nothing to say: clients (the Python SDK) take only
            // 200 or 204 as a successful termination.
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => Refusal::session_required().into_response(),
        Err(r) => r.into_response(),
    }
}
