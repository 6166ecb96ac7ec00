//! The two error types: [`SdkError`] for building and serving a provider,
//! [`ToolError`] for handlers.

use std::path::PathBuf;

use tonic::{Code, Status};

/// Something went wrong while building or serving a provider.
///
/// Build-time variants are returned by
/// [`ProviderBuilder::build`](crate::ProviderBuilder::build) so a
/// misconfigured provider fails at startup instead of confusing the gateway
/// later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// A tool, resource, template, prompt or argument name is empty or uses
    /// characters MCP does not allow.
    #[error("invalid {kind} name '{name}': {reason}")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: String,
    },
    /// Two items of the same kind share a name (or URI).
    #[error("duplicate {kind} '{name}'")]
    Duplicate { kind: &'static str, name: String },
    /// A tool's input or output schema is not a JSON Schema object.
    #[error("tool '{tool}': invalid {which} schema: {reason}")]
    InvalidSchema {
        tool: String,
        which: &'static str,
        reason: String,
    },
    /// A resource template is not an RFC 6570 level-1 template.
    #[error("invalid resource template '{template}': {reason}")]
    InvalidTemplate { template: String, reason: String },
    /// A schema file could not be read.
    #[error("cannot read schema file {path}: {source}")]
    SchemaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A schema (file or string) is not valid JSON.
    #[error("invalid JSON schema{}: {source}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    SchemaJson {
        path: Option<PathBuf>,
        #[source]
        source: serde_json::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// Other I/O errors (e.g. installing signal handlers).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC server error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// TLS certificate, key or client CA could not be loaded or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// An event could not be published to NATS (Stream readers still got it).
    #[error("events: {0}")]
    Events(String),
}

/// Why a handler failed. Two very different outcomes hide behind it:
///
/// * [`ToolError::new`] (and every `From` conversion): the tool *ran* and
///   failed. For `Invoke` this becomes a normal result with `is_error: true`
///   and the message as text, which the model sees and can react to.
/// * [`ToolError::status`] / [`ToolError::invalid_argument`]: the call itself
///   could not be made; the gateway receives that gRPC status and maps it to a
///   JSON-RPC error (see docs/provider-contract.md).
///
/// Resource and prompt handlers have no `is_error` channel, so there
/// [`ToolError::new`] becomes an `INTERNAL` status carrying the message.
#[derive(Debug, thiserror::Error)]
#[error("{}", match &self.0 { Kind::Failed(m) => m.as_str(), Kind::Status(s) => s.message(), Kind::Input(_) => "input required from the client" })]
pub struct ToolError(pub(crate) Kind);

#[derive(Debug)]
pub(crate) enum Kind {
    Failed(String),
    Status(Status),
    /// Not a failure: the call asks the client first (see [`crate::input`]).
    Input(mcp_gateway_proto::provider::InputRequired),
}

impl ToolError {
    /// The tool ran and failed; the model sees `message` in an `is_error` result.
    pub fn new(message: impl Into<String>) -> Self {
        Self(Kind::Failed(message.into()))
    }

    /// Answer the RPC with this gRPC status instead of a result.
    pub fn status(status: Status) -> Self {
        Self(Kind::Status(status))
    }

    /// Shorthand for an `INVALID_ARGUMENT` status.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::status(Status::invalid_argument(message.into()))
    }

    /// The client lacks a capability this call needs: `required` is an MCP
    /// ClientCapabilities object naming it, e.g. `{"sampling": {}}`. The
    /// client gets MCP error -32021 (missing required client capability).
    pub fn missing_capability(required: serde_json::Value) -> Self {
        let mut status = Status::failed_precondition("missing required client capability");
        if let Ok(v) = required.to_string().parse() {
            status
                .metadata_mut()
                .insert(mcp_gateway_proto::REQUIRED_CAPABILITIES_HEADER, v);
        }
        Self::status(status)
    }

    /// The gRPC status this error carries, if it is one.
    pub fn as_status(&self) -> Option<&Status> {
        match &self.0 {
            Kind::Status(s) => Some(s),
            Kind::Failed(_) | Kind::Input(_) => None,
        }
    }

    /// For RPCs without an `is_error` channel (resources, prompts).
    pub(crate) fn into_status(self) -> Status {
        match self.0 {
            Kind::Status(s) => s,
            Kind::Failed(m) => Status::new(Code::Internal, m),
            Kind::Input(_) => Status::internal("input required outside a call"),
        }
    }
}

impl From<Status> for ToolError {
    fn from(s: Status) -> Self {
        Self::status(s)
    }
}

impl From<String> for ToolError {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for ToolError {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<serde_json::Error> for ToolError {
    fn from(e: serde_json::Error) -> Self {
        Self::new(e.to_string())
    }
}

impl From<std::io::Error> for ToolError {
    fn from(e: std::io::Error) -> Self {
        Self::new(e.to_string())
    }
}
