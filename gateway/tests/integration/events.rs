//! Events without NATS: providers' `Stream` RPC → MCP notifications. Also
//! the shared harness for events tests (a real `nats-server` per test, and
//! an SDK provider that publishes events).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use mcp_gateway::EventStats;
use mcp_provider_sdk::prelude::*;
use rmcp::model::{ReadResourceRequestParams, ResourceContents, SubscriptionFilter};
use serde_json::json;

use crate::common::*;

pub const ECHOED: &str = "test.echoed";

/// A provider like hello-rs: echo publishes an event, touch.v1 publishes a
/// resource update for `{scheme}://greeting`.
pub fn evented(name: &str, scheme: &str) -> ProviderBuilder {
    let uri = format!("{scheme}://greeting");
    Provider::builder(name)
        .tool(Tool::new("echo.v1", |a: Msg, cx: Context| async move {
            cx.events()
                .event(ECHOED)
                .json(&json!({ "message": a.message }))
                .publish()
                .await
                .map_err(|e| e.to_string())?;
            Ok(ToolOutput::text(a.message))
        }))
        .tool(Tool::new("touch.v1", move |_a: Msg, cx: Context| {
            let uri = uri.clone();
            async move {
                let id = cx
                    .events()
                    .resource_updated(&uri)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(ToolOutput::text(id))
            }
        }))
        .resource(Resource::new(
            format!("{scheme}://greeting"),
            "greeting",
            |_u, _c| async { Ok(ResourceBody::text("hi")) },
        ))
}

/// Waits until `f(stats)` holds, or panics after `within` naming `what`.
pub async fn wait_stats(
    gw: &TestGateway,
    within: Duration,
    what: &str,
    f: impl Fn(&EventStats) -> bool,
) -> EventStats {
    let events = gw.gateway.events().clone();
    eventually(within, || {
        let s = events.stats();
        let ok = f(&s);
        async move { ok.then_some(s) }
    })
    .await
    .unwrap_or_else(|| panic!("timed out waiting for {what}: {:?}", events.stats()))
}

/// Waits until `pick` finds something in the recorder.
pub async fn wait_for<T>(within: Duration, what: &str, pick: impl Fn() -> Option<T>) -> T {
    eventually(within, || {
        let v = pick();
        async move { v }
    })
    .await
    .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// `nats-server` from Debian's package. Missing is a failure, not a skip:
/// `make test` installs it (`make test-deps`).
pub fn nats_server_bin() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()]);
    for dir in candidates {
        let bin = dir.join("nats-server");
        if bin.is_file() {
            return bin;
        }
    }
    panic!(
        "nats-server not found: the events tests need a real NATS server. \
         Install it with `make test-deps` (Debian package nats-server)."
    );
}

