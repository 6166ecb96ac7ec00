//! Streamable HTTP front door: `/mcp` (rmcp's service over our handler),
//! `/health` (liveness) and `/ready` (readiness with provider states).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::front::{
    engine::Engine,
    session::{SessionLimits, Sessions},
};
use crate::{Gateway, control::drain::Drain};

mod admission;
mod body;
mod conn;
mod mcp;
mod refusal;
mod standard_headers;

use refusal::Refusal;

/// The request headers read on every request, as names made once: a
/// lookup by `&str` parses the name first.
pub(super) mod names {
    use http::HeaderName;

    pub(crate) const SESSION: HeaderName = HeaderName::from_static("mcp-session-id");
    pub(crate) const VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
    pub(crate) const METHOD: HeaderName = HeaderName::from_static("mcp-method");
    pub(crate) const NAME: HeaderName = HeaderName::from_static("mcp-name");
    pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
    pub(crate) const CORRELATION_ID: HeaderName =
        HeaderName::from_static(mcp_gateway_proto::CORRELATION_ID_HEADER);
    /// Names the calling agent.
    pub(crate) const AGENT: HeaderName = HeaderName::from_static("x-agent-name");
}

/// Shared by every handler and middleware: cloned per request and layer,
/// so one reference count.
#[derive(Clone)]
struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

struct Shared {
    gateway: Gateway,
    /// MCP POST/DELETE exchanges whose response body is still being sent.
    exchanges: Arc<Drain>,
    engine: Arc<Engine>,
    admission: Arc<admission::Admission>,
    sessions: Arc<Sessions>,
    /// Fires at shutdown, after the drain: open streams end.
    stop: CancellationToken,
    /// Fires when shutdown starts: listen streams end.
    draining: CancellationToken,
}

/// `Host` values accepted on `/mcp`: loopback names, the listen address and
/// whatever the config adds. `*` turns the check off.
fn allowed_hosts(gateway: &Gateway, local: SocketAddr) -> Option<Vec<String>> {
    let cfg = gateway.config();
    if cfg.allowed_hosts.iter().any(|h| h == "*") {
        return None;
    }
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1", "[::1]"]
        .into_iter()
        .map(String::from)
        .collect();
    hosts.push(local.ip().to_string());
    hosts.extend(cfg.allowed_hosts.iter().cloned());
    Some(hosts)
}

/// The HTTP app (see [`App`]). `exchanges` counts MCP exchanges for draining; `draining`
/// fires when shutdown starts, `stop` after the drain (open streams and
/// sessions end).
pub fn app(
    gateway: &Gateway,
    local: SocketAddr,
    stop: CancellationToken,
    draining: CancellationToken,
    exchanges: Arc<Drain>,
) -> App {
    let hosts = allowed_hosts(gateway, local);
    // Browsers send `Origin`; a foreign one is refused (403) so a web page
    // cannot drive a local gateway (DNS rebinding, CSRF).
    let mut origins: Vec<String> = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
        .into_iter()
        .map(String::from)
        .collect();
    origins.extend(gateway.config().allowed_origins.iter().cloned());
    let limits = &gateway.config().limits;
    let sessions = Sessions::new(
        SessionLimits {
            max_sessions: limits.max_sessions,
            max_per_client: limits.max_sessions_per_client,
            idle: limits.session_idle_timeout,
        },
        stop.clone(),
        Some(gateway.notifier().clone()),
    );
    sessions.spawn_reaper();
    let state = AppState(Arc::new(Shared {
        gateway: gateway.clone(),
        exchanges,
        engine: Arc::new(gateway.engine()),
        admission: Arc::new(admission::Admission::new(hosts.as_deref(), &origins)),
        sessions,
        stop,
        draining,
    }));
    let admin = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/analytics/usage", get(usage))
        .layer(middleware::from_fn_with_state(state.clone(), operator))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate_admin,
        ));
    let router = Router::new()
        .merge(admin)
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(PRM_PATH, get(resource_metadata))
        .route(&format!("{PRM_PATH}/mcp"), get(resource_metadata))
        .layer(middleware::from_fn(correlation_id))
        .with_state(state.clone());
    App { router, state }
}

