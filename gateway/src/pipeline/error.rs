//! Every way a request can fail, and the error tables: a provider call's
//! gRPC status to a [`GatewayError`], a `GatewayError` to a JSON-RPC error,
//! and a JSON-RPC error to the HTTP status of a 2026-07-28 answer. (The
//! HTTP layer's own refusals are `front::http::refusal`.)

use std::time::Duration;

use rmcp::model::{ErrorCode, ErrorData};
use serde_json::json;

/// Gateway-specific JSON-RPC codes, in the implementation-defined server
/// range (-32000..-32099). Documented in docs/provider-contract.md.
pub mod codes {
    pub const PROVIDER_UNAVAILABLE: i32 = -32001;
    pub const RESOURCE_NOT_FOUND: i32 = -32002;
    pub const PERMISSION_DENIED: i32 = -32003;
    pub const DEADLINE_EXCEEDED: i32 = -32004;
    pub const RESOURCE_EXHAUSTED: i32 = -32005;
    pub const PAYLOAD_TOO_LARGE: i32 = -32006;
    pub const SHUTTING_DOWN: i32 = -32007;
    /// LSP's RequestCancelled; MCP has none of its own.
    pub const REQUEST_CANCELLED: i32 = -32800;
}

use mcp_gateway_proto::REQUIRED_CAPABILITIES_HEADER as REQUIRED_CAPABILITIES;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("unknown tool '{0}'")]
    UnknownTool(String),
    #[error("tool name '{name}' is ambiguous; use one of: {}", .candidates.join(", "))]
    AmbiguousTool {
        name: String,
        candidates: Vec<String>,
    },
    #[error("unknown prompt '{0}'")]
    UnknownPrompt(String),
    #[error("prompt name '{name}' is ambiguous; use one of: {}", .candidates.join(", "))]
    AmbiguousPrompt {
        name: String,
        candidates: Vec<String>,
    },
    #[error("resource not found: {0}")]
    UnknownResource(String),
    #[error("{what} is {}, over the {limit}-byte limit", size_text(*.size))]
    PayloadTooLarge {
        what: &'static str,
        /// None when only "over the limit" is known (tonic stops reading).
        size: Option<usize>,
        limit: usize,
    },
    #[error("tool '{tool}' returned output that does not match its output schema: {detail}")]
    OutputSchema { tool: String, detail: String },
    #[error("provider '{provider}' returned an invalid response: {detail}")]
    BadProviderResponse { provider: String, detail: String },
    #[error("provider '{provider}': {message}")]
    Provider {
        provider: String,
        code: tonic::Code,
        message: String,
    },
    #[error("provider '{provider}' is at its limit of {limit} concurrent calls; try again shortly")]
    Overloaded { provider: String, limit: usize },
    #[error("rate limit exceeded for {scope}; retry after {} ms", .retry_after.as_millis())]
    RateLimited {
        scope: String,
        retry_after: std::time::Duration,
    },
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The request needs a client capability the client did not declare.
    #[error("the client did not declare the {} capability this request needs", capability_names(.required))]
    MissingClientCapability {
        /// A ClientCapabilities object naming what is needed.
        required: serde_json::Value,
    },
    #[error("invalid params: {0}")]
    RequestState(#[from] crate::security::seal::SealError),
    #[error("the request asked for client input more than {0} times (input.max_rounds)")]
    TooManyRounds(u32),
    #[error("the client answered {method} with an error: {message}")]
    ClientInput { method: String, message: String },
    #[error("request cancelled")]
    Cancelled,
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

fn capability_names(required: &serde_json::Value) -> String {
    required
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn size_text(size: Option<usize>) -> String {
    match size {
        Some(n) => format!("{n} bytes"),
        None => "larger".into(),
    }
}

impl GatewayError {
    /// A failed provider call's status: lost connections, deadlines and
    /// oversized answers are told apart from what the provider said.
    /// `describe` spells out why a provider is unreachable (a TLS cause,
    /// say); `deadline` and `limit` are the call's deadline and the payload
    /// limit, for their errors' messages.
    pub(crate) fn from_call_status(
        provider: &str,
        status: tonic::Status,
        deadline: Duration,
        limit: usize,
        describe: impl FnOnce(&tonic::Status) -> String,
    ) -> Self {
        let lost = matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal)
            && is_transport_failure(&status);
        if status.code() == tonic::Code::Cancelled && status.message().contains("Timeout expired") {
            return Self::deadline(provider, deadline);
        }
        if lost || status.code() == tonic::Code::Unavailable {
            let detail = describe(&status);
            let message = if lost {
                format!("connection to the provider was lost: {detail}")
            } else {
                format!("provider unavailable: {detail}")
            };
            return GatewayError::Provider {
                provider: provider.to_string(),
                code: tonic::Code::Unavailable,
                message,
            };
        }
        if status.code() == tonic::Code::OutOfRange
            && status.message().contains("message length too large")
        {
            return GatewayError::PayloadTooLarge {
                what: "provider response",
                size: found_bytes(status.message()),
                limit,
            };
        }
        Self::from_status(provider, status)
    }

    /// No answer within the call's deadline (all attempts together).
    pub(crate) fn deadline(provider: &str, deadline: Duration) -> Self {
        GatewayError::Provider {
            provider: provider.to_string(),
            code: tonic::Code::DeadlineExceeded,
            message: format!(
                "no answer within the {} deadline",
                humantime::format_duration(deadline)
            ),
        }
    }

    /// The provider cannot be reached (so its catalog is worth re-checking).
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(
            self,
            GatewayError::Provider {
                code: tonic::Code::Unavailable,
                ..
            }
        )
    }

    /// Maps a gRPC status from `provider` (see docs/provider-contract.md).
    pub fn from_status(provider: &str, status: tonic::Status) -> Self {
        if status.code() == tonic::Code::FailedPrecondition
            && let Some(required) = status
                .metadata()
                .get(REQUIRED_CAPABILITIES)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                .filter(serde_json::Value::is_object)
        {
            return GatewayError::MissingClientCapability { required };
        }
        let message = if status.message().is_empty() {
            status.code().description().to_string()
        } else {
            status.message().to_string()
        };
        GatewayError::Provider {
            provider: provider.to_string(),
            code: status.code(),
            message,
        }
    }

    /// A short machine-readable kind, for logs and (later) metrics and audit.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::UnknownTool(_) | GatewayError::AmbiguousTool { .. } => "unknown_tool",
            GatewayError::UnknownPrompt(_) | GatewayError::AmbiguousPrompt { .. } => {
                "unknown_prompt"
            }
            GatewayError::UnknownResource(_) => "unknown_resource",
            GatewayError::PayloadTooLarge { .. } => "payload_too_large",
            GatewayError::OutputSchema { .. } => "output_schema",
            GatewayError::BadProviderResponse { .. } => "bad_provider_response",
            GatewayError::Provider { code, .. } => match code {
                tonic::Code::Unavailable => "provider_unavailable",
                tonic::Code::DeadlineExceeded => "deadline_exceeded",
                _ => "provider_error",
            },
            GatewayError::InvalidParams(_) => "invalid_params",
            GatewayError::MissingClientCapability { .. } => "missing_client_capability",
            GatewayError::RequestState(_) => "bad_request_state",
            GatewayError::TooManyRounds(_) => "too_many_rounds",
            GatewayError::ClientInput { .. } => "client_input_error",
            GatewayError::Overloaded { .. } => "overloaded",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::Cancelled => "cancelled",
            GatewayError::ShuttingDown => "shutting_down",
        }
    }

    /// The JSON-RPC error the client sees. `correlation_id` goes into `data`
    /// so a user can quote it when asking an operator.
    pub fn to_mcp(&self, correlation_id: &str) -> ErrorData {
        let mut data = json!({ "kind": self.kind(), "correlation_id": correlation_id });
        let code = match self {
            GatewayError::UnknownTool(_)
            | GatewayError::AmbiguousTool { .. }
            | GatewayError::UnknownPrompt(_)
            | GatewayError::AmbiguousPrompt { .. }
            | GatewayError::InvalidParams(_)
            | GatewayError::RequestState(_) => ErrorCode::INVALID_PARAMS.0,
            GatewayError::MissingClientCapability { required } => {
                data["requiredCapabilities"] = required.clone();
                ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY.0
            }
            GatewayError::TooManyRounds(_) => ErrorCode::INVALID_REQUEST.0,
            GatewayError::ClientInput { .. } => ErrorCode::INTERNAL_ERROR.0,
            GatewayError::UnknownResource(uri) => {
                // SEP-2164: the URI that was not found, for the client to match.
                data["uri"] = json!(uri);
                codes::RESOURCE_NOT_FOUND
            }
            GatewayError::PayloadTooLarge { .. } => codes::PAYLOAD_TOO_LARGE,
            GatewayError::OutputSchema { .. } | GatewayError::BadProviderResponse { .. } => {
                ErrorCode::INTERNAL_ERROR.0
            }
            GatewayError::Provider { provider, code, .. } => {
                data["provider"] = json!(provider);
                data["grpc_code"] = json!(grpc_code_name(*code));
                status_to_code(*code)
            }
            GatewayError::Overloaded { provider, .. } => {
                data["provider"] = json!(provider);
                codes::RESOURCE_EXHAUSTED
            }
            GatewayError::RateLimited { retry_after, .. } => {
                data["retry_after_ms"] = json!(retry_after.as_millis() as u64);
                codes::RESOURCE_EXHAUSTED
            }
            GatewayError::Cancelled => codes::REQUEST_CANCELLED,
            GatewayError::ShuttingDown => codes::SHUTTING_DOWN,
        };
        ErrorData::new(ErrorCode(code), self.to_string(), Some(data))
    }
}

