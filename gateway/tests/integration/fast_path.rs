//! The HTTP fast path for stateless `tools/call` (gateway/src/http/fast_call.rs)
//! against the gateway binary: it answers byte for byte as rmcp's path
//! does, leaves everything it is not sure of to rmcp, and cancels a call
//! whose client goes away. The binary's own /metrics count what it took.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use serde_json::{Value, json};

use crate::common::*;
use mcp_provider_sdk::prelude::RunningProvider;

/// What the gateway answered: status, content type, body text.
type Answer = (u16, String, String);

/// A `tools/call` body with a complete 2026-07-28 `_meta`.
fn call_body(id: Value, name: &str, arguments: Option<Value>) -> Value {
    let mut params = json!({
        "name": name,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "fast-path-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}
        }
    });
    if let Some(a) = arguments {
        params["arguments"] = a;
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// The headers a 2026-07-28 client sends for `body`, with `changes` applied
/// (a `None` value removes the header).
fn headers_for(body: &Value, changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", body["params"]["name"].as_str().unwrap()),
        ("x-correlation-id", "fast-path-test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (name, value) in changes {
        h.retain(|(k, _)| k != name);
        if let Some(v) = value {
            h.push((name.to_string(), v.to_string()));
        }
    }
    h
}

async fn post(url: &str, body: &Value, headers: &[(String, String)]) -> Answer {
    let mut req = reqwest::Client::new().post(url).body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

/// `mcp_gateway_fast_path_calls_total` of the gateway at `port`.
async fn fast_calls(port: u16) -> u64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("mcp_gateway_fast_path_calls_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn gateway_for(
    provider: &RunningProvider,
) -> (tokio::process::Child, tempfile::NamedTempFile, u16) {
    let port = free_port().await;
    let yaml = config_yaml(
        &[("kit", provider.addr())],
        &format!("listen: 127.0.0.1:{port}\n"),
    );
    let (child, cfg, ready) = gateway_process(&yaml, port, &[]).await;
    assert!(ready.contains("ready"), "{ready}");
    (child, cfg, port)
}

/// Results, tool errors and protocol errors: the same request on the fast
/// path and on rmcp's (a q-value in `Accept` keeps it off the fast path)
/// gets the same status, content type and bytes.
#[tokio::test]
async fn the_fast_path_answers_exactly_as_rmcp_does() {
    init();
    let provider = spawn_kit(Arc::default()).await;
    let (child, _cfg, port) = gateway_for(&provider).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let cases = [
        ("kit.echo.v1", Some(json!({"message": "hi"}))),
        ("echo.v1", Some(json!({"message": "by its short name"}))),
        ("kit.echo.v1", Some(json!({"message": 5}))),
        ("kit.echo.v1", None),
        ("kit.kinds.v1", Some(json!({"message": "x"}))),
        ("kit.bad-output.v1", Some(json!({"message": "x"}))),
        ("kit.fail.v1", Some(json!({"message": "x"}))),
        ("kit.nope.v1", Some(json!({}))),
    ];
    assert_eq!(fast_calls(port).await, 0);
    for (i, (name, arguments)) in cases.iter().enumerate() {
        let id = if i % 2 == 0 {
            json!(i)
        } else {
            json!(format!("req-{i}"))
        };
        let body = call_body(id, name, arguments.clone());
        let fast = post(&url, &body, &headers_for(&body, &[])).await;
        assert_eq!(
            fast_calls(port).await,
            i as u64 + 1,
            "{name} took the fast path"
        );
        let via_rmcp = headers_for(
            &body,
            &[("accept", Some("application/json;q=1, text/event-stream"))],
        );
        let slow = post(&url, &body, &via_rmcp).await;
        assert_eq!(
            fast_calls(port).await,
            i as u64 + 1,
            "{name} went through rmcp"
        );
        assert_eq!(fast, slow, "{name} {arguments:?}");
        assert_eq!(fast.1, "application/json");
    }
    // The cases cover each kind of answer (and are not all alike).
    let answer = |i: usize| {
        let (name, arguments) = &cases[i];
        let body = call_body(json!(1), name, arguments.clone());
        let url = url.clone();
        async move {
            serde_json::from_str::<Value>(&post(&url, &body, &headers_for(&body, &[])).await.2)
                .unwrap()
        }
    };
    assert_eq!(
        answer(0).await["result"]["structuredContent"]["message"],
        "hi"
    );
    assert_eq!(answer(2).await["result"]["isError"], true);
    assert_eq!(answer(5).await["error"]["code"], -32603);
    assert_eq!(answer(7).await["error"]["code"], -32602);
    stop_and_logs(child).await;
}

/// Requests the fast path must not take go to rmcp and get its answers
/// (progress as SSE, SEP-2243 header mismatches, malformed `_meta`, a
/// browser `Origin`); none is counted as taken.
#[tokio::test]
async fn requests_the_fast_path_cannot_take_get_rmcp_answers() {
    init();
    let provider = spawn_kit(Arc::default()).await;
    let (child, _cfg, port) = gateway_for(&provider).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let echo = call_body(json!(1), "kit.echo.v1", Some(json!({"message": "hi"})));

    // A progress token: progress notifications, then the result, as SSE.
    let mut progress = call_body(json!(2), "kit.progress.v1", Some(json!({"message": "x"})));
    progress["params"]["_meta"]["progressToken"] = json!("tok");
    let (status, ct, text) = post(&url, &progress, &headers_for(&progress, &[])).await;
    assert_eq!((status, ct.as_str()), (200, "text/event-stream"), "{text}");
    assert_eq!(text.matches("notifications/progress").count(), 3, "{text}");
    assert!(text.contains("finished"), "{text}");

    // SEP-2243 headers that do not match the body, or are missing.
    for changes in [
        vec![("mcp-name", Some("kit.fail.v1"))],
        vec![("mcp-name", None)],
        vec![("mcp-method", Some("tools/list"))],
    ] {
        let (status, _, text) = post(&url, &echo, &headers_for(&echo, &changes)).await;
        assert_eq!(status, 400, "{changes:?}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], -32020, "{changes:?}: {text}");
    }

    // `_meta` without the client capabilities 2026-07-28 requires.
    let mut bare = echo.clone();
    bare["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let (status, _, text) = post(&url, &bare, &headers_for(&bare, &[])).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("clientCapabilities"), "{text}");

    // A foreign browser origin is refused by rmcp; a local one is served.
    let evil = headers_for(&echo, &[("origin", Some("https://evil.example"))]);
    assert_eq!(post(&url, &echo, &evil).await.0, 403);
    let local = headers_for(&echo, &[("origin", Some("http://localhost:3000"))]);
    let (status, _, text) = post(&url, &echo, &local).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""message":"hi""#), "{text}");

    // A Host that is not allowed (DNS rebinding) is refused.
    let rebinding = headers_for(&echo, &[("host", Some("attacker.example"))]);
    assert_eq!(post(&url, &echo, &rebinding).await.0, 403);

    assert_eq!(fast_calls(port).await, 0);
    stop_and_logs(child).await;
}

/// A client that goes away mid-call on the fast path cancels the call at
/// the provider, as on rmcp's path.
#[tokio::test]
async fn a_fast_path_call_is_cancelled_when_its_client_goes_away() {
    init();
    let probe = Arc::new(KitProbe::default());
    let provider = spawn_kit(probe.clone()).await;
    let (child, _cfg, port) = gateway_for(&provider).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let body = call_body(json!(1), "kit.slow.v1", Some(json!({"ms": 60_000})));
    let started = probe.slow_started.notified();
    let cancelled = probe.cancelled_notify.notified();
    let request = tokio::spawn(async move { post(&url, &body, &headers_for(&body, &[])).await });
    tokio::time::timeout(Duration::from_secs(10), started)
        .await
        .expect("the slow tool started");
    request.abort();
    tokio::time::timeout(Duration::from_secs(10), cancelled)
        .await
        .expect("the provider saw the call cancelled");
    assert!(probe.slow_cancelled.load(Ordering::SeqCst));
    assert_eq!(fast_calls(port).await, 1);
    stop_and_logs(child).await;
}
