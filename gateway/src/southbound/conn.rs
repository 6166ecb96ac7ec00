//! One HTTP/2 connection to a provider for calls, used straight from the
//! caller's task. Through tonic's `Channel` a call crossed a buffer task,
//! hyper's dispatch task and a body task per request before reaching the
//! connection (docs/performance.md); here the caller queues its frames
//! itself and only the connection's own task does I/O. Health checks and
//! discovery keep tonic (the control channel).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tonic::Status;

use super::wire::Streaming;

/// The provider RPCs made on call connections.
#[derive(Clone, Copy)]
pub(crate) enum Rpc {
    Invoke,
    ReadResource,
    GetPrompt,
    Stream,
}

impl Rpc {
    const ALL: [Rpc; 4] = [Rpc::Invoke, Rpc::ReadResource, Rpc::GetPrompt, Rpc::Stream];

    pub(crate) fn path(self) -> &'static str {
        match self {
            Rpc::Invoke => "/mcpgateway.provider.v1.Provider/Invoke",
            Rpc::ReadResource => "/mcpgateway.provider.v1.Provider/ReadResource",
            Rpc::GetPrompt => "/mcpgateway.provider.v1.Provider/GetPrompt",
            Rpc::Stream => "/mcpgateway.provider.v1.Provider/Stream",
        }
    }
}

/// Where a provider's call connections go.
pub(crate) struct Target {
    /// Each RPC's URI, made once (indexed by [`Rpc`]).
    uris: [http::Uri; 4],
    /// `host:port`, for the TCP connect.
    addr: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    connect_timeout: Duration,
    /// The largest message either way.
    limit: usize,
}

/// What [`Target::new`] refuses; the caller names the provider.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("endpoint: {0}")]
    Endpoint(String),
    #[error("tls: {0}")]
    Tls(String),
}

/// PEM contents of the provider's TLS files.
pub(crate) struct TlsPem {
    pub ca: Vec<u8>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    pub server_name: Option<String>,
}

impl Target {
    pub(crate) fn new(
        endpoint: &str,
        tls: Option<TlsPem>,
        connect_timeout: Duration,
        limit: usize,
    ) -> Result<Self, TargetError> {
        let bad = |why: &str| TargetError::Endpoint(format!("{endpoint:?}: {why}"));
        let uri: http::Uri = endpoint.parse().map_err(|_| bad("not a URI"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| bad("no scheme"))?;
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == http::uri::Scheme::HTTPS {
                443
            } else {
                80
            });
        let host = authority.host();
        let tls = tls
            .map(|pem| {
                let name = pem
                    .server_name
                    .clone()
                    .unwrap_or_else(|| host.trim_matches(['[', ']']).to_string());
                let name = rustls::pki_types::ServerName::try_from(name)
                    .map_err(|e| TargetError::Tls(format!("server name: {e}")))?;
                Ok((client_config(&pem)?, name))
            })
            .transpose()?;
        let uris = Rpc::ALL.map(|rpc| {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(scheme.clone());
            parts.authority = Some(authority.clone());
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static(rpc.path()));
            http::Uri::from_parts(parts).expect("scheme, authority and path")
        });
        Ok(Self {
            addr: format!("{host}:{port}"),
            uris,
            tls,
            connect_timeout,
            limit,
        })
    }

    async fn connect(&self) -> Result<(SendRequest<Bytes>, Driver), Status> {
        let unavailable = |what: &str, e: std::io::Error| {
            let mut s = Status::unavailable(format!("{what}: {e}"));
            s.set_source(Arc::new(e));
            s
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| Status::unavailable("connect timed out"))?
            .map_err(|e| unavailable("tcp connect error", e))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| Status::unavailable("TLS handshake timed out"))?
                .map_err(|e| unavailable("TLS handshake", e))?;
                handshake(tls).await
            }
        }
    }
}

/// Only the configured CA is trusted: no system roots.
fn client_config(pem: &TlsPem) -> Result<tokio_rustls::TlsConnector, TargetError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let tls = |e: &dyn std::fmt::Display| TargetError::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&pem.ca) {
        roots
            .add(c.map_err(|e| tls(&format!("ca: {e}")))?)
            .map_err(|e| tls(&e))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(&e))?
    .with_root_certificates(roots);
    let mut config = match &pem.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls(&format!("cert: {e}")))?;
            // Never echo key material: only the error kind.
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| tls(&format!("key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls(&format!("cert and key: {e}")))?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The connection's I/O, to be spawned once the sender is stored.
type Driver = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Pings every 30 s, idle or not, and gives up on a connection whose pong
/// takes over 10 s: a half-open connection must not hold calls until
/// their deadlines.
const KEEPALIVE: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

async fn handshake<T>(io: T) -> Result<(SendRequest<Bytes>, Driver), Status>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper's windows (tonic's default before): fewer WINDOW_UPDATEs.
    let (tx, mut conn) = h2::client::Builder::new()
        .initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(Status::from)?;
    let mut ping = conn.ping_pong();
    let driver = Box::pin(async move {
        let keepalive = async {
            let Some(ping) = ping.as_mut() else {
                return std::future::pending().await;
            };
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                let pong = tokio::time::timeout(KEEPALIVE_TIMEOUT, ping.ping(h2::Ping::opaque()));
                if !matches!(pong.await, Ok(Ok(_))) {
                    return;
                }
            }
        };
        tokio::select! {
            r = conn => if let Err(e) = r {
                tracing::debug!(error = %e, "provider connection ended");
            },
            () = keepalive => tracing::warn!("provider connection dropped: no keepalive answer within 10s"),
        }
    });
    Ok((tx, driver))
}

