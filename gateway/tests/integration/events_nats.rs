//! Events through a real NATS JetStream server: delivery, replay after a
//! gateway restart, NATS restarts, duplicates, malformed events.

use std::{collections::HashSet, time::Duration};

use async_nats::HeaderMap;
use futures::StreamExt;
use mcp_gateway::NatsState;
use serde_json::json;

use crate::{common::*, events::*};

const SUBJECT: &str = "hello.events";
const DLQ: &str = "dlq.events";

fn nats_yaml(url: &str, durable: &str) -> String {
    format!(
        "events:\n  recent: 1000\n  nats:\n    url: {url}\n    stream: EVENTS\n    subjects: [{SUBJECT}]\n    \
         durable: {durable}\n    create_stream: true\n    ack_wait: 1s\n    dead_letter_subject: {DLQ}\n"
    )
}

/// A structured-mode CloudEvent.
fn structured(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": "/test", "type": "test.counted",
        "datacontenttype": "application/json", "data": {"n": id},
    }))
    .unwrap()
}

/// Publishes to JetStream and waits for the stream's ack.
async fn js_publish(js: &async_nats::jetstream::Context, body: Vec<u8>) {
    js.publish(SUBJECT, body.into())
        .await
        .expect("publish")
        .await
        .expect("JetStream ack");
}

async fn connected(gw: &TestGateway) {
    wait_stats(gw, Duration::from_secs(10), "NATS connected", |s| {
        s.nats == NatsState::Connected
    })
    .await;
}

