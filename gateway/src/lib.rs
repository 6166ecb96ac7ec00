//! `mcp-gateway`: one MCP endpoint in front of many gRPC tool providers.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = mcp_gateway::config::Config::load("providers.yaml".as_ref())?;
//! let gateway = mcp_gateway::Gateway::start(config).await?;
//! let listener = tokio::net::TcpListener::bind(gateway.config().listen).await?;
//! gateway.serve_http(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod backoff;
pub mod config;
mod control;
mod events;
mod front;
mod nats;
mod observe;
mod pipeline;
mod security;
mod southbound;

// The library's surface: what the binary and the tests use.
pub use control::{certs, reload, tls_listen};
pub use events::{EventStats, NatsState};
pub use observe::telemetry;
pub use security::auth::Authenticator;

/// Everything [`Gateway::start`] would refuse in `config` (files it names
/// included), without starting anything: what `mcp-gateway check` reports.
pub fn preflight(config: &Config) -> Vec<config::Problem> {
    control::preflight::problems(config)
}

/// Building blocks for the micro-benchmarks (`bench/benches/micro.rs`); not
/// an API.
#[doc(hidden)]
pub mod internals {
    pub use crate::pipeline::{
        catalog::{Catalog, ProviderItems},
        convert,
        naming::UriMap,
        schema::Schema,
    };
    pub use crate::southbound::Upstream;
}

use control::{launch, tls_watch};
use front::{http, stdio};
use observe::{audit, audit_nats};
use pipeline::dispatch;
use security::{auth, policy, ratelimit};
use southbound as upstream;

use std::sync::Arc;

use crate::{
    config::Config, events::Events, pipeline::dispatch::Dispatcher, pipeline::notify::Notifier,
    pipeline::registry::Registry,
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid provider endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("MCP session failed: {0}")]
    Mcp(String),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("invalid config: {0}")]
    Auth(#[from] auth::SetupError),
    #[error("config reload refused: {0}")]
    Reload(String),
    #[error("invalid config: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<config::Problem>),
    #[error("invalid config: {0}")]
    ServerTls(#[from] mcp_gateway_proto::tls::TlsFileError),
}

/// A running gateway core: registry, catalog, dispatcher and sessions. Cheap
/// to clone; front doors are attached with [`Gateway::serve_http`] and
/// [`Gateway::serve_stdio`].
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced by [`Gateway::reload`].
    config: arc_swap::ArcSwap<Config>,
    registry: Arc<Registry>,
    dispatcher: Arc<Dispatcher>,
    notifier: Arc<Notifier>,
    /// Managed provider processes by provider name, stopped after the front
    /// doors close (or when a reload removes or changes them).
    launched: tokio::sync::Mutex<launch::Launched>,
    events: Arc<Events>,
    /// Swapped on reload when `auth` changes.
    auth: arc_swap::ArcSwap<auth::Authenticator>,
    /// Seals 2026-07-28 `requestState` (startup-only: `input`).
    sealer: Arc<security::seal::Sealer>,
}

