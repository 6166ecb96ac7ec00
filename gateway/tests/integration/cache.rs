//! The opt-in result cache: hits, scope, TTL, and read-only only.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use mcp_provider_sdk::prelude::*;
use serde_json::{Value, json};

use crate::{common::*, failures::raw_2026};

fn counter() -> (ProviderBuilder, Arc<AtomicU64>) {
    let n = Arc::new(AtomicU64::new(0));
    let (a, b) = (n.clone(), n.clone());
    let p = Provider::builder("counter")
        .tool(
            Tool::new("count.v1", move |_m: Msg, _cx| {
                let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                async move { Ok(ToolOutput::text(n.to_string())) }
            })
            .read_only(true),
        )
        .tool(Tool::new("count-write.v1", move |_m: Msg, _cx| {
            let n = b.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(ToolOutput::text(n.to_string())) }
        }));
    (p, n)
}

async fn count(url: &str, tool: &str, msg: &str, agent: &str) -> String {
    let (_, _, body): (_, _, Value) = raw_2026(
        url,
        "tools/call",
        Some(tool),
        json!({"name": tool, "arguments": {"message": msg}}),
        &[("x-agent-name", agent)],
    )
    .await;
    body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string()
}

#[tokio::test]
async fn read_only_results_are_cached_per_caller_scope_until_the_ttl() {
    let (builder, calls) = counter();
    let p = spawn_on(builder, "127.0.0.1:0").await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let yaml = config_yaml(
        &[("counter", p.addr())],
        &format!("audit:\n  path: {}\n", audit.display()),
    )
    .replace(
        "pool_size: 2\n",
        "pool_size: 2\n    cache:\n      tools: [count.v1, count-write.v1]\n      ttl: 600ms\n",
    );
    let gw = start_gateway(&yaml).await;
    let url = gw.url();
    let tool = "counter.count.v1";

    let first = count(&url, tool, "same", "a1").await;
    assert_eq!(
        count(&url, tool, "same", "a1").await,
        first,
        "second call is a hit"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Other arguments or another caller scope: a miss.
    assert_ne!(count(&url, tool, "other", "a1").await, first);
    assert_ne!(count(&url, tool, "same", "a2").await, first);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // After the TTL: a miss.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_ne!(count(&url, tool, "same", "a1").await, first);
    // A tool that is not read-only is never cached, even when listed.
    let w1 = count(&url, "counter.count-write.v1", "same", "a1").await;
    assert_ne!(
        count(&url, "counter.count-write.v1", "same", "a1").await,
        w1
    );

    let metrics = gw.metrics().await;
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("mcp_gateway_cache_hits_total") && l.contains("counter.count.v1"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(hits.ends_with(" 1"), "{hits}");
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cached: Vec<bool> = lines
        .iter()
        .map(|l| l["cached"].as_bool().unwrap())
        .collect();
    assert_eq!(cached, [false, true, false, false, false, false, false]);
    gw.shutdown().await;
}
