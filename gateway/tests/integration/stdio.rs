//! The stdio front door against the gateway binary, byte for byte.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::*;

/// `mcp-gateway --stdio` with every pipe ours.
fn gateway_stdio(config: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(gateway_bin())
        .arg("--stdio")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Writes `input`, closes stdin, and waits for the gateway to exit: its
/// answers, one per stdout line, and its output.
async fn feed_to_eof(
    child: tokio::process::Child,
    mut stdin: tokio::process::ChildStdin,
    input: &[u8],
) -> (Vec<Value>, std::process::Output) {
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the gateway exits at EOF")
        .unwrap();
    let answers = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (answers, out)
}

fn line(v: Value) -> Vec<u8> {
    let mut b = serde_json::to_vec(&v).unwrap();
    b.push(b'\n');
    b
}

/// D12: once the parent stops reading stdout, no answer can reach it: the
/// gateway ends the session, cancels what is in flight and exits, though
/// stdin is still open.
#[tokio::test]
async fn a_closed_stdout_ends_the_session_and_cancels_calls_in_flight() {
    let probe = Arc::new(KitProbe::default());
    let provider = spawn_kit(probe.clone()).await;
    let cfg = temp_config(&config_yaml(&[("kit", provider.addr())], ""));
    let mut child = gateway_stdio(cfg.path());
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    stdin
        .write_all(&line(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        ))
        .await
        .unwrap();
    let first = out.next_line().await.unwrap().unwrap();
    assert!(first.contains("\"id\":0"), "{first}");
    stdin
        .write_all(&line(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ))
        .await
        .unwrap();
    let started = probe.slow_started.notified();
    let slow = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "kit.slow.v1", "arguments": {"ms": 60000}}});
    stdin.write_all(&line(slow)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), started)
        .await
        .expect("the slow call started");

    drop(out); // the parent stops reading
    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "kit.echo.v1", "arguments": {"message": "lost"}}});
    stdin.write_all(&line(echo)).await.unwrap();

    let Ok(status) = tokio::time::timeout(Duration::from_secs(10), child.wait()).await else {
        child.start_kill().unwrap();
        let out = child.wait_with_output().await.unwrap();
        panic!(
            "the gateway still runs with nobody reading its answers: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let status = status.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(probe.slow_cancelled.load(Ordering::SeqCst));
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut err)
        .await
        .unwrap();
    assert!(err.contains("stdout is closed"), "{err}");
    drop(stdin);
}

/// D13: a malformed line is answered and logged, not dropped; a last
/// request without a trailing newline is still served at EOF.
#[tokio::test]
async fn malformed_lines_are_answered_and_a_last_line_without_newline_counts() {
    let provider = spawn_kit(Arc::default()).await;
    let cfg = temp_config(&config_yaml(&[("kit", provider.addr())], ""));
    let mut child = gateway_stdio(cfg.path());
    let stdin = child.stdin.take().unwrap();
    let mut input = line(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}}),
    );
    input.extend(line(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ));
    input.extend(b"{bad\n[]\n");
    input.extend(line(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "kit.echo.v1", "arguments": [1]}}),
    ));
    // The last one has no newline.
    input.extend(br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"kit.echo.v1","arguments":{"message":"last"}}}"#);
    let (answers, out) = feed_to_eof(child, stdin, &input).await;
    let by_id = |id: Value| answers.iter().find(|a| a["id"] == id).cloned();
    let errors: Vec<i64> = answers
        .iter()
        .filter(|a| a["id"].is_null())
        .filter_map(|a| a["error"]["code"].as_i64())
        .collect();
    assert_eq!(errors, [-32700, -32600], "{answers:#?}");
    let bad_params = by_id(json!(5)).expect("an answer to id 5");
    assert_eq!(bad_params["error"]["code"], -32602, "{bad_params}");
    assert!(
        bad_params["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`arguments` must be an object"),
        "{bad_params}"
    );
    let last = by_id(json!(9)).expect("the last line without a newline is served");
    assert_eq!(last["result"]["content"][0]["text"], "last", "{last}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("malformed message on stdin").count(),
        3,
        "{err}"
    );
}

/// `ping` is answered before `initialize`; a line over
/// `limits.max_payload_bytes` is answered with -32600 and skipped whole, and
/// the lines after it are served.
#[tokio::test]
async fn ping_before_initialize_and_oversized_lines() {
    let provider = spawn_kit(Arc::default()).await;
    let cfg = temp_config(&config_yaml(
        &[("kit", provider.addr())],
        "limits:\n  max_payload_bytes: 4096\n",
    ));
    let mut child = gateway_stdio(cfg.path());
    let stdin = child.stdin.take().unwrap();
    let mut input = line(json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}));
    input.extend(line(
        json!({"jsonrpc": "2.0", "id": "big", "method": "tools/call",
        "params": {"name": "kit.echo.v1", "arguments": {"message": "x".repeat(10_000)}}}),
    ));
    input.extend(line(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}}),
    ));
    input.extend(line(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "kit.echo.v1", "arguments": {"message": "after"}}}),
    ));
    let (answers, _) = feed_to_eof(child, stdin, &input).await;
    let by_id = |id: Value| answers.iter().find(|a| a["id"] == id).cloned();
    assert_eq!(
        by_id(json!("p")).expect("ping answered")["result"],
        json!({})
    );
    let too_long: Vec<&Value> = answers
        .iter()
        .filter(|a| a["id"].is_null() && a["error"]["code"] == -32600)
        .collect();
    assert_eq!(too_long.len(), 1, "{answers:#?}");
    assert!(
        too_long[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_payload_bytes"),
        "{answers:#?}"
    );
    assert!(by_id(json!("big")).is_none(), "the long line is not served");
    let after = by_id(json!(1)).expect("the line after it is served");
    assert_eq!(after["result"]["content"][0]["text"], "after", "{after}");
}
