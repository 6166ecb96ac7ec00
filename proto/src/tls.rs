//! TLS serving shared by the gateway's northbound listener and the SDK's
//! gRPC server: PEM files → rustls config (ring provider), an acceptor that
//! is swapped when the files change on disk (certificate rotation without a
//! restart), and an accept loop whose handshakes are bounded and run in
//! their own tasks so a silent client cannot hold up others.
//!
//! Files are watched with `notify` (the well-kept cross-platform watcher);
//! the current acceptor lives in an `ArcSwap`, so a handshake never waits on
//! a reload.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
pub use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// A client gets this long to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Several writes (cert, then key) usually land together: wait for quiet.
const SETTLE: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// `field` names the setting, so the message points at the config.
    #[error("{field}: cannot load {path}: {message}")]
    Load {
        field: &'static str,
        path: String,
        message: String,
    },
}

/// The PEM files a TLS server is built from. `fields` name them in errors
/// (e.g. `server_tls.cert` or `--tls-cert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate chaining to this CA.
    pub client_ca: Option<PathBuf>,
    /// ALPN protocols to offer, e.g. `h2`.
    pub alpn: Vec<Vec<u8>>,
    pub fields: [&'static str; 3],
}

impl ServerTlsFiles {
    fn paths(&self) -> Vec<PathBuf> {
        let mut p = vec![self.cert.clone(), self.key.clone()];
        p.extend(self.client_ca.clone());
        p
    }

    /// Reads the files and builds a rustls server config.
    pub fn load(&self) -> Result<rustls::ServerConfig, TlsFileError> {
        let [cert_field, key_field, ca_field] = self.fields;
        let read = |field, path: &Path| {
            std::fs::read(path).map_err(|e| TlsFileError::Load {
                field,
                path: path.display().to_string(),
                message: e.to_string(),
            })
        };
        let pem = ServerTlsPem {
            cert: read(cert_field, &self.cert)?,
            key: read(key_field, &self.key)?,
            client_ca: self
                .client_ca
                .as_deref()
                .map(|p| read(ca_field, p))
                .transpose()?,
        };
        pem.config(&self.alpn)
            .map_err(|(i, message)| TlsFileError::Load {
                field: self.fields[i],
                path: [
                    &self.cert,
                    &self.key,
                    self.client_ca.as_ref().unwrap_or(&self.cert),
                ][i]
                    .display()
                    .to_string(),
                message,
            })
    }
}

