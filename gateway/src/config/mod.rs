//! `providers.yaml`: the gateway's one config file.
//!
//! Parsing is strict (`deny_unknown_fields`), so a typo is an error rather than
//! a silently ignored key, and every error names the field it is about.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;

pub mod problem;
mod shape;
pub use problem::Problem;

/// Where the config is loaded from when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "providers.yaml";

/// Used when the default config file does not exist, so `mcp-gateway` runs
/// out of the box: hello-rs on its default address, not launched.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not marked as a source: the message already says it, once.
    #[error("{path}: cannot read the config file: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("invalid config: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the Streamable HTTP front door.
    pub listen: SocketAddr,
    /// Binding anything but loopback with no client authentication is refused
    /// unless this is set.
    pub allow_unauthenticated_public_bind: bool,
    /// Extra `Host` values accepted on `/mcp` (DNS-rebinding protection);
    /// loopback names and the listen address are always accepted.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted on `/mcp` besides loopback ones
    /// (`scheme://host:port`, `:*` for any port). Requests without `Origin`
    /// (non-browser clients) pass.
    pub allowed_origins: Vec<String>,
    /// TLS on the HTTP listener: `{ cert, key }` PEM files.
    pub server_tls: Option<ServerTls>,
    /// Northbound authentication (see docs/security.md).
    pub auth: crate::security::auth::AuthConfig,
    /// Who may see and use which tool, prompt and resource.
    pub policy: crate::security::policy::PolicyConfig,
    pub rate_limits: crate::security::ratelimit::RateLimitConfig,
    pub naming: Naming,
    pub limits: Limits,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub discovery: Discovery,
    pub audit: Audit,
    /// Tool arguments in logs and audit records (off), and their redaction.
    pub logging: crate::security::redact::LoggingConfig,
    pub telemetry: Telemetry,
    pub providers: Vec<ProviderConfig>,
    /// Directory relative paths are resolved against: the config file's.
    #[serde(skip)]
    pub base_dir: std::path::PathBuf,
    /// CloudEvents in: NATS JetStream, or the providers' `Stream` RPC.
    pub events: crate::events::config::EventsConfig,
    /// Providers asking the client for input (MRTR): rounds, state sealing.
    pub input: crate::security::seal::InputConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_unauthenticated_public_bind: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            server_tls: None,
            auth: Default::default(),
            policy: Default::default(),
            rate_limits: Default::default(),
            naming: Naming::default(),
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(10),
            discovery: Discovery::default(),
            audit: Audit::default(),
            logging: Default::default(),
            telemetry: Telemetry::default(),
            providers: Vec::new(),
            base_dir: std::path::PathBuf::from("."),
            events: Default::default(),
            input: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Naming {
    /// Between the provider name and the item name: `hello-rs.echo.v1`.
    pub separator: String,
    /// Whether tool and prompt names carry the provider prefix.
    pub prefix: bool,
}

impl Default for Naming {
    fn default() -> Self {
        Self {
            separator: ".".into(),
            prefix: true,
        }
    }
}

/// Per-provider override of [`Naming`]; unset fields inherit the global value.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamingOverride {
    pub separator: Option<String>,
    pub prefix: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body and largest accepted provider response.
    pub max_payload_bytes: usize,
    /// Longest an HTTP request to `/mcp` may take to be answered (GET
    /// event streams excepted); 504 after it.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time a client has for its TLS handshake and first request head, and
    /// for any later request head once its first byte arrived.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open client connections at most; unset: three quarters of the
    /// process's open-file limit, at most 16384.
    pub max_connections: Option<usize>,
    /// Live 2025-11-25 sessions at most (initialized or not).
    pub max_sessions: usize,
    /// Sessions one principal may hold (one client address, with auth off).
    pub max_sessions_per_client: usize,
    /// A session with no request or open stream for this long ends.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// Items per page of `tools/list` and the other lists; a client follows
    /// `nextCursor` for the rest.
    pub list_page_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(300),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            max_sessions: 10_000,
            max_sessions_per_client: 1_000,
            session_idle_timeout: Duration::from_secs(300),
            list_page_size: 10_000,
        }
    }
}

