//! A direct path for the hottest request: a stateless (2026-07-28)
//! `tools/call` with no progress token.
//!
//! rmcp's Streamable HTTP server spends most of a call's gateway CPU on its
//! per-request machinery (a service spawned per stateless request, a
//! oneshot transport, re-serializing the body to check SEP-2243 headers);
//! see docs/performance.md. This path takes a *strict subset* of requests,
//! ones that rmcp would accept unchanged, and hands them to the same
//! dispatcher the rmcp handler uses. Anything it is not sure of (an
//! `Origin`, a session, a progress token, an unusual header or body shape,
//! `Mcp-Param-*` headers) goes to rmcp untouched, so every error a client
//! can see is still rmcp's. The answer is the same `ServerJsonRpcMessage`
//! rmcp would write; a test compares the two byte for byte.

use std::collections::HashSet;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::model::{
    CallToolResponse, JsonObject, ProtocolVersion, RequestId, RequestMetaObject,
    ServerJsonRpcMessage, ServerResult,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::AppState;

/// What the fast path needs to know up front, fixed when the router is
/// built (like rmcp's own config: `allowed_hosts` is restart-only).
pub(super) struct FastPath {
    /// Plain host names (no port) accepted in `Host`; `None`: any host.
    /// Entries with a port are left to rmcp.
    hosts: Option<HashSet<String>>,
    max_body: usize,
    /// Calls answered here (registered once: an increment is one atomic add).
    taken: metrics::Counter,
}

impl FastPath {
    pub(super) fn new(allowed_hosts: Option<&[String]>, max_body: usize) -> Self {
        let hosts = allowed_hosts.map(|list| {
            list.iter()
                .filter_map(|h| h.trim().parse::<http::uri::Authority>().ok())
                .filter(|a| a.port_u16().is_none())
                .map(|a| normalize_host(a.host()))
                .collect()
        });
        Self {
            hosts,
            max_body,
            taken: metrics::counter!("mcp_gateway_fast_path_calls_total"),
        }
    }

    /// Headers rmcp would accept for a stateless `tools/call`, checked
    /// strictly; `Some(content length)` when the body may be read here.
    fn admits(&self, method: &Method, headers: &HeaderMap) -> Option<usize> {
        if method != Method::POST
            || headers.contains_key("mcp-session-id")
            || headers.contains_key(header::ORIGIN)
            || sole(headers, "mcp-protocol-version")? != ProtocolVersion::V_2026_07_28.as_str()
            || sole(headers, "mcp-method")? != "tools/call"
            || headers.keys().any(|k| k.as_str().starts_with("mcp-param-"))
        {
            return None;
        }
        sole(headers, "mcp-name")?;
        let host = sole(headers, header::HOST.as_str())?;
        if let Some(hosts) = &self.hosts {
            let authority: http::uri::Authority = host.parse().ok()?;
            if !hosts.contains(&normalize_host(authority.host())) {
                return None;
            }
        }
        // Only the plain spellings; q-values and parameters go to rmcp.
        let accept = sole(headers, header::ACCEPT.as_str())?;
        let mut json = false;
        let mut sse = false;
        for media in accept.split(',').map(str::trim) {
            if media.contains(';') {
                return None;
            }
            json |= media.eq_ignore_ascii_case("application/json");
            sse |= media.eq_ignore_ascii_case("text/event-stream");
        }
        let content_type = sole(headers, header::CONTENT_TYPE.as_str())?;
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !(json && sse && essence.eq_ignore_ascii_case("application/json")) {
            return None;
        }
        let length: usize = sole(headers, header::CONTENT_LENGTH.as_str())?
            .parse()
            .ok()?;
        (length <= self.max_body).then_some(length)
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

/// The one value of a header, as text; `None` when absent, repeated or not
/// text (all of which rmcp judges itself).
fn sole<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// The body shapes taken here. Unknown fields, escaped strings where a
/// borrowed `&str` is expected, or anything else unusual fail to parse and
/// the request goes to rmcp.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Call<'a> {
    jsonrpc: &'a str,
    id: RequestId,
    method: &'a str,
    params: Params,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    name: String,
    #[serde(default)]
    arguments: Option<JsonObject>,
    #[serde(rename = "_meta")]
    meta: RequestMetaObject,
}

impl Call<'_> {
    /// Everything rmcp checks of a stateless `tools/call` body, given
    /// headers that passed [`FastPath::admits`].
    fn acceptable(&self, headers: &HeaderMap, state: &AppState) -> bool {
        if self.jsonrpc != "2.0"
            || self.method != "tools/call"
            || sole(headers, "mcp-name") != Some(self.params.name.as_str())
            // The gateway relays progress as SSE notifications: rmcp's job.
            || self.params.meta.0.0.contains_key("progressToken")
        {
            return false;
        }
        let meta = &self.params.meta;
        if meta.protocol_version() != Some(ProtocolVersion::V_2026_07_28)
            || !meta
                .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                .is_empty()
        {
            return false;
        }
        // rmcp checks `Mcp-Param-*` headers against annotated schemas (when
        // the policy lets it see them); such tools stay on rmcp's path.
        let cat = state.gateway.dispatcher().catalog();
        cat.tool(&self.params.name)
            .map_or(true, |entry| !entry.param_headers)
    }
}

/// Middleware on `/mcp`, inside authentication and the time limit.
pub(super) async fn fast_call(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(length) = s.fast.admits(req.method(), req.headers()) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, length).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "request body not read");
            return super::Refusal::json_rpc(
                StatusCode::BAD_REQUEST,
                -32700,
                &format!("parse error: the request body could not be read ({e})"),
            )
            .into_response();
        }
    };
    let call = match serde_json::from_slice::<Call>(&bytes) {
        Ok(call) if call.acceptable(&parts.headers, &s) => call,
        _ => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
    };
    s.fast.taken.increment(1);
    let Call { id, params, .. } = call;
    let cx = crate::mcp::request_cx(
        Some(&parts),
        params.meta.0.get_traceparent(),
        None,
        CancellationToken::new(),
    );
    // Run to completion even if the client leaves, as on rmcp's path: a
    // disconnect cancels the call (the provider sees it, the audit log
    // records it) instead of dropping it mid-flight.
    let cancel = cx.cancel.clone().drop_guard();
    let dispatcher = s.gateway.dispatcher().clone();
    let call = tokio::spawn(async move {
        let r = dispatcher
            .call_tool(
                &cx,
                &params.name,
                params.arguments,
                Some(params.meta.0.0),
                None,
            )
            .await;
        r.map_err(|e| e.to_mcp(&cx.correlation_id))
    });
    let result = call.await;
    cancel.disarm();
    let (status, message) = match result {
        Ok(Ok(result)) => (
            StatusCode::OK,
            ServerJsonRpcMessage::response(ServerResult::from(CallToolResponse::from(result)), id),
        ),
        Ok(Err(error)) => (
            super::refusal::status_for(error.code),
            ServerJsonRpcMessage::error(error, Some(id)),
        ),
        Err(e) => {
            tracing::error!(error = %e, "tools/call task failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    match serde_json::to_vec(&message) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "tools/call result not serialized");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