/// PEM contents of a TLS server's certificate chain, key and optional
/// client CA.
#[derive(Clone)]
pub struct ServerTlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTlsPem {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTlsPem")
            .field("client_auth", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerTlsPem {
    /// The rustls config; an error names the part (0 cert, 1 key, 2 CA).
    pub fn config(&self, alpn: &[Vec<u8>]) -> Result<rustls::ServerConfig, (usize, String)> {
        let chain = parse_certs(&self.cert).map_err(|e| (0, e))?;
        // Never echo key material: only the error kind.
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| (1, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| (0, format!("TLS setup: {e}")))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in parse_certs(ca).map_err(|e| (2, e))? {
                    roots.add(c).map_err(|e| (2, e.to_string()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .map_err(|e| (2, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            (
                1,
                format!("certificate and key do not make a usable pair: {e}"),
            )
        })?;
        config.alpn_protocols = alpn.to_vec();
        Ok(config)
    }
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// A TLS acceptor that follows its files: [`watch`](Self::watch) reloads it
/// when they change; a file that fails to load keeps the previous one.
#[derive(Clone)]
pub struct ReloadingAcceptor {
    files: Option<Arc<ServerTlsFiles>>,
    current: Arc<ArcSwap<TlsAcceptor>>,
}

impl ReloadingAcceptor {
    pub fn new(files: ServerTlsFiles) -> Result<Self, TlsFileError> {
        let acceptor = TlsAcceptor::from(Arc::new(files.load()?));
        Ok(Self {
            files: Some(Arc::new(files)),
            current: Arc::new(ArcSwap::from_pointee(acceptor)),
        })
    }

    /// A fixed config with no files behind it; `watch` does nothing.
    pub fn fixed(config: rustls::ServerConfig) -> Self {
        Self {
            files: None,
            current: Arc::new(ArcSwap::from_pointee(TlsAcceptor::from(Arc::new(config)))),
        }
    }

    /// The acceptor for the next handshake.
    pub fn current(&self) -> TlsAcceptor {
        (**self.current.load()).clone()
    }

    /// Loads the files again; on error the previous acceptor stays.
    pub fn reload(&self) -> Result<(), TlsFileError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let config = files.load()?;
        self.current
            .store(Arc::new(TlsAcceptor::from(Arc::new(config))));
        Ok(())
    }

    /// Reloads on every change to the files until the guard is dropped.
    /// Must be called within a tokio runtime.
    pub fn watch(&self) -> io::Result<Option<FileWatch>> {
        let Some(files) = self.files.clone() else {
            return Ok(None);
        };
        let this = self.clone();
        watch_files(files.paths(), move |_| match this.reload() {
            Ok(()) => tracing::info!(cert = %files.cert.display(), "TLS files changed; new handshakes use them"),
            Err(e) => tracing::warn!(error = %e, "TLS files changed but cannot be loaded; keeping the previous ones"),
        })
        .map(Some)
    }
}

/// Stops watching when dropped.
pub struct FileWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Calls `on_change` with the subset of `files` whose contents changed,
/// after each burst of changes settles. Directories are watched, not files,
/// and contents are compared rather than event paths trusted: rotation often
/// replaces a file by renaming one over it, and Kubernetes swaps a `..data`
/// symlink so no event names the file itself.
pub fn watch_files(
    files: Vec<PathBuf>,
    mut on_change: impl FnMut(&[PathBuf]) + Send + 'static,
) -> io::Result<FileWatch> {
    let files: Vec<PathBuf> = files.iter().map(|p| absolute(p)).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |r: notify::Result<notify::Event>| {
        use notify::event::{EventKind, ModifyKind};
        // Reads (ours included) are not changes.
        if let Ok(e) = r
            && !matches!(
                e.kind,
                EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
            )
        {
            let _ = tx.send(());
        }
    })
    .map_err(io::Error::other)?;
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        watcher
            .watch(d, RecursiveMode::NonRecursive)
            .map_err(|e| io::Error::other(format!("{}: {e}", d.display())))?;
    }
    let mut last = fingerprints(&files);
    let task = tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let now = fingerprints(&files);
            let hit: Vec<PathBuf> = files
                .iter()
                .zip(now.iter().zip(&last))
                .filter(|(_, (n, l))| n != l)
                .map(|(f, _)| f.clone())
                .collect();
            last = now;
            if !hit.is_empty() {
                on_change(&hit);
            }
        }
    });
    Ok(FileWatch { task })
}

/// A hash of each file's contents (through symlinks); `None` if unreadable.
fn fingerprints(files: &[PathBuf]) -> Vec<Option<u64>> {
    use std::hash::{Hash, Hasher};
    files
        .iter()
        .map(|f| {
            std::fs::read(f).ok().map(|b| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                b.hash(&mut h);
                h.finish()
            })
        })
        .collect()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Accepts TCP connections and yields finished TLS connections, each
/// handshake in its own task bounded by [`HANDSHAKE_TIMEOUT`], using the
/// acceptor current at accept time. Ends when the receiver is dropped.
pub fn accept_loop(
    listener: TcpListener,
    acceptor: ReloadingAcceptor,
) -> tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                _ = tx.closed() => return,
                c = listener.accept() => match c {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.current(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send((tls, addr)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Reads (ours included) are not changes; a write is one change.
    #[tokio::test]
    async fn reads_do_not_trigger_and_a_write_triggers_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "one").unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (h, f) = (hits.clone(), file.clone());
        let _watch = watch_files(vec![file.clone()], move |_| {
            h.fetch_add(1, Ordering::SeqCst);
            // What a reload does: read the file again.
            let _ = std::fs::read(&f);
        })
        .unwrap();
        for _ in 0..5 {
            let _ = std::fs::read(&file).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        std::fs::write(&file, "two").unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    /// Kubernetes secret volumes: `cert.pem -> ..data/cert.pem`, and
    /// rotation swaps the `..data` symlink; no event names `cert.pem`.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_swapped_directory_symlink_is_a_change() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (v, text) in [("v1", "one"), ("v2", "two")] {
            std::fs::create_dir(d.join(v)).unwrap();
            std::fs::write(d.join(v).join("cert.pem"), text).unwrap();
        }
        symlink("v1", d.join("..data")).unwrap();
        symlink("..data/cert.pem", d.join("cert.pem")).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let _watch = watch_files(vec![d.join("cert.pem")], move |_| {
            h.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        // What the kubelet does: a new link, renamed over the old one.
        symlink("v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(std::fs::read_to_string(d.join("cert.pem")).unwrap(), "two");
    }
}
