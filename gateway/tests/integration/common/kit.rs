//! The kit: a test provider built with our SDK that has every feature the
//! gateway must carry.

use super::*;

/// What the slow tool saw, so tests can assert the provider side.
#[derive(Default)]
pub struct KitProbe {
    pub slow_started: Notify,
    pub slow_cancelled: AtomicBool,
    pub cancelled_notify: Notify,
}

#[derive(Deserialize, JsonSchema)]
pub struct Msg {
    pub message: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct SlowArgs {
    pub ms: u64,
}

#[derive(Deserialize, JsonSchema)]
pub struct BigArgs {
    pub bytes: usize,
}

/// The test provider: every feature the gateway must carry.
pub fn kit(probe: Arc<KitProbe>) -> ProviderBuilder {
    let p1 = probe.clone();
    Provider::builder("kit")
        .version("test")
        .tool(
            Tool::new("echo.v1", |a: Msg, _cx| async move {
                Ok(ToolOutput::text(a.message.clone())
                    .with_structured(serde_json::json!({ "message": a.message })))
            })
            .description("Echo")
            .output_schema(serde_json::json!({
                "type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]
            }))
            .read_only(true)
            .idempotent(true),
        )
        .tool(
            Tool::new("bad-output.v1", |_a: Msg, _cx| async move {
                Ok(ToolOutput::text("oops").with_structured(serde_json::json!({ "count": "three" })))
            })
            .output_schema(serde_json::json!({
                "type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]
            })),
        )
        .tool(Tool::new("kinds.v1", |_a: Msg, _cx| async move {
            let mut text = content::text("plain text");
            text.annotations = br#"{"audience":["user"],"priority":0.5}"#.to_vec();
            Ok(ToolOutput::new(vec![
                text,
                content::image(vec![0x89, b'P', b'N', b'G'], "image/png"),
                content::audio(vec![1, 2, 3, 4], "audio/wav"),
                content::resource_link("kit://items/7", "item 7"),
                content::embedded_text("kit://readme", "text/plain", "embedded words"),
                content::embedded_blob("kit://blob", "application/octet-stream", vec![0, 255, 1]),
            ])
            .with_structured(serde_json::json!({ "big": 9007199254740993u64, "ok": true })))
        }))
        .tool(Tool::new("progress.v1", |_a: Msg, cx: Context| async move {
            for i in 1..=3 {
                cx.progress(i as f64, Some(3.0), format!("step {i}")).await;
            }
            Ok(ToolOutput::text("finished"))
        }))
        .tool(Tool::new("log.v1", |a: Msg, cx: Context| async move {
            cx.log(LogLevel::Debug, "a detail").await;
            cx.log(LogLevel::Warning, serde_json::json!({ "said": a.message }))
                .await;
            Ok(ToolOutput::text("logged"))
        }))
        .tool(Tool::new("slow.v1", move |a: SlowArgs, cx: Context| {
            let probe = p1.clone();
            async move {
                probe.slow_started.notify_waiters();
                tokio::select! {
                    _ = cx.cancelled() => {
                        probe.slow_cancelled.store(true, Ordering::SeqCst);
                        probe.cancelled_notify.notify_waiters();
                        Err(ToolError::new("cancelled"))
                    }
                    _ = tokio::time::sleep(Duration::from_millis(a.ms)) => Ok(ToolOutput::text("done")),
                }
            }
        }))
        .tool(Tool::new("whoami.v1", |_a: Msg, cx: Context| async move {
            Ok(ToolOutput::structured(&serde_json::json!({
                "correlation_id": cx.correlation_id(),
                "agent": cx.caller().agent,
                "principal": cx.caller().principal,
                "session": cx.caller().session_id,
                "meta": cx.meta(),
                "traceparent": cx.traceparent(),
            })))
        }))
        .tool(Tool::new("big.v1", |a: BigArgs, _cx| async move {
            Ok(ToolOutput::text("x".repeat(a.bytes)))
        }))
        .tool(Tool::new("fail.v1", |_a: Msg, _cx| async move {
            Err::<ToolOutput, _>(ToolError::new("the tool failed on purpose"))
        }))
        .resource(
            Resource::new("kit://readme", "readme", |_uri, _cx| async move {
                Ok(ResourceBody::text("kit readme"))
            })
            .mime_type("text/plain"),
        )
        .resource_template(
            ResourceTemplate::new("kit://items/{id}", "item", |_uri, cx: Context| async move {
                Ok(ResourceBody::text(format!("item {}", cx.template_var("id").unwrap_or("?"))))
            })
            .mime_type("text/plain"),
        )
        .prompt(
            Prompt::new("greet", |args: std::collections::HashMap<String, String>, _cx| async move {
                Ok(PromptReply::user(format!("Say hello to {}", args["name"])))
            })
            .description("Greets")
            .argument("name", "who", true),
        )
}

pub async fn spawn_kit(probe: Arc<KitProbe>) -> RunningProvider {
    spawn_on(kit(probe), "127.0.0.1:0").await
}

pub async fn spawn_on(builder: ProviderBuilder, addr: &str) -> RunningProvider {
    // Most tests start here; their HTTP clients need the rustls provider.
    init();
    let listener = TcpListener::bind(addr).await.unwrap();
    builder.spawn(listener).await.unwrap()
}
