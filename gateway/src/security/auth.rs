//! Northbound authentication (`auth:` in the config): who is calling.
//!
//! Modes: `none` (loopback only unless explicitly overridden), `api_key`
//! (keys stored as SHA-256 hex, or given as `${ENV}` / `file:` references)
//! and `jwt` (HS256, RS256, ES256; keys from PEM files, secrets, or a JWKS
//! URL). Every key is pinned to one algorithm, so `alg: none` and algorithm
//! confusion (an HS256 token "signed" with an RSA public key) are refused.
//! The result is an [`Identity`]; authorization is `policy`'s job.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::problem::Problem;

/// Who is calling, as established by the front door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: String,
    pub roles: Vec<String>,
    /// The agent acting for the principal; empty when unknown.
    pub agent: String,
}

impl Identity {
    /// Whether this caller holds one of `roles`.
    pub fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }

    pub fn anonymous() -> Self {
        Self {
            principal: "anonymous".into(),
            roles: Vec::new(),
            agent: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No client authentication (loopback binds only, unless overridden).
    #[default]
    None,
    ApiKey,
    Jwt,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub api_keys: Vec<ApiKeyConfig>,
    pub jwt: Option<JwtConfig>,
    /// The identity of a stdio client (the parent process is trusted).
    pub stdio_principal: String,
    pub stdio_roles: Vec<String>,
    /// This resource's URL for RFC 9728 metadata, e.g.
    /// `https://gw.example.com/mcp`; derived from `Host` when unset.
    pub resource: Option<String>,
    /// OAuth authorization servers clients should get tokens from.
    pub authorization_servers: Vec<String>,
    /// `/metrics` and `/api/*` require authentication when auth is on.
    pub protect_admin: bool,
    /// Roles that make a principal an operator: `/metrics` and everyone's
    /// usage analytics. Others see only their own calls to tools they see.
    pub operator_roles: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            api_keys: Vec::new(),
            jwt: None,
            stdio_principal: "stdio".into(),
            stdio_roles: Vec::new(),
            resource: None,
            authorization_servers: Vec::new(),
            protect_admin: true,
            operator_roles: vec!["operator".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The principal this key authenticates.
    pub principal: String,
    /// SHA-256 of the key, lowercase hex (preferred: nothing secret in the file).
    #[serde(default)]
    pub sha256: Option<String>,
    /// The key itself as a reference: `${ENV_VAR}` or `file:PATH`.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Fixes the agent for this key (the `x-agent-name` header is ignored).
    #[serde(default)]
    pub agent: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Alg {
    HS256,
    RS256,
    ES256,
}

impl Alg {
    fn jwt(self) -> Algorithm {
        match self {
            Alg::HS256 => Algorithm::HS256,
            Alg::RS256 => Algorithm::RS256,
            Alg::ES256 => Algorithm::ES256,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` values; when set, `aud` is required.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    pub keys: Vec<JwtKeyConfig>,
    pub jwks: Option<JwksConfig>,
    /// Dotted paths into the claims.
    pub subject_claim: String,
    pub roles_claim: String,
    /// When set, the agent comes from this claim only (header ignored).
    pub agent_claim: Option<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: Vec::new(),
            leeway: Duration::from_secs(30),
            keys: Vec::new(),
            jwks: None,
            subject_claim: "sub".into(),
            roles_claim: "roles".into(),
            agent_claim: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// When set, only tokens with this `kid` are verified with this key.
    #[serde(default)]
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub alg: Alg,
    /// HS256 secret as a reference (`${ENV}` or `file:PATH`) or literal.
    #[serde(default)]
    pub secret: Option<String>,
    /// RS256/ES256 public key, PEM file.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    pub url: String,
    /// Algorithms accepted from JWKS keys (a key's own `alg` must agree).
    #[serde(default = "default_jwks_algs")]
    pub algorithms: Vec<Alg>,
    /// How long fetched keys are trusted before being fetched again.
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub refresh: Duration,
    /// CA certificate(s), PEM, to trust *instead of* the system's roots for
    /// an https URL (an identity provider behind a private CA).
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
}

fn default_jwks_algs() -> Vec<Alg> {
    vec![Alg::RS256, Alg::ES256]
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        self.mode != AuthMode::None
    }

    pub(crate) fn problems(&self, bad: &mut impl FnMut(String, String)) {
        match self.mode {
            AuthMode::None => {}
            AuthMode::ApiKey if self.api_keys.is_empty() => bad(
                "auth.api_keys".into(),
                "mode api_key needs at least one key".into(),
            ),
            AuthMode::Jwt if self.jwt.is_none() => {
                bad("auth.jwt".into(), "mode jwt needs a jwt section".into())
            }
            _ => {}
        }
        for (i, k) in self.api_keys.iter().enumerate() {
            let at = format!("auth.api_keys[{i}]");
            if k.principal.trim().is_empty() {
                bad(format!("{at}.principal"), "must not be empty".into());
            }
            match (&k.sha256, &k.key) {
                (Some(h), None) => {
                    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        bad(format!("{at}.sha256"), "must be 64 hex digits".into());
                    }
                }
                (None, Some(_)) => {}
                _ => bad(at, "set exactly one of sha256 or key".into()),
            }
        }
        if let Some(j) = &self.jwt {
            if j.keys.is_empty() && j.jwks.is_none() {
                bad("auth.jwt".into(), "needs keys or jwks".into());
            }
            for (i, k) in j.keys.iter().enumerate() {
                let at = format!("auth.jwt.keys[{i}]");
                match (k.alg, &k.secret, &k.public_key) {
                    (Alg::HS256, Some(_), None) => {}
                    (Alg::HS256, _, _) => bad(at, "HS256 needs secret (and no public_key)".into()),
                    (_, None, Some(_)) => {}
                    (_, _, _) => bad(at, "RS256/ES256 need public_key (and no secret)".into()),
                }
            }
            if let Some(jwks) = &j.jwks {
                match jwks.url.parse::<http::Uri>() {
                    Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) => {}
                    _ => bad("auth.jwt.jwks.url".into(), "must be an http(s) URL".into()),
                }
                if jwks.algorithms.contains(&Alg::HS256) {
                    bad(
                        "auth.jwt.jwks.algorithms".into(),
                        "HS256 keys are never taken from a JWKS".into(),
                    );
                }
            }
        }
    }
}

/// Why a request was not authenticated. The message goes to the client in
/// `WWW-Authenticate` and must never carry the token or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("{0}")]
    Invalid(String),
}

/// Building the authenticator failed (unreadable key file, missing env...).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SetupError {
    pub field: String,
    pub message: String,
}

impl From<SetupError> for Problem {
    fn from(e: SetupError) -> Self {
        Problem {
            field: e.field,
            message: e.message,
        }
    }
}

struct ApiKey {
    hash: [u8; 32],
    principal: String,
    roles: Vec<String>,
    agent: Option<String>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

struct Jwks {
    cfg: JwksConfig,
    client: reqwest::Client,
    cache: tokio::sync::Mutex<Option<(Instant, Arc<Vec<Key>>)>>,
}

pub struct Authenticator {
    cfg: AuthConfig,
    api_keys: Vec<ApiKey>,
    keys: Vec<Key>,
    jwks: Option<Jwks>,
}

impl Authenticator {
    pub fn new(cfg: &AuthConfig, base_dir: &std::path::Path) -> Result<Self, SetupError> {
        let mut api_keys = Vec::new();
        for (i, k) in cfg.api_keys.iter().enumerate() {
            let field = format!("auth.api_keys[{i}]");
            let hash = match (&k.sha256, &k.key) {
                (Some(h), _) => {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(h, &mut out).map_err(|_| SetupError {
                        field: format!("{field}.sha256"),
                        message: "must be 64 hex digits".into(),
                    })?;
                    out
                }
                (None, Some(r)) => {
                    let key =
                        crate::security::secret::resolve(r, base_dir).map_err(|e| SetupError {
                            field: format!("{field}.key"),
                            message: e.to_string(),
                        })?;
                    Sha256::digest(key.as_bytes()).into()
                }
                (None, None) => {
                    return Err(SetupError {
                        field,
                        message: "set sha256 or key".into(),
                    });
                }
            };
            api_keys.push(ApiKey {
                hash,
                principal: k.principal.clone(),
                roles: k.roles.clone(),
                agent: k.agent.clone(),
            });
        }
        let mut keys = Vec::new();
        let mut jwks = None;
        if let Some(j) = &cfg.jwt {
            for (i, k) in j.keys.iter().enumerate() {
                let field = format!("auth.jwt.keys[{i}]");
                let setup = |message: String| SetupError {
                    field: field.clone(),
                    message,
                };
                let key = match (k.alg, &k.secret, &k.public_key) {
                    (Alg::HS256, Some(s), _) => {
                        let s = crate::security::secret::resolve(s, base_dir)
                            .map_err(|e| setup(format!("secret: {e}")))?;
                        DecodingKey::from_secret(s.as_bytes())
                    }
                    (alg, _, Some(p)) => {
                        let path = base_dir.join(p);
                        let pem = std::fs::read(&path).map_err(|e| {
                            setup(format!("cannot read public_key {}: {e}", path.display()))
                        })?;
                        let parsed = if alg == Alg::RS256 {
                            DecodingKey::from_rsa_pem(&pem)
                        } else {
                            DecodingKey::from_ec_pem(&pem)
                        };
                        parsed.map_err(|e| setup(format!("public_key: {e}")))?
                    }
                    _ => return Err(setup("no key material".into())),
                };
                keys.push(Key {
                    kid: k.kid.clone(),
                    alg: k.alg.jwt(),
                    key,
                });
            }
            if let Some(c) = &j.jwks {
                // reqwest is built without a default provider: use ring.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
                if let Some(ca) = &c.ca {
                    let path = base_dir.join(ca);
                    let bad = |message: String| SetupError {
                        field: "auth.jwt.jwks.ca".into(),
                        message: format!("{}: {message}", path.display()),
                    };
                    let pem = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|e| bad(e.to_string()))?;
                    if certs.is_empty() {
                        return Err(bad("no PEM certificate found".into()));
                    }
                    builder = builder.tls_certs_only(certs);
                }
                let client = builder.build().map_err(|e| SetupError {
                    field: "auth.jwt.jwks".into(),
                    message: format!("HTTP client: {e}"),
                })?;
                jwks = Some(Jwks {
                    cfg: c.clone(),
                    client,
                    cache: tokio::sync::Mutex::new(None),
                });
            }
        }
        Ok(Self {
            cfg: cfg.clone(),
            api_keys,
            keys,
            jwks,
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled()
    }

    /// The identity a stdio client gets.
    pub fn stdio_identity(&self) -> Identity {
        Identity {
            principal: self.cfg.stdio_principal.clone(),
            roles: self.cfg.stdio_roles.clone(),
            agent: String::new(),
        }
    }

    /// Authenticates an HTTP request by its headers. `agent_header` is the
    /// client-asserted agent, used unless a key or claim fixes the agent.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        agent_header: &str,
    ) -> Result<Identity, AuthError> {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        match self.cfg.mode {
            AuthMode::None => Ok(Identity {
                agent: agent_header.to_string(),
                ..Identity::anonymous()
            }),
            AuthMode::ApiKey => {
                let key = bearer
                    .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
                    .filter(|k| !k.is_empty())
                    .ok_or(AuthError::Missing)?;
                let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
                // Compares digests, so timing reveals nothing about a key.
                let found = self.api_keys.iter().find(|k| k.hash == hash);
                let k = found.ok_or_else(|| AuthError::Invalid("invalid API key".into()))?;
                Ok(Identity {
                    principal: k.principal.clone(),
                    roles: k.roles.clone(),
                    agent: k.agent.clone().unwrap_or_else(|| agent_header.to_string()),
                })
            }
            AuthMode::Jwt => {
                let token = bearer.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
                self.verify_jwt(token, agent_header).await
            }
        }
    }

    async fn verify_jwt(&self, token: &str, agent_header: &str) -> Result<Identity, AuthError> {
        let cfg = self.cfg.jwt.as_ref().expect("checked by config");
        // An unknown `alg` (including "none") fails to parse here.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid("malformed token or unsupported algorithm".into()))?;
        let mut candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg && kid_matches(&k.kid, &header.kid))
            .collect();
        let jwks_keys;
        if candidates.is_empty()
            && let Some(jwks) = &self.jwks
        {
            jwks_keys = jwks.keys(header.kid.as_deref()).await?;
            candidates = jwks_keys
                .iter()
                .filter(|k| k.alg == header.alg && kid_matches(&k.kid, &header.kid))
                .collect();
        }
        if candidates.is_empty() {
            return Err(AuthError::Invalid(format!(
                "no key accepts algorithm {:?}{}",
                header.alg,
                header
                    .kid
                    .as_deref()
                    .map(|k| format!(" with kid {k:?}"))
                    .unwrap_or_default()
            )));
        }
        let mut v = Validation::new(header.alg);
        v.leeway = cfg.leeway.as_secs();
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        if !cfg.audience.is_empty() {
            v.set_audience(&cfg.audience);
            v.required_spec_claims.insert("aud".into());
        } else {
            v.validate_aud = false;
        }
        if let Some(iss) = &cfg.issuer {
            v.set_issuer(&[iss]);
            v.required_spec_claims.insert("iss".into());
        }
        let mut last = AuthError::Invalid("invalid signature".into());
        for k in candidates {
            match jsonwebtoken::decode::<Value>(token, &k.key, &v) {
                Ok(data) => return identity_from_claims(cfg, &data.claims, agent_header),
                Err(e) => last = AuthError::Invalid(describe(&e)),
            }
        }
        Err(last)
    }
}

/// A key with a `kid` matches only tokens naming that `kid`; a key without
/// one matches any token (docs/security.md).
fn kid_matches(key: &Option<String>, token: &Option<String>) -> bool {
    match (key, token) {
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "token expired".into(),
        K::ImmatureSignature => "token not yet valid (nbf)".into(),
        K::InvalidAudience => "wrong audience".into(),
        K::InvalidIssuer => "wrong issuer".into(),
        K::InvalidSignature => "invalid signature".into(),
        K::InvalidAlgorithm => "algorithm not accepted for this key".into(),
        K::MissingRequiredClaim(c) => format!("missing required claim {c}"),
        _ => "malformed token".into(),
    }
}

/// A dotted path into JSON claims: `realm_access.roles`.
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, seg| v.get(seg))
}

fn identity_from_claims(
    cfg: &JwtConfig,
    claims: &Value,
    agent_header: &str,
) -> Result<Identity, AuthError> {
    let principal = claim(claims, &cfg.subject_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::Invalid(format!("missing claim {}", cfg.subject_claim)))?;
    let roles = match claim(claims, &cfg.roles_claim) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        // OAuth `scope` style: space-separated.
        Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    };
    let agent = match &cfg.agent_claim {
        Some(path) => claim(claims, path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        None => agent_header.to_string(),
    };
    Ok(Identity {
        principal: principal.to_string(),
        roles,
        agent,
    })
}

/// Shortest wait between two JWKS fetches caused by unknown `kid`s, so
/// junk tokens cannot make the gateway hammer the key server.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

impl Jwks {
    async fn keys(&self, kid: Option<&str>) -> Result<Arc<Vec<Key>>, AuthError> {
        let mut cache = self.cache.lock().await;
        let fresh = |at: &Instant, keys: &Vec<Key>| {
            let known = kid.is_none_or(|kid| keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
            at.elapsed() < self.cfg.refresh && (known || at.elapsed() < JWKS_MIN_REFETCH)
        };
        if let Some((at, keys)) = cache.as_ref()
            && fresh(at, keys)
        {
            return Ok(keys.clone());
        }
        match self.fetch().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *cache = Some((Instant::now(), keys.clone()));
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(url = %self.cfg.url, error = %e, "JWKS fetch failed");
                // Keep serving the keys we had.
                match cache.as_ref() {
                    Some((_, keys)) => Ok(keys.clone()),
                    None => Err(AuthError::Invalid("signing keys unavailable".into())),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let set: JwkSet = self
            .client
            .get(&self.cfg.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for jwk in &set.keys {
            use jsonwebtoken::jwk::AlgorithmParameters as P;
            // A key's own `alg` must agree with its type; one without `alg`
            // gets its type's algorithm. Never HMAC from a JWKS.
            let by_type = match &jwk.algorithm {
                P::RSA(_) => Algorithm::RS256,
                P::EllipticCurve(_) => Algorithm::ES256,
                _ => continue,
            };
            let alg = match jwk.common.key_algorithm.map(|a| a.to_string()) {
                None => by_type,
                Some(a) if a == format!("{by_type:?}") => by_type,
                Some(_) => continue,
            };
            if !self.cfg.algorithms.iter().any(|a| a.jwt() == alg) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            out.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        Ok(out)
    }
}