/// The HTTP app: `/mcp` is served directly, the other paths by the router.
/// The MCP path is the hot one, and the router costs it a clone of each
/// boxed service and layer per request; the steps are the same functions.
#[derive(Clone)]
pub(crate) struct App {
    router: Router,
    state: AppState,
}

impl App {
    pub(crate) async fn handle(self, req: Request) -> Response {
        if req.uri().path() != "/mcp" {
            return match tower::ServiceExt::oneshot(self.router, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
        }
        let s = self.state;
        // Boxed, as the router boxes its handlers: a connection keeps room
        // for its request's future while idle, and this one is kilobytes.
        Box::pin(with_correlation_id(req, |req| async move {
            match identify(&s, req).await {
                Ok(req) => mcp::mcp(State(s), req).await,
                Err(refused) => refused,
            }
        }))
        .await
    }
}

/// Serves until `shutdown` resolves, then stops accepting, drains in-flight
/// calls for up to `shutdown_grace`, and closes the remaining sessions.
pub async fn serve(
    gateway: &Gateway,
    listener: tokio::net::TcpListener,
    tls: Option<mcp_gateway_proto::tls::ReloadingAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let sessions_ct = CancellationToken::new();
    let exchanges = Arc::new(Drain::default());
    let stop_accepting = CancellationToken::new();
    let app = app(
        gateway,
        local,
        sessions_ct.clone(),
        stop_accepting.clone(),
        exchanges.clone(),
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, "serving MCP over Streamable HTTP at {scheme}://{local}/mcp");

    let grace = gateway.config().shutdown_grace;
    let dispatcher = gateway.dispatcher().clone();
    let stopper = stop_accepting.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; draining in-flight calls");
        exchanges.start();
        stopper.cancel();
        let drained = tokio::time::timeout(grace, async {
            dispatcher.drain(grace).await;
            // Until every response has been written, not just produced.
            exchanges.idle().await;
        });
        if drained.await.is_err() {
            tracing::warn!(
                in_flight = dispatcher.in_flight(),
                "grace period over; abandoning calls"
            );
        }
        // Ends SSE streams and sessions so open connections can close.
        sessions_ct.cancel();
    });
    let limits = &gateway.config().limits;
    let limits = conn::ConnLimits {
        header_read_timeout: limits.header_read_timeout,
        idle_timeout: limits.idle_timeout,
        max_connections: limits.connections(),
    };
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout = %humantime::format_duration(limits.header_read_timeout),
        idle_timeout = %humantime::format_duration(limits.idle_timeout),
        "connection limits"
    );
    // Watches the certificate files while the listener lives.
    let _tls_watch = tls.as_ref().and_then(|a| {
        a.watch().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot watch server_tls files; certificate changes need a restart");
            None
        })
    });
    crate::control::memory::start_trimming();
    let server = conn::serve(listener, tls, app, limits, stop_accepting.clone());
    // Connections that still linger after the grace period are cut.
    let hard_stop = async move {
        stop_accepting.cancelled().await;
        tokio::time::sleep(grace + Duration::from_secs(2)).await;
    };
    tokio::select! {
        _ = server => {}
        _ = hard_stop => {}
    }
    Ok(())
}

/// RFC 9728 protected resource metadata.
const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

/// This gateway's `/mcp` URL as clients know it: configured, or from `Host`.
fn resource_url(s: &AppState, headers: &http::HeaderMap) -> String {
    if let Some(r) = &s.gateway.auth().config().resource {
        return r.clone();
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/mcp")
}

/// The metadata document URL for a resource URL (same origin).
fn metadata_url(resource: &str) -> String {
    match resource.parse::<http::Uri>() {
        Ok(u) if u.scheme().is_some() && u.authority().is_some() => format!(
            "{}://{}{PRM_PATH}",
            u.scheme_str().unwrap_or("http"),
            u.authority().map(|a| a.as_str()).unwrap_or_default()
        ),
        _ => PRM_PATH.to_string(),
    }
}

async fn resource_metadata(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let auth = s.gateway.auth();
    let cfg = auth.config();
    Json(json!({
        "resource": resource_url(&s, &headers),
        "authorization_servers": cfg.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-gateway",
    }))
}

/// Establishes the caller's [`Identity`](crate::security::auth::Identity) for every
/// request behind it, and applies the per-principal rate limit. Refusals
/// happen here, before the JSON-RPC layer.
async fn authenticate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match identify(&s, req).await {
        Ok(req) => next.run(req).await,
        Err(refused) => refused,
    }
}

