//! Who is calling: JWT (keys, JWKS, bad tokens), API keys, the protected
//! resource metadata, and the stdio identity.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::failures::raw_2026;

#[tokio::test]
async fn agent_from_a_claim_ignores_the_header() {
    let provider = spawn_kit(Arc::default()).await;
    let yaml = jwt_yaml("").replace(
        "    roles_claim: realm_access.roles\n",
        "    roles_claim: realm_access.roles\n    agent_claim: azp\n",
    );
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &yaml)).await;
    let mut c = claims("alice", &[]);
    c["azp"] = json!("cursor");
    let t = sign(Algorithm::HS256, Some("hs"), &c);
    // Claims to be claude; the token says cursor.
    let client = http_client_as(&gw.url(), true, Some(&t), &[("x-agent-name", "claude")]).await;
    assert!(!names(&client).await.contains(&"kit.whoami.v1".to_string()));
    c["azp"] = json!("claude");
    let t = sign(Algorithm::HS256, Some("hs"), &c);
    let client = http_client_as(&gw.url(), true, Some(&t), &[]).await;
    assert!(names(&client).await.contains(&"kit.whoami.v1".to_string()));
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_reason_and_good_ones_accepted() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &jwt_yaml(""))).await;
    let url = gw.url();
    let meta = r#"Bearer resource_metadata="http://gw.test/.well-known/oauth-protected-resource""#;

    // Missing.
    let (s, www) = try_token(&url, None).await;
    assert_eq!(s, 401);
    assert_eq!(www, meta);

    // Valid with each algorithm.
    for (alg, kid) in [
        (Algorithm::HS256, "hs"),
        (Algorithm::RS256, "rs"),
        (Algorithm::ES256, "es"),
    ] {
        let (s, _) = try_token(&url, Some(&sign(alg, Some(kid), &claims("a", &[])))).await;
        assert_eq!(s, 200, "{alg:?}");
    }

    let refused =
        |reason: &str| format!(r#"{meta}, error="invalid_token", error_description="{reason}""#);
    // Tampered: payload changed after signing.
    let good = sign(Algorithm::RS256, Some("rs"), &claims("bob", &["user"]));
    let parts: Vec<&str> = good.split('.').collect();
    let forged = b64(claims("bob", &["admin"]).to_string().as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert_eq!(
        try_token(&url, Some(&tampered)).await,
        (401, refused("invalid signature"))
    );

    // Expired (beyond the 30 s leeway), and not yet valid.
    let mut c = claims("a", &[]);
    c["exp"] = json!(now() - 120);
    let t = sign(Algorithm::ES256, Some("es"), &c);
    assert_eq!(
        try_token(&url, Some(&t)).await,
        (401, refused("token expired"))
    );
    let mut c = claims("a", &[]);
    c["nbf"] = json!(now() + 600);
    let t = sign(Algorithm::ES256, Some("es"), &c);
    assert_eq!(
        try_token(&url, Some(&t)).await,
        (401, refused("token not yet valid (nbf)"))
    );

    // Wrong audience; wrong issuer.
    let mut c = claims("a", &[]);
    c["aud"] = json!("someone-else");
    let t = sign(Algorithm::HS256, Some("hs"), &c);
    assert_eq!(
        try_token(&url, Some(&t)).await,
        (401, refused("wrong audience"))
    );
    let mut c = claims("a", &[]);
    c["iss"] = json!("https://evil.test");
    let t = sign(Algorithm::HS256, Some("hs"), &c);
    assert_eq!(
        try_token(&url, Some(&t)).await,
        (401, refused("wrong issuer"))
    );

    // alg: none, unsigned.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("a", &["admin"]).to_string().as_bytes())
    );
    assert_eq!(
        try_token(&url, Some(&none)).await,
        (401, refused("malformed token or unsupported algorithm"))
    );

    // Algorithm confusion: HS256 "signed" with the RSA public key, naming
    // the RSA key's kid. The RS key accepts RS256 only.
    let public = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rs".into());
    let confused = jsonwebtoken::encode(
        &h,
        &claims("a", &["admin"]),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(
        try_token(&url, Some(&confused)).await,
        (
            401,
            refused(r#"no key accepts algorithm HS256 with kid 'rs'"#)
        )
    );
    // An HS256 token signed with another secret.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("hs".into());
    let bad = jsonwebtoken::encode(
        &hs,
        &claims("a", &[]),
        &EncodingKey::from_secret(b"not-the-secret"),
    )
    .unwrap();
    assert_eq!(
        try_token(&url, Some(&bad)).await,
        (401, refused("invalid signature"))
    );
    // D10: every configured key has a kid, so a token without one matches
    // none of them, though it is signed with the right secret.
    assert_eq!(
        try_token(&url, Some(&sign(Algorithm::HS256, None, &claims("a", &[])))).await,
        (401, refused("no key accepts algorithm HS256"))
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn protected_resource_metadata_and_which_routes_need_auth() {
    let gw = start_gateway(&config_yaml(&[], &jwt_yaml(""))).await;
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource",
            gw.base()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], "http://gw.test/mcp");
    assert_eq!(doc["authorization_servers"], json!(["https://issuer.test"]));
    let status = |path: &'static str, token: Option<String>| {
        let http = http.clone();
        let url = format!("{}{path}", gw.base());
        async move {
            let mut r = http.get(url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status("/health", None).await, 200);
    assert_eq!(status("/ready", None).await, 200);
    assert_eq!(status("/metrics", None).await, 401);
    assert_eq!(status("/api/v1/analytics/usage", None).await, 401);
    let t = sign(Algorithm::HS256, Some("hs"), &claims("ops", &["operator"]));
    assert_eq!(status("/metrics", Some(t.clone())).await, 200);
    assert_eq!(status("/api/v1/analytics/usage", Some(t)).await, 200);
    // Authenticated but no operator: usage (their own), not metrics.
    let t = sign(Algorithm::HS256, Some("hs"), &claims("dev", &[]));
    assert_eq!(status("/metrics", Some(t.clone())).await, 403);
    assert_eq!(status("/api/v1/analytics/usage", Some(t)).await, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn jwks_keys_are_fetched_from_a_url() {
    // The identity provider's JWKS endpoint, on loopback.
    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let j = jwks.clone();
            async move { axum::Json(j) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let yaml = format!(
        "auth:\n  mode: jwt\n  jwt:\n    audience: [mcp-gateway]\n    jwks:\n      url: http://{addr}/jwks\n      refresh: 1m\n"
    );
    let gw = start_gateway(&config_yaml(&[], &yaml)).await;
    let good = sign(Algorithm::RS256, Some("jwks-rsa"), &claims("a", &[]));
    assert_eq!(try_token(&gw.url(), Some(&good)).await.0, 200);
    // Unknown kid: refused (and the key set is not refetched in a loop).
    let other = sign(Algorithm::RS256, Some("unknown"), &claims("a", &[]));
    assert_eq!(try_token(&gw.url(), Some(&other)).await.0, 401);
    // HS256 is never accepted from a JWKS.
    let hs = sign(Algorithm::HS256, Some("jwks-rsa"), &claims("a", &[]));
    assert_eq!(try_token(&gw.url(), Some(&hs)).await.0, 401);
    gw.shutdown().await;
}

/// An identity provider serving its JWKS over https with a private CA:
/// refused while only the system's roots are trusted, fetched once
/// `jwks.ca` names that CA.
#[tokio::test]
async fn jwks_over_https_with_a_private_ca() {
    let bundle = mcp_gateway::certs::generate(&Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    bundle.write(dir.path()).unwrap();
    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let j = jwks.clone();
            async move { axum::Json(j) }
        }),
    );
    let acceptor = mcp_gateway::tls_listen::acceptor(
        &mcp_gateway::config::ServerTls {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
        },
        dir.path(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let listener = mcp_gateway::tls_listen::TlsListener::new(listener, acceptor).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let good = sign(Algorithm::RS256, Some("jwks-rsa"), &claims("a", &[]));
    let yaml = |ca: &str| {
        format!(
            "auth:\n  mode: jwt\n  jwt:\n    audience: [mcp-gateway]\n    jwks:\n      url: https://localhost:{port}/jwks\n{ca}"
        )
    };

    let gw = start_gateway(&config_yaml(&[], &yaml(""))).await;
    let (status, www) = try_token(&gw.url(), Some(&good)).await;
    assert_eq!(status, 401);
    assert!(www.contains("signing keys unavailable"), "{www}");
    gw.shutdown().await;

    let ca = format!("      ca: {}/ca.pem\n", dir.path().display());
    let gw = start_gateway(&config_yaml(&[], &yaml(&ca))).await;
    assert_eq!(try_token(&gw.url(), Some(&good)).await.0, 200);
    gw.shutdown().await;

    // A missing CA file is a config error naming the field.
    let e = mcp_gateway::Gateway::start(
        mcp_gateway::config::Config::parse(&config_yaml(
            &[],
            &yaml("      ca: /nonexistent/ca.pem\n"),
        ))
        .unwrap(),
    )
    .await
    .err()
    .expect("missing CA file")
    .to_string();
    assert!(e.contains("auth.jwt.jwks.ca"), "{e}");
}

#[tokio::test]
async fn api_keys_hashed_or_from_env_with_roles_and_agents() {
    let provider = spawn_kit(Arc::default()).await;
    // SAFETY: unique variable; read at gateway start.
    unsafe { std::env::set_var("MCPGW_TEST_API_KEY", "env-key-42") };
    let yaml = format!(
        r#"auth:
  mode: api_key
  api_keys:
    - {{ principal: ops, sha256: "{}", roles: [admin] }}
    - {{ principal: bot, key: "${{MCPGW_TEST_API_KEY}}", agent: claude }}
policy:
  default: deny
  rules:
    - tools: ["kit.echo.v1"]
    - tools: ["kit.fail.v1"]
      roles_any: [admin]
    - tools: ["kit.whoami.v1"]
      agents: [claude]
"#,
        sha256_hex("hashed-key-7")
    );
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &yaml)).await;
    let ops = http_client_as(&gw.url(), false, Some("hashed-key-7"), &[]).await;
    assert_eq!(names(&ops).await, ["kit.echo.v1", "kit.fail.v1"]);
    // The key fixes the agent.
    let bot = http_client_as(
        &gw.url(),
        true,
        Some("env-key-42"),
        &[("x-agent-name", "x")],
    )
    .await;
    assert_eq!(names(&bot).await, ["kit.echo.v1", "kit.whoami.v1"]);
    let r = call(&bot, "kit.whoami.v1", json!({"message": ""}))
        .await
        .unwrap();
    let s = r.structured_content.unwrap();
    assert_eq!(
        (s["principal"].as_str(), s["agent"].as_str()),
        (Some("bot"), Some("claude"))
    );
    // Default deny: everything else is unknown.
    let e = rpc_error(
        &call(&bot, "kit.kinds.v1", json!({"message": ""}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message, "unknown tool 'kit.kinds.v1'");
    // Wrong key, and the x-api-key header form.
    assert_eq!(try_token(&gw.url(), Some("wrong")).await.0, 401);
    let (s, _, _) = raw_2026(
        &gw.url(),
        "tools/list",
        None,
        json!({}),
        &[("x-api-key", "hashed-key-7")],
    )
    .await;
    assert_eq!(s, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn stdio_identity_comes_from_the_config() {
    let provider = spawn_kit(Arc::default()).await;
    let extra = "auth:\n  stdio_principal: desktop-user\n  stdio_roles: [admin]\npolicy:\n  rules:\n    - tools: [\"kit.fail.v1\"]\n      roles_any: [admin]\n    - tools: [\"kit.slow.v1\"]\n      roles_any: [root]\n";
    let yaml = config_yaml(&[("kit", provider.addr())], extra);
    let f = temp_config(&yaml);
    let client = stdio_client(f.path(), false, Recorder::default()).await;
    let n = names(&client).await;
    assert!(n.contains(&"kit.fail.v1".to_string()), "{n:?}");
    assert!(!n.contains(&"kit.slow.v1".to_string()), "{n:?}");
    let r = call(&client, "kit.whoami.v1", json!({"message": ""}))
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["principal"], "desktop-user");
    let _ = client.cancel().await;
}