impl Limits {
    /// `max_connections`, or its default from the open-file limit.
    pub fn connections(&self) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the struct we pass.
            let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
            let files = if ok { lim.rlim_cur as usize } else { 1024 };
            (files / 4 * 3).clamp(16, 16_384)
        })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Discovery {
    /// First wait before an unavailable provider is tried again; it doubles
    /// (with jitter) up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often a live provider is health-checked and asked whether its
    /// capabilities changed.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
}

impl Default for Discovery {
    fn default() -> Self {
        Self {
            retry_interval: Duration::from_millis(500),
            retry_max: Duration::from_secs(5),
            refresh_interval: Duration::from_secs(10),
        }
    }
}

/// Trace export. The standard `OTEL_*` environment variables work too and
/// win over this file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`; no export when unset.
    pub otlp_endpoint: Option<String>,
}

/// The audit log (see docs/operations.md for its guarantee).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// JSONL file, appended to; no audit log when unset.
    pub path: Option<std::path::PathBuf>,
    pub fsync: crate::observe::audit::Fsync,
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// Also publish each record to JetStream (uses `events.nats`).
    pub jetstream: Option<AuditJetStream>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditJetStream {
    #[serde(default = "default_audit_subject")]
    pub subject: String,
    /// Created if missing, capturing `subject`.
    #[serde(default = "default_audit_stream")]
    pub stream: String,
}

fn default_audit_subject() -> String {
    "mcp.audit".into()
}

fn default_audit_stream() -> String {
    "MCP_AUDIT".into()
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            path: None,
            fsync: crate::observe::audit::Fsync::Interval,
            fsync_interval: Duration::from_secs(1),
            jetstream: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Lowercase letters, digits and `-`, starting with a letter. It prefixes
    /// the provider's items and may prefix its URI schemes, so it must be a
    /// valid URI scheme fragment.
    pub name: String,
    /// `http://host:port` is plaintext gRPC; `https://host:port` is TLS and
    /// needs `tls`. The scheme says which, explicitly.
    pub endpoint: String,
    /// TLS to the provider (with `https://`); `cert` and `key` add the
    /// gateway's client certificate (mTLS). Files are reloaded on change.
    #[serde(default)]
    pub tls: Option<ProviderTls>,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub naming: NamingOverride,
    /// Calls allowed in flight at once (bulkhead); more are refused.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub retries: Retries,
    /// Start and supervise the provider process (a "managed provider").
    #[serde(default)]
    pub launch: Option<Launch>,
    /// Cache results of these (read-only) tools.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The provider's own tool names (`echo.v1`). A tool that is not
    /// annotated read-only is never cached, whatever is listed here.
    pub tools: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    #[serde(default = "default_cache_entries")]
    pub max_entries: u64,
}

fn default_cache_entries() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// Certificate chain, PEM.
    pub cert: std::path::PathBuf,
    /// Private key, PEM.
    pub key: std::path::PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProviderTls {
    /// CA certificate(s), PEM, that the provider's certificate must chain to.
    pub ca: std::path::PathBuf,
    /// Client certificate chain, PEM (mTLS).
    #[serde(default)]
    pub cert: Option<std::path::PathBuf>,
    /// Client private key, PEM (mTLS).
    #[serde(default)]
    pub key: Option<std::path::PathBuf>,
    /// Name checked against the certificate's SANs; defaults to the
    /// endpoint's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    /// Program to run. A relative path containing `/` is taken relative to
    /// the config file's directory; a bare name is looked up on PATH.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Defaults to the config file's directory.
    #[serde(default)]
    pub working_dir: Option<std::path::PathBuf>,
    /// Longest wait between restarts after crashes (backoff starts at 250ms).
    #[serde(default = "default_restart_max", with = "humantime_serde")]
    pub restart_max: Duration,
}

fn default_restart_max() -> Duration {
    Duration::from_secs(10)
}

