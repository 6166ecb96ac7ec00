//! Every answer the HTTP layer gives on its own, before or instead of the
//! MCP layer: their status codes and bodies are decided here and nowhere
//! else. (The status of a JSON-RPC error answer is the error tables'
//! `pipeline::error::http_status_for`.)
//! - Refusals of the request itself (credentials, rights, rate, time) use
//!   the OAuth error shape `{"error", "error_description"}`;
//! - refusals of a JSON-RPC message are JSON-RPC errors.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{Value, json};

use crate::front::engine::{Call, PER_REQUEST, error_answer};

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

    /// 400 for a request the HTTP layer cannot take.
    pub(super) fn bad_request(description: &str) -> Self {
        Self::http(StatusCode::BAD_REQUEST, "bad_request", description.into())
    }

    pub(super) fn not_acceptable(description: &str) -> Self {
        Self::http(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            description.into(),
        )
    }

    pub(super) fn unsupported_media(description: &str) -> Self {
        Self::http(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            description.into(),
        )
    }

    pub(super) fn method_not_allowed(allow: &'static str) -> Self {
        let mut r = Self::http(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("/mcp takes {allow}"),
        );
        r.headers
            .push((header::ALLOW, HeaderValue::from_static(allow)));
        r
    }

    /// A session id that is not the caller's live session: the same answer
    /// whether it never existed, ended, or belongs to somebody else.
    pub(super) fn no_session() -> Self {
        Self::json_rpc(
            StatusCode::NOT_FOUND,
            -32001,
            "session not found: it ended, expired, or was never opened; initialize again",
        )
    }

    pub(super) fn session_required() -> Self {
        Self::json_rpc(
            StatusCode::BAD_REQUEST,
            -32600,
            "invalid request: a 2025-11-25 request needs the Mcp-Session-Id of an initialized session (or send a 2026-07-28 request with its _meta)",
        )
    }

    /// A request refused before it ran, answered with its id.
    fn of_request(call: &Call, code: ErrorCode, message: String, data: Option<Value>) -> Self {
        let a = error_answer(Some(&call.id), &ErrorData::new(code, message, data));
        let body = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        Self::json_rpc_body(StatusCode::BAD_REQUEST, body)
    }

    pub(super) fn header_mismatch(call: &Call, reason: &str) -> Self {
        Self::of_request(
            call,
            ErrorCode::HEADER_MISMATCH,
            format!("header mismatch: {reason}"),
            None,
        )
    }

    pub(super) fn bad_params(call: &Call, reason: &str) -> Self {
        Self::of_request(
            call,
            ErrorCode::INVALID_PARAMS,
            format!("invalid params: {reason}"),
            None,
        )
    }

    pub(super) fn invalid_request(call: &Call, reason: &str) -> Self {
        Self::of_request(
            call,
            ErrorCode::INVALID_REQUEST,
            format!("invalid request: {reason}"),
            None,
        )
    }

    pub(super) fn unsupported_version(call: &Call, asked: &str) -> Self {
        Self::of_request(
            call,
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION,
            format!("unsupported protocol version {asked}"),
            Some(json!({"supported": [PER_REQUEST], "requested": asked})),
        )
    }

    /// A JSON-RPC error without an id: the message was refused whole.
    pub(super) fn json_rpc(status: StatusCode, code: i32, message: &str) -> Self {
        Self::json_rpc_body(
            status,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}),
        )
    }

    /// What the framing check found wrong ([`crate::front::jsonrpc`]): a message
    /// refused whole is a 400; mistyped params are answered like any other
    /// error of a request.
    pub(super) fn rejected(r: &crate::front::jsonrpc::Rejection) -> Self {
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