/// [`authenticate`]'s work: the request with its identity, or the refusal.
async fn identify(s: &AppState, mut req: Request) -> Result<Request, Response> {
    let auth = s.gateway.auth();
    let agent = req
        .headers()
        .get(names::AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let identity = match auth.authenticate(req.headers(), &agent).await {
        Ok(i) => i,
        Err(e) => {
            tracing::info!(path = %req.uri().path(), reason = %e, "unauthenticated request refused");
            let resource = resource_url(s, req.headers());
            let mut challenge = format!("Bearer resource_metadata=\"{}\"", metadata_url(&resource));
            if let crate::security::auth::AuthError::Invalid(msg) = &e {
                // Quotes and backslashes cannot appear: messages are ours.
                challenge.push_str(&format!(
                    ", error=\"invalid_token\", error_description=\"{}\"",
                    msg.replace(['"', '\\'], "'")
                ));
            }
            return Err(Refusal::unauthorized(e.to_string(), &challenge).into_response());
        }
    };
    if let Err(wait) = s
        .gateway
        .dispatcher()
        .limits()
        .check_principal(&identity.principal)
    {
        let description = format!("rate limit exceeded for principal '{}'", identity.principal);
        return Err(Refusal::rate_limited(description, wait).into_response());
    }
    req.extensions_mut().insert(identity);
    Ok(req)
}

/// Who is asking an operator endpoint. `auth.protect_admin` and the
/// operator roles are read per request, so a reload applies at once.
#[derive(Clone)]
enum Operator {
    /// Auth off, or admin endpoints left open: sees everything.
    Open,
    /// Holds an operator role: sees everything.
    Yes,
    /// Sees only itself, and only what its policy lets it see.
    No(crate::security::auth::Identity),
}

async fn authenticate_admin(state: State<AppState>, req: Request, next: Next) -> Response {
    let cfg = state.gateway.auth();
    if cfg.config().protect_admin && cfg.config().mode != crate::security::auth::AuthMode::None {
        authenticate(state, req, next).await
    } else {
        next.run(req).await
    }
}

/// Inside [`authenticate_admin`]: tells the handlers who is asking. `/metrics`
/// is for operators only (403 for others).
async fn operator(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let auth = s.gateway.auth();
    let cfg = auth.config();
    let who = match req.extensions().get::<crate::security::auth::Identity>() {
        None => Operator::Open,
        Some(id) if id.has_any_role(&cfg.operator_roles) => Operator::Yes,
        Some(id) => Operator::No(id.clone()),
    };
    if matches!(who, Operator::No(_)) && req.uri().path() == "/metrics" {
        return Refusal::forbidden(format!(
            "/metrics is for operators: it needs one of the roles {:?} (auth.operator_roles)",
            cfg.operator_roles
        ))
        .into_response();
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

async fn correlation_id(req: Request, next: Next) -> Response {
    with_correlation_id(req, |req| next.run(req)).await
}

/// Gives the request a correlation id (the client's, if it is sane) and
/// the response the same one.
async fn with_correlation_id<F, Fut>(mut req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let valid = req
        .headers()
        .get(names::CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
        });
    if !valid {
        let id = crate::new_correlation_id();
        req.headers_mut().insert(
            names::CORRELATION_ID,
            HeaderValue::from_str(&id).expect("uuid is a valid header"),
        );
    }
    let id = req.headers().get(names::CORRELATION_ID).cloned();
    let mut resp = inner(req).await;
    if let Some(id) = id {
        resp.headers_mut().insert(names::CORRELATION_ID, id);
    }
    resp
}

async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let draining = s.exchanges.is_draining();
    // /ready answers anyone: a provider's own output only while clients are
    // not authenticated either (loopback, unless the operator opened it).
    let output = s.gateway.auth().config().mode == crate::security::auth::AuthMode::None;
    let body = json!({
        "status": if draining { "draining" } else { "ready" },
        "providers": s.gateway.registry().statuses_with(output),
        "sessions": s.sessions.count(),
        "in_flight": s.gateway.dispatcher().in_flight(),
        "events": s.gateway.events().stats(),
    });
    let code = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body))
}

