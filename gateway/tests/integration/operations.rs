//! Audit log, metrics and usage analytics, observed from outside.

use std::{sync::Arc, time::Duration};

use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn audit_log_has_one_line_per_call_with_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let provider = spawn_kit(Arc::new(KitProbe::default())).await;
    let extra = format!("audit:\n  path: {}\n  fsync: always\n", path.display());
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &extra)).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;

    call(&client, "kit.echo.v1", json!({"message": "a"}))
        .await
        .unwrap();
    call(&client, "echo.v1", json!({"message": "b"}))
        .await
        .unwrap(); // short name
    call(&client, "kit.echo.v1", json!({"message": 1}))
        .await
        .unwrap(); // invalid → tool_error
    call(&client, "kit.fail.v1", json!({"message": "x"}))
        .await
        .unwrap();
    call(&client, "kit.nope", json!({})).await.unwrap_err();
    client
        .read_resource(ReadResourceRequestParams::new("kit://readme"))
        .await
        .unwrap();
    client
        .get_prompt(GetPromptRequestParams::new("greet").with_arguments(args(json!({"name": "A"}))))
        .await
        .unwrap();

    // Written before each response returned: no waiting needed.
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "{lines:#?}");
    let first = &lines[0];
    assert_eq!(first["method"], "tools/call");
    assert_eq!(first["item"], "kit.echo.v1");
    assert_eq!(first["provider"], "kit");
    assert_eq!(first["principal"], "anonymous");
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["cached"], false);
    assert_eq!(first["args_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(first["correlation_id"].as_str().unwrap().len(), 32);
    assert!(
        first["session"].as_str().is_some_and(|s| !s.is_empty()),
        "{first}"
    );
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        lines[1]["item"], "kit.echo.v1",
        "short name is audited under its full name"
    );
    assert_ne!(lines[0]["args_sha256"], lines[1]["args_sha256"]);
    assert_eq!(lines[2]["outcome"], "tool_error");
    assert_eq!(lines[3]["outcome"], "tool_error");
    assert_eq!(
        (
            lines[4]["outcome"].as_str(),
            lines[4]["error_kind"].as_str()
        ),
        (Some("error"), Some("unknown_tool"))
    );
    assert_eq!(
        (lines[5]["method"].as_str(), lines[5]["item"].as_str()),
        (Some("resources/read"), Some("kit://readme"))
    );
    assert_eq!(
        (lines[6]["method"].as_str(), lines[6]["item"].as_str()),
        (Some("prompts/get"), Some("kit.greet"))
    );
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn a_full_disk_is_reported_and_counted_but_calls_still_answer() {
    let provider = spawn_kit(Arc::new(KitProbe::default())).await;
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    let gw = start_gateway(&config_yaml(
        &[("kit", provider.addr())],
        "audit:\n  path: /dev/full\n",
    ))
    .await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    let r = call(&client, "kit.echo.v1", json!({"message": "still answered"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "still answered");
    let metrics = gw.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("mcp_gateway_audit_write_errors_total"))
        .unwrap_or_else(|| panic!("no audit error metric in:\n{metrics}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{line}");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn metrics_show_per_tool_latency_histograms_and_provider_state() {
    let provider = spawn_kit(Arc::new(KitProbe::default())).await;
    let gw = start_gateway(&config_yaml(&[("mkit", provider.addr())], "")).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    for _ in 0..3 {
        call(&client, "mkit.echo.v1", json!({"message": "m"}))
            .await
            .unwrap();
    }
    let resp = reqwest::get(format!("{}/metrics", gw.base()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let bucket = text.lines().find(|l| {
        l.starts_with("mcp_server_operation_duration_seconds_bucket")
            && l.contains(r#"gen_ai_tool_name="mkit.echo.v1""#)
            && l.contains(r#"mcp_method_name="tools/call""#)
            && l.contains(r#"le="+Inf""#)
    });
    let bucket = bucket.unwrap_or_else(|| panic!("no histogram for mkit.echo.v1:\n{text}"));
    assert!(bucket.ends_with(" 3"), "{bucket}");
    // Counted through the handles kept with the catalog entry: the same
    // series, labels in the same order, as a request counted by labels.
    let count = text
        .lines()
        .find(|l| {
            l.starts_with(
                r#"mcp_gateway_requests_total{mcp_method_name="tools/call",provider="mkit",gen_ai_tool_name="mkit.echo.v1",outcome="ok"}"#,
            )
        })
        .unwrap_or_else(|| panic!("no request count for mkit.echo.v1:\n{text}"));
    assert!(count.ends_with(" 3"), "{count}");
    assert!(
        text.contains(r#"mcp_gateway_provider_state{provider="mkit",state="ready"} 1"#),
        "{text}"
    );
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn usage_analytics_per_tool_provider_and_caller() {
    let provider = spawn_kit(Arc::new(KitProbe::default())).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], "")).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    for _ in 0..4 {
        call(&client, "kit.echo.v1", json!({"message": "m"}))
            .await
            .unwrap();
    }
    call(&client, "kit.fail.v1", json!({"message": "m"}))
        .await
        .unwrap();
    let url = format!("{}/api/v1/analytics/usage?window=5m", gw.base());
    let u: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(u["window_seconds"], 300);
    assert_eq!(u["total"], 5);
    let echo = u["by_tool"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "kit.echo.v1")
        .unwrap();
    assert_eq!(
        (echo["count"].as_u64(), echo["errors"].as_u64()),
        (Some(4), Some(0))
    );
    assert!(echo["p95_ms"].as_f64().unwrap() >= echo["p50_ms"].as_f64().unwrap());
    let fail = u["by_tool"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "kit.fail.v1")
        .unwrap();
    assert_eq!(fail["error_rate"], 1.0);
    assert_eq!(u["by_provider"][0]["count"], 5);
    assert_eq!(u["by_caller"][0]["key"], "anonymous");
    let bad = reqwest::get(format!("{}/api/v1/analytics/usage?window=soon", gw.base()))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Longer than the hour the analytics keep: refused, naming the rule.
    let long = reqwest::get(format!("{}/api/v1/analytics/usage?window=2h", gw.base()))
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
    let text = long.text().await.unwrap();
    assert!(
        text.contains("window") && text.contains("at most 1h"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    client.cancel().await.unwrap();
    gw.shutdown().await;
}
