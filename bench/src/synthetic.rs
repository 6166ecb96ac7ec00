//! A provider with N tools, built with the SDK: the catalog-size scenarios
//! need a provider whose only variable is the number of tools.

use mcp_provider_sdk::prelude::*;
use serde_json::Value;

/// The exposed-name suffix of tool `i`, e.g. `tool-00042.v1`.
pub fn tool_name(i: usize) -> String {
    format!("tool-{i:05}.v1")
}

fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "message": { "type": "string", "description": "What to echo back." }
        },
        "required": ["message"],
        "additionalProperties": false
    })
}

pub async fn serve(name: &str, listen: &str, tools: usize) -> anyhow::Result<()> {
    let mut builder = Provider::builder(name.to_string())
        .version("bench")
        // 10,000 tools are a few MB of ListCapabilities.
        .max_message_size(64 * 1024 * 1024);
    for i in 0..tools {
        let tool = Tool::raw(
            tool_name(i),
            input_schema(),
            |args: Value, _cx| async move {
                let message = args["message"].as_str().unwrap_or_default().to_string();
                Ok(ToolOutput::text(message))
            },
        )
        .title("Synthetic")
        .description(&format!(
            "Synthetic tool number {i}: echoes its message, for catalog-size benchmarks."
        ))
        .read_only(true)
        .idempotent(true);
        builder = builder.tool(tool);
    }
    builder.serve(listen).await?;
    Ok(())
}