/// A connection's generation and its sender.
type Live = (u64, SendRequest<Bytes>);

/// A lazily made connection, made again after it is lost.
pub(crate) struct Conn {
    target: Arc<Target>,
    /// The live sender and its generation; cleared when that connection ends.
    live: Arc<Mutex<Option<Live>>>,
    /// One connect at a time; holds the last attempt's failure, which
    /// callers that waited for it share instead of each trying again, one
    /// connect timeout after another.
    connecting: tokio::sync::Mutex<Option<Status>>,
    /// Connect attempts finished, readable before waiting for
    /// `connecting`; a connection's generation is its attempt's number.
    finished: std::sync::atomic::AtomicU64,
}

impl Conn {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            live: Arc::default(),
            connecting: Default::default(),
            finished: Default::default(),
        }
    }

    async fn sender(&self) -> Result<Live, Status> {
        if let Some(live) = self.live.lock().expect("not poisoned").clone() {
            return Ok(live);
        }
        use std::sync::atomic::Ordering;
        let seen = self.finished.load(Ordering::Acquire);
        let mut failed = self.connecting.lock().await;
        if let Some(live) = self.live.lock().expect("not poisoned").clone() {
            return Ok(live);
        }
        // An attempt that ended while this caller waited is its answer.
        if self.finished.load(Ordering::Acquire) != seen
            && let Some(failed) = &*failed
        {
            return Err(failed.clone());
        }
        let outcome = self.target.connect().await;
        let made = self.finished.fetch_add(1, Ordering::AcqRel) + 1;
        let (tx, driver) = match outcome {
            Ok(connected) => connected,
            Err(status) => {
                *failed = Some(status.clone());
                return Err(status);
            }
        };
        *failed = None;
        *self.live.lock().expect("not poisoned") = Some((made, tx.clone()));
        let live = Arc::downgrade(&self.live);
        tokio::spawn(async move {
            driver.await;
            if let Some(live) = live.upgrade() {
                let mut live = live.lock().expect("not poisoned");
                if live.as_ref().is_some_and(|(g, _)| *g == made) {
                    *live = None;
                }
            }
        });
        Ok((made, tx))
    }

    fn forget(&self, generation: u64) {
        let mut live = self.live.lock().expect("not poisoned");
        if live.as_ref().is_some_and(|(g, _)| *g == generation) {
            *live = None;
        }
    }

    /// Starts a call: `body` is one framed message (see [`super::wire::frame`]),
    /// `headers` makes the call's metadata. A connection found closed
    /// before anything was sent is made again once, within the call.
    pub(crate) async fn call<M: prost::Message + Default>(
        &self,
        rpc: Rpc,
        body: Bytes,
        headers: impl Fn() -> http::HeaderMap,
    ) -> Result<Streaming<M>, Status> {
        let request = || {
            let mut request = http::Request::new(());
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = self.target.uris[rpc as usize].clone();
            *request.headers_mut() = headers();
            let h = request.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
            request
        };
        let mut fresh = false;
        let (response, mut send) = loop {
            let (generation, tx) = self.sender().await?;
            let sent = match tx.ready().await {
                Ok(mut tx) => tx.send_request(request(), false),
                Err(e) => Err(e),
            };
            match sent {
                Ok(pair) => break pair,
                Err(e) if !fresh && (e.is_go_away() || e.is_io() || e.is_library()) => {
                    self.forget(generation);
                    fresh = true;
                }
                Err(e) => {
                    self.forget(generation);
                    let mut s = Status::unavailable(format!("provider connection: {e}"));
                    s.set_source(Arc::new(e));
                    return Err(s);
                }
            }
        };
        send.send_data(body, true).map_err(Status::from)?;
        let response = response.await.map_err(Status::from)?;
        Streaming::new(response, self.target.limit)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A provider that accepts TCP and never answers the TLS handshake.
    #[tokio::test]
    async fn callers_waiting_for_a_stalled_connect_share_its_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap()
            .cert
            .pem()
            .into_bytes();
        let tls = TlsPem {
            ca,
            identity: None,
            server_name: Some("localhost".into()),
        };
        let target = Target::new(
            &format!("https://{addr}"),
            Some(tls),
            Duration::from_millis(300),
            1024,
        )
        .unwrap();
        let conn = Arc::new(Conn::new(Arc::new(target)));
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let conn = conn.clone();
                tokio::spawn(async move { conn.sender().await.map(drop) })
            })
            .collect();
        for caller in callers {
            let e = caller.await.unwrap().unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unavailable);
            assert!(e.message().contains("TLS handshake timed out"), "{e}");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one attempt for all eight"
        );
        // A caller that comes later tries again.
        conn.sender().await.map(drop).unwrap_err();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
