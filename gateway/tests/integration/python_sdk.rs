//! The official Python MCP SDK (pinned in gateway/tests/python/) against the
//! gateway binary and the real hello-rs: it lists, calls and reads in the
//! 2025-11-25 handshake and in whatever it negotiates by itself, and closes
//! without a warning. `make test` installs the SDK; missing it is a failure.

use std::{path::Path, time::Duration};

use serde_json::Value;

use crate::common::*;

fn python() -> std::path::PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/.venv/bin/python");
    assert!(
        bin.exists(),
        "the Python MCP SDK is not installed ({} is missing): run `make test-deps`",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn python_sdk_lists_calls_reads_and_closes_cleanly() {
    let (_hello, gateway, _config, port) = gateway_in_front_of_hello().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py");
    let run = tokio::process::Command::new(python())
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .args(["legacy", "auto"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the Python client finishes within 60s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs = stop_and_logs(gateway).await;
    assert!(out.status.success(), "{stdout}\n{stderr}\ngateway:\n{logs}");
    let runs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(runs.len(), 2, "{stdout}");
    for (run, protocol) in runs.iter().zip(["2025-11-25", "2026-07-28"]) {
        assert_eq!(run["protocol"], protocol, "{run}");
        let tools = run["tools"].as_array().unwrap();
        assert!(tools.iter().any(|t| t == "hello-rs.sum.v1"), "{run}");
        assert_eq!(run["sum_text"], serde_json::json!(["6"]), "{run}");
        assert_eq!(run["sum_error"], false, "{run}");
        assert_eq!(run["greeting"], serde_json::json!(["Hello, MCP"]), "{run}");
        // "Session termination failed: 202" was one.
        assert_eq!(run["warnings"], serde_json::json!([]), "{run}");
    }
    assert!(!stderr.contains("WARNING"), "{stderr}");
    // A client that closes is normal: nothing at ERROR for it.
    assert!(!logs.contains("\"level\":\"ERROR\""), "{logs}");
}
