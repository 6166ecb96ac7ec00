//! Fault injection with real providers: hanging, flapping, overloaded, and
//! failing once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use mcp_provider_sdk::prelude::*;
use serde_json::{Value, json};

use crate::common::*;

/// `hang.v1` sleeps while `hang` is set (honouring cancellation), else answers.
/// `once-read.v1` / `once-write.v1` fail their first call with UNAVAILABLE.
fn faulty(hang: Arc<AtomicBool>, cancelled: Arc<AtomicU32>) -> ProviderBuilder {
    let reads = Arc::new(AtomicU32::new(0));
    let writes = Arc::new(AtomicU32::new(0));
    let fail_first = |n: Arc<AtomicU32>| {
        move |_a: Msg, _cx: Context| {
            let n = n.clone();
            async move {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(ToolError::status(tonic::Status::unavailable("warming up")));
                }
                Ok(ToolOutput::text("ok"))
            }
        }
    };
    Provider::builder("faulty")
        .tool(Tool::new("hang.v1", move |_a: Msg, cx: Context| {
            let (hang, cancelled) = (hang.clone(), cancelled.clone());
            async move {
                if hang.load(Ordering::SeqCst) {
                    cx.cancelled().await;
                    cancelled.fetch_add(1, Ordering::SeqCst);
                    return Err(ToolError::new("cancelled"));
                }
                Ok(ToolOutput::text("fast"))
            }
        }))
        .tool(Tool::new("once-read.v1", fail_first(reads)).read_only(true))
        .tool(Tool::new("once-write.v1", fail_first(writes)))
}

async fn ready_json(gw: &TestGateway) -> Value {
    gw.ready().await
}

const MSG: fn() -> Value = || json!({"message": "x"});