fn default_pool_size() -> usize {
    15
}

fn default_max_concurrency() -> usize {
    256
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive provider failures that open the breaker.
    pub failures: u32,
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            cool_down: Duration::from_secs(10),
        }
    }
}

/// Retries apply only to calls that are safe to repeat: reads, prompts, and
/// tools annotated read-only or idempotent, and never after progress was
/// relayed. All attempts share the call's one deadline.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retries {
    /// Attempts in all, including the first; 1 turns retries off.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_millis(50),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    #[serde(with = "humantime_serde")]
    pub discovery: Duration,
    #[serde(with = "humantime_serde")]
    pub invoke: Duration,
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            discovery: Duration::from_millis(2500),
            invoke: Duration::from_secs(30),
            connect: Duration::from_secs(2),
        }
    }
}

impl ProviderConfig {
    /// The naming in force for this provider: its override over the global one.
    pub fn naming(&self, global: &Naming) -> Naming {
        Naming {
            separator: self
                .naming
                .separator
                .clone()
                .unwrap_or_else(|| global.separator.clone()),
            prefix: self.naming.prefix.unwrap_or(global.prefix),
        }
    }
}

impl Config {
    /// Loads `path`; a file that cannot be read is an error.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let mut config = Self::parse(&text)?;
        config.base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        Ok(config)
    }

    /// [`Config::load`] of [`DEFAULT_CONFIG_PATH`], or the embedded default
    /// when that file does not exist: what `mcp-gateway` runs on when no
    /// config is named.
    pub fn load_default() -> Result<(Self, bool), ConfigError> {
        let path = Path::new(DEFAULT_CONFIG_PATH);
        if path.exists() {
            Ok((Self::load(path)?, true))
        } else {
            Ok((Self::parse(EMBEDDED_DEFAULT)?, false))
        }
    }

    /// Parses and validates YAML text, reporting every problem found.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = shape::read(text).map_err(ConfigError::Invalid)?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The public-bind rule, the one place it is written: a non-loopback
    /// listener needs client authentication unless explicitly overridden.
    /// Checked on load, on a `--listen` override and on reload.
    pub fn unauthenticated_public_bind(&self) -> bool {
        !self.listen.ip().is_loopback()
            && !self.auth.enabled()
            && !self.allow_unauthenticated_public_bind
    }

    /// Semantic checks serde cannot express.
    fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: String, message: String| out.push(Problem { field, message });

        if self.unauthenticated_public_bind() {
            bad(
                "listen".into(),
                format!(
                    "{} is not a loopback address and clients are not authenticated; \
                     bind 127.0.0.1, configure auth, or set allow_unauthenticated_public_bind: true",
                    self.listen
                ),
            );
        }
        check_naming(&self.naming.separator, "naming.separator", &mut bad);
        if self.limits.max_payload_bytes < 1024 {
            bad(
                "limits.max_payload_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        for (field, d) in [
            ("limits.request_timeout", self.limits.request_timeout),
            (
                "limits.header_read_timeout",
                self.limits.header_read_timeout,
            ),
            ("limits.idle_timeout", self.limits.idle_timeout),
            (
                "limits.session_idle_timeout",
                self.limits.session_idle_timeout,
            ),
        ] {
            if d.is_zero() {
                bad(field.into(), "must be greater than 0".into());
            }
        }
        if self.limits.max_connections.is_some_and(|n| n > 1_000_000) {
            bad(
                "limits.max_connections".into(),
                "must be at most 1000000".into(),
            );
        }
        for (field, n) in [
            (
                "limits.max_connections",
                self.limits.max_connections.unwrap_or(1),
            ),
            ("limits.max_sessions", self.limits.max_sessions),
            (
                "limits.max_sessions_per_client",
                self.limits.max_sessions_per_client,
            ),
            ("limits.list_page_size", self.limits.list_page_size),
        ] {
            if n == 0 {
                bad(field.into(), "must be at least 1".into());
            }
        }
        if self.discovery.retry_interval.is_zero() {
            bad(
                "discovery.retry_interval".into(),
                "must be greater than 0".into(),
            );
        }
        if self.discovery.retry_max < self.discovery.retry_interval {
            bad(
                "discovery.retry_max".into(),
                "must be at least discovery.retry_interval".into(),
            );
        }
        if self.discovery.refresh_interval.is_zero() {
            bad(
                "discovery.refresh_interval".into(),
                "must be greater than 0".into(),
            );
        }

        if self.audit.fsync_interval.is_zero() {
            bad(
                "audit.fsync_interval".into(),
                "must be greater than 0".into(),
            );
        }
        if self.input.max_rounds == 0 {
            bad("input.max_rounds".into(), "must be at least 1".into());
        }
        if self.input.state_ttl.is_zero() {
            bad("input.state_ttl".into(), "must be greater than 0".into());
        }
        self.events.problems(&mut bad);
        self.auth.problems(&mut bad);
        self.policy.problems(&mut bad);
        self.logging.problems(&mut bad);
        self.rate_limits.problems(&mut bad);

        if self.audit.jetstream.is_some() && self.events.nats.is_none() {
            bad(
                "audit.jetstream".into(),
                "needs events.nats (the NATS server to publish to)".into(),
            );
        }

        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = |f: &str| format!("providers[{i}].{f}");
            if !valid_provider_name(&p.name) {
                bad(
                    at("name"),
                    format!(
                        "{:?} must be 1-63 lowercase letters, digits or '-', starting with a letter",
                        p.name
                    ),
                );
            } else if !seen.insert(p.name.as_str()) {
                bad(at("name"), format!("duplicate provider name {:?}", p.name));
            }
            if let Err(msg) = check_endpoint(&p.endpoint) {
                bad(at("endpoint"), msg);
            }
            let https = p.endpoint.starts_with("https://");
            match &p.tls {
                None if https => bad(
                    at("tls"),
                    "an https:// endpoint needs tls.ca (the CA the provider's certificate chains to)"
                        .into(),
                ),
                Some(_) if !https => bad(
                    at("tls"),
                    "tls is set but the endpoint is http:// (plaintext); use https://".into(),
                ),
                Some(t) if t.cert.is_some() != t.key.is_some() => {
                    bad(at("tls"), "set both cert and key, or neither".into())
                }
                _ => {}
            }
            if !(1..=256).contains(&p.pool_size) {
                bad(
                    at("pool_size"),
                    format!("{} is out of range 1..=256", p.pool_size),
                );
            }
            for (f, d) in [
                ("timeouts.discovery", p.timeouts.discovery),
                ("timeouts.invoke", p.timeouts.invoke),
                ("timeouts.connect", p.timeouts.connect),
            ] {
                if d.is_zero() {
                    bad(at(f), "must be greater than 0".into());
                }
            }
            if p.max_concurrency == 0 {
                bad(at("max_concurrency"), "must be at least 1".into());
            }
            if p.breaker.failures == 0 {
                bad(at("breaker.failures"), "must be at least 1".into());
            }
            if p.retries.max_attempts == 0 {
                bad(
                    at("retries.max_attempts"),
                    "must be at least 1 (1 = no retries)".into(),
                );
            }
            if let Some(c) = &p.cache
                && (c.ttl.is_zero() || c.max_entries == 0)
            {
                bad(
                    at("cache"),
                    "ttl and max_entries must be greater than 0".into(),
                );
            }
            if let Some(l) = &p.launch
                && l.command.trim().is_empty()
            {
                bad(at("launch.command"), "must not be empty".into());
            }
            if let Some(sep) = &p.naming.separator {
                check_naming(sep, &at("naming.separator"), &mut bad);
            }
        }
        out
    }
}