impl Gateway {
    /// Builds the core and runs the first discovery round: every provider
    /// concurrently, each bounded by its discovery timeout. Providers that
    /// did not answer keep being retried in the background.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        // Install the metrics recorder before anything records.
        telemetry::metrics();
        let problems = preflight(&config);
        if !problems.is_empty() {
            return Err(ServeError::Invalid(problems));
        }
        let auth = arc_swap::ArcSwap::from_pointee(auth::Authenticator::new(
            &config.auth,
            &config.base_dir,
        )?);
        let sealer = Arc::new(control::preflight::sealer(&config).map_err(|message| {
            ServeError::Invalid(vec![config::Problem {
                field: "input.state_key".into(),
                message,
            }])
        })?);
        if config.input.state_key.is_none() {
            tracing::debug!(
                "input.state_key is unset: requestState is sealed with a key of this process only"
            );
        }
        let registry = Registry::new(&config)?;
        let audit = match config.audit.path.as_ref().map(|p| config.base_dir.join(p)) {
            Some(path) => {
                let log =
                    audit::AuditLog::open(&path, config.audit.fsync, config.audit.fsync_interval)?;
                tracing::info!(path = %path.display(), fsync = ?config.audit.fsync, "audit log open");
                Some(log)
            }
            None => {
                tracing::info!("audit log disabled (set audit.path to enable)");
                None
            }
        };
        let visibility = Arc::new(dispatch::Visibility::new(
            registry.clone(),
            Arc::new(policy::Policy::new(&config.policy)),
        ));
        let notifier = Arc::new(Notifier::with_caps(
            visibility.clone(),
            config.limits.max_sessions,
            config.limits.max_sessions_per_client,
        ));
        notifier.spawn_forwarder(registry.subscribe());
        let mut launched = launch::Launched::default();
        launched.prepare(&config, &registry).await;
        registry.start().await;
        tls_watch::spawn(registry.clone());
        let events = Events::new(config.events.clone(), registry.clone(), notifier.clone());
        events.start();
        let audit_stream = match (&config.audit.jetstream, &config.events.nats) {
            (Some(js), Some(nats)) => Some(audit_nats::AuditStream::start(
                nats.clone(),
                js.subject.clone(),
                js.stream.clone(),
                events.stop_token(),
            )),
            _ => None,
        };
        let dispatcher = Arc::new(
            Dispatcher::new(
                registry.clone(),
                config.limits.max_payload_bytes,
                audit,
                audit_stream,
                Arc::default(),
                visibility,
            )
            .with_limits(Arc::new(ratelimit::RateLimits::new(&config.rate_limits)))
            .with_logging(&config.logging),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config: arc_swap::ArcSwap::from_pointee(config),
                registry,
                dispatcher,
                notifier,
                launched: tokio::sync::Mutex::new(launched),
                events,
                auth,
                sealer,
            }),
        })
    }

    /// Stops discovery, event consumers and any managed provider processes (SIGTERM, then
    /// SIGKILL after a grace period), waiting until they are gone.
    pub async fn stop(&self) {
        self.registry().stop();
        self.events().stop();
        self.inner.launched.lock().await.stop_all().await;
    }

    /// The config in force (a reload replaces it).
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.load_full()
    }

    /// Applies a new, already validated config without a restart: providers
    /// are added, removed or replaced (unchanged ones keep their connections,
    /// sessions and in-flight calls are untouched); naming and discovery
    /// settings take effect; managed processes follow their providers.
    /// Settings that only apply at startup are reported, not applied.
    pub async fn reload(&self, mut config: Config) -> Result<reload::Report, ServeError> {
        let old = self.config();
        let needs_restart = reload::startup_only_changes(&old, &config);
        for field in &needs_restart {
            tracing::warn!(field, "changed in the config; takes effect after a restart");
        }
        // Keep what only a restart may change, so config() tells the truth.
        reload::keep_startup_settings(&old, &mut config);
        // Security first, and all-or-nothing: a key file that cannot be read
        // rejects the whole reload before anything else changes. Always
        // rebuilt, so rotated `file:`/`${ENV}` secrets and key files apply
        // even when the config text is the same.
        reload::check_public_bind(&config)?;
        let problems = preflight(&config);
        if !problems.is_empty() {
            return Err(ServeError::Invalid(problems));
        }
        let auth = auth::Authenticator::new(&config.auth, &config.base_dir)?;
        // Stored before providers are added, so a new provider's tools are
        // never reachable under the previous policy.
        self.inner.auth.store(Arc::new(auth));
        self.dispatcher().set_logging(&config.logging);
        let policy_changed = old.policy != config.policy;
        if policy_changed {
            self.dispatcher()
                .visibility()
                .set_policy(Arc::new(policy::Policy::new(&config.policy)));
            tracing::info!("policy reloaded");
        }
        if old.rate_limits != config.rate_limits {
            // Fresh buckets: limits may have changed shape.
            self.dispatcher()
                .set_limits(Arc::new(ratelimit::RateLimits::new(&config.rate_limits)));
            tracing::info!("rate limits reloaded");
        }
        let mut launched = self.inner.launched.lock().await;
        launched.prepare(&config, self.registry()).await;
        let applied = self.registry().apply(&config).await?;
        launched.finish(&config).await;
        drop(launched);
        for name in applied.added.iter().chain(&applied.modified) {
            if let Some(up) = self.registry().upstream(name) {
                self.events().watch_provider(up);
            }
        }
        if policy_changed || old.auth != config.auth {
            // What each session may see may have changed: let clients list again.
            self.notifier().notify_all_lists();
        }
        self.inner.config.store(Arc::new(config));
        tracing::info!(added = ?applied.added, removed = ?applied.removed, modified = ?applied.modified, "config reloaded");
        Ok(reload::Report {
            applied,
            needs_restart,
        })
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.inner.dispatcher
    }

    /// Who to tell about list changes, resource updates and log events.
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.inner.notifier
    }

    /// Events pipeline: counters, NATS state, a tap on handled events.
    pub fn events(&self) -> &Arc<Events> {
        &self.inner.events
    }

    /// Northbound authentication.
    pub fn auth(&self) -> Arc<auth::Authenticator> {
        self.inner.auth.load_full()
    }

    /// The MCP server side every front door drives.
    pub(crate) fn engine(&self) -> front::engine::Engine {
        front::engine::Engine::new(
            self.dispatcher().clone(),
            self.notifier().clone(),
            self.events().clone(),
            self.config().limits.list_page_size,
        )
        .with_input(self.inner.sealer.clone(), self.config().input.max_rounds)
    }

    /// Streamable HTTP at `/mcp`, plus `/health` and `/ready`.
    pub async fn serve_http(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let tls = match &self.config().server_tls {
            Some(t) => Some(tls_listen::acceptor(t, &self.config().base_dir)?),
            None => None,
        };
        http::serve(self, listener, tls, shutdown).await?;
        self.stop().await;
        Ok(())
    }

    /// MCP over this process's stdin/stdout, until EOF or `shutdown`.
    pub async fn serve_stdio(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!("serving MCP over stdio");
        let grace = self.config().shutdown_grace;
        let dispatcher = self.dispatcher().clone();
        let shutdown = async move {
            shutdown.await;
            if !dispatcher.drain(grace).await {
                tracing::warn!("grace period over; abandoning calls");
            }
        };
        stdio::serve(
            Arc::new(self.engine()),
            self.auth().stdio_identity(),
            tokio::io::stdin(),
            tokio::io::stdout(),
            shutdown,
            grace,
            self.config().limits.max_payload_bytes,
        )
        .await;
        self.stop().await;
        Ok(())
    }
}

/// A fresh correlation ID (UUID v4, simple form). Its bits come from a
/// per-thread generator, not the OS: an ID must be unique, not secret, and
/// one is made per request (`Uuid::new_v4` costs a `getrandom` syscall).
pub fn new_correlation_id() -> String {
    let bytes = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .simple()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn correlation_ids_are_distinct_uuid_v4s() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::new_correlation_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(id.len(), 32);
        }
    }
}