/// A real `nats-server -js` on a free port with its own store, killed on drop.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nats {
    pub async fn start() -> Self {
        let port = free_port().await;
        Self::start_on(port).await
    }

    /// On a given port (e.g. one the gateway already tries to reach).
    pub async fn start_on(port: u16) -> Self {
        let mut n = Self {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        n.spawn().await;
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new(nats_server_bin())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let up = eventually(Duration::from_secs(10), || async {
            async_nats::connect(self.url()).await.ok().map(|_| ())
        })
        .await;
        assert!(up.is_some(), "nats-server did not come up on {}", self.port);
    }

    /// Graceful stop (SIGTERM, so JetStream flushes its store), then wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Stop, then start again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to NATS")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Ids in `events://recent`, oldest first.
pub fn recent_ids(gw: &TestGateway) -> Vec<String> {
    let recent: Vec<serde_json::Value> =
        serde_json::from_str(&gw.gateway.events().recent_json()).unwrap();
    recent
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn stream_rpc_events_reach_clients_without_nats() {
    let provider = spawn_on(evented("ev", "ev"), "127.0.0.1:0").await;
    let yaml = config_yaml(&[("ev", provider.addr())], "");
    let gw = start_gateway(&yaml).await;
    wait_stats(&gw, Duration::from_secs(5), "an open Stream", |s| {
        s.streams_open == 1
    })
    .await;

    // 2025-11-25: resources/subscribe, then the provider reports an update.
    let rec = Recorder::default();
    let session = http_client(&gw.url(), false, rec.clone()).await;
    opt_into_logs(&session).await;
    #[allow(deprecated)] // resources/subscribe is legacy-only but 2025-11-25 valid
    session
        .subscribe(rmcp::model::SubscribeRequestParams::new("ev://greeting"))
        .await
        .unwrap();
    // 2026-07-28: subscriptions/listen naming the URI.
    let stateless = http_client(&gw.url(), true, Recorder::default()).await;
    let mut sub = stateless
        .listen(
            SubscriptionFilter::builder()
                .resource_subscription("ev://greeting")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        sub.acknowledged().resource_subscriptions.as_deref(),
        Some(&["ev://greeting".to_string()][..])
    );

    let started = tokio::time::Instant::now();
    call(&session, "ev.touch.v1", json!({"message": ""}))
        .await
        .unwrap();
    wait_for(Duration::from_secs(2), "resources/updated (2025)", || {
        rec.updated
            .lock()
            .unwrap()
            .iter()
            .any(|u| u == "ev://greeting")
            .then_some(())
    })
    .await;
    let n = tokio::time::timeout(Duration::from_secs(2), sub.next())
        .await
        .expect("listen stream got the update within 2s")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&n, rmcp::model::ServerNotification::ResourceUpdatedNotification(u) if u.params.uri == "ev://greeting"),
        "{n:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Other events: a log message, and an entry in events://recent.
    call(&session, "ev.echo.v1", json!({"message": "ping"}))
        .await
        .unwrap();
    let log = wait_for(Duration::from_secs(2), "notifications/message", || {
        rec.logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| l["type"] == ECHOED)
            .cloned()
    })
    .await;
    assert_eq!(log["data"]["message"], "ping");
    assert_eq!(log["source"], "/providers/ev");
    assert_eq!(log["provider"], "ev");
    let read = session
        .read_resource(ReadResourceRequestParams::new("events://recent"))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
        panic!("{read:?}")
    };
    let recent: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
    let types: Vec<_> = recent.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["io.mcp-gateway.resource.updated", ECHOED]);
    // Not subscribed to anything else: no stray updates for other URIs.
    assert!(
        rec.updated
            .lock()
            .unwrap()
            .iter()
            .all(|u| u == "ev://greeting")
    );
    assert_eq!(gw.gateway.events().stats().handled, 2);
}

/// Two providers share the `dup` scheme, so clients see `{provider}+dup:…`;
/// a provider's update for its own URI must arrive under the client URI.
#[tokio::test]
async fn resource_updates_use_the_client_side_uri() {
    let a = spawn_on(evented("a", "dup"), "127.0.0.1:0").await;
    let b = spawn_on(evented("b", "dup"), "127.0.0.1:0").await;
    let yaml = config_yaml(&[("a", a.addr()), ("b", b.addr())], "");
    let gw = start_gateway(&yaml).await;
    wait_stats(&gw, Duration::from_secs(5), "two open Streams", |s| {
        s.streams_open == 2
    })
    .await;
    let rec = Recorder::default();
    let session = http_client(&gw.url(), false, rec.clone()).await;
    opt_into_logs(&session).await;
    let uris: Vec<String> = session
        .list_all_resources()
        .await
        .unwrap()
        .iter()
        .map(|r| r.uri.clone())
        .collect();
    assert!(uris.contains(&"b+dup://greeting".to_string()), "{uris:?}");
    #[allow(deprecated)]
    session
        .subscribe(rmcp::model::SubscribeRequestParams::new("b+dup://greeting"))
        .await
        .unwrap();
    call(&session, "b.touch.v1", json!({"message": ""}))
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(2),
        "update for b+dup://greeting",
        || {
            rec.updated
                .lock()
                .unwrap()
                .contains(&"b+dup://greeting".to_string())
                .then_some(())
        },
    )
    .await;
    // a's update is for a+dup://greeting, which nobody subscribed to.
    call(&session, "a.touch.v1", json!({"message": ""}))
        .await
        .unwrap();
    wait_stats(&gw, Duration::from_secs(2), "a's event", |s| s.handled == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*rec.updated.lock().unwrap(), ["b+dup://greeting"]);
}

