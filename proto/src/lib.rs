//! The Provider gRPC contract, generated from `proto/provider.proto`.
//!
//! The generated modules mirror the protobuf packages (cross-package
//! references are emitted as `super::` paths); the short aliases at the
//! bottom are what the rest of the workspace uses.

#[allow(clippy::all)]
pub mod io {
    pub mod cloudevents {
        pub mod v1 {
            tonic::include_proto!("io.cloudevents.v1");
        }
    }
}

#[allow(clippy::all)]
pub mod mcpgateway {
    pub mod provider {
        pub mod v1 {
            tonic::include_proto!("mcpgateway.provider.v1");
        }
    }
}

pub mod trace;

#[cfg(feature = "otlp")]
mod logline;

#[cfg(feature = "tls")]
pub mod tls;

/// CloudEvents 1.0 protobuf format, used by the `Stream` RPC.
pub use io::cloudevents::v1 as cloudevents;
/// The Provider service and its messages.
pub use mcpgateway::provider::v1 as provider;
pub use provider::*;

/// The gRPC metadata key carrying the request's correlation ID.
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

/// Metadata of a FAILED_PRECONDITION status from a provider: the client
/// lacks a capability, named by this JSON ClientCapabilities object. The
/// gateway answers MCP -32021 with it as `requiredCapabilities`.
pub const REQUIRED_CAPABILITIES_HEADER: &str = "mcp-required-client-capabilities";

/// The fully-qualified service name, as registered with `grpc.health.v1`.
pub const SERVICE_NAME: &str = "mcpgateway.provider.v1.Provider";
