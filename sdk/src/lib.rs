//! Write an MCP gateway tool provider in minutes.
//!
//! A provider is a gRPC server implementing the `Provider` contract
//! (`proto/provider.proto`, described in `docs/provider-contract.md`). This
//! crate hides the protocol: register typed async handlers, call `serve`.
//!
//! ```no_run
//! use mcp_provider_sdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct GreetArgs {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), SdkError> {
//!     Provider::builder("greeter")
//!         .version(env!("CARGO_PKG_VERSION"))
//!         .tool(
//!             Tool::new("greet.v1", |args: GreetArgs, _ctx| async move {
//!                 Ok(ToolOutput::text(format!("Hello, {}!", args.name)))
//!             })
//!             .description("Greets someone by name.")
//!             .read_only(true),
//!         )
//!         .serve("127.0.0.1:50052")
//!         .await
//! }
//! ```
//!
//! That is the whole provider: the input schema comes from `GreetArgs`
//! (via `schemars`), arguments that do not fit it are rejected with
//! `INVALID_ARGUMENT`, `grpc.health.v1` reports SERVING, and Ctrl-C or
//! SIGTERM drains in-flight calls before exiting. Your crate needs `serde`
//! and `schemars` as dependencies for the derives.
//!
//! The pieces:
//! * [`Tool`] with [`ToolOutput`] / [`ToolError`]: tools; `ToolError::new`
//!   is a failure the model sees, `ToolError::status` a gRPC error.
//! * [`Resource`], [`ResourceTemplate`] and [`ResourceBody`]: readable data.
//! * [`Prompt`] and [`PromptReply`]: prompt templates.
//! * [`Context`]: caller, correlation ID, progress, cancellation and events.
//! * [`Publisher`] ([`ProviderBuilder::events`], [`Context::events`]):
//!   CloudEvents to the gateway via the `Stream` RPC and optionally NATS.
//! * [`input`] ([`Context::elicit`], [`Context::sample`], [`Context::roots`],
//!   [`InputRequired`]): asking the client in the middle of a call.
//! * [`content`]: constructors for content blocks.
//! * [`ProviderBuilder::spawn`] and [`RunningProvider`]: run in the
//!   background, e.g. in tests.
//!
//! The library logs with `tracing` and installs no subscriber.

mod builder;
pub mod content;
mod context;
mod error;
pub mod events;
pub mod input;
mod prompt;
mod resource;
mod server;
mod service;
mod tool;

pub use builder::{Provider, ProviderBuilder};
pub use content::Content;
pub use context::{Context, LogLevel};
pub use error::{SdkError, ToolError};
pub use events::{EventBuilder, Publisher};
pub use input::{Ask, Elicited, InputRequired, Root, Sampled};
pub use prompt::{Prompt, PromptReply, PromptReplyExt};
pub use resource::{Resource, ResourceBody, ResourceTemplate};
pub use server::{RunningProvider, TlsConfig};
pub use service::{DEFAULT_MAX_MESSAGE_SIZE, ProviderService};
pub use tool::{Tool, ToolOutput, schema_from_file, schema_from_str};

/// The CloudEvents protobuf messages of the `Stream` RPC.
pub use mcp_gateway_proto::cloudevents;
/// The generated protobuf messages, client and server of the contract.
pub use mcp_gateway_proto::provider as proto;
pub use mcp_gateway_proto::provider::{Caller, Role};

/// Everything a provider usually needs, in one import.
pub mod prelude {
    pub use crate::content::{self, Content};
    pub use crate::{
        Ask, Caller, Context, Elicited, InputRequired, LogLevel, Prompt, PromptReply,
        PromptReplyExt, Provider, ProviderBuilder, ProviderService, Publisher, Resource,
        ResourceBody, ResourceTemplate, Role, RunningProvider, SdkError, TlsConfig, Tool,
        ToolError, ToolOutput, schema_from_file, schema_from_str,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::json;
}

/// Process setup for providers: JSON logs on stderr (level from `RUST_LOG`,
/// default `info`) and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, traces
/// over OTLP that continue the gateway's trace.
pub mod telemetry {
    pub use mcp_gateway_proto::trace::TracingGuard;

    /// Call once at the start of `main`; keep the guard until exit.
    pub fn init(service: &str) -> TracingGuard {
        mcp_gateway_proto::trace::init_logging(service, "info")
    }
}
