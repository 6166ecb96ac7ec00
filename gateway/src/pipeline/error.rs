//! Every way a request can fail, and the one place they become MCP errors.

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
    #[error("request cancelled")]
    Cancelled,
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

fn size_text(size: Option<usize>) -> String {
    match size {
        Some(n) => format!("{n} bytes"),
        None => "larger".into(),
    }
}

impl GatewayError {
    /// Maps a gRPC status from `provider` (see docs/provider-contract.md).
    pub fn from_status(provider: &str, status: tonic::Status) -> Self {
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
            | GatewayError::InvalidParams(_) => ErrorCode::INVALID_PARAMS.0,
            GatewayError::UnknownResource(_) => codes::RESOURCE_NOT_FOUND,
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
