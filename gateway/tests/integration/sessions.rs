//! 2025-11-25 sessions over HTTP: bound to the principal that opened them
//! (D1), capped (D3), and counted while they hold memory (D11).

use std::{sync::Arc, time::Duration};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::*;

/// One JSON-RPC POST to `/mcp` as a 2025-11-25 client; the body as JSON (or
/// the last SSE data line), or `Null` when there is none.
async fn post(
    url: &str,
    key: Option<&str>,
    session: Option<&str>,
    body: Value,
) -> (u16, HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let resp = req.json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = json_or_last_event(&text);
    (status, headers, json)
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
}

/// `initialize` alone (no `notifications/initialized`): the session id, or
/// the refusal's status and body.
async fn open(url: &str, key: Option<&str>) -> Result<String, (u16, Value)> {
    let (status, headers, body) = post(url, key, None, initialize_body()).await;
    match headers.get("mcp-session-id") {
        Some(id) if status == 200 => Ok(id.to_str().unwrap().to_string()),
        _ => Err((status, body)),
    }
}

/// A full handshake: `initialize` and `notifications/initialized`.
async fn handshake(url: &str, key: Option<&str>) -> String {
    let id = open(url, key).await.expect("session opens");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(url, key, Some(&id), note).await;
    assert_eq!(status, 202);
    id
}

fn list(id: u32) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

async fn send(method: reqwest::Method, url: &str, key: &str, session: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    // A GET that succeeds is an open event stream: do not wait for its end.
    let body = if status == 200 {
        String::new()
    } else {
        resp.text().await.unwrap()
    };
    (status, body)
}

fn keys_yaml(names: &[&str]) -> String {
    let mut y = String::from("auth:\n  mode: api_key\n  api_keys:\n");
    for n in names {
        y.push_str(&format!(
            "    - {{ principal: {n}, sha256: \"{}\" }}\n",
            sha256_hex(&format!("{n}-key"))
        ));
    }
    y
}

#[tokio::test]
async fn a_session_is_usable_only_by_the_principal_that_opened_it() {
    let provider = spawn_kit(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let extra = format!(
        "{}audit: {{ path: {} }}\n",
        keys_yaml(&["alice", "bob"]),
        audit.display()
    );
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &extra)).await;
    let url = gw.url();
    let (alice, bob) = (Some("alice-key"), Some("bob-key"));
    let s = handshake(&url, alice).await;
    assert_eq!(s.len(), 64, "a 256-bit id: {s}");
    assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));

    // Bob presenting Alice's session gets exactly what an unknown one gets.
    let made_up = "0".repeat(64);
    let (st, _, foreign) = post(&url, bob, Some(&s), list(1)).await;
    let (st_unknown, _, unknown) = post(&url, bob, Some(&made_up), list(1)).await;
    assert_eq!((st, &foreign), (st_unknown, &unknown));
    assert_eq!(st, 404);
    assert_eq!(foreign["error"]["code"], -32001, "{foreign}");
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let theirs = send(method.clone(), &url, "bob-key", &s).await;
        let nobodys = send(method.clone(), &url, "bob-key", &made_up).await;
        assert_eq!(theirs, nobodys, "{method}");
        assert_eq!(theirs.0, 404, "{method}");
    }

    // Alice's session survived Bob's DELETE, and is hers alone to use.
    let (st, _, body) = post(&url, alice, Some(&s), list(2)).await;
    assert_eq!(st, 200, "{body}");
    assert!(body["result"]["tools"].is_array(), "{body}");
    let (st, _) = send(reqwest::Method::GET, &url, "alice-key", &s).await;
    assert_eq!(st, 200, "her event stream");

    // Providers and the audit log get a reference, never the id.
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "kit.whoami.v1", "arguments": {"message": ""}}});
    let (_, _, r) = post(&url, alice, Some(&s), call).await;
    let seen = r["result"]["structuredContent"]["session"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(seen.starts_with("s-") && seen.len() == 18, "{seen}");
    let audit = std::fs::read_to_string(&audit).unwrap();
    assert!(audit.contains(&seen), "{audit}");
    assert!(!audit.contains(&s), "the session id is in the audit log");

    // Alice may end it; then it is gone for her too.
    assert_eq!(
        send(reqwest::Method::DELETE, &url, "alice-key", &s).await.0,
        204
    );
    assert_eq!(post(&url, alice, Some(&s), list(4)).await.0, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn sessions_are_capped_per_principal_and_in_total() {
    let extra = format!(
        "{}limits:\n  max_sessions: 3\n  max_sessions_per_client: 2\n",
        keys_yaml(&["alice", "bob", "carol"])
    );
    let gw = start_gateway(&config_yaml(&[], &extra)).await;
    let url = gw.url();
    let a1 = open(&url, Some("alice-key")).await.unwrap();
    open(&url, Some("alice-key")).await.unwrap();
    let (status, body) = open(&url, Some("alice-key")).await.unwrap_err();
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], -32000);
    assert_eq!(
        body["error"]["message"],
        "principal 'alice' holds its maximum of 2 sessions (limits.max_sessions_per_client)"
    );
    open(&url, Some("bob-key")).await.unwrap();
    let (status, body) = open(&url, Some("carol-key")).await.unwrap_err();
    assert_eq!(status, 503);
    assert_eq!(
        body["error"]["message"],
        "the gateway holds its maximum of 3 sessions (limits.max_sessions)"
    );
    // Stateless requests open no session, so the caps do not apply to them.
    let (status, _, r) = crate::failures::raw_2026(
        &url,
        "tools/list",
        None,
        json!({}),
        &[("authorization", "Bearer carol-key")],
    )
    .await;
    assert_eq!(status, 200, "{r}");
    // Ending one makes room.
    assert_eq!(
        send(reqwest::Method::DELETE, &url, "alice-key", &a1)
            .await
            .0,
        204
    );
    open(&url, Some("alice-key")).await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn without_auth_the_cap_is_per_client_address() {
    let gw = start_gateway(&config_yaml(&[], "limits:\n  max_sessions_per_client: 1\n")).await;
    open(&gw.url(), None).await.unwrap();
    let (status, body) = open(&gw.url(), None).await.unwrap_err();
    assert_eq!(status, 503);
    assert_eq!(
        body["error"]["message"],
        "address 127.0.0.1 holds its maximum of 1 sessions (limits.max_sessions_per_client)"
    );
    gw.shutdown().await;
}

/// Sessions that sent `initialize` but not `notifications/initialized` hold
/// memory too: `/ready` and `mcp_gateway_sessions` count them, and they end
/// after `session_idle_timeout` like any other.
#[tokio::test]
async fn half_open_sessions_are_counted_and_expire() {
    let gw = start_gateway(&config_yaml(&[], "limits:\n  session_idle_timeout: 1s\n")).await;
    let url = gw.url();
    for _ in 0..3 {
        open(&url, None).await.unwrap();
    }
    let full = handshake(&url, None).await;
    assert_eq!(gw.ready().await["sessions"], 4);
    assert!(
        gw.metrics().await.contains("mcp_gateway_sessions 4"),
        "{}",
        gw.metrics().await
    );
    let gone = eventually(Duration::from_secs(10), || async {
        (gw.ready().await["sessions"] == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "idle sessions did not expire");
    assert_eq!(post(&url, None, Some(&full), list(1)).await.0, 404);
    gw.shutdown().await;
}
