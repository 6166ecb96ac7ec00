//! Rate limits and the request time limit.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::*;
use crate::failures::raw_2026;

#[tokio::test]
async fn rate_limits_per_principal_429_and_per_tool_json_rpc() {
    let provider = spawn_kit(Arc::default()).await;
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: a, sha256: \"{}\" }}\n    - {{ principal: b, sha256: \"{}\" }}\nrate_limits:\n  per_principal: {{ per_second: 1, burst: 3 }}\n  tools:\n    kit.echo.v1: {{ per_second: 1, burst: 1 }}\n",
        sha256_hex("key-a"),
        sha256_hex("key-b")
    );
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &yaml)).await;
    let list = |key: &'static str| {
        let url = gw.url();
        async move { raw_2026(&url, "tools/list", None, json!({}), &[("x-api-key", key)]).await }
    };
    for _ in 0..3 {
        assert_eq!(list("key-a").await.0, 200);
    }
    let (s, h, body) = list("key-a").await;
    assert_eq!(s, 429);
    assert_eq!(h.get("retry-after").unwrap(), "1");
    assert_eq!(body["error"], "rate_limited");
    assert!(body["retry_after_ms"].as_u64().unwrap() <= 1000, "{body}");
    // Another principal has its own bucket.
    assert_eq!(list("key-b").await.0, 200);

    // Per tool: the second call within a second is refused over JSON-RPC.
    let args = json!({"name": "kit.echo.v1", "arguments": {"message": "x"}});
    let (s, _, ok) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.echo.v1"),
        args.clone(),
        &[("x-api-key", "key-b")],
    )
    .await;
    assert_eq!(s, 200);
    assert!(ok["result"].is_object(), "{ok}");
    let (_, _, refused) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.echo.v1"),
        args,
        &[("x-api-key", "key-b")],
    )
    .await;
    assert_eq!(refused["error"]["code"], -32005, "{refused}");
    assert_eq!(refused["error"]["data"]["kind"], "rate_limited");
    assert!(
        refused["error"]["data"]["retry_after_ms"]
            .as_u64()
            .is_some()
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("rate limit exceeded for tool 'kit.echo.v1'"),
        "{refused}"
    );
    gw.shutdown().await;
}

/// `limits.request_timeout` bounds an HTTP request: 504 past it, while
/// quicker requests are answered.
#[tokio::test]
async fn request_time_limit_answers_504() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(
        &[("kit", provider.addr())],
        "limits:\n  request_timeout: 300ms\n",
    ))
    .await;
    let slow = json!({"name": "kit.slow.v1", "arguments": {"ms": 3000}});
    let started = std::time::Instant::now();
    let (s, _, body) = raw_2026(&gw.url(), "tools/call", Some("kit.slow.v1"), slow, &[]).await;
    assert_eq!(s, 504, "{body}");
    assert_eq!(body["error"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    let quick = json!({"name": "kit.slow.v1", "arguments": {"ms": 10}});
    let (s, _, _) = raw_2026(&gw.url(), "tools/call", Some("kit.slow.v1"), quick, &[]).await;
    assert_eq!(s, 200);
    gw.shutdown().await;
}
