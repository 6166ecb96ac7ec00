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

pub mod catalog;
pub mod config;
pub mod convert;
pub mod dispatch;
pub mod drain;
pub mod error;
pub mod events;
pub mod http;
pub mod mcp;
pub mod naming;
pub mod schema;
pub mod telemetry;
pub mod upstream;

use std::sync::Arc;

use rmcp::ServiceExt;

use crate::{
    config::Config, dispatch::Dispatcher, events::Events, mcp::Sessions, upstream::Registry,
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid provider endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("MCP session failed: {0}")]
    Mcp(String),
}

/// A running gateway core: registry, catalog, dispatcher and sessions. Cheap
/// to clone; front doors are attached with [`Gateway::serve_http`] and
/// [`Gateway::serve_stdio`].
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    registry: Arc<Registry>,
    dispatcher: Arc<Dispatcher>,
    sessions: Arc<Sessions>,
    events: Arc<Events>,
}

impl Gateway {
    /// Builds the core and runs the first discovery round: every provider
    /// concurrently, each bounded by its discovery timeout. Providers that
    /// did not answer keep being retried in the background.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        let registry = Registry::new(&config)?;
        let sessions = Arc::new(Sessions::default());
        sessions.spawn_forwarder(registry.subscribe());
        registry.start().await;
        let events = Events::new(config.events.clone(), registry.clone(), sessions.clone());
        events.start();
        let dispatcher = Arc::new(Dispatcher::new(
            registry.clone(),
            config.limits.max_payload_bytes,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                registry,
                dispatcher,
                sessions,
                events,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.inner.dispatcher
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.inner.sessions
    }

    /// Events pipeline: counters, NATS state, a tap on handled events.
    pub fn events(&self) -> &Arc<Events> {
        &self.inner.events
    }

    pub fn handler(&self) -> mcp::GatewayHandler {
        mcp::GatewayHandler::new(
            self.dispatcher().clone(),
            self.sessions().clone(),
            self.events().clone(),
        )
    }

    /// Stops background work: provider supervisors and event consumers.
    fn stop_background(&self) {
        self.registry().stop();
        self.events().stop();
    }

    /// Streamable HTTP at `/mcp`, plus `/health` and `/ready`.
    pub async fn serve_http(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        http::serve(self, listener, shutdown).await?;
        self.stop_background();
        Ok(())
    }

    /// MCP over this process's stdin/stdout, until EOF or `shutdown`.
    pub async fn serve_stdio(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let running = self
            .handler()
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| ServeError::Mcp(e.to_string()))?;
        tracing::info!("serving MCP over stdio");
        let ct = running.cancellation_token();
        tokio::select! {
            r = running.waiting() => { r.map_err(|e| ServeError::Mcp(e.to_string()))?; }
            _ = shutdown => {
                if !self.dispatcher().drain(self.config().shutdown_grace).await {
                    tracing::warn!("grace period over; abandoning calls");
                }
                ct.cancel();
            }
        }
        self.stop_background();
        Ok(())
    }
}

/// A fresh correlation ID (UUID v4, simple form).
pub fn new_correlation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
