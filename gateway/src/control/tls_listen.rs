//! Optional TLS on the northbound listener (`server_tls` in the config).
//! The TLS pieces are shared with the SDK (`mcp_gateway_proto::tls`): the
//! certificate and key are reloaded when their files change, and each
//! handshake runs in its own bounded task.

use std::{net::SocketAddr, path::Path};

use mcp_gateway_proto::tls::{
    FileWatch, ReloadingAcceptor, ServerTlsFiles, TlsFileError, TlsStream, accept_loop,
};
use tokio::net::{TcpListener, TcpStream};

/// Loads `server_tls` (paths relative to `base_dir`); errors name the field.
pub fn acceptor(
    tls: &crate::config::ServerTls,
    base_dir: &Path,
) -> Result<ReloadingAcceptor, TlsFileError> {
    ReloadingAcceptor::new(ServerTlsFiles {
        cert: base_dir.join(&tls.cert),
        key: base_dir.join(&tls.key),
        client_ca: None,
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        fields: ["server_tls.cert", "server_tls.key", "server_tls.client_ca"],
    })
}

/// An `axum::serve` listener yielding finished TLS connections.
pub struct TlsListener {
    local: SocketAddr,
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    _watch: Option<FileWatch>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: ReloadingAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let watch = acceptor.watch().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot watch server_tls files; certificate changes need a restart");
            None
        });
        Ok(Self {
            local,
            rx: accept_loop(listener, acceptor),
            _watch: watch,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task never ends on its own while we hold it.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
