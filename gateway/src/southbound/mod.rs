//! Southbound: talking to one provider over a pool of gRPC channels.

mod breaker;
pub mod cache;
mod conn;
pub(crate) mod slot;
mod wire;

pub use breaker::{Breaker, BreakerState};
pub(crate) use wire::Streaming;

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

/// A provider's connections, each made on first use: the call connections
/// (ours, see [`conn`]) and tonic's control channel. Under light load only
/// the first call connection and the control channel exist.
struct Pool {
    endpoint: Endpoint,
    control: std::sync::OnceLock<Channel>,
    /// `pool_size` connections per [`slot`]; each connects when first used.
    calls: Vec<Vec<conn::Conn>>,
}

impl Pool {
    fn control(&self) -> Channel {
        self.control
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone()
    }
}

fn build_pool(
    config: &ProviderConfig,
    base_dir: &std::path::Path,
    max_payload: usize,
) -> Result<Pool, UpstreamError> {
    let endpoint_err = |source| UpstreamError::Endpoint {
        provider: config.name.clone(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
        .map_err(endpoint_err)?
        .connect_timeout(config.timeouts.connect)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let mut pem = None;
    if let Some(t) = &config.tls {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let read = |field, p: &std::path::PathBuf| {
            let path = base_dir.join(p);
            std::fs::read(&path).map_err(|source| UpstreamError::TlsFile {
                provider: config.name.clone(),
                field,
                path: path.display().to_string(),
                source,
            })
        };
        let ca = read("tls.ca", &t.ca)?;
        let identity = match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => Some((read("tls.cert", cert)?, read("tls.key", key)?)),
            _ => None,
        };
        // Only the configured CA is trusted: no system roots.
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca));
        if let Some((cert, key)) = &identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &t.server_name {
            tls = tls.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(tls).map_err(endpoint_err)?;
        pem = Some(conn::TlsPem {
            ca,
            identity,
            server_name: t.server_name.clone(),
        });
    }
    let target = conn::Target::new(&config.endpoint, pem, config.timeouts.connect, max_payload)
        .map_err(|source| UpstreamError::Target {
            provider: config.name.clone(),
            source,
        })?;
    let target = Arc::new(target);
    Ok(Pool {
        endpoint,
        control: Default::default(),
        calls: (0..slot::count())
            .map(|_| {
                (0..config.pool_size)
                    .map(|_| conn::Conn::new(target.clone()))
                    .collect()
            })
            .collect(),
    })
}

/// A provider without the health service answers `Unimplemented` with its
/// framework's words ("Method not found!"): say what is missing instead.
fn no_health_service(s: Status) -> Status {
    if s.code() != tonic::Code::Unimplemented {
        return s;
    }
    Status::unimplemented(format!(
        "the provider does not serve the gRPC health service (grpc.health.v1.Health/Check for \
         \"{SERVICE_NAME}\"), which every provider must: see docs/provider-contract.md, \"Health\" \
         (it said: {})",
        s.message()
    ))
}

/// A status message with the cause of a failed TLS handshake spelled out:
/// which of wrong CA, expired certificate, name mismatch, or a refused or
/// missing client certificate. Other statuses keep their message.
pub fn describe_status(status: &Status, config: &ProviderConfig) -> String {
    let mut chain = String::new();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(status);
    while let Some(e) = cur {
        chain.push_str(": ");
        chain.push_str(&e.to_string());
        cur = e.source();
    }
    let Some(tls) = &config.tls else {
        return status.message().to_string();
    };
    let lower = chain.to_ascii_lowercase();
    // BadSignature: an issuer of the same name (another CA) signed it.
    let why = if lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
        || lower.contains("badsignature")
    {
        "the provider's certificate is not signed by the CA in tls.ca (wrong CA)".to_string()
    } else if lower.contains("expired") {
        "the provider's certificate has expired".to_string()
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        let host = http::Uri::try_from(config.endpoint.as_str())
            .ok()
            .and_then(|u| u.host().map(String::from))
            .unwrap_or_default();
        format!(
            "the provider's certificate does not match the server name '{}' (hostname/SAN mismatch)",
            tls.server_name.as_deref().unwrap_or(&host)
        )
    } else if lower.contains("certificaterequired")
        || lower.contains("badcertificate")
        || lower.contains("unknownca")
        || lower.contains("handshakefailure")
    {
        if tls.cert.is_none() {
            "the provider requires a client certificate and none is configured (missing client cert: set tls.cert and tls.key)".to_string()
        } else {
            "the provider refused the gateway's client certificate (tls.cert)".to_string()
        }
    } else if tls.cert.is_none()
        && (lower.contains("connection closed")
            || lower.contains("connection reset")
            || lower.contains("broken pipe"))
    {
        // TLS 1.3: the provider checks the client certificate after the
        // handshake and may just close the connection without an alert.
        "the provider closed the connection after the handshake; it likely requires a client certificate and none is configured (missing client cert: set tls.cert and tls.key)".to_string()
    } else {
        return format!("{}{chain}", status.message());
    };
    format!("TLS handshake failed: {why}{chain}")
}

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
    pub cache: Option<Arc<crate::southbound::cache::ResultCache>>,
    /// Swapped whole when TLS files change (see [`Upstream::reload_tls`]).
    channels: arc_swap::ArcSwap<Pool>,
    /// Calls in flight to this provider.
    in_flight: AtomicUsize,
    max_payload: usize,
    /// The config file's directory, for relative TLS paths.
    base_dir: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("providers[{provider}].endpoint: {source}")]
    Endpoint {
        provider: String,
        source: tonic::transport::Error,
    },
    #[error("providers[{provider}].{source}")]
    Target {
        provider: String,
        source: conn::TargetError,
    },
    #[error("providers[{provider}].{field}: cannot read {path}: {source}")]
    TlsFile {
        provider: String,
        /// `tls.ca`, `tls.cert` or `tls.key`.
        field: &'static str,
        path: String,
        source: std::io::Error,
    },
}

