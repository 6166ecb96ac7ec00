//! Streamable HTTP on both revisions against the gateway binary: a
//! 2026-07-28 POST and a 2025-11-25 session answer the same call alike;
//! header, `_meta`, `Host` and `Origin` rules; progress as SSE; a
//! stateless call cancelled when its client goes away; a session's stream
//! primed and resumable.

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
            "io.modelcontextprotocol/clientInfo": {"name": "stateless-test", "version": "1"},
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
        ("x-correlation-id", "stateless-test"),
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

/// Opens a 2025-11-25 session with raw HTTP; its id.
async fn open_session(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let h = post_headers(&[]);
    let resp = reqwest::Client::new()
        .post(url)
        .headers(header_map(&h))
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["protocolVersion"], "2025-11-25", "{body}");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let h = post_headers(&[("mcp-session-id", &id)]);
    assert_eq!(post(url, &note, &h).await.0, 202);
    id
}

/// The headers of a POST: JSON in, JSON or SSE out, and `extra`.
fn post_headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (
            "accept".to_string(),
            "application/json, text/event-stream".to_string(),
        ),
    ];
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    h
}

fn header_map(h: &[(String, String)]) -> reqwest::header::HeaderMap {
    h.iter()
        .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
        .collect()
}

/// Results, tool errors and protocol errors: the same call as a 2026-07-28
/// POST and inside a session gets the same answer (2026-07-28 adds
/// `resultType`), as JSON.
#[tokio::test]
async fn a_stateless_call_and_a_session_call_answer_alike() {
    init();
    let provider = spawn_kit(Arc::default()).await;
    let (child, _cfg, port) = gateway_for(&provider).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let session = open_session(&url).await;
    let in_session = post_headers(&[
        ("mcp-session-id", &session),
        ("mcp-protocol-version", "2025-11-25"),
        ("x-correlation-id", "stateless-test"),
    ]);
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
    let mut answers = Vec::new();
    for (i, (name, arguments)) in cases.iter().enumerate() {
        let id = if i % 2 == 0 {
            json!(i)
        } else {
            json!(format!("req-{i}"))
        };
        let body = call_body(id.clone(), name, arguments.clone());
        let (status, ct, text) = post(&url, &body, &headers_for(&body, &[])).await;
        assert_eq!(
            (status, ct.as_str()),
            (200, "application/json"),
            "{name}: {text}"
        );
        let mut stateless: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(stateless["id"], id, "the id comes back as sent");
        if stateless.get("result").is_some() {
            assert_eq!(stateless["result"]["resultType"], "complete", "{text}");
            stateless["result"]
                .as_object_mut()
                .unwrap()
                .remove("resultType");
        }
        let mut plain = body.clone();
        plain["params"].as_object_mut().unwrap().remove("_meta");
        let (status, ct, text) = post(&url, &plain, &in_session).await;
        assert_eq!(
            (status, ct.as_str()),
            (200, "application/json"),
            "{name}: {text}"
        );
        let sessioned: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(stateless, sessioned, "{name} {arguments:?}");
        answers.push(stateless);
    }
    // The cases cover each kind of answer (and are not all alike).
    assert_eq!(answers[0]["result"]["structuredContent"]["message"], "hi");
    assert_eq!(answers[2]["result"]["isError"], true);
    assert_eq!(answers[5]["error"]["code"], -32603);
    assert_eq!(answers[7]["error"]["code"], -32602);
    stop_and_logs(child).await;
}

/// A session's stream starts with a priming event (an id and a retry
/// hint); server messages sent while no stream was open are delivered when
/// one opens, and a reconnection with `Last-Event-ID` gets what came after.
#[tokio::test]
async fn a_session_stream_is_primed_and_resumable() {
    init();
    let provider = spawn_kit(Arc::default()).await;
    let (child, cfg, port) = gateway_for(&provider).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let session = open_session(&url).await;
    let stream_headers = [
        ("accept".to_string(), "text/event-stream".to_string()),
        ("mcp-session-id".into(), session.clone()),
    ];
    // A list change while no stream is open: the config gains a provider.
    let second = spawn_kit(Arc::default()).await;
    let yaml = config_yaml(
        &[("kit", provider.addr()), ("kit2", second.addr())],
        &format!("listen: 127.0.0.1:{port}\n"),
    );
    std::fs::write(cfg.path(), yaml).unwrap();
    nix_hup(&child);
    let first = read_events(&url, &stream_headers, 2).await;
    assert!(first[0].starts_with("id: 0\nretry: 3000"), "{first:?}");
    assert!(
        first[1].contains("notifications/tools/list_changed"),
        "{first:?}"
    );
    let id: u64 = first[1]
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .parse()
        .unwrap();
    // Reconnecting after the one before it replays it.
    let mut again = stream_headers.to_vec();
    again.push(("last-event-id".into(), (id - 1).to_string()));
    let replayed = read_events(&url, &again, 2).await;
    assert!(replayed[1].contains("list_changed"), "{replayed:?}");
    // A stream for somebody else's session id does not open.
    let mut wrong = stream_headers.to_vec();
    wrong[1].1 = "f".repeat(64);
    let resp = reqwest::Client::new()
        .get(&url)
        .headers(header_map(&wrong))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    stop_and_logs(child).await;
}