#[tokio::test]
async fn echo_through_nats_reaches_a_subscribed_client_within_2s() {
    let nats = Nats::start().await;
    let builder = evented("ev", "ev");
    builder
        .events()
        .connect_nats(&nats.url(), SUBJECT)
        .await
        .unwrap();
    let provider = spawn_on(builder, "127.0.0.1:0").await;
    let yaml = config_yaml(&[("ev", provider.addr())], &nats_yaml(&nats.url(), "gw"));
    let gw = start_gateway(&yaml).await;
    connected(&gw).await;

    let rec = Recorder::default();
    let session = http_client(&gw.url(), false, rec.clone()).await;
    opt_into_logs(&session).await;
    #[allow(deprecated)]
    session
        .subscribe(rmcp::model::SubscribeRequestParams::new("ev://greeting"))
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    call(&session, "ev.echo.v1", json!({"message": "via nats"}))
        .await
        .unwrap();
    let log = wait_for(
        Duration::from_secs(2),
        "the echo event as a log message",
        || rec.logs.lock().unwrap().first().cloned(),
    )
    .await;
    assert_eq!(log["type"], ECHOED);
    assert_eq!(log["data"]["message"], "via nats");
    call(&session, "ev.touch.v1", json!({"message": ""}))
        .await
        .unwrap();
    wait_for(Duration::from_secs(2), "resources/updated", || {
        rec.updated.lock().unwrap().first().cloned()
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(4));
    // Acked right after handling; the ack may trail the notification.
    let s = wait_stats(&gw, Duration::from_secs(2), "2 acked", |s| s.acked == 2).await;
    assert_eq!(
        (s.source, s.streams_open, s.handled),
        ("nats", 0, 2),
        "{s:?}"
    );

    // /ready shows the NATS state.
    let ready: serde_json::Value = gw.ready().await;
    assert_eq!(ready["events"]["nats"], "connected", "{ready}");
}

#[tokio::test]
async fn replay_after_gateway_restart_delivers_each_event_once() {
    let nats = Nats::start().await;
    let yaml = config_yaml(&[], &nats_yaml(&nats.url(), "replay"));
    let js = async_nats::jetstream::new(nats.client().await);

    let gw = start_gateway(&yaml).await;
    connected(&gw).await;
    for i in 0..5 {
        js_publish(&js, structured(&format!("before-{i}"))).await;
    }
    wait_stats(&gw, Duration::from_secs(5), "5 handled", |s| s.acked == 5).await;
    gw.shutdown().await;

    // While the gateway is down.
    let ids: Vec<String> = (0..100).map(|i| format!("down-{i}")).collect();
    for id in &ids {
        js_publish(&js, structured(id)).await;
    }

    let gw = start_gateway(&yaml).await;
    wait_stats(&gw, Duration::from_secs(15), "100 handled", |s| {
        s.handled >= 100
    })
    .await;
    // Longer than ack_wait: anything unacked would come back by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = gw.gateway.events().stats();
    assert_eq!((s.handled, s.duplicates, s.acked), (100, 0, 100), "{s:?}");
    let got = recent_ids(&gw);
    assert_eq!(got.len(), 100);
    assert_eq!(
        got.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
}

#[tokio::test]
async fn no_loss_across_a_nats_restart() {
    let mut nats = Nats::start().await;
    let yaml = config_yaml(&[], &nats_yaml(&nats.url(), "restart"));
    let gw = start_gateway(&yaml).await;
    connected(&gw).await;
    let mut published = Vec::new();
    {
        let js = async_nats::jetstream::new(nats.client().await);
        for i in 0..20 {
            let id = format!("first-{i}");
            js_publish(&js, structured(&id)).await;
            published.push(id);
        }
    }
    wait_stats(&gw, Duration::from_secs(5), "20 handled", |s| s.acked == 20).await;

    nats.stop();
    wait_stats(&gw, Duration::from_secs(10), "NATS seen down", |s| {
        s.nats != NatsState::Connected
    })
    .await;
    nats.restart().await;
    let js = async_nats::jetstream::new(nats.client().await);
    for i in 0..20 {
        let id = format!("second-{i}");
        js_publish(&js, structured(&id)).await;
        published.push(id);
    }
    let s = wait_stats(&gw, Duration::from_secs(15), "40 handled", |s| {
        s.handled >= 40
    })
    .await;
    assert!(s.nats_connects >= 2, "{s:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gw.gateway.events().stats().handled, 40);
    assert_eq!(recent_ids(&gw), published, "every event, in order");
}

#[tokio::test]
async fn duplicates_are_suppressed_by_source_and_id() {
    let nats = Nats::start().await;
    let yaml = config_yaml(&[], &nats_yaml(&nats.url(), "dups"));
    let gw = start_gateway(&yaml).await;
    connected(&gw).await;
    let js = async_nats::jetstream::new(nats.client().await);
    // Stored three times (no Nats-Msg-Id), handled once.
    for _ in 0..3 {
        js_publish(&js, structured("same")).await;
    }
    js_publish(&js, structured("other")).await;
    wait_stats(&gw, Duration::from_secs(5), "4 received", |s| s.acked == 4).await;
    let s = gw.gateway.events().stats();
    assert_eq!((s.handled, s.duplicates), (2, 2), "{s:?}");
    assert_eq!(recent_ids(&gw), ["same", "other"]);
    // The same figures on /metrics, with the consumer's state and lag.
    let m = gw.metrics().await;
    for line in [
        "mcp_gateway_events_handled_total 2",
        "mcp_gateway_events_duplicates_total 2",
        "mcp_gateway_events_nats_connected 1",
        "mcp_gateway_events_nats_consumer_pending 0",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing from:\n{m}");
    }
}

#[tokio::test]
async fn malformed_events_are_dead_lettered_and_do_not_stop_the_consumer() {
    let nats = Nats::start().await;
    let yaml = config_yaml(&[], &nats_yaml(&nats.url(), "bad"));
    let gw = start_gateway(&yaml).await;
    connected(&gw).await;
    let client = nats.client().await;
    let mut dlq = client.subscribe(DLQ).await.unwrap();
    client.flush().await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    js_publish(&js, b"{not json".to_vec()).await;
    js_publish(
        &js,
        br#"{"specversion":"1.0","source":"/test","type":"t"}"#.to_vec(),
    )
    .await;
    // Binary mode without ce-specversion.
    let mut h = HeaderMap::new();
    h.insert("ce-id", "b1");
    h.insert("ce-source", "/test");
    h.insert("ce-type", "t");
    js.publish_with_headers(SUBJECT, h, "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A good binary-mode event after them still gets through.
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "good"),
        ("ce-source", "/test"),
        ("ce-type", "t"),
        ("content-type", "application/json"),
    ] {
        h.insert(k, v);
    }
    js.publish_with_headers(SUBJECT, h, r#"{"ok":true}"#.into())
        .await
        .unwrap()
        .await
        .unwrap();

    let s = wait_stats(&gw, Duration::from_secs(5), "4 acked", |s| s.acked == 4).await;
    assert_eq!(
        (s.malformed, s.dead_lettered, s.handled),
        (3, 3, 1),
        "{s:?}"
    );
    assert_eq!(recent_ids(&gw), ["good"]);
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(2), dlq.next())
            .await
            .expect("dead letter within 2s")
            .unwrap();
        let h = m.headers.expect("dead letters carry headers");
        assert_eq!(
            h.get("Mcp-Gateway-Original-Subject").unwrap().as_str(),
            SUBJECT
        );
        reasons.push(
            h.get("Mcp-Gateway-Dead-Letter-Reason")
                .unwrap()
                .as_str()
                .to_string(),
        );
    }
    assert!(reasons[0].starts_with("invalid JSON"), "{reasons:?}");
    assert_eq!(reasons[1], "missing required attribute id");
    assert_eq!(reasons[2], "missing required attribute specversion");
}

#[tokio::test]
async fn nats_down_keeps_tools_working_and_reconnects() {
    let port = free_port().await;
    let provider = spawn_kit(std::sync::Arc::new(KitProbe::default())).await;
    let url = format!("nats://127.0.0.1:{port}");
    let yaml = config_yaml(&[("kit", provider.addr())], &nats_yaml(&url, "late"));
    let gw = start_gateway(&yaml).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    let r = call(&client, "kit.echo.v1", json!({"message": "still here"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "still here");
    let s = wait_stats(&gw, Duration::from_secs(5), "NATS disconnected", |s| {
        s.nats == NatsState::Disconnected
    })
    .await;
    assert!(s.nats_error.is_some(), "{s:?}");
    let ready: serde_json::Value = gw.ready().await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["events"]["nats"], "disconnected", "{ready}");

    let nats = Nats::start_on(port).await;
    connected(&gw).await;
    let js = async_nats::jetstream::new(nats.client().await);
    js_publish(&js, structured("late")).await;
    wait_stats(&gw, Duration::from_secs(5), "the event", |s| s.handled == 1).await;
}

#[tokio::test]
async fn audit_records_are_also_published_to_jetstream() {
    let nats = Nats::start().await;
    let provider = spawn_kit(std::sync::Arc::new(KitProbe::default())).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}audit:\n  path: {}\n  jetstream:\n    subject: test.audit\n    stream: TEST_AUDIT\n",
        nats_yaml(&nats.url(), "audit"),
        dir.path().join("audit.jsonl").display()
    );
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &extra)).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    call(&client, "kit.echo.v1", serde_json::json!({"message": "a"}))
        .await
        .unwrap();
    call(&client, "kit.fail.v1", serde_json::json!({"message": "b"}))
        .await
        .unwrap();

    let js = async_nats::jetstream::new(nats.client().await);
    let stored = eventually(Duration::from_secs(5), || {
        let js = js.clone();
        async move {
            let mut s = js.get_stream("TEST_AUDIT").await.ok()?;
            (s.info().await.ok()?.state.messages == 2).then_some(s)
        }
    })
    .await
    .expect("two audit records in the stream");
    let first: serde_json::Value =
        serde_json::from_slice(&stored.get_raw_message(1).await.unwrap().payload).unwrap();
    let second: serde_json::Value =
        serde_json::from_slice(&stored.get_raw_message(2).await.unwrap().payload).unwrap();
    assert_eq!(
        (first["item"].as_str(), first["outcome"].as_str()),
        (Some("kit.echo.v1"), Some("ok"))
    );
    assert_eq!(
        (second["item"].as_str(), second["outcome"].as_str()),
        (Some("kit.fail.v1"), Some("tool_error"))
    );
    // The file has the same records.
    let file = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 2);
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[test]
fn audit_jetstream_without_nats_is_a_config_error() {
    let err = mcp_gateway::config::Config::parse("audit:\n  jetstream: {}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("audit.jetstream: needs events.nats"), "{err}");
}
