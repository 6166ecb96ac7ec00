//! Issue 5: authentication, identity, policy, rate limits, Origin checks
//! and secret hygiene, each with a refused and an accepted case, over real
//! HTTP against the real gateway.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::*;
use crate::failures::raw_2026;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

const HS_SECRET: &str = "test-hs256-secret-0123456789abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `sub` with Keycloak-style roles and an agent claim.
fn claims(sub: &str, roles: &[&str]) -> Value {
    json!({
        "sub": sub,
        "iss": "https://issuer.test",
        "aud": "mcp-gateway",
        "exp": now() + 300,
        "nbf": now() - 5,
        "realm_access": {"roles": roles},
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET.as_bytes()),
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap()
        }
        Algorithm::ES256 => {
            EncodingKey::from_ec_pem(&std::fs::read(fixture("ec_private.pem")).unwrap()).unwrap()
        }
        _ => unreachable!(),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A JWT config: an HS256 secret from the environment, RS256 and ES256
/// public keys from files; roles from `realm_access.roles`; admin tools need
/// the `admin` role, `kit.whoami.v1` is for the `claude` agent only.
fn jwt_yaml(extra: &str) -> String {
    // SAFETY: every test sets the same value; read only at gateway start.
    unsafe { std::env::set_var("MCPGW_TEST_HS_SECRET", HS_SECRET) };
    format!(
        r#"auth:
  mode: jwt
  resource: http://gw.test/mcp
  authorization_servers: [https://issuer.test]
  jwt:
    issuer: https://issuer.test
    audience: [mcp-gateway]
    roles_claim: realm_access.roles
    keys:
      - {{ kid: hs, alg: HS256, secret: "${{MCPGW_TEST_HS_SECRET}}" }}
      - {{ kid: rs, alg: RS256, public_key: {rsa} }}
      - {{ kid: es, alg: ES256, public_key: {ec} }}
policy:
  rules:
    - tools: ["kit.fail.v1", "kit.slow.v1"]
      roles_any: [admin]
    - prompts: ["kit.greet"]
      roles_all: [admin, writer]
    - resources: ["kit://readme", "kit://items/*"]
      roles_any: [admin]
    - tools: ["kit.whoami.v1"]
      agents: [claude]
{extra}"#,
        rsa = fixture("rsa_public.pem"),
        ec = fixture("ec_public.pem"),
    )
}

async fn names(client: &Client) -> Vec<String> {
    let mut v: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn tools_list_differs_by_role_and_a_hidden_tool_answers_like_an_unknown_one() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &jwt_yaml(""))).await;
    let admin = sign(
        Algorithm::RS256,
        Some("rs"),
        &claims("alice", &["admin", "writer"]),
    );
    let user = sign(Algorithm::ES256, Some("es"), &claims("bob", &["user"]));
    for stateless in [false, true] {
        let a = http_client_as(&gw.url(), stateless, Some(&admin), &[]).await;
        let u = http_client_as(&gw.url(), stateless, Some(&user), &[]).await;
        let (an, un) = (names(&a).await, names(&u).await);
        assert!(an.contains(&"kit.fail.v1".to_string()), "{an:?}");
        assert!(an.contains(&"kit.slow.v1".to_string()), "{an:?}");
        assert!(!un.contains(&"kit.fail.v1".to_string()), "{un:?}");
        assert!(!un.contains(&"kit.slow.v1".to_string()), "{un:?}");
        assert!(un.contains(&"kit.echo.v1".to_string()), "{un:?}");
        // Neither has the agent `whoami` needs.
        assert!(!an.contains(&"kit.whoami.v1".to_string()));

        // Prompts and resources are filtered the same way.
        let ap = a.list_all_prompts().await.unwrap();
        let up = u.list_all_prompts().await.unwrap();
        assert!(ap.iter().any(|p| p.name == "kit.greet"));
        assert!(!up.iter().any(|p| p.name == "kit.greet"));
        let ar = a.list_all_resources().await.unwrap();
        let ur = u.list_all_resources().await.unwrap();
        assert!(ar.iter().any(|r| r.uri == "kit://readme"));
        assert!(!ur.iter().any(|r| r.uri == "kit://readme"));
        let at = a.list_all_resource_templates().await.unwrap();
        let ut = u.list_all_resource_templates().await.unwrap();
        assert!(at.iter().any(|t| t.uri_template == "kit://items/{id}"));
        assert!(!ut.iter().any(|t| t.uri_template == "kit://items/{id}"));

        // The admin may call it; the user gets the unknown-tool answer.
        let ok = call(&a, "kit.fail.v1", json!({"message": "x"}))
            .await
            .unwrap();
        assert_eq!(ok.is_error, Some(true), "the tool itself ran and failed");
        let hidden = rpc_error(
            &call(&u, "kit.fail.v1", json!({"message": "x"}))
                .await
                .unwrap_err(),
        );
        let unknown = rpc_error(
            &call(&u, "kit.nope.v1", json!({"message": "x"}))
                .await
                .unwrap_err(),
        );
        assert_eq!(hidden.code, unknown.code);
        assert_eq!(hidden.message, "unknown tool 'kit.fail.v1'");
        assert_eq!(unknown.message, "unknown tool 'kit.nope.v1'");
        let keys = |d: &Option<Value>| {
            let mut k: Vec<String> = d
                .as_ref()
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&hidden.data), keys(&unknown.data));
        assert_eq!(hidden.data.as_ref().unwrap()["kind"], "unknown_tool");
        // The short alias does not find it either.
        let short = rpc_error(
            &call(&u, "fail.v1", json!({"message": "x"}))
                .await
                .unwrap_err(),
        );
        assert_eq!(short.message, "unknown tool 'fail.v1'");

        // A hidden resource reads like a missing one.
        use rmcp::model::ReadResourceRequestParams;
        let e = u
            .read_resource(ReadResourceRequestParams::new("kit://readme"))
            .await
            .unwrap_err();
        let e = rpc_error(&e);
        assert_eq!(e.message, "resource not found: kit://readme");
        assert!(
            a.read_resource(ReadResourceRequestParams::new("kit://readme"))
                .await
                .is_ok()
        );
        // roles_all: a writer without admin does not get the prompt.
        let w = sign(Algorithm::HS256, Some("hs"), &claims("carol", &["writer"]));
        let w = http_client_as(&gw.url(), stateless, Some(&w), &[]).await;
        let e = w
            .get_prompt(rmcp::model::GetPromptRequestParams::new("kit.greet"))
            .await
            .unwrap_err();
        assert_eq!(rpc_error(&e).message, "unknown prompt 'kit.greet'");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn agent_allowlist_and_identity_forwarded_to_the_provider() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &jwt_yaml(""))).await;
    let t = sign(Algorithm::HS256, Some("hs"), &claims("alice", &["user"]));
    let claude = http_client_as(&gw.url(), false, Some(&t), &[("x-agent-name", "claude")]).await;
    let other = http_client_as(&gw.url(), false, Some(&t), &[("x-agent-name", "rogue")]).await;
    assert!(names(&claude).await.contains(&"kit.whoami.v1".to_string()));
    assert!(!names(&other).await.contains(&"kit.whoami.v1".to_string()));
    let e = rpc_error(
        &call(&other, "kit.whoami.v1", json!({"message": ""}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message, "unknown tool 'kit.whoami.v1'");
    let r = call(&claude, "kit.whoami.v1", json!({"message": ""}))
        .await
        .unwrap();
    let s = r.structured_content.unwrap();
    assert_eq!(s["principal"], "alice");
    assert_eq!(s["agent"], "claude");
    gw.shutdown().await;
}

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

/// `tools/list` over bare HTTP with `token`: (status, WWW-Authenticate).
async fn try_token(url: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let (status, h, _) = raw_2026(url, "tools/list", None, json!({}), &headers).await;
    let www = h
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, www)
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
async fn rate_limits_per_principal_429_and_per_tool_json_rpc() {
    let provider = spawn_kit(Arc::default()).await;
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: a, sha256: \"{}\" }}\n    - {{ principal: b, sha256: \"{}\" }}\nrate_limits:\n  per_principal: {{ per_second: 1, burst: 3 }}\n  tools:\n    kit.echo.v1: {{ per_second: 1, burst: 1 }}\n",
        sha256_hex("key-a"),
        sha256_hex("key-b")
    );
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &yaml)).await;
    let list = |key: &'static str| {
        let url = gw.url();
        async move { raw_2026(&url, "tools/list", None, json!({}), &[("x-api-key", key)]).await }
    };
    for _ in 0..3 {
        assert_eq!(list("key-a").await.0, 200);
    }
    let (s, h, body) = list("key-a").await;
    assert_eq!(s, 429);
    assert_eq!(h.get("retry-after").unwrap(), "1");
    assert_eq!(body["error"], "rate_limited");
    assert!(body["retry_after_ms"].as_u64().unwrap() <= 1000, "{body}");
    // Another principal has its own bucket.
    assert_eq!(list("key-b").await.0, 200);

    // Per tool: the second call within a second is refused over JSON-RPC.
    let args = json!({"name": "kit.echo.v1", "arguments": {"message": "x"}});
    let (s, _, ok) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.echo.v1"),
        args.clone(),
        &[("x-api-key", "key-b")],
    )
    .await;
    assert_eq!(s, 200);
    assert!(ok["result"].is_object(), "{ok}");
    let (_, _, refused) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.echo.v1"),
        args,
        &[("x-api-key", "key-b")],
    )
    .await;
    assert_eq!(refused["error"]["code"], -32005, "{refused}");
    assert_eq!(refused["error"]["data"]["kind"], "rate_limited");
    assert!(
        refused["error"]["data"]["retry_after_ms"]
            .as_u64()
            .is_some()
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("rate limit exceeded for tool 'kit.echo.v1'"),
        "{refused}"
    );
    gw.shutdown().await;
}

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

