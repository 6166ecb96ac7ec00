//! Every answer the HTTP layer gives on its own, before or instead of the
//! MCP layer, and the one table from JSON-RPC error codes to HTTP statuses:
//! their status codes and bodies are decided here and nowhere else.
//! - Refusals of the request itself (credentials, rights, rate, time) use
//!   the OAuth error shape `{"error", "error_description"}`;
//! - refusals of a JSON-RPC message are JSON-RPC errors.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rmcp::model::ErrorCode;
use serde_json::{Value, json};

pub(super) struct Refusal {
    status: StatusCode,
    body: Value,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Refusal {
    fn http(status: StatusCode, error: &str, description: String) -> Self {
        Self {
            status,
            body: json!({"error": error, "error_description": description}),
            headers: Vec::new(),
        }
    }

    /// 401 with the RFC 6750 / RFC 9728 challenge.
    pub(super) fn unauthorized(description: String, challenge: &str) -> Self {
        let mut r = Self::http(StatusCode::UNAUTHORIZED, "unauthorized", description);
        if let Ok(v) = HeaderValue::from_str(challenge) {
            r.headers.push((header::WWW_AUTHENTICATE, v));
        }
        r
    }

    pub(super) fn forbidden(description: String) -> Self {
        Self::http(StatusCode::FORBIDDEN, "forbidden", description)
    }

    /// 429 with `Retry-After` (whole seconds, at least 1).
    pub(super) fn rate_limited(description: String, wait: Duration) -> Self {
        let mut r = Self::http(StatusCode::TOO_MANY_REQUESTS, "rate_limited", description);
        r.body["retry_after_ms"] = (wait.as_millis() as u64).into();
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        r.headers
            .push((header::RETRY_AFTER, HeaderValue::from(secs)));
        r
    }

    pub(super) fn timeout(description: String) -> Self {
        Self::http(StatusCode::GATEWAY_TIMEOUT, "timeout", description)
    }

    /// A malformed query on an admin endpoint.
    pub(super) fn bad_query(description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": description}),
            headers: Vec::new(),
        }
    }

    /// A JSON-RPC error without an id: the message was refused whole.
    pub(super) fn json_rpc(status: StatusCode, code: i32, message: &str) -> Self {
        Self::json_rpc_body(
            status,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}),
        )
    }

    /// What the framing check found wrong ([`crate::jsonrpc`]): a message
    /// refused whole is a 400; mistyped params are answered like any other
    /// error of a request.
    pub(super) fn rejected(r: &crate::jsonrpc::Rejection) -> Self {
        let status = if r.is_framing() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        Self::json_rpc_body(status, r.to_json())
    }

    fn json_rpc_body(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        resp.headers_mut().extend(self.headers);
        resp
    }
}

/// The HTTP status of a JSON-RPC error answered on the 2026-07-28 path:
/// rmcp's, which the stateless fast path must give alike.
pub(super) fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_carry_their_status_headers_and_body() {
        let r =
            Refusal::rate_limited("slow down".into(), Duration::from_millis(1500)).into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": "rate_limited", "error_description": "slow down", "retry_after_ms": 1500})
        );
        let r = Refusal::unauthorized("missing bearer token".into(), "Bearer x").into_response();
        assert_eq!(
            (r.status(), &r.headers()[header::WWW_AUTHENTICATE]),
            (
                StatusCode::UNAUTHORIZED,
                &HeaderValue::from_static("Bearer x")
            )
        );
        let r =
            Refusal::json_rpc(StatusCode::NOT_FOUND, -32001, "session not found").into_response();
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": "session not found"}})
        );
    }
}