/// The gRPC status → JSON-RPC code table. INVALID_ARGUMENT from `Invoke` never
/// gets here: the dispatcher turns it into an `isError` tool result.
fn status_to_code(code: tonic::Code) -> i32 {
    use tonic::Code as C;
    match code {
        C::InvalidArgument | C::NotFound | C::OutOfRange => ErrorCode::INVALID_PARAMS.0,
        C::Unimplemented => ErrorCode::METHOD_NOT_FOUND.0,
        C::PermissionDenied | C::Unauthenticated => codes::PERMISSION_DENIED,
        C::DeadlineExceeded => codes::DEADLINE_EXCEEDED,
        C::ResourceExhausted => codes::RESOURCE_EXHAUSTED,
        C::Cancelled => codes::REQUEST_CANCELLED,
        C::Unavailable => codes::PROVIDER_UNAVAILABLE,
        _ => ErrorCode::INTERNAL_ERROR.0,
    }
}

/// The canonical gRPC name of a status code, as in the gRPC spec.
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The HTTP status of a JSON-RPC error answered on the 2026-07-28 path.
pub(crate) fn http_status_for(code: ErrorCode) -> http::StatusCode {
    use http::StatusCode;
    match code {
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// The size in tonic's "message length too large: found N bytes" status.
fn found_bytes(message: &str) -> Option<usize> {
    let rest = &message[message.find("found ")? + "found ".len()..];
    rest.split_once(" bytes")?.0.parse().ok()
}

/// A status synthesized by tonic from a broken connection rather than sent by
/// the provider: only client-side statuses carry a source error, and a
/// decode failure is the provider's fault, not the connection's.
fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some() && !status.message().contains("decode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_of_an_oversized_answer_is_read_from_tonic() {
        let m = "Error, decoded message length too large: found 20971555 bytes, the limit is: 10485760 bytes";
        assert_eq!(found_bytes(m), Some(20_971_555));
        assert_eq!(found_bytes("message length too large"), None);
    }

    #[test]
    fn a_status_the_provider_sent_is_not_a_transport_failure() {
        assert!(!is_transport_failure(&tonic::Status::internal("boom")));
        assert!(!is_transport_failure(&tonic::Status::unknown("?")));
    }

    #[test]
    fn a_call_status_reads_as_what_became_of_the_call() {
        let d = Duration::from_secs(3);
        let of = |s| GatewayError::from_call_status("p", s, d, 10, |_| "down".into());
        let e = of(tonic::Status::unavailable("refused"));
        assert!(e.is_unavailable());
        assert_eq!(e.to_string(), "provider 'p': provider unavailable: down");
        let e = of(tonic::Status::cancelled("Timeout expired"));
        assert_eq!(e.kind(), "deadline_exceeded");
        assert_eq!(
            e.to_string(),
            "provider 'p': no answer within the 3s deadline"
        );
        let e = of(tonic::Status::out_of_range(
            "decoded message length too large: found 12 bytes, the limit is: 10 bytes",
        ));
        assert_eq!(e.kind(), "payload_too_large");
        let e = of(tonic::Status::not_found("no such thing"));
        assert!(!e.is_unavailable());
        assert_eq!(e.kind(), "provider_error");
        assert_eq!(http_status_for(ErrorCode::HEADER_MISMATCH), 400);
        assert_eq!(http_status_for(ErrorCode::METHOD_NOT_FOUND), 404);
        assert_eq!(http_status_for(ErrorCode::INVALID_PARAMS), 200);
    }
}