impl UpstreamError {
    /// The setting under the provider's entry, and what is wrong with it.
    pub fn field_and_rule(&self) -> (String, String) {
        match self {
            Self::Endpoint { source, .. } => ("endpoint".into(), source.to_string()),
            Self::Target { source, .. } => match source {
                conn::TargetError::Endpoint(m) => ("endpoint".into(), m.clone()),
                conn::TargetError::Tls(m) => ("tls".into(), m.clone()),
            },
            Self::TlsFile {
                field,
                path,
                source,
                ..
            } => (field.to_string(), format!("cannot read {path}: {source}")),
        }
    }
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
        base_dir: &std::path::Path,
    ) -> Result<Arc<Self>, UpstreamError> {
        let channels = build_pool(&config, base_dir, max_payload)?;
        Ok(Arc::new(Self {
            breaker: Breaker::new(config.breaker.failures, config.breaker.cool_down),
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_concurrency)),
            cache: config.cache.as_ref().map(|c| {
                Arc::new(crate::southbound::cache::ResultCache::new(
                    c.max_entries,
                    c.ttl,
                ))
            }),
            config,
            channels: arc_swap::ArcSwap::from_pointee(channels),
            in_flight: AtomicUsize::new(0),
            max_payload,
            base_dir: base_dir.to_path_buf(),
        }))
    }

    /// What [`Upstream::new`] would refuse in `config`, without building it.
    pub fn check(
        config: &ProviderConfig,
        max_payload: usize,
        base_dir: &std::path::Path,
    ) -> Result<(), UpstreamError> {
        build_pool(config, base_dir, max_payload).map(drop)
    }

    /// Re-reads the TLS files and replaces the channels; calls in flight
    /// finish on the old ones. On error the old channels stay.
    pub fn reload_tls(&self) -> Result<(), UpstreamError> {
        let channels = build_pool(&self.config, &self.base_dir, self.max_payload)?;
        self.channels.store(Arc::new(channels));
        Ok(())
    }

    /// The TLS files to watch, resolved.
    pub fn tls_files(&self) -> Vec<std::path::PathBuf> {
        let Some(t) = &self.config.tls else {
            return Vec::new();
        };
        [Some(&t.ca), t.cert.as_ref(), t.key.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| self.base_dir.join(p))
            .collect()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Marks a call in flight for as long as the guard lives.
    pub fn track(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Fills connections in order, `CALLS_PER_CHANNEL` concurrent calls
    /// each, instead of round-robin: HTTP/2 multiplexes, and calls
    /// concentrated on few connections share frames, writes and wakeups. At
    /// 32 concurrent calls, 2 busy connections carried ~1.5x the calls/s of
    /// 15 round-robin ones (docs/performance.md). Higher concurrency still
    /// spreads over the whole pool.
    fn pick(&self, calls: usize) -> usize {
        let others = self.in_flight.load(Ordering::Relaxed).saturating_sub(1);
        // Calls in flight are counted over all front-door threads.
        (others / (CALLS_PER_CHANNEL * slot::front_workers())).min(calls - 1)
    }

    /// The connection for health checks and discovery: under heavy call
    /// load they must not queue behind hundreds of streams, or a busy but
    /// healthy provider would look dead.
    fn control(&self) -> Channel {
        self.channels.load().control()
    }

    fn client_on(&self, channel: Channel) -> ProviderClient<Channel> {
        ProviderClient::new(channel)
            .max_decoding_message_size(self.max_payload)
            .max_encoding_message_size(self.max_payload)
    }

    /// A control request carrying the deadline (sent as `grpc-timeout`,
    /// and enforced locally too) and the correlation ID.
    fn request<T>(msg: T, timeout: Duration, correlation_id: &str) -> Request<T> {
        let mut req = Request::new(msg);
        req.set_timeout(timeout);
        *req.metadata_mut() = Self::metadata(correlation_id, None);
        req
    }

    /// The correlation ID and the trace context: the current span's when
    /// traces are exported, else the caller's `traceparent` passed through
    /// unchanged. Both differ per call, so HPACK must not index them (it
    /// would evict the constant headers for values never seen again).
    fn metadata(correlation_id: &str, traceparent: Option<&str>) -> tonic::metadata::MetadataMap {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let mut metadata = tonic::metadata::MetadataMap::with_capacity(4);
        let once = |mut v: MetadataValue<_>| {
            v.set_sensitive(true);
            v
        };
        if let Ok(v) = MetadataValue::try_from(correlation_id) {
            metadata.insert(CORRELATION_ID_HEADER, once(v));
        }
        let cx = tracing::Span::current().context();
        if cx.span().span_context().is_valid() {
            mcp_gateway_proto::trace::inject(&cx, &mut metadata);
        } else if let Some(v) = traceparent.and_then(|t| MetadataValue::try_from(t).ok()) {
            metadata.insert(mcp_gateway_proto::trace::TRACEPARENT, once(v));
        }
        metadata
    }

    /// A call on the call connections (see [`conn`]); `timeout` is sent as
    /// `grpc-timeout` when given.
    async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        rpc: conn::Rpc,
        msg: &Req,
        timeout: Option<Duration>,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<Streaming<Resp>, Status> {
        let body = wire::frame(msg, self.max_payload)?;
        let pool = self.channels.load_full();
        let calls = &pool.calls[slot::current().min(pool.calls.len() - 1)];
        let conn = &calls[self.pick(calls.len())];
        conn.call(rpc, body, || {
            let mut headers = Self::metadata(correlation_id, traceparent).into_headers();
            if let Some(t) = timeout {
                headers.insert("grpc-timeout", wire::timeout_header(t));
            }
            headers
        })
        .await
    }

    /// A unary call: its one message, then its OK status.
    async fn unary<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        rpc: conn::Rpc,
        msg: &Req,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<Resp, Status> {
        let timeout = Some(self.config.timeouts.invoke);
        let mut stream = self
            .call(rpc, msg, timeout, correlation_id, traceparent)
            .await?;
        let msg = stream
            .message()
            .await?
            .ok_or_else(|| Status::internal("a unary call ended without its message"))?;
        match stream.message().await? {
            None => Ok(msg),
            Some(_) => Err(Status::internal(
                "a unary call answered more than one message",
            )),
        }
    }

    /// Health check plus capabilities, bounded by the discovery timeout.
    pub async fn discover(
        &self,
        known_revision: &str,
        correlation_id: &str,
    ) -> Result<pb::ListCapabilitiesResponse, Status> {
        let timeout = self.config.timeouts.discovery;
        let work = async {
            let mut health = HealthClient::new(self.control());
            let status = health
                .check(Self::request(
                    HealthCheckRequest {
                        service: SERVICE_NAME.to_string(),
                    },
                    timeout,
                    correlation_id,
                ))
                .await
                .map_err(no_health_service)?
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
            self.client_on(self.control())
                .list_capabilities(Self::request(req, timeout, correlation_id))
                .await
                .map(|r| r.into_inner())
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("discovery timed out")))
    }

    pub(crate) async fn invoke(
        &self,
        req: &pb::InvokeRequest,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<Streaming<pb::InvokeResponse>, Status> {
        let timeout = Some(self.config.timeouts.invoke);
        self.call(conn::Rpc::Invoke, req, timeout, correlation_id, traceparent)
            .await
    }

    pub async fn read_resource(
        &self,
        req: &pb::ReadResourceRequest,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<pb::ReadResourceResponse, Status> {
        self.unary(conn::Rpc::ReadResource, req, correlation_id, traceparent)
            .await
    }

    /// The provider's events, open until either side ends it (no deadline).
    pub(crate) async fn stream(
        &self,
        correlation_id: &str,
    ) -> Result<Streaming<mcp_gateway_proto::cloudevents::CloudEvent>, Status> {
        let req = pb::StreamRequest {
            caller: Some(pb::Caller {
                principal: "mcp-gateway".into(),
                ..Default::default()
            }),
        };
        self.call(conn::Rpc::Stream, &req, None, correlation_id, None)
            .await
    }

    pub async fn get_prompt(
        &self,
        req: &pb::GetPromptRequest,
        correlation_id: &str,
        traceparent: Option<&str>,
    ) -> Result<pb::GetPromptResponse, Status> {
        self.unary(conn::Rpc::GetPrompt, req, correlation_id, traceparent)
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn call_paths_name_the_generated_service() {
        let service = mcp_gateway_proto::provider::provider_server::SERVICE_NAME;
        use super::conn::Rpc;
        for (rpc, method) in [
            (Rpc::Invoke, "Invoke"),
            (Rpc::ReadResource, "ReadResource"),
            (Rpc::GetPrompt, "GetPrompt"),
            (Rpc::Stream, "Stream"),
        ] {
            assert_eq!(rpc.path(), format!("/{service}/{method}"));
        }
    }
}