fn check_naming(sep: &str, field: &str, bad: &mut impl FnMut(String, String)) {
    if sep.is_empty() || sep.len() > 8 || sep.chars().any(|c| c.is_whitespace() || c == '/') {
        bad(
            field.into(),
            format!("{sep:?} must be 1-8 characters with no whitespace or '/'"),
        );
    }
}

pub fn valid_provider_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a URI: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "{endpoint:?} must start with https:// (TLS) or http:// (plaintext gRPC)"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) || uri.port_u16().is_none() {
        return Err(format!("{endpoint:?} must name a host and a port"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("{endpoint:?} must not have a path"));
    }
    Ok(())
}

/// serde_yaml starts its message with its own idea of the path, which
/// repeats (or abbreviates) the field we already name; drop it.
#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<Problem> {
        match Config::parse(yaml) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::parse(EMBEDDED_DEFAULT).unwrap();
        assert_eq!(c.providers[0].name, "hello-rs");
        assert_eq!(c.providers[0].pool_size, 15);
        assert_eq!(
            c.providers[0].timeouts.discovery,
            Duration::from_millis(2500)
        );
        assert_eq!(c.providers[0].timeouts.invoke, Duration::from_secs(30));
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    }

    #[test]
    fn empty_config_gets_defaults() {
        let c = Config::parse("{}").unwrap();
        assert!(c.providers.is_empty());
        assert_eq!(c.limits.max_payload_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn serde_errors_name_the_field_once() {
        let p = problems(
            "providers:\n  - name: a\n    endpoint: http://h:1\n    timeouts:\n      invoke: soon\n",
        );
        assert_eq!(p[0].field, "providers[0].timeouts.invoke");
        assert!(
            p[0].message.starts_with("invalid value: string \"soon\""),
            "{}",
            p[0].message
        );
        let p = problems("providers:\n  - name: a\n    endpoint: http://h:1\n    pool_sise: 2\n");
        assert_eq!(p[0].field, "providers[0].pool_sise");
        assert!(
            p[0].message.starts_with("unknown field `pool_sise`"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn shape_errors_are_all_reported_in_document_order() {
        let p = problems(
            "shutdown_grace: soon\nlimits:\n  max_sessions: many\n  list_page_size: 5\n  colour: red\n\
             providers:\n  - name: a\n    endpoint: http://h:1\n    pool_size: big\n",
        );
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "shutdown_grace",
                "limits.max_sessions",
                "limits.colour",
                "providers[0].pool_size"
            ],
            "{p:?}"
        );
        // The first keeps the parser's position.
        assert!(p[0].message.contains("line 1"), "{}", p[0].message);
        assert!(p[3].message.contains("\"big\""), "{}", p[3].message);
    }

    #[test]
    fn a_missing_required_key_is_reported_but_not_one_set_aside() {
        // `endpoint` is wrong, not missing: one problem, not two.
        let p = problems("providers:\n  - name: a\n    endpoint: [1]\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "providers[0].endpoint");
        let p = problems("providers:\n  - name: a\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("missing field `endpoint`"), "{p:?}");
        // A key truly missing beside one set aside is still reported.
        let p = problems("providers:\n  - endpoint: http://h:1\n    pool_size: big\n");
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["providers[0].pool_size", "providers[0]"], "{p:?}");
        assert!(p[1].message.contains("missing field `name`"), "{p:?}");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let p = problems(
            "listen: 0.0.0.0:1\nproviders:\n  - name: A\n    endpoint: ftp://h:1\n    pool_size: 0\n",
        );
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "listen",
                "providers[0].name",
                "providers[0].endpoint",
                "providers[0].pool_size"
            ]
        );
    }

    #[test]
    fn public_bind_needs_the_override() {
        assert!(
            Config::parse("listen: 0.0.0.0:8080\nallow_unauthenticated_public_bind: true\n")
                .is_ok()
        );
    }

    #[test]
    fn per_provider_naming_inherits() {
        let c = Config::parse("naming:\n  separator: __\nproviders:\n  - name: a\n    endpoint: http://h:1\n    naming:\n      prefix: false\n").unwrap();
        let n = c.providers[0].naming(&c.naming);
        assert_eq!((n.separator.as_str(), n.prefix), ("__", false));
    }
}
