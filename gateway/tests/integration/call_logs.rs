//! A provider's log messages during a call reach the client that made the
//! call, on that request's stream, at the level it asked for, and no one
//! else: in a 2025-11-25 session (`logging/setLevel`) and in a 2026-07-28
//! request (`_meta` `io.modelcontextprotocol/logLevel`).

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::common::*;

#[allow(deprecated)] // logging: deprecated by SEP-2577, valid in 2025-11-25
async fn set_level(c: &Client, level: rmcp::model::LoggingLevel) {
    c.set_level(rmcp::model::SetLevelRequestParams::new(level))
        .await
        .expect("logging/setLevel");
}

#[tokio::test]
#[allow(deprecated)]
async fn a_calls_logs_go_to_its_caller_only_at_the_level_it_asked() {
    let kit = spawn_kit(Arc::new(KitProbe::default())).await;
    let gw = start_gateway(&config_yaml(&[("kit", kit.addr())], "")).await;
    let (a_rec, b_rec) = (Recorder::default(), Recorder::default());
    let a = http_client(&gw.url(), false, a_rec.clone()).await;
    let b = http_client(&gw.url(), false, b_rec.clone()).await;
    set_level(&a, rmcp::model::LoggingLevel::Info).await;
    // B would take anything: it must still get none of A's call's logs.
    set_level(&b, rmcp::model::LoggingLevel::Debug).await;

    let r = call(&a, "kit.log.v1", json!({"message": "hi"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "logged");
    // On the call's own stream, before the answer: there already.
    assert_eq!(*a_rec.logs.lock().unwrap(), vec![json!({"said": "hi"})]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b_rec.logs.lock().unwrap().is_empty(), "{:?}", b_rec.logs);

    // A session that never asked gets none, and its answer stays plain.
    let c_rec = Recorder::default();
    let c = http_client(&gw.url(), false, c_rec.clone()).await;
    let r = call(&c, "kit.log.v1", json!({"message": "quiet"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "logged");
    assert!(c_rec.logs.lock().unwrap().is_empty());
    for client in [a, b, c] {
        let _ = client.cancel().await;
    }
    gw.shutdown().await;
}

/// One 2026-07-28 `tools/call` of kit.log.v1; every JSON-RPC message of the
/// answer, in order, and its content type.
async fn call_2026(url: &str, log_level: Option<&str>) -> (String, Vec<Value>) {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "logs-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    if let Some(l) = log_level {
        meta["io.modelcontextprotocol/logLevel"] = json!(l);
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "kit.log.v1", "arguments": {"message": "hi"}, "_meta": meta}});
    let resp = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "kit.log.v1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    let text = resp.text().await.unwrap();
    let messages = if kind.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| serde_json::from_str(d.trim()).unwrap())
            .collect()
    } else {
        vec![serde_json::from_str(&text).unwrap()]
    };
    (kind, messages)
}

#[tokio::test]
async fn a_2026_request_gets_its_logs_only_when_it_sets_a_level() {
    let kit = spawn_kit(Arc::new(KitProbe::default())).await;
    let gw = start_gateway(&config_yaml(&[("kit", kit.addr())], "")).await;

    let (kind, m) = call_2026(&gw.url(), Some("debug")).await;
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(m[0]["method"], "notifications/message");
    assert_eq!(m[0]["params"]["level"], "debug");
    assert_eq!(m[0]["params"]["data"], "a detail");
    assert_eq!(m[1]["params"]["level"], "warning");
    assert_eq!(m[1]["params"]["data"], json!({"said": "hi"}));
    assert_eq!(m[2]["id"], 7);
    assert_eq!(m[2]["result"]["content"][0]["text"], "logged");

    let (_, m) = call_2026(&gw.url(), Some("warning")).await;
    let levels: Vec<_> = m
        .iter()
        .filter_map(|m| m["params"]["level"].as_str())
        .collect();
    assert_eq!(levels, ["warning"], "{m:?}");

    // No level: no log messages (SEP-2575), and a plain JSON answer.
    let (kind, m) = call_2026(&gw.url(), None).await;
    assert!(kind.starts_with("application/json"), "{kind}");
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["result"]["content"][0]["text"], "logged");
    gw.shutdown().await;
}
