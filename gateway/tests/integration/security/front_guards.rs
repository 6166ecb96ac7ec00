//! The front door's own guards: Origin and Host, and the public-bind rule
//! at startup and on reload.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::failures::raw_2026;

#[tokio::test]
async fn foreign_origin_is_refused_and_allowed_ones_pass() {
    let gw = start_gateway(&config_yaml(
        &[],
        "allowed_origins: [\"https://app.example.com:443\"]\n",
    ))
    .await;
    let status = |origin: &'static str| {
        let url = gw.url();
        async move {
            raw_2026(&url, "tools/list", None, json!({}), &[("origin", origin)])
                .await
                .0
        }
    };
    assert_eq!(status("https://evil.example").await, 403);
    assert_eq!(status("http://localhost:3000").await, 200);
    assert_eq!(status("https://app.example.com").await, 200);
    // A non-browser client sends no Origin at all.
    let (s, _, _) = raw_2026(&gw.url(), "tools/list", None, json!({}), &[]).await;
    assert_eq!(s, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn public_bind_is_allowed_only_with_auth_or_the_override() {
    use mcp_gateway::config::Config;
    let e = Config::parse("listen: 0.0.0.0:1\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("listen: 0.0.0.0:1 is not a loopback address"),
        "{e}"
    );
    let ok = format!(
        "listen: 0.0.0.0:1\nauth:\n  mode: api_key\n  api_keys:\n    - {{ principal: a, sha256: \"{}\" }}\n",
        sha256_hex("k")
    );
    assert!(Config::parse(&ok).is_ok());
    // Config errors name the field.
    let e =
        Config::parse("auth:\n  mode: jwt\n  jwt:\n    keys:\n      - { alg: RS256, secret: x }\n")
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("auth.jwt.keys[0]: RS256/ES256 need public_key"),
        "{e}"
    );
    let e =
        Config::parse("auth:\n  mode: jwt\n  jwt:\n    keys:\n      - { alg: none, secret: x }\n")
            .unwrap_err()
            .to_string();
    assert!(e.contains("auth.jwt.keys[0].alg"), "{e}");
}

/// The listener stays where it started, so a reload cannot turn auth off
/// under a public bind, even if the new file moves `listen` to loopback.
#[tokio::test]
async fn a_reload_cannot_turn_auth_off_on_a_public_bind() {
    let provider = spawn_kit(Arc::default()).await;
    let providers = [("kit", provider.addr())];
    let secured = format!(
        "listen: 0.0.0.0:1\nauth:\n  mode: api_key\n  api_keys:\n    - {{ principal: a, sha256: \"{}\" }}\n",
        sha256_hex("k")
    );
    let gw = start_gateway(&config_yaml(&providers, &secured)).await;
    let open =
        mcp_gateway::config::Config::parse(&config_yaml(&providers, "listen: 127.0.0.1:1\n"))
            .unwrap();
    let e = gw.gateway.reload(open).await.unwrap_err().to_string();
    assert!(
        e.contains("auth: cannot turn client authentication off while listening on 0.0.0.0:1"),
        "{e}"
    );
    // Still enforced.
    assert_eq!(try_token(&gw.url(), None).await.0, 401);
    assert_eq!(try_token(&gw.url(), Some("k")).await.0, 200);
    gw.shutdown().await;
}