/// After a provider restart, the gateway resubscribes to its `Stream`.
#[tokio::test]
async fn stream_rpc_resubscribes_after_provider_restart() {
    let provider = spawn_on(evented("ev", "ev"), "127.0.0.1:0").await;
    let addr = provider.addr();
    let yaml = config_yaml(&[("ev", addr)], "");
    let gw = start_gateway(&yaml).await;
    wait_stats(&gw, Duration::from_secs(5), "an open Stream", |s| {
        s.streams_open == 1
    })
    .await;
    provider.abort();
    wait_stats(&gw, Duration::from_secs(5), "the Stream to close", |s| {
        s.streams_open == 0
    })
    .await;
    let _again = spawn_on(evented("ev", "ev"), &addr.to_string()).await;
    wait_stats(&gw, Duration::from_secs(10), "a new Stream", |s| {
        s.streams_open == 1
    })
    .await;
    let rec = Recorder::default();
    let session = http_client(&gw.url(), false, rec.clone()).await;
    opt_into_logs(&session).await;
    call(&session, "ev.echo.v1", json!({"message": "again"}))
        .await
        .unwrap();
    wait_for(Duration::from_secs(2), "the echo log message", || {
        rec.logs.lock().unwrap().first().cloned()
    })
    .await;
}

/// `capabilities.changed` makes the gateway re-discover the provider at once
/// (the periodic refresh is set to an hour, so nothing else would).
#[tokio::test]
async fn capabilities_changed_triggers_rediscovery() {
    let first = spawn_on(evented("ev", "ev"), "127.0.0.1:0").await;
    let addr = first.addr();
    let yaml =
        config_yaml(&[("ev", addr)], "").replace("refresh_interval: 500ms", "refresh_interval: 1h");
    let gw = start_gateway(&yaml).await;
    wait_stats(&gw, Duration::from_secs(5), "an open Stream", |s| {
        s.streams_open == 1
    })
    .await;
    let rec = Recorder::default();
    let session = http_client(&gw.url(), false, rec.clone()).await;
    opt_into_logs(&session).await;

    // Same address, one more tool; the gateway's catalog does not know yet.
    first.abort();
    wait_stats(&gw, Duration::from_secs(5), "the Stream to close", |s| {
        s.streams_open == 0
    })
    .await;
    let extra = Tool::new("extra.v1", |a: Msg, _cx| async move {
        Ok(ToolOutput::text(a.message))
    });
    let second = evented("ev", "ev").tool(extra);
    let publisher = second.events();
    let _second = spawn_on(second, &addr.to_string()).await;
    wait_stats(
        &gw,
        Duration::from_secs(10),
        "the Stream to the new provider",
        |s| s.streams_open == 1,
    )
    .await;
    let names = |tools: Vec<rmcp::model::Tool>| -> Vec<String> {
        tools.iter().map(|t| t.name.to_string()).collect()
    };
    assert!(!names(session.list_all_tools().await.unwrap()).contains(&"ev.extra.v1".into()));

    publisher.capabilities_changed().await.unwrap();
    wait_for(Duration::from_secs(2), "tools/list_changed", || {
        rec.tools_changed_seen
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(())
    })
    .await;
    assert!(names(session.list_all_tools().await.unwrap()).contains(&"ev.extra.v1".into()));
}
