//! hello-rs: the reference provider, built with mcp-provider-sdk.
//!
//! Offers `echo.v1`, `sum.v1`, `touch-greeting.v1`, the `hello://greeting`
//! resource and the `hello-plan` prompt. Tool schemas live in `schemas/`
//! (shared with providers in other languages) and are embedded at compile
//! time, so the binary is self-contained.
//!
//! Events (docs/events.md): every echo call publishes `ECHOED`, and
//! `touch-greeting.v1` publishes a resource-updated event for
//! `hello://greeting`. They go to the gateway over the `Stream` RPC, and to
//! NATS JetStream subject `hello.events` when `--nats-url` is given.

mod sum;

use clap::Parser;
use mcp_provider_sdk::prelude::*;
use serde_json::{Number, Value};

#[derive(Parser)]
#[command(version, about = "The reference MCP gateway provider")]
struct Cli {
    /// Address to serve the Provider gRPC service on.
    #[arg(long, env = "HELLO_RS_LISTEN", default_value = "127.0.0.1:50052")]
    listen: String,
    /// Also publish events to NATS JetStream at this URL (e.g. nats://127.0.0.1:4222).
    #[arg(long, env = "HELLO_RS_NATS_URL")]
    nats_url: Option<String>,
    /// JetStream subject for events.
    #[arg(long, env = "HELLO_RS_NATS_SUBJECT", default_value = "hello.events")]
    nats_subject: String,
    /// Serve TLS with this certificate (PEM); needs --tls-key.
    #[arg(long, env = "HELLO_RS_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "HELLO_RS_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (mTLS).
    #[arg(long, env = "HELLO_RS_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
}

/// The event type published for each echo call.
pub const ECHOED: &str = "io.mcp-gateway.hello-rs.echoed";
/// The resource `touch-greeting.v1` reports as updated.
pub const GREETING_URI: &str = "hello://greeting";

#[derive(Deserialize, JsonSchema)]
struct EchoArgs {
    message: String,
}

#[derive(Deserialize, JsonSchema)]
struct SumArgs {
    numbers: Vec<Number>,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

fn echo() -> Tool {
    Tool::new("echo.v1", |args: EchoArgs, ctx: Context| async move {
        // In the background: a slow or absent NATS must not slow the echo.
        let event = ctx
            .events()
            .event(ECHOED)
            .json(&json!({ "message": args.message, "correlation_id": ctx.correlation_id() }));
        tokio::spawn(async move {
            if let Err(e) = event.publish().await {
                tracing::warn!(error = %e, "echo event not published to NATS");
            }
        });
        Ok(ToolOutput::text(&args.message).with_structured(json!({ "message": args.message })))
    })
    .title("Echo")
    .description("Returns the message unchanged.")
    .input_schema(schema(include_str!("../../../schemas/echo.input.json")))
    .output_schema(schema(include_str!("../../../schemas/echo.output.json")))
    .read_only(true)
    .idempotent(true)
}

fn sum() -> Tool {
    Tool::new("sum.v1", |args: SumArgs, _ctx| async move {
        let total = sum::sum(&args.numbers).ok_or("the sum is too large to represent")?;
        Ok(ToolOutput::text(total.to_string()).with_structured(json!({ "sum": total })))
    })
    .title("Sum")
    .description("Adds up a list of numbers. Integers in, integer out.")
    .input_schema(schema(include_str!("../../../schemas/sum.input.json")))
    .output_schema(schema(include_str!("../../../schemas/sum.output.json")))
    .read_only(true)
    .idempotent(true)
}

fn touch_greeting() -> Tool {
    Tool::new("touch-greeting.v1", |_args: NoArgs, ctx: Context| async move {
        let id = ctx
            .events()
            .resource_updated(GREETING_URI)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ToolOutput::text(format!("{GREETING_URI} updated (event {id})")))
    })
    .title("Touch greeting")
    .description("Reports hello://greeting as updated, so subscribed clients get notifications/resources/updated.")
    .idempotent(false)
}

fn greeting() -> Resource {
    Resource::new("hello://greeting", "greeting", |_uri, _ctx| async {
        Ok(ResourceBody::text("Hello, MCP"))
    })
    .title("Greeting")
    .description("A friendly greeting.")
    .mime_type("text/plain")
}

fn hello_plan() -> Prompt {
    Prompt::new("hello-plan", |args, _ctx| async move {
        let name = &args["name"]; // required, so the SDK guarantees it is there
        Ok(PromptReply::user(format!(
            "Hello, {name}! Here is your plan for today: \
             1. say hello to the MCP gateway, 2. call echo.v1, 3. add numbers with sum.v1."
        )))
    })
    .title("Plan my day")
    .description("Greets someone by name and suggests a plan.")
    .argument("name", "Who the plan is for", true)
}

/// The embedded schemas are checked by the tests below, so this cannot fail.
fn schema(text: &str) -> Value {
    schema_from_str(text).expect("embedded schema is valid JSON")
}

fn provider() -> ProviderBuilder {
    Provider::builder("hello-rs")
        .version(env!("CARGO_PKG_VERSION"))
        .tool(echo())
        .tool(sum())
        .tool(touch_greeting())
        .resource(greeting())
        .prompt(hello_plan())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _tracing = mcp_provider_sdk::telemetry::init("hello-rs");
    let mut provider = provider();
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        provider = provider.tls(TlsConfig::from_files(
            cert,
            key,
            cli.tls_client_ca.as_ref(),
        )?);
    }
    if let Some(url) = &cli.nats_url {
        provider
            .events()
            .connect_nats(url, cli.nats_subject.clone())
            .await?;
        tracing::info!(subject = %cli.nats_subject, "publishing events to NATS JetStream");
    }
    provider.serve(&cli.listen).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
