//! Security: authentication, identity, policy, rate limits, Origin checks
//! and secret hygiene, each with a refused and an accepted case, over real
//! HTTP against the real gateway.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::*;
use crate::failures::raw_2026;

mod front_guards;
mod limits;
mod policy;
mod secrets;
mod tokens;

pub(crate) fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub(crate) const HS_SECRET: &str = "test-hs256-secret-0123456789abcdef";

pub(crate) fn now() -> u64 {
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

pub(crate) fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
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

pub(crate) fn b64(v: &[u8]) -> String {
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

/// `tools/list` over bare HTTP with `token`: (status, WWW-Authenticate).
pub(crate) async fn try_token(url: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let (status, h, _) = raw_2026(url, "tools/list", None, json!({}), &headers).await;
    let www = h
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, www)
}

pub(crate) async fn names(client: &Client) -> Vec<String> {
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
