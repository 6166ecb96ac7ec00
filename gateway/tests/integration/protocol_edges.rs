//! Malformed JSON-RPC over HTTP gets JSON-RPC's answers (D5–D7): `-32700`
//! for what does not parse, `-32600` for what is not one request, both with
//! HTTP 400 on either revision; `-32602` naming the field for mistyped
//! params of a real method, with the request's id.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// A raw POST; `session` adds the 2025-11-25 session headers, otherwise the
/// 2026-07-28 ones.
async fn post(url: &str, body: Vec<u8>, session: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    req = match session {
        Some(s) => req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25"),
        None => {
            // The method header must match the body's method, when it has one.
            let method = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|b| b["method"].as_str().map(String::from))
                .unwrap_or_else(|| "tools/call".into());
            req.header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", method)
        }
    };
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn session(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    let id = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _) = post(url, serde_json::to_vec(&note).unwrap(), Some(&id)).await;
    assert_eq!(status, 202);
    id
}

fn deep(levels: usize) -> Vec<u8> {
    let nested = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"kit.echo.v1","arguments":{{"a":{nested}}}}}}}"#).into_bytes()
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_json_rpc_error_on_both_revisions() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], "")).await;
    let url = gw.url();
    let s = session(&url).await;
    let cases: Vec<(&str, Vec<u8>, i64)> = vec![
        ("not JSON", b"{bad".to_vec(), -32700),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffing\"}".to_vec(),
            -32700,
        ),
        ("nested 128 deep", deep(128), -32700),
        ("empty batch", b"[]".to_vec(), -32600),
        (
            "batch",
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#.to_vec(),
            -32600,
        ),
        (
            "jsonrpc 1.0",
            br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.to_vec(),
            -32600,
        ),
        (
            "id null",
            br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#.to_vec(),
            -32600,
        ),
    ];
    for (what, body, code) in cases {
        for rev in [None, Some(s.as_str())] {
            let (status, answer) = post(&url, body.clone(), rev).await;
            assert_eq!(status, 400, "{what} ({rev:?}): {answer}");
            assert_eq!(answer["error"]["code"], code, "{what} ({rev:?}): {answer}");
            assert_eq!(answer["id"], Value::Null, "{what}");
        }
    }
    // Nested, but within the limit: served.
    let (status, answer) = post(&url, deep(20), Some(&s)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["result"].is_object(), "{answer}");
    gw.shutdown().await;
}

#[tokio::test]
async fn mistyped_params_of_real_methods_answer_32602_naming_the_field() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], "")).await;
    let url = gw.url();
    let s = session(&url).await;
    let cases = [
        (
            "tools/call",
            json!({"name": "kit.echo.v1", "arguments": [1]}),
            "`arguments` must be an object",
        ),
        ("tools/call", json!({"name": 1}), "`name` must be a string"),
        ("tools/call", json!({}), "`name` is required"),
        (
            "prompts/get",
            json!({"name": "kit.greet", "arguments": {"name": 5}}),
            "`arguments.name` must be a string",
        ),
        (
            "resources/read",
            json!({"uri": ["kit://readme"]}),
            "`uri` must be a string",
        ),
        (
            "logging/setLevel",
            json!({"level": "loud"}),
            "`level` must be one of",
        ),
    ];
    for (method, params, rule) in cases {
        for rev in [None, Some(s.as_str())] {
            let mut params = params.clone();
            if rev.is_none() {
                params["_meta"] = json!({
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
                    "io.modelcontextprotocol/clientCapabilities": {}
                });
            }
            let body = json!({"jsonrpc": "2.0", "id": 41, "method": method, "params": params});
            let (status, answer) = post(&url, serde_json::to_vec(&body).unwrap(), rev).await;
            if rev.is_none() && method == "logging/setLevel" {
                // 2026-07-28 has no such method: unknown, whatever its params.
                assert_eq!(
                    (status, &answer["error"]["code"]),
                    (404, &json!(-32601)),
                    "{answer}"
                );
                continue;
            }
            assert_eq!(status, 200, "{method} ({rev:?}): {answer}");
            assert_eq!(answer["id"], 41, "{answer}");
            assert_eq!(
                answer["error"]["code"], -32602,
                "{method} ({rev:?}): {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with(&format!("invalid params for {method}: {rule}")),
                "{message}"
            );
        }
    }
    gw.shutdown().await;
}

/// D7: a body whose chunked encoding is broken is the client's fault.
#[tokio::test]
async fn a_malformed_chunked_body_gets_400() {
    let gw = start_gateway(&config_yaml(&[], "")).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(
        b"POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
          accept: application/json, text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
          zz\r\n{}\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("-32700"), "{answer}");
    gw.shutdown().await;
}
