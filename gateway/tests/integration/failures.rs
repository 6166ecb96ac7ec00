//! Providers that are late, die, or send too much; correlation IDs; health,
//! readiness and graceful shutdown.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::common::*;

/// A 2026-07-28 request as a bare HTTP POST: no initialize, no session, all
/// context in `_meta`. Returns (status, headers, JSON body).
pub async fn raw_2026(
    url: &str,
    method: &str,
    name: Option<&str>,
    mut params: Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = json_or_last_event(&text);
    (status, h, json)
}

#[tokio::test]
async fn stateless_raw_request_carries_correlation_id_and_agent_to_the_provider() {
    let provider = spawn_kit(Arc::new(KitProbe::default())).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], "")).await;
    let (status, headers, body) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.whoami.v1"),
        json!({"name": "kit.whoami.v1", "arguments": {"message": "x"}}),
        &[
            ("x-correlation-id", "corr-123"),
            ("x-agent-name", "planner"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-correlation-id"], "corr-123");
    let sc = &body["result"]["structuredContent"];
    assert_eq!(sc["correlation_id"], "corr-123", "{body}");
    assert_eq!(sc["agent"], "planner");
    assert_eq!(sc["principal"], "anonymous");
    // The request's _meta reaches the provider (protocol keys included).
    assert_eq!(
        sc["meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28",
        "{body}"
    );

    // Without the header, one is generated and still reaches the provider.
    let (_, headers, body) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.whoami.v1"),
        json!({"name": "kit.whoami.v1", "arguments": {"message": "x"}}),
        &[],
    )
    .await;
    let generated = headers["x-correlation-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 32);
    assert_eq!(
        body["result"]["structuredContent"]["correlation_id"],
        generated.as_str()
    );

    // Stateless tools/list works with no session at all.
    let (status, _, body) = raw_2026(&gw.url(), "tools/list", None, json!({}), &[]).await;
    assert_eq!(status, 200);
    assert!(
        body["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "kit.echo.v1")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn provider_down_at_startup_is_added_when_it_comes_up() {
    let healthy = spawn_kit(Arc::new(KitProbe::default())).await;
    let late_port = free_port().await;
    let late_addr: std::net::SocketAddr = format!("127.0.0.1:{late_port}").parse().unwrap();
    let gw = start_gateway(&config_yaml(
        &[("kit", healthy.addr()), ("late", late_addr)],
        "",
    ))
    .await;

    // The gateway serves the healthy provider and reports the other down.
    let ready: Value = gw.ready().await;
    let states: Vec<_> = ready["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].clone(), p["state"].clone()))
        .collect();
    assert_eq!(
        states,
        vec![
            (json!("kit"), json!("ready")),
            (json!("late"), json!("down"))
        ],
        "{ready}"
    );

    for stateless in [false, true] {
        let rec = Recorder::default();
        let client = http_client(&gw.url(), stateless, rec.clone()).await;
        let names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert!(names.contains(&"kit.echo.v1".to_string()));
        assert!(!names.iter().any(|n| n.starts_with("late.")));
        client.cancel().await.unwrap();
    }

    // Sessions that can receive it get tools/list_changed.
    let rec = Recorder::default();
    let session = http_client(&gw.url(), false, rec.clone()).await;
    let stateless = http_client(&gw.url(), true, Recorder::default()).await;
    let mut sub = stateless
        .listen(
            rmcp::model::SubscriptionFilter::builder()
                .tools_list_changed()
                .build(),
        )
        .await
        .unwrap();

    let _late = spawn_on(kit(Arc::new(KitProbe::default())), &late_addr.to_string()).await;
    let seen = eventually(Duration::from_secs(10), || {
        let s = &session;
        async move {
            let names: Vec<String> = s
                .list_all_tools()
                .await
                .unwrap()
                .iter()
                .map(|t| t.name.to_string())
                .collect();
            names.contains(&"late.echo.v1".to_string()).then_some(())
        }
    })
    .await;
    assert!(seen.is_some(), "late provider's tools never appeared");
    tokio::time::timeout(Duration::from_secs(5), async {
        while !rec
            .tools_changed_seen
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("session got notifications/tools/list_changed");
    let n = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("listen stream got a notification");
    assert!(
        matches!(
            n,
            Ok(Some(
                rmcp::model::ServerNotification::ToolListChangedNotification(_)
            ))
        ),
        "{n:?}"
    );

    let r = call(&session, "late.echo.v1", json!({"message": "now up"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "now up");
    session.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn provider_killed_mid_call_gives_a_clear_error_and_the_gateway_keeps_serving() {
    let probe = Arc::new(KitProbe::default());
    let doomed = spawn_kit(probe.clone()).await;
    let other = spawn_kit(Arc::new(KitProbe::default())).await;
    let gw = start_gateway(&config_yaml(
        &[("doomed", doomed.addr()), ("other", other.addr())],
        "",
    ))
    .await;
    let rec = Recorder::default();
    let client = http_client(&gw.url(), false, rec.clone()).await;

    let started = probe.slow_started.notified();
    let c = &client;
    let call_fut = call(c, "doomed.slow.v1", json!({"ms": 60000}));
    let kill = async {
        tokio::time::timeout(Duration::from_secs(5), started)
            .await
            .expect("slow call started");
        doomed.abort();
    };
    let (result, ()) = tokio::join!(call_fut, kill);
    let e = rpc_error(&result.unwrap_err());
    assert_eq!(e.code.0, -32001, "{e:?}");
    assert!(e.message.contains("doomed"), "{}", e.message);
    let data = e.data.unwrap();
    assert_eq!(data["provider"], "doomed");
    assert_eq!(data["kind"], "provider_unavailable");

    // The other provider is unaffected, and the gateway is healthy.
    let r = call(&client, "other.echo.v1", json!({"message": "still here"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "still here");
    let health = reqwest::get(format!("{}/health", gw.base())).await.unwrap();
    assert_eq!(health.status(), 200);

    // The dead provider's tools leave the list, and list_changed is sent.
    let gone = eventually(Duration::from_secs(10), || {
        let c = &client;
        async move {
            let names: Vec<String> = c
                .list_all_tools()
                .await
                .unwrap()
                .iter()
                .map(|t| t.name.to_string())
                .collect();
            (!names.iter().any(|n| n.starts_with("doomed."))).then_some(())
        }
    })
    .await;
    assert!(gone.is_some(), "dead provider's tools were not removed");
    // Its tools say "unavailable", not "unknown", while it is down.
    let e = rpc_error(
        &call(&client, "doomed.echo.v1", json!({"message": "x"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.0, -32001, "{e:?}");
    assert!(
        e.message.contains("returns when 'doomed' recovers"),
        "{}",
        e.message
    );
    let e = rpc_error(
        &call(&client, "doomed.never-was", json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.0, -32602, "{e:?}");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn payload_limits_apply_to_requests_and_provider_responses() {
    let provider = spawn_kit(Arc::new(KitProbe::default())).await;
    let gw = start_gateway(&config_yaml(
        &[("kit", provider.addr())],
        "limits:\n  max_payload_bytes: 65536\n",
    ))
    .await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;

    // A response over the limit is refused with a clear error.
    let e = rpc_error(
        &call(&client, "kit.big.v1", json!({"bytes": 200_000}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.0, -32006, "{e:?}");
    assert!(e.message.contains("65536"), "{}", e.message);
    // D8: the real size, not "0 bytes".
    let size: usize = e
        .message
        .split_once("provider response is ")
        .and_then(|(_, rest)| rest.split_once(" bytes"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {:?}", e.message));
    assert!(size >= 200_000, "{}", e.message);
    // Under the limit is fine.
    let r = call(&client, "kit.big.v1", json!({"bytes": 1000}))
        .await
        .unwrap();
    assert_eq!(text_of(&r).len(), 1000);

    // A request body over the limit gets HTTP 413 before any parsing.
    let (status, _, _) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.echo.v1"),
        json!({"name": "kit.echo.v1", "arguments": {"message": "y".repeat(100_000)}}),
        &[],
    )
    .await;
    assert_eq!(status, 413);
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_calls() {
    let probe = Arc::new(KitProbe::default());
    let provider = spawn_kit(probe.clone()).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], "")).await;
    let client = http_client(&gw.url(), true, Recorder::default()).await;
    let started = probe.slow_started.notified();
    let c = &client;
    let g = &gw;
    let (r, ()) = tokio::join!(call(c, "kit.slow.v1", json!({"ms": 800})), async {
        started.await;
        g.begin_shutdown();
        // Readiness flips while draining.
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    let r = r.expect("in-flight call completes during drain");
    assert_eq!(text_of(&r), "done");
    gw.shutdown().await;
}
