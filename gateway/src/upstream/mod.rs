//! Southbound: talking to one provider over a pool of gRPC channels.

mod breaker;
mod registry;

pub use breaker::{Breaker, BreakerState, Open as BreakerOpen, Permit};
pub use registry::{Applied, ListChanges, ProviderState, ProviderStatus, Registry};

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mcp_gateway_proto::{
    CORRELATION_ID_HEADER, SERVICE_NAME,
    provider::{self as pb, provider_client::ProviderClient},
};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::config::ProviderConfig;

/// Concurrent calls one channel takes before the next channel is used.
const CALLS_PER_CHANNEL: usize = 16;

/// One provider's connection: up to `pool_size` HTTP/2 channels, filled in
/// order (see [`Upstream::channel`]). Channels connect lazily and reconnect
/// on their own, so a provider that is down costs nothing until it is
/// called, and no call opens a connection.
pub struct Upstream {
    pub config: ProviderConfig,
    pub breaker: Arc<Breaker>,
    /// The bulkhead: one permit per call in flight.
    pub slots: Arc<tokio::sync::Semaphore>,
    pub cache: Option<Arc<crate::cache::ResultCache>>,
    channels: Vec<Channel>,
    /// Calls in flight to this provider.
    in_flight: AtomicUsize,
    max_payload: usize,
}

/// Counts one call in flight on an [`Upstream`] until dropped.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Upstream {
    pub fn new(
        config: ProviderConfig,
        max_payload: usize,
    ) -> Result<Arc<Self>, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(config.endpoint.clone())?
            .connect_timeout(config.timeouts.connect)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let channels = (0..config.pool_size)
            .map(|_| endpoint.connect_lazy())
            .collect();
        Ok(Arc::new(Self {
            breaker: Breaker::new(config.breaker.failures, config.breaker.cool_down),
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_concurrency)),
            cache: config
                .cache
                .as_ref()
                .map(|c| Arc::new(crate::cache::ResultCache::new(c.max_entries, c.ttl))),
            config,
            channels,
            in_flight: AtomicUsize::new(0),
            max_payload,
        }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Marks a call in flight for as long as the guard lives.
    pub fn track(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Fills channels in order, `CALLS_PER_CHANNEL` concurrent calls each,
    /// instead of round-robin: HTTP/2 multiplexes, and calls concentrated
    /// on few connections share frames, writes and wakeups. At 32
    /// concurrent calls, 2 busy connections carried ~1.5x the calls/s of 15
    /// round-robin ones (docs/performance.md). Higher concurrency still
    /// spreads over the whole pool.
    fn channel(&self) -> Channel {
        let others = self.in_flight.load(Ordering::Relaxed).saturating_sub(1);
        let i = (others / CALLS_PER_CHANNEL).min(self.channels.len() - 1);
        self.channels[i].clone()
    }

    fn client(&self) -> ProviderClient<Channel> {
        ProviderClient::new(self.channel())
            .max_decoding_message_size(self.max_payload)
            .max_encoding_message_size(self.max_payload)
    }

    /// Builds a request carrying the deadline (sent as `grpc-timeout`, and
    /// enforced locally too), the correlation ID, and the trace context: the
    /// current span's when traces are exported, else the caller's
    /// `traceparent` passed through unchanged.
    fn request<T>(msg: T, timeout: Duration, correlation_id: &str) -> Request<T> {
        Self::traced(msg, timeout, correlation_id, None)
    }

    fn traced<T>(
        msg: T,
        timeout: Duration,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Request<T> {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let mut req = Request::new(msg);
        req.set_timeout(timeout);
        if let Ok(v) = MetadataValue::try_from(correlation_id) {
            req.metadata_mut().insert(CORRELATION_ID_HEADER, v);
        }
        let cx = tracing::Span::current().context();
        if cx.span().span_context().is_valid() {
            mcp_gateway_proto::trace::inject(&cx, req.metadata_mut());
        } else if let Some(v) = traceparent.and_then(|t| MetadataValue::try_from(t).ok()) {
            req.metadata_mut()
                .insert(mcp_gateway_proto::trace::TRACEPARENT, v);
        }
        req
    }

    /// Health check plus capabilities, bounded by the discovery timeout.
    pub async fn discover(
        &self,
        known_revision: &str,
        correlation_id: &str,
    ) -> Result<pb::ListCapabilitiesResponse, Status> {
        let timeout = self.config.timeouts.discovery;
        let work = async {
            let mut health = HealthClient::new(self.channel());
            let status = health
                .check(Self::request(
                    HealthCheckRequest {
                        service: SERVICE_NAME.to_string(),
                    },
                    timeout,
                    correlation_id,
                ))
                .await?
                .into_inner()
                .status();
            if status != ServingStatus::Serving {
                return Err(Status::unavailable(format!(
                    "health check reports {}",
                    status.as_str_name()
                )));
            }
            let req = pb::ListCapabilitiesRequest {
                caller: Some(pb::Caller {
                    principal: "mcp-gateway".into(),
                    ..Default::default()
                }),
                known_revision: known_revision.to_string(),
            };
            self.client()
                .list_capabilities(Self::request(req, timeout, correlation_id))
                .await
                .map(|r| r.into_inner())
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("discovery timed out")))
    }

    pub async fn invoke(
        &self,
        req: pb::InvokeRequest,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<tonic::Streaming<pb::InvokeResponse>, Status> {
        let req = Self::traced(
            req,
            self.config.timeouts.invoke,
            correlation_id,
            traceparent,
        );
        self.client().invoke(req).await.map(|r| r.into_inner())
    }

    pub async fn read_resource(
        &self,
        req: pb::ReadResourceRequest,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<pb::ReadResourceResponse, Status> {
        let req = Self::traced(
            req,
            self.config.timeouts.invoke,
            correlation_id,
            traceparent,
        );
        self.client()
            .read_resource(req)
            .await
            .map(|r| r.into_inner())
    }

    /// The provider's events, open until either side ends it (no deadline).
    pub async fn stream(
        &self,
        correlation_id: &str,
    ) -> Result<tonic::Streaming<mcp_gateway_proto::cloudevents::CloudEvent>, Status> {
        let mut req = Request::new(pb::StreamRequest {
            caller: Some(pb::Caller {
                principal: "mcp-gateway".into(),
                ..Default::default()
            }),
        });
        if let Ok(v) = MetadataValue::try_from(correlation_id) {
            req.metadata_mut().insert(CORRELATION_ID_HEADER, v);
        }
        self.client().stream(req).await.map(|r| r.into_inner())
    }

    pub async fn get_prompt(
        &self,
        req: pb::GetPromptRequest,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<pb::GetPromptResponse, Status> {
        let req = Self::traced(
            req,
            self.config.timeouts.invoke,
            correlation_id,
            traceparent,
        );
        self.client().get_prompt(req).await.map(|r| r.into_inner())
    }
}