/// The binary, with secrets from env and file: they never show in its
/// logs, its errors or /ready, even when clients send wrong keys.
#[tokio::test]
async fn secrets_never_appear_in_logs_errors_or_ready() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("hs.secret");
    std::fs::write(&secret_file, "file-secret-ZQXJ-9931\n").unwrap();
    let port = free_port().await;
    let yaml = format!(
        r#"listen: 127.0.0.1:{port}
auth:
  mode: api_key
  api_keys:
    - {{ principal: svc, key: "${{MCPGW_SECRET_UNDER_TEST}}" }}
    - {{ principal: f, key: "file:{}" }}
providers:
  - name: gone
    endpoint: http://127.0.0.1:1
"#,
        secret_file.display()
    );
    let (child, _cfg, ready) = gateway_process(
        &yaml,
        port,
        &[
            ("MCPGW_SECRET_UNDER_TEST", "env-secret-PLMK-5524"),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    // Right keys, wrong keys, a key that is almost right.
    let mut answers = String::new();
    for key in [
        "env-secret-PLMK-5524",
        "file-secret-ZQXJ-9931",
        "env-secret-PLMK-5525",
        "nope",
    ] {
        let (s, h, body) = raw_2026(
            &url,
            "tools/list",
            None,
            json!({}),
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await;
        answers.push_str(&format!("{s} {h:?} {body}\n"));
    }
    assert_eq!(answers.matches("200 ").count(), 2, "{answers}");
    // Tool arguments are never logged either, even at trace level.
    let (s, _, _) = raw_2026(
        &url,
        "tools/call",
        Some("gone.login"),
        json!({"name": "gone.login", "arguments": {"password": "ARG-SECRET-7781"}}),
        &[("authorization", "Bearer env-secret-PLMK-5524")],
    )
    .await;
    assert_eq!(s, 200);
    let logs = stop_and_logs(child).await;
    assert!(
        logs.contains("unauthenticated request refused"),
        "logs are captured: {logs}"
    );
    let leaked: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ARG-SECRET-7781"))
        .collect();
    assert!(leaked.is_empty(), "argument in logs: {leaked:?}");
    for secret in ["PLMK-552", "ZQXJ-9931"] {
        assert!(!logs.contains(secret), "secret in logs: {logs}");
        assert!(!ready.contains(secret), "secret in /ready: {ready}");
        assert!(!answers.contains(secret), "secret in answers: {answers}");
    }
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

/// Events reach only sessions allowed to see their provider: log
/// notifications and `events://recent` are filtered by policy.
#[tokio::test]
async fn events_are_filtered_by_what_the_session_may_see() {
    use crate::events::{ECHOED, evented};
    use rmcp::model::{ReadResourceRequestParams, ResourceContents};
    let provider = spawn_on(evented("ev", "ev"), "127.0.0.1:0").await;
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: reader, sha256: \"{}\", roles: [ev-reader] }}\n    - {{ principal: other, sha256: \"{}\" }}\npolicy:\n  rules:\n    - providers: [ev]\n      roles_any: [ev-reader]\n",
        sha256_hex("reader-key"),
        sha256_hex("other-key")
    );
    let gw = start_gateway(&config_yaml(&[("ev", provider.addr())], &yaml)).await;
    let (rec_r, rec_o) = (Recorder::default(), Recorder::default());
    let reader = http_client_rec(&gw.url(), false, Some("reader-key"), &[], rec_r.clone()).await;
    let other = http_client_rec(&gw.url(), false, Some("other-key"), &[], rec_o.clone()).await;
    opt_into_logs(&reader).await;
    opt_into_logs(&other).await;
    // Wait until the provider's event stream is open.
    for _ in 0..50 {
        if gw.gateway.events().stats().streams_open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(names(&other).await.is_empty());
    call(&reader, "ev.echo.v1", json!({"message": "secret-ish"}))
        .await
        .unwrap();
    let mut got = false;
    for _ in 0..40 {
        if rec_r
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l["type"] == ECHOED)
        {
            got = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(got, "the reader gets the event");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rec_o
            .logs
            .lock()
            .unwrap()
            .iter()
            .all(|l| l["provider"] != "ev"),
        "{:?}",
        rec_o.logs.lock().unwrap()
    );
    async fn recent(c: &Client) -> usize {
        let r = c
            .read_resource(ReadResourceRequestParams::new("events://recent"))
            .await
            .unwrap();
        let ResourceContents::TextResourceContents { text, .. } = &r.contents[0] else {
            panic!("{r:?}")
        };
        serde_json::from_str::<Vec<Value>>(text).unwrap().len()
    }
    assert_eq!(recent(&reader).await, 1);
    assert_eq!(recent(&other).await, 0);
    gw.shutdown().await;
}

/// `limits.request_timeout` bounds an HTTP request: 504 past it, while
/// quicker requests are answered.
#[tokio::test]
async fn request_time_limit_answers_504() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(
        &[("kit", provider.addr())],
        "limits:\n  request_timeout: 300ms\n",
    ))
    .await;
    let slow = json!({"name": "kit.slow.v1", "arguments": {"ms": 3000}});
    let started = std::time::Instant::now();
    let (s, _, body) = raw_2026(&gw.url(), "tools/call", Some("kit.slow.v1"), slow, &[]).await;
    assert_eq!(s, 504, "{body}");
    assert_eq!(body["error"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    let quick = json!({"name": "kit.slow.v1", "arguments": {"ms": 10}});
    let (s, _, _) = raw_2026(&gw.url(), "tools/call", Some("kit.slow.v1"), quick, &[]).await;
    assert_eq!(s, 200);
    gw.shutdown().await;
}

/// Resource updates for a hidden URI reach neither a 2025-11-25
/// subscription nor a 2026-07-28 listen stream of a caller who may not see
/// it; an allowed caller gets them.
#[tokio::test]
async fn resource_updates_for_hidden_uris_are_not_delivered() {
    use crate::events::evented;
    use rmcp::model::{ServerNotification, SubscribeRequestParams, SubscriptionFilter};
    let provider = spawn_on(evented("ev", "ev"), "127.0.0.1:0").await;
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: reader, sha256: \"{}\", roles: [reader] }}\n    - {{ principal: other, sha256: \"{}\" }}\npolicy:\n  rules:\n    - resources: [\"ev://greeting\"]\n      roles_any: [reader]\n",
        sha256_hex("reader-key"),
        sha256_hex("other-key")
    );
    let gw = start_gateway(&config_yaml(&[("ev", provider.addr())], &yaml)).await;
    for _ in 0..50 {
        if gw.gateway.events().stats().streams_open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rec_r, rec_o) = (Recorder::default(), Recorder::default());
    let reader = http_client_rec(&gw.url(), false, Some("reader-key"), &[], rec_r.clone()).await;
    let other = http_client_rec(&gw.url(), false, Some("other-key"), &[], rec_o.clone()).await;
    opt_into_logs(&reader).await;
    opt_into_logs(&other).await;
    #[allow(deprecated)]
    for c in [&reader, &other] {
        c.subscribe(SubscribeRequestParams::new("ev://greeting"))
            .await
            .unwrap();
    }
    let listener = |key: &'static str| {
        let url = gw.url();
        async move {
            let c = http_client_as(&url, true, Some(key), &[]).await;
            let sub = c
                .listen(
                    SubscriptionFilter::builder()
                        .resource_subscription("ev://greeting")
                        .build(),
                )
                .await
                .unwrap();
            (c, sub)
        }
    };
    let (_c1, mut sub_r) = listener("reader-key").await;
    let (_c2, mut sub_o) = listener("other-key").await;
    // The other caller can still use the tools (the rule names resources).
    call(&other, "ev.touch.v1", json!({"message": ""}))
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), sub_r.next())
        .await
        .expect("the reader's listen stream gets the update")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&n, ServerNotification::ResourceUpdatedNotification(u) if u.params.uri == "ev://greeting"),
        "{n:?}"
    );
    let mut got = false;
    for _ in 0..40 {
        if rec_r
            .updated
            .lock()
            .unwrap()
            .iter()
            .any(|u| u == "ev://greeting")
        {
            got = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(got, "the reader's session gets the update");
    // Nothing for the other caller, on either revision.
    let none = tokio::time::timeout(Duration::from_millis(500), sub_o.next()).await;
    assert!(
        !matches!(
            &none,
            Ok(Ok(Some(ServerNotification::ResourceUpdatedNotification(_))))
        ),
        "{none:?}"
    );
    assert!(rec_o.updated.lock().unwrap().is_empty());
    gw.shutdown().await;
}

/// `logging.arguments: true`: arguments appear in the call's log line and
/// audit record, with built-in (password, *token*) and configured (ssn,
/// a JSON pointer) fields redacted; the rest is readable.
#[tokio::test]
async fn logged_arguments_are_redacted() {
    init();
    let provider = spawn_kit(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let port = free_port().await;
    let yaml = format!(
        r#"listen: 127.0.0.1:{port}
logging:
  arguments: true
  redact: [ssn, /profile/email]
audit: {{ path: {} }}
providers:
  - name: kit
    endpoint: http://{}
"#,
        audit.display(),
        provider.addr()
    );
    let (child, _cfg, _) = gateway_process(&yaml, port, &[("RUST_LOG", "info")]).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let args = json!({
        "message": "visible-text-4411",
        "password": "PW-SECRET-7781",
        "auth": {"sessionToken": "TOK-SECRET-2291"},
        "ssn": "SSN-SECRET-5150",
        "profile": {"email": "MAIL-SECRET-6060", "city": "visible-city-3030"},
    });
    let text = eventually(Duration::from_secs(10), || {
        let (url, args) = (url.clone(), args.clone());
        async move {
            let (s, _, body) = raw_2026(
                &url,
                "tools/call",
                Some("kit.echo.v1"),
                json!({"name": "kit.echo.v1", "arguments": args}),
                &[],
            )
            .await;
            (s == 200 && body["result"].is_object()).then(|| body.to_string())
        }
    })
    .await
    .expect("the call succeeds once kit is discovered");
    assert!(text.contains("visible-text-4411"), "{text}");
    let record: Value = eventually(Duration::from_secs(5), || {
        let audit = audit.clone();
        async move {
            let text = std::fs::read_to_string(&audit).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|r| r["method"] == "tools/call" && r["outcome"] == "ok")
        }
    })
    .await
    .expect("an audit record for the call");
    assert_eq!(
        record["arguments"],
        json!({
            "message": "visible-text-4411",
            "password": "[REDACTED]",
            "auth": {"sessionToken": "[REDACTED]"},
            "ssn": "[REDACTED]",
            "profile": {"email": "[REDACTED]", "city": "visible-city-3030"},
        }),
        "{record}"
    );
    assert!(record["args_sha256"].is_string(), "{record}");
    let logs = stop_and_logs(child).await;
    let line = logs
        .lines()
        .find(|l| l.contains("visible-city-3030"))
        .unwrap_or_else(|| panic!("the call's log line carries its arguments: {logs}"));
    assert!(line.contains("[REDACTED]"), "{line}");
    for secret in ["PW-SECRET", "TOK-SECRET", "SSN-SECRET", "MAIL-SECRET"] {
        assert!(!logs.contains(secret), "{secret} in logs: {logs}");
    }
}

/// auth, policy and rate limits apply on reload, without a restart: a
/// removed key is refused, a new one accepted, lists follow the new policy
/// (open sessions are told to list again), and the reload needs no restart.
#[tokio::test]
async fn security_settings_apply_on_reload() {
    let provider = spawn_kit(Arc::default()).await;
    let keys = |extra: &str| {
        format!(
            "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: ops, sha256: \"{}\", roles: [admin] }}\n{extra}",
            sha256_hex("ops-key-1")
        )
    };
    let before = keys(&format!(
        "    - {{ principal: bot, sha256: \"{}\" }}\npolicy:\n  default: deny\n  rules:\n    - tools: [\"kit.echo.v1\"]\n",
        sha256_hex("bot-key-2")
    ));
    let providers = [("kit", provider.addr())];
    let gw = start_gateway(&config_yaml(&providers, &before)).await;
    let rec = Recorder::default();
    let ops = http_client_rec(&gw.url(), false, Some("ops-key-1"), &[], rec.clone()).await;
    assert_eq!(names(&ops).await, ["kit.echo.v1"]);
    assert_eq!(try_token(&gw.url(), Some("bot-key-2")).await.0, 200);

    let after = keys(&format!(
        "    - {{ principal: newbie, sha256: \"{}\" }}\npolicy:\n  default: deny\n  rules:\n    - tools: [\"kit.echo.v1\", \"kit.fail.v1\"]\n      roles_any: [admin]\nrate_limits:\n  tools:\n    kit.echo.v1: {{ per_second: 1, burst: 1 }}\n",
        sha256_hex("new-key-3")
    ));
    let report = gw
        .gateway
        .reload(mcp_gateway::config::Config::parse(&config_yaml(&providers, &after)).unwrap())
        .await
        .unwrap();
    assert!(report.needs_restart.is_empty(), "{report:?}");
    assert_eq!(try_token(&gw.url(), Some("bot-key-2")).await.0, 401);
    assert_eq!(try_token(&gw.url(), Some("new-key-3")).await.0, 200);
    let newbie = http_client_as(&gw.url(), true, Some("new-key-3"), &[]).await;
    assert!(names(&newbie).await.is_empty());
    let e = rpc_error(
        &call(&newbie, "kit.echo.v1", json!({"message": ""}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message, "unknown tool 'kit.echo.v1'");
    // The open session was told, and now sees the admin tools.
    assert!(
        eventually(Duration::from_secs(5), || {
            let seen = rec
                .tools_changed_seen
                .load(std::sync::atomic::Ordering::SeqCst);
            async move { seen.then_some(()) }
        })
        .await
        .is_some(),
        "tools/list_changed after the policy reload"
    );
    assert_eq!(names(&ops).await, ["kit.echo.v1", "kit.fail.v1"]);
    // The new per-tool limit holds.
    call(&ops, "kit.echo.v1", json!({"message": "1"}))
        .await
        .unwrap();
    let e = rpc_error(
        &call(&ops, "kit.echo.v1", json!({"message": "2"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.0, -32005, "{e:?}");

    gw.shutdown().await;
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

/// A secret behind `file:` is re-read on reload even when the config text is
/// unchanged (key rotation, then SIGHUP).
#[tokio::test]
async fn a_reload_rereads_secret_files() {
    let provider = spawn_kit(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "first-key-1\n").unwrap();
    let yaml = config_yaml(
        &[("kit", provider.addr())],
        &format!(
            "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: a, key: \"file:{}\" }}\n",
            key.display()
        ),
    );
    let gw = start_gateway(&yaml).await;
    assert_eq!(try_token(&gw.url(), Some("first-key-1")).await.0, 200);
    std::fs::write(&key, "second-key-2\n").unwrap();
    gw.gateway
        .reload(mcp_gateway::config::Config::parse(&yaml).unwrap())
        .await
        .unwrap();
    assert_eq!(try_token(&gw.url(), Some("first-key-1")).await.0, 401);
    assert_eq!(try_token(&gw.url(), Some("second-key-2")).await.0, 200);
    gw.shutdown().await;
}
