//! A test provider exercising every SDK feature, served over real TCP.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use mcp_provider_sdk::prelude::*;
use mcp_provider_sdk::proto::provider_client::ProviderClient;
use mcp_provider_sdk::proto::{
    InvokeRequest, InvokeResponse, Progress, ToolResult, invoke_response::Event,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

pub type Client = ProviderClient<Channel>;

#[derive(Deserialize, Serialize, JsonSchema)]
pub struct EchoArgs {
    /// The message to echo.
    pub message: String,
}

/// Events handlers report so tests can see what happened inside them.
pub type Events = mpsc::UnboundedReceiver<String>;

pub fn provider() -> (ProviderBuilder, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (tx1, tx2) = (tx.clone(), tx);
    let builder = Provider::builder("test")
        .version("1.2.3")
        .tool(
            Tool::new("echo.v1", |args: EchoArgs, _ctx| async move {
                Ok(ToolOutput::structured(&args))
            })
            .description("Echoes")
            .output_schema_for::<EchoArgs>()
            .read_only(true)
            .idempotent(true),
        )
        .tool(Tool::raw(
            "fail.v1",
            json!({"type": "object"}),
            |_args, _ctx| async { Err(ToolError::new("boom")) },
        ))
        .tool(Tool::raw("denied.v1", json!({"type": "object"}), |_, _| async {
            Err(ToolError::status(tonic::Status::permission_denied("no")))
        }))
        .tool(Tool::raw("panic.v1", json!({"type": "object"}), |_, _| async {
            if true {
                panic!("handler bug");
            }
            Ok(ToolOutput::text("unreachable"))
        }))
        .tool(Tool::raw("progress.v1", json!({"type": "object"}), |_, ctx| async move {
            for i in 1..=3 {
                ctx.progress(f64::from(i), Some(3.0), format!("step {i}")).await;
            }
            ctx.progress(2.0, None, "goes backwards: dropped").await;
            Ok(ToolOutput::text("done"))
        }))
        .tool(Tool::raw("whoami.v1", json!({"type": "object"}), |args, ctx| async move {
            Ok(ToolOutput::structured(&json!({
                "principal": ctx.caller().principal,
                "roles": ctx.caller().roles,
                "correlation_id": ctx.correlation_id(),
                "args": args,
                "meta": ctx.meta(),
                "has_deadline": ctx.deadline().is_some(),
            })))
        }))
        .tool(Tool::raw("wait.v1", json!({"type": "object"}), move |_, ctx| {
            let tx = tx1.clone();
            async move {
                let _ = tx.send("started".into());
                tokio::select! {
                    _ = ctx.cancelled() => {
                        let _ = tx.send(format!("cancelled:{}", ctx.is_cancelled()));
                        Ok(ToolOutput::text("cancelled"))
                    }
                    _ = tokio::time::sleep(Duration::from_secs(30)) => Ok(ToolOutput::text("slept")),
                }
            }
        }))
        .tool(Tool::raw("sleep.v1", json!({"type": "object"}), |_, ctx| async move {
            ctx.progress(0.0, None, "sleeping").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(ToolOutput::text("rested"))
        }))
        .resource(
            Resource::new("test://static", "static", |uri, _ctx| async move {
                Ok(ResourceBody::text(format!("static at {uri}")))
            })
            .mime_type("text/plain"),
        )
        .resource(Resource::new("test://items/special", "special", |_, _| async {
            Ok(ResourceBody::blob(vec![1, 2, 3]))
        }))
        .resource_template(
            ResourceTemplate::new("test://items/{id}", "item", |uri, ctx| async move {
                let id = ctx.template_var("id").unwrap_or("?");
                Ok(ResourceBody::text(format!("item {id} ({uri})")))
            })
            .mime_type("text/markdown"),
        )
        .prompt(
            Prompt::new("greet", move |args, _ctx| {
                let tx = tx2.clone();
                async move {
                    let _ = tx.send("prompt ran".into());
                    Ok(PromptReply::new()
                        .description("a greeting")
                        .user(format!("Hello, {}!", args["name"]))
                        .assistant("Hi!"))
                }
            })
            .description("Greets")
            .argument("name", "who", true)
            .argument("mood", "how", false),
        );
    (builder, rx)
}

pub async fn spawn() -> (RunningProvider, Client, Events) {
    let (builder, events) = provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = builder.spawn(listener).await.unwrap();
    let client = connect(&running).await;
    (running, client, events)
}

pub async fn connect(running: &RunningProvider) -> Client {
    ProviderClient::connect(format!("http://{}", running.addr()))
        .await
        .unwrap()
}

pub fn invoke_req(tool: &str, args: serde_json::Value) -> InvokeRequest {
    InvokeRequest {
        tool: tool.into(),
        arguments: serde_json::to_vec(&args).unwrap(),
        ..Default::default()
    }
}

/// Reads an Invoke stream to its end: progress messages, then the terminal
/// result or status. Panics if anything arrives after the result.
pub async fn collect(
    mut stream: Streaming<InvokeResponse>,
) -> (Vec<Progress>, Result<ToolResult, Status>) {
    let mut progress = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(InvokeResponse {
                event: Some(Event::Progress(p)),
            })) => progress.push(p),
            Ok(Some(InvokeResponse {
                event: Some(Event::Result(r)),
            })) => {
                assert!(
                    stream.message().await.unwrap().is_none(),
                    "stream must end after the result"
                );
                return (progress, Ok(r));
            }
            Ok(other) => panic!("unexpected message {other:?}"),
            Err(status) => return (progress, Err(status)),
        }
    }
}

pub async fn call(
    client: &mut Client,
    tool: &str,
    args: serde_json::Value,
) -> Result<ToolResult, Status> {
    let stream = client.invoke(invoke_req(tool, args)).await?.into_inner();
    collect(stream).await.1
}

pub fn text_of(result: &ToolResult) -> String {
    use mcp_provider_sdk::proto::content::Kind;
    result
        .content
        .iter()
        .filter_map(|c| match &c.kind {
            Some(Kind::Text(t)) => Some(t.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn structured_of(result: &ToolResult) -> serde_json::Value {
    serde_json::from_slice(&result.structured_content).unwrap()
}