fn nix_hup(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The first `n` SSE events of a GET stream, as text.
async fn read_events(url: &str, headers: &[(String, String)], n: usize) -> Vec<String> {
    use futures::StreamExt;
    let resp = reqwest::Client::new()
        .get(url)
        .headers(header_map(headers))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let read = async {
        while text.matches("\n\n").count() < n {
            let chunk = body.next().await.expect("the stream stays open").unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("{n} events arrive: {text}"));
    text.split("\n\n")
        .filter(|e| !e.is_empty() && !e.starts_with(':'))
        .map(str::to_string)
        .collect()
}

/// Progress as SSE, SEP-2243 header mismatches, malformed `_meta`, a
/// browser `Origin` and a rebinding `Host`.
#[tokio::test]
async fn the_2026_07_28_path_applies_its_rules() {
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

    // A foreign browser origin is refused; a local one is served.
    let evil = headers_for(&echo, &[("origin", Some("https://evil.example"))]);
    assert_eq!(post(&url, &echo, &evil).await.0, 403);
    let local = headers_for(&echo, &[("origin", Some("http://localhost:3000"))]);
    let (status, _, text) = post(&url, &echo, &local).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""message":"hi""#), "{text}");

    // A Host that is not allowed (DNS rebinding) is refused.
    let rebinding = headers_for(&echo, &[("host", Some("attacker.example"))]);
    assert_eq!(post(&url, &echo, &rebinding).await.0, 403);

    stop_and_logs(child).await;
}

/// A client that goes away mid-call cancels the call at the provider, on
/// both revisions, and the audit log records it as cancelled.
#[tokio::test]
async fn a_call_whose_client_goes_away_is_cancelled_and_audited() {
    init();
    let probe = Arc::new(KitProbe::default());
    let provider = spawn_kit(probe.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let port = free_port().await;
    let yaml = config_yaml(
        &[("kit", provider.addr())],
        &format!(
            "listen: 127.0.0.1:{port}\naudit:\n  path: {}\n",
            audit.display()
        ),
    );
    let (child, _cfg, ready) = gateway_process(&yaml, port, &[]).await;
    assert!(ready.contains("ready"), "{ready}");
    let url = format!("http://127.0.0.1:{port}/mcp");
    let session = open_session(&url).await;
    for (i, stateless) in [true, false].into_iter().enumerate() {
        let mut body = call_body(json!(1), "kit.slow.v1", Some(json!({"ms": 60_000})));
        let headers = if stateless {
            headers_for(&body, &[("x-correlation-id", Some(&format!("gone-{i}")))])
        } else {
            body["params"].as_object_mut().unwrap().remove("_meta");
            post_headers(&[
                ("mcp-session-id", &session),
                ("x-correlation-id", &format!("gone-{i}")),
            ])
        };
        probe.slow_cancelled.store(false, Ordering::SeqCst);
        let started = probe.slow_started.notified();
        let cancelled = probe.cancelled_notify.notified();
        let url = url.clone();
        let request = tokio::spawn(async move { post(&url, &body, &headers).await });
        tokio::time::timeout(Duration::from_secs(10), started)
            .await
            .expect("the slow tool started");
        request.abort();
        tokio::time::timeout(Duration::from_secs(10), cancelled)
            .await
            .expect("the provider saw the call cancelled");
        assert!(probe.slow_cancelled.load(Ordering::SeqCst));
        let id = format!("gone-{i}");
        let record = eventually(Duration::from_secs(5), || {
            let audit = audit.clone();
            let id = id.clone();
            async move {
                let text = std::fs::read_to_string(&audit).unwrap_or_default();
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .find(|r| r["correlation_id"] == id.as_str())
            }
        })
        .await
        .unwrap_or_else(|| panic!("no audit record for {id}"));
        assert_eq!(record["outcome"], "error", "{record}");
        assert_eq!(record["error_kind"], "cancelled", "{record}");
        assert_eq!(record["item"], "kit.slow.v1", "{record}");
    }
    stop_and_logs(child).await;
}

/// Lists come in pages of `limits.list_page_size`, linked by `nextCursor`,
/// on both revisions; a cursor the gateway did not give out is -32602.
#[tokio::test]
async fn lists_come_in_pages_linked_by_cursors() {
    init();
    let provider = spawn_kit(Arc::default()).await;
    let port = free_port().await;
    let yaml = config_yaml(
        &[("kit", provider.addr())],
        &format!("listen: 127.0.0.1:{port}\nlimits:\n  list_page_size: 2\n"),
    );
    let (child, _cfg, ready) = gateway_process(&yaml, port, &[]).await;
    assert!(ready.contains("ready"), "{ready}");
    let url = format!("http://127.0.0.1:{port}/mcp");
    let session = open_session(&url).await;
    let in_session = post_headers(&[("mcp-session-id", &session)]);
    let list = |cursor: Option<String>, stateless: bool| {
        let url = url.clone();
        let in_session = in_session.clone();
        async move {
            let mut params = json!({});
            if let Some(c) = cursor {
                params["cursor"] = json!(c);
            }
            if stateless {
                params["_meta"] = json!({
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}
                });
            }
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params});
            let headers: Vec<(String, String)> = if stateless {
                post_headers(&[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/list"),
                ])
            } else {
                in_session.to_vec()
            };
            let (status, _, text) = post(&url, &body, &headers).await;
            assert_eq!(status, 200, "{text}");
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    for stateless in [false, true] {
        let mut names = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = list(cursor.clone(), stateless).await;
            let tools = page["result"]["tools"].as_array().unwrap().clone();
            assert!(tools.len() <= 2, "{page}");
            names.extend(
                tools
                    .iter()
                    .map(|t| t["name"].as_str().unwrap().to_string()),
            );
            pages += 1;
            match page["result"]["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert!(pages >= 3, "the kit has more than four tools: {names:?}");
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no tool twice: {names:?}");
        assert!(names.iter().any(|n| n == "kit.echo.v1"), "{names:?}");
        let bad = list(Some("not-a-cursor".into()), stateless).await;
        assert_eq!(bad["error"]["code"], -32602, "{bad}");
    }
    stop_and_logs(child).await;
}
