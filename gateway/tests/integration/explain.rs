//! Failures that explain themselves: a provider without the health service
//! and a managed provider that exits at once each get a `/ready` entry and
//! log lines saying what is wrong and what the gateway does about it; a
//! managed provider that starts normally logs no warning at all.

use std::{net::SocketAddr, time::Duration};

use serde_json::Value;

use crate::common::*;

/// The binary's `/ready` entry for `provider` once `pred` holds for it.
async fn entry_when(port: u16, provider: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let url = format!("http://127.0.0.1:{port}/ready");
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < end {
        if let Ok(r) = reqwest::get(&url).await
            && let Ok(ready) = r.json::<Value>().await
            && let Some(p) = ready["providers"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == provider))
        {
            if pred(p) {
                return p.clone();
            }
            last = p.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/ready never showed it; last: {last}")
}

/// The JSON lines of `logs` at `level`.
fn lines_at<'a>(logs: &'a str, level: &str) -> Vec<&'a str> {
    logs.lines()
        .filter(|l| l.contains(&format!("\"level\":\"{level}\"")))
        .collect()
}

#[tokio::test]
async fn a_provider_without_the_health_service_is_named_as_such() {
    // A real gRPC server with no service at all: every method is Unimplemented.
    let addr: SocketAddr = ([127, 0, 0, 1], free_port().await).into();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::default())
            .serve(addr),
    );
    // Listening before the gateway looks: its first error is the one meant.
    eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(addr).await.ok()
    })
    .await
    .expect("the gRPC server listens");
    let port = free_port().await;
    let yaml = config_yaml(
        &[("nohealth", addr)],
        &format!("listen: 127.0.0.1:{port}\n"),
    );
    let (gateway, _config, _) = gateway_process(&yaml, port, &[]).await;
    let p = entry_when(port, "nohealth", |p| {
        p["state"] == "down"
            && p["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("health"))
    })
    .await;
    let err = p["last_error"].as_str().unwrap();
    assert!(err.contains("grpc.health.v1.Health/Check"), "{err}");
    assert!(err.contains("docs/provider-contract.md"), "{err}");
    // Several retries pass; it is said once, not once per retry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let logs = stop_and_logs(gateway).await;
    server.abort();
    let warned: Vec<_> = lines_at(&logs, "WARN")
        .into_iter()
        .filter(|l| l.contains("nohealth"))
        .collect();
    assert_eq!(warned.len(), 1, "{logs}");
    let w = warned[0];
    assert!(w.contains("grpc.health.v1.Health/Check"), "{w}");
    assert!(w.contains("discovery retries it"), "{w}");
}

#[tokio::test]
async fn a_managed_provider_that_exits_at_once_shows_why_and_what_is_next() {
    let provider: SocketAddr = ([127, 0, 0, 1], free_port().await).into();
    let port = free_port().await;
    let yaml = format!(
        "listen: 127.0.0.1:{port}\n\
         discovery:\n  retry_interval: 200ms\n\
         providers:\n  - name: crashy\n    endpoint: http://{provider}\n\
         \x20   launch:\n      command: sh\n      args: [\"-c\", \"echo 'crashy: cannot read its settings' >&2; exit 3\"]\n\
         \x20     restart_max: 1s\n"
    );
    let (gateway, _config, _) = gateway_process(&yaml, port, &[]).await;
    let p = entry_when(port, "crashy", |p| {
        p["process"]["restarts"].as_u64().is_some_and(|n| n >= 2)
            && p["process"]["state"] == "restarting"
    })
    .await;
    assert_eq!(p["state"], "down", "{p}");
    let proc = &p["process"];
    assert_eq!(proc["last_exit"], "exit status: 3", "{p}");
    // restart_max plus its jitter, at most as much again.
    assert!(
        proc["restart_in_ms"].as_u64().is_some_and(|ms| ms <= 2000),
        "{p}"
    );
    assert_eq!(
        proc["stderr"].as_array().unwrap().last().unwrap(),
        "crashy: cannot read its settings",
        "{p}"
    );
    let err = p["last_error"].as_str().unwrap();
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("starting it again in"), "{err}");
    assert!(err.contains("cannot read its settings"), "{err}");

    let logs = stop_and_logs(gateway).await;
    let exits: Vec<_> = lines_at(&logs, "WARN")
        .into_iter()
        .filter(|l| l.contains("provider process exited"))
        .collect();
    assert!(exits.len() >= 2, "{logs}");
    let line: Value = serde_json::from_str(exits[1]).unwrap();
    assert_eq!(line["status"], "exit status: 3", "{line}");
    assert_eq!(line["restarts"], 1, "{line}");
    assert!(line["restart_in"].is_string(), "{line}");
    assert!(
        line["stderr"]
            .as_str()
            .unwrap()
            .contains("cannot read its settings"),
        "{line}"
    );
    // The process's own exit says it all: no "unavailable" on top of it.
    assert!(!logs.contains("provider unavailable"), "{logs}");
}

#[tokio::test]
async fn a_managed_provider_starts_without_a_warning_and_its_json_logs_stay_json() {
    let provider: SocketAddr = ([127, 0, 0, 1], free_port().await).into();
    let port = free_port().await;
    let yaml = format!(
        "listen: 127.0.0.1:{port}\n\
         discovery:\n  retry_interval: 200ms\n\
         providers:\n  - name: hello-rs\n    endpoint: http://{provider}\n\
         \x20   launch:\n      command: {}\n      args: [\"--listen\", \"{provider}\"]\n",
        hello_rs_bin().display()
    );
    let (gateway, _config, _) = gateway_process(&yaml, port, &[]).await;
    let p = entry_when(port, "hello-rs", |p| p["state"] == "ready").await;
    assert_eq!(p["process"]["state"], "running", "{p}");
    assert!(p["process"]["pid"].is_u64(), "{p}");
    let logs = stop_and_logs(gateway).await;
    assert!(lines_at(&logs, "WARN").is_empty(), "{logs}");
    assert!(lines_at(&logs, "ERROR").is_empty(), "{logs}");
    // hello-rs logs JSON lines: they come through as fields, not as a string.
    let forwarded: Vec<Value> = logs
        .lines()
        .filter(|l| l.contains("\"target\":\"provider\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!forwarded.is_empty(), "{logs}");
    for line in &forwarded {
        assert!(line["fields"].is_object(), "{line}");
        assert!(
            !line["message"].as_str().unwrap().starts_with('{'),
            "{line}"
        );
        assert_eq!(line["provider"], "hello-rs", "{line}");
    }
}
