//! D4: operator endpoints. `/metrics` needs an operator role; usage
//! analytics show a non-operator only their own calls to tools they see.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::*;

async fn get(url: &str, key: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn keys(u: &Value, group: &str) -> Vec<String> {
    u[group]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn only_operators_see_metrics_and_everyones_usage() {
    let provider = spawn_kit(Arc::default()).await;
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: root, sha256: \"{}\", roles: [operator] }}\n    - {{ principal: alice, sha256: \"{}\" }}\n    - {{ principal: bob, sha256: \"{}\" }}\npolicy:\n  rules:\n    - tools: [kit.whoami.v1]\n      roles_any: [operator]\n",
        sha256_hex("root-key"),
        sha256_hex("alice-key"),
        sha256_hex("bob-key"),
    );
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &yaml)).await;
    let msg = json!({"message": "m"});
    for (key, tool) in [
        ("root-key", "kit.whoami.v1"),
        ("root-key", "kit.echo.v1"),
        ("alice-key", "kit.echo.v1"),
        ("bob-key", "kit.echo.v1"),
    ] {
        let c = http_client_as(&gw.url(), false, Some(key), &[]).await;
        call(&c, tool, msg.clone()).await.unwrap();
        c.cancel().await.unwrap();
    }
    let metrics = format!("{}/metrics", gw.base());
    let (status, body) = get(&metrics, "alice-key").await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("whoami"), "{body}");
    let (status, body) = get(&metrics, "root-key").await;
    assert_eq!(status, 200);
    assert!(body.contains("kit.whoami.v1"), "{body}");

    let usage = format!("{}/api/v1/analytics/usage?window=1h", gw.base());
    let (status, body) = get(&usage, "alice-key").await;
    assert_eq!(status, 200);
    let u: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(u["total"], 1, "{u}");
    assert_eq!(keys(&u, "by_caller"), ["alice"]);
    assert_eq!(keys(&u, "by_tool"), ["kit.echo.v1"]);
    assert!(!body.contains("root") && !body.contains("bob") && !body.contains("whoami"));
    let (_, body) = get(&usage, "root-key").await;
    let u: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(u["total"], 4, "{u}");
    assert_eq!(keys(&u, "by_caller"), ["alice", "bob", "root"]);
    assert_eq!(keys(&u, "by_tool"), ["kit.echo.v1", "kit.whoami.v1"]);
    // Without a credential: 401, as before.
    let r = reqwest::get(&usage).await.unwrap();
    assert_eq!(r.status(), 401);
    gw.shutdown().await;
}
