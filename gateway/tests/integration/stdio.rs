//! The stdio front door against the gateway binary, byte for byte.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::*;

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
    let mut child = tokio::process::Command::new(gateway_bin())
        .arg("--stdio")
        .arg("--config")
        .arg(cfg.path())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
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
