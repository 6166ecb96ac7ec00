//! The smallest useful provider: one typed tool. Run with
//! `cargo run -p mcp-provider-sdk --example minimal`.
use mcp_provider_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct GreetArgs {
    /// Who to greet.
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), SdkError> {
    Provider::builder("greeter")
        .version(env!("CARGO_PKG_VERSION"))
        .tool(
            Tool::new("greet.v1", |args: GreetArgs, _ctx| async move {
                Ok(ToolOutput::text(format!("Hello, {}!", args.name)))
            })
            .description("Greets someone by name.")
            .read_only(true),
        )
        .serve("127.0.0.1:50052")
        .await
}