#[tokio::test]
async fn a_hanging_provider_hits_the_deadline_and_nothing_leaks() {
    let (hang, cancelled) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU32::new(0)));
    let p = spawn_on(faulty(hang, cancelled.clone()), "127.0.0.1:0").await;
    let extra = "";
    let yaml = config_yaml(&[("faulty", p.addr())], extra).replace(
        "pool_size: 2\n",
        "pool_size: 2\n    timeouts:\n      invoke: 300ms\n",
    );
    let gw = start_gateway(&yaml).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    let e = rpc_error(&call(&client, "faulty.hang.v1", MSG()).await.unwrap_err());
    assert_eq!(e.code.0, -32004, "{e:?}");
    assert!(e.message.contains("300ms"), "{}", e.message);
    // The provider saw its RPC cancelled, and the gateway holds nothing.
    let seen = eventually(Duration::from_secs(5), || {
        let c = cancelled.clone();
        async move { (c.load(Ordering::SeqCst) == 1).then_some(()) }
    })
    .await;
    assert!(seen.is_some(), "the provider call was not cancelled");
    assert_eq!(ready_json(&gw).await["in_flight"], 0);
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn a_flapping_provider_opens_the_breaker_which_recovers() {
    let hang = Arc::new(AtomicBool::new(true));
    let p = spawn_on(faulty(hang.clone(), Arc::default()), "127.0.0.1:0").await;
    // No health checks while it hangs: they would let one early probe through.
    let yaml = config_yaml(&[("faulty", p.addr())], "")
        .replace("refresh_interval: 500ms", "refresh_interval: 1h")
        .replace(
            "pool_size: 2\n",
            "pool_size: 2\n    timeouts:\n      invoke: 200ms\n    breaker:\n      failures: 2\n      cool_down: 500ms\n",
        );
    let gw = start_gateway(&yaml).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    for _ in 0..2 {
        let e = rpc_error(&call(&client, "faulty.hang.v1", MSG()).await.unwrap_err());
        assert_eq!(e.code.0, -32004);
    }
    // Open: refused by the breaker, not by the deadline (-32004).
    let e = rpc_error(&call(&client, "faulty.hang.v1", MSG()).await.unwrap_err());
    assert_eq!(e.code.0, -32001);
    assert!(e.message.contains("circuit open"), "{}", e.message);
    let r = ready_json(&gw).await;
    assert_eq!(r["providers"][0]["state"], "degraded", "{r}");
    assert_eq!(r["providers"][0]["breaker"], "open");

    // The provider recovers; after the cool-down one probe closes the breaker.
    hang.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = call(&client, "faulty.hang.v1", MSG()).await.unwrap();
    assert_eq!(text_of(&r), "fast");
    let r = ready_json(&gw).await;
    assert_eq!(
        (
            r["providers"][0]["state"].as_str(),
            r["providers"][0]["breaker"].as_str()
        ),
        (Some("ready"), Some("closed"))
    );
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

/// A restarted provider is probed as soon as it passes a health check, not
/// after the breaker's cool-down (an hour here, so only the fix can pass).
#[tokio::test]
async fn a_restarted_provider_is_used_once_it_passes_its_health_check() {
    let p = spawn_kit(Arc::default()).await;
    let addr = p.addr();
    let yaml = config_yaml(&[("kit", addr)], "").replace(
        "pool_size: 2\n",
        "pool_size: 2\n    breaker:\n      failures: 1\n      cool_down: 1h\n",
    );
    let gw = start_gateway(&yaml).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    call(&client, "kit.echo.v1", MSG()).await.unwrap();
    p.shutdown().await;
    let e = rpc_error(&call(&client, "kit.echo.v1", MSG()).await.unwrap_err());
    assert_eq!(e.code.0, -32001, "{e:?}");
    let r = ready_json(&gw).await;
    assert_eq!(r["providers"][0]["breaker"], "open", "{r}");

    let _back = spawn_on(kit(Arc::default()), &addr.to_string()).await;
    let probed = eventually(Duration::from_secs(10), || async {
        let r = ready_json(&gw).await;
        (r["providers"][0]["breaker"] == "half_open").then_some(())
    })
    .await;
    assert!(
        probed.is_some(),
        "breaker still open after a passing health check"
    );
    let r = call(&client, "kit.echo.v1", MSG()).await.unwrap();
    assert_eq!(text_of(&r), "x");
    let r = ready_json(&gw).await;
    assert_eq!(r["providers"][0]["breaker"], "closed", "{r}");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn the_bulkhead_refuses_calls_over_the_concurrency_limit() {
    let hang = Arc::new(AtomicBool::new(true));
    let p = spawn_on(faulty(hang.clone(), Arc::default()), "127.0.0.1:0").await;
    let yaml = config_yaml(&[("faulty", p.addr())], "").replace(
        "pool_size: 2\n",
        "pool_size: 2\n    max_concurrency: 1\n    timeouts:\n      invoke: 2s\n",
    );
    let gw = start_gateway(&yaml).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    let c = &client;
    let first = call(c, "faulty.hang.v1", MSG());
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = call(c, "faulty.once-read.v1", MSG()).await;
        hang.store(false, Ordering::SeqCst);
        r
    };
    let (_, second) = tokio::join!(first, second);
    let e = rpc_error(&second.unwrap_err());
    assert_eq!(e.code.0, -32005, "{e:?}");
    assert!(e.message.contains("limit of 1 concurrent"), "{}", e.message);
    assert_eq!(e.data.unwrap()["kind"], "overloaded");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn only_repeatable_tools_are_retried() {
    let p = spawn_on(faulty(Arc::default(), Arc::default()), "127.0.0.1:0").await;
    let gw = start_gateway(&config_yaml(&[("faulty", p.addr())], "")).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    // Read-only: the first UNAVAILABLE is retried and the client sees success.
    let r = call(&client, "faulty.once-read.v1", MSG()).await.unwrap();
    assert_eq!(text_of(&r), "ok");
    // Not annotated: the failure reaches the client.
    let e = rpc_error(
        &call(&client, "faulty.once-write.v1", MSG())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.0, -32001, "{e:?}");
    assert!(e.message.contains("warming up"), "{}", e.message);
    let r = call(&client, "faulty.once-write.v1", MSG()).await.unwrap();
    assert_eq!(text_of(&r), "ok");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

/// Process ids whose command line contains `pattern`.
fn pids(pattern: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .arg("-f")
        .arg(pattern)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn a_managed_provider_is_started_restarted_after_a_crash_and_stopped() {
    let port = free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let bin = crate::common::hello_rs_bin();
    let yaml = format!(
        "providers:\n  - name: hello-rs\n    endpoint: http://{listen}\n    launch:\n      command: {}\n      args: [\"--listen\", \"{listen}\"]\n      restart_max: 1s\n",
        bin.display()
    );
    let gw = start_gateway(&yaml).await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    // Started and discovered before the gateway began serving.
    let r = call(&client, "hello-rs.echo.v1", json!({"message": "one"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "one");
    let first = pids(&listen);
    assert_eq!(first.len(), 1, "{first:?}");

    std::process::Command::new("kill")
        .args(["-9", &first[0]])
        .status()
        .unwrap();
    let back = eventually(Duration::from_secs(10), || {
        let c = &client;
        async move {
            let r = call(c, "hello-rs.echo.v1", json!({"message": "two"}))
                .await
                .ok()?;
            (text_of(&r) == "two").then_some(())
        }
    })
    .await;
    assert!(
        back.is_some(),
        "calls did not succeed again after the crash"
    );
    let second = pids(&listen);
    assert_eq!(second.len(), 1);
    assert_ne!(first, second, "a new process serves");

    client.cancel().await.unwrap();
    gw.shutdown().await;
    assert!(
        pids(&listen).is_empty(),
        "the gateway stops its provider on shutdown"
    );
}
