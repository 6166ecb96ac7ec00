//! Serving: the gRPC server (Provider + grpc.health.v1), graceful shutdown,
//! and a hard kill for tests that simulate a crashed provider.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use mcp_gateway_proto::SERVICE_NAME;
use mcp_gateway_proto::tls::{ReloadingAcceptor, ServerTlsFiles, ServerTlsPem, accept_loop};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::Server;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic_health::ServingStatus;

use crate::{ProviderBuilder, ProviderService, SdkError};

/// TLS for the provider's gRPC server: certificate chain and key, and
/// optionally the CA that client certificates must chain to (then a client
/// without a valid certificate is refused during the handshake: mTLS).
///
/// Built [`from_files`](Self::from_files), the files are watched and
/// reloaded when they change (certificate rotation without a restart);
/// handshakes after the change use the new files, open connections keep
/// theirs. A file that fails to load is logged and the previous one stays.
#[derive(Debug, Clone)]
pub struct TlsConfig(TlsSource);

#[derive(Debug, Clone)]
enum TlsSource {
    Pem(ServerTlsPem),
    Files(ServerTlsFiles),
}

/// gRPC needs HTTP/2.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec()]
}

impl TlsConfig {
    /// From PEM contents (e.g. from a secret store); never reloaded. With
    /// `client_ca_pem`, clients must present a certificate it signed (mTLS).
    pub fn from_pem(
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
        client_ca_pem: Option<impl Into<Vec<u8>>>,
    ) -> Self {
        Self(TlsSource::Pem(ServerTlsPem {
            cert: cert_pem.into(),
            key: key_pem.into(),
            client_ca: client_ca_pem.map(Into::into),
        }))
    }

    /// From PEM files, loaded now (so a bad file fails at startup) and
    /// reloaded whenever they change on disk.
    pub fn from_files(
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
        client_ca: Option<impl AsRef<std::path::Path>>,
    ) -> io::Result<Self> {
        let files = ServerTlsFiles {
            cert: cert.as_ref().to_path_buf(),
            key: key.as_ref().to_path_buf(),
            client_ca: client_ca.map(|c| c.as_ref().to_path_buf()),
            alpn: alpn(),
            fields: ["tls cert", "tls key", "tls client CA"],
        };
        files
            .load()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Self(TlsSource::Files(files)))
    }

    fn requires_client_cert(&self) -> bool {
        match &self.0 {
            TlsSource::Pem(p) => p.client_ca.is_some(),
            TlsSource::Files(f) => f.client_ca.is_some(),
        }
    }

    fn acceptor(&self) -> Result<ReloadingAcceptor, SdkError> {
        match &self.0 {
            TlsSource::Pem(p) => {
                p.config(&alpn())
                    .map(ReloadingAcceptor::fixed)
                    .map_err(|(i, e)| {
                        SdkError::Tls(format!("{}: {e}", ["certificate", "key", "client CA"][i]))
                    })
            }
            TlsSource::Files(f) => {
                ReloadingAcceptor::new(f.clone()).map_err(|e| SdkError::Tls(e.to_string()))
            }
        }
    }
}

impl ProviderBuilder {
    /// Binds `addr` (e.g. `"127.0.0.1:50052"`) and serves until Ctrl-C or
    /// SIGTERM, then shuts down gracefully (in-flight calls finish).
    pub async fn serve(mut self, addr: &str) -> Result<(), SdkError> {
        let tls = self.tls.take();
        let service = self.build()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SdkError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        let signal = shutdown_signal()?;
        run(service, tls, listener, signal, CancellationToken::new()).await
    }