/// Prometheus text format. Gauges that are cheap to read are set at scrape
/// time rather than tracked on every change.
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let handle = crate::observe::telemetry::metrics();
    let g = &s.gateway;
    metrics::gauge!("mcp_gateway_in_flight_calls").set(g.dispatcher().in_flight() as f64);
    metrics::gauge!("mcp_gateway_sessions").set(s.sessions.count() as f64);
    for p in g.registry().statuses() {
        let breaker = match p.breaker {
            crate::southbound::BreakerState::Closed => 0.0,
            crate::southbound::BreakerState::HalfOpen => 1.0,
            crate::southbound::BreakerState::Open => 2.0,
        };
        metrics::gauge!("mcp_gateway_breaker_state", "provider" => p.name.clone()).set(breaker);
        for state in ["connecting", "ready", "degraded", "down"] {
            let on = serde_json::to_value(p.state)
                .ok()
                .and_then(|v| v.as_str().map(|v| v == state));
            metrics::gauge!("mcp_gateway_provider_state", "provider" => p.name.clone(), "state" => state)
                .set(if on == Some(true) { 1.0 } else { 0.0 });
        }
    }
    let c = g.events().counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    for (name, value) in [
        ("mcp_gateway_events_received_total", load(&c.received)),
        ("mcp_gateway_events_handled_total", load(&c.handled)),
        ("mcp_gateway_events_duplicates_total", load(&c.duplicates)),
        ("mcp_gateway_events_malformed_total", load(&c.malformed)),
        (
            "mcp_gateway_events_dead_lettered_total",
            load(&c.dead_lettered),
        ),
        (
            "mcp_gateway_events_ack_failures_total",
            load(&c.ack_failures),
        ),
    ] {
        metrics::counter!(name).absolute(value);
    }
    metrics::gauge!("mcp_gateway_events_nats_consumer_pending").set(load(&c.nats_pending) as f64);
    let nats_up = g.events().stats().nats == crate::events::NatsState::Connected;
    metrics::gauge!("mcp_gateway_events_nats_connected").set(if nats_up { 1.0 } else { 0.0 });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
}

#[derive(serde::Deserialize)]
struct UsageQuery {
    /// e.g. `15m`, `1h`; default 1h.
    window: Option<String>,
}

const MAX_WINDOW: Duration = Duration::from_secs(crate::observe::analytics::RETAINED_MINUTES * 60);

async fn usage(
    State(s): State<AppState>,
    axum::Extension(who): axum::Extension<Operator>,
    axum::extract::Query(q): axum::extract::Query<UsageQuery>,
) -> Response {
    let window = match q.window.as_deref().map(humantime::parse_duration) {
        None => Duration::from_secs(3600),
        Some(Ok(d)) if !d.is_zero() && d <= MAX_WINDOW => d,
        Some(_) => {
            return Refusal::bad_query(
                "window: expected a duration such as 15m or 1h, at most 1h (the analytics keep the last hour, by minute)",
            )
            .into_response();
        }
    };
    let d = s.gateway.dispatcher();
    let usage = match who {
        Operator::Open | Operator::Yes => d.analytics().usage(window),
        Operator::No(id) => {
            let caller = mcp_gateway_proto::provider::Caller {
                principal: id.principal.clone(),
                roles: id.roles.clone(),
                agent: id.agent.clone(),
                session_id: String::new(),
            };
            d.analytics().usage_of(window, |tool, provider, principal| {
                principal == id.principal
                    && d.visibility().visible(
                        &caller,
                        crate::security::policy::Kind::Tool,
                        provider,
                        tool,
                    )
            })
        }
    };
    Json(usage).into_response()
}