    /// Serves on `listener` until `shutdown` resolves, then drains in-flight
    /// calls and returns.
    pub async fn serve_with_shutdown(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SdkError> {
        let tls = self.tls.take();
        run(
            self.build()?,
            tls,
            listener,
            shutdown,
            CancellationToken::new(),
        )
        .await
    }

    /// Serves on `listener` in a background task; the handle stops it. Bind
    /// `127.0.0.1:0` and read [`RunningProvider::addr`] in tests.
    pub async fn spawn(mut self, listener: TcpListener) -> Result<RunningProvider, SdkError> {
        let tls = self.tls.take();
        let service = self.build()?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let kill = CancellationToken::new();
        let task = tokio::spawn(run(
            service,
            tls,
            listener,
            shutdown.clone().cancelled_owned(),
            kill.clone(),
        ));
        Ok(RunningProvider {
            addr,
            shutdown,
            kill,
            task: Some(task),
        })
    }
}

/// A provider serving in the background (from [`ProviderBuilder::spawn`]).
/// Dropping it has the same effect as [`abort`](Self::abort).
#[derive(Debug)]
#[must_use = "dropping a RunningProvider aborts it"]
pub struct RunningProvider {
    addr: SocketAddr,
    shutdown: CancellationToken,
    kill: CancellationToken,
    task: Option<JoinHandle<Result<(), SdkError>>>,
}

impl RunningProvider {
    /// The address actually bound (useful after binding port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful: stop accepting connections, report NOT_SERVING, let
    /// in-flight calls finish, then return. To bound the wait, wrap it in
    /// `tokio::time::timeout`: dropping this future early aborts the provider.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.as_mut() {
            let outcome = task.await;
            // Only now: if this future is dropped while waiting, Drop kills.
            self.task = None;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "provider stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "provider task failed"),
            }
        }
    }

    /// Hard kill, as if the process died: every connection is dropped at
    /// once and in-flight calls fail on the client side.
    pub fn abort(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        self.kill.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.kill_now();
        }
    }
}

async fn run(
    service: ProviderService,
    tls: Option<TlsConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    kill: CancellationToken,
) -> Result<(), SdkError> {
    let addr = listener.local_addr()?;
    let name = service.name().to_owned();

    let (reporter, health) = tonic_health::server::health_reporter();
    for svc in ["", SERVICE_NAME] {
        reporter
            .set_service_status(svc, ServingStatus::Serving)
            .await;
    }
    let publisher = service.publisher();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down, draining in-flight calls");
        publisher.close();
        for svc in ["", SERVICE_NAME] {
            reporter
                .set_service_status(svc, ServingStatus::NotServing)
                .await;
        }
    };

    tracing::info!(provider = %name, %addr, revision = service.revision(), tls = tls.is_some(),
        mtls = tls.as_ref().is_some_and(TlsConfig::requires_client_cert), "serving");
    // TLS is done here rather than by tonic so the certificate can be
    // swapped while serving.
    let (incoming, _watch): (BoxedIncoming, _) = match &tls {
        None => {
            // serve_with_incoming ignores tcp_nodelay, so set it per connection.
            let incoming = TcpListenerStream::new(listener).map(move |conn| {
                conn.map(|stream| {
                    let _ = stream.set_nodelay(true);
                    let info = stream.connect_info();
                    KillableIo::new(Box::pin(stream), info, kill.clone())
                })
            });
            (Box::pin(incoming), None)
        }
        Some(tls) => {
            let acceptor = tls.acceptor()?;
            let watch = acceptor.watch().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot watch TLS files; certificate changes need a restart");
                None
            });
            let incoming = tokio_stream::wrappers::ReceiverStream::new(accept_loop(
                listener, acceptor,
            ))
            .map(move |(stream, _)| {
                let info = stream.get_ref().0.connect_info();
                Ok(KillableIo::new(Box::pin(stream), info, kill.clone()))
            });
            (Box::pin(incoming), watch)
        }
    };
    Server::builder()
        .add_service(health)
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, signal)
        .await?;
    tracing::info!(provider = %name, "stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix (what container runtimes send).
fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// A TCP connection that fails every read and write once `kill` fires.
///
/// tonic serves each connection in its own task, which outlives the server
/// future, so aborting the server alone would leave connections open. Failing
/// the I/O makes hyper drop the connection (closing the socket), which is
/// what a crashed process looks like to the client.
struct KillableIo {
    io: Pin<Box<dyn Io>>,
    info: TcpConnectInfo,
    kill: CancellationToken,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// A plain or TLS connection.
trait Io: AsyncRead + AsyncWrite + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + 'static> Io for T {}

type BoxedIncoming = Pin<Box<dyn tokio_stream::Stream<Item = io::Result<KillableIo>> + Send>>;

impl KillableIo {
    fn new(io: Pin<Box<dyn Io>>, info: TcpConnectInfo, kill: CancellationToken) -> Self {
        let killed = Box::pin(kill.clone().cancelled_owned());
        Self {
            io,
            info,
            kill,
            killed,
        }
    }

    /// Also registers the task's waker, so a kill wakes an idle connection.
    fn check(&mut self, cx: &mut TaskContext<'_>) -> io::Result<()> {
        if self.kill.is_cancelled() || self.killed.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "provider aborted",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        self.io.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        self.io.as_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        self.io.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        self.io.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        if self.kill.is_cancelled() {
            return Poll::Ready(Ok(()));
        }
        self.io.as_mut().poll_shutdown(cx)
    }
}

impl Connected for KillableIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}
