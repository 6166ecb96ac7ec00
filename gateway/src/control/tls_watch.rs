//! Reloads providers' TLS files when they change on disk (certificate
//! rotation without a restart): the provider's channels are rebuilt and the
//! provider is re-checked at once, so /ready shows the new state promptly.
//! The watching itself is shared with the server side
//! (`mcp_gateway_proto::tls::watch_files`).

use std::{path::PathBuf, sync::Arc};

use crate::pipeline::registry::Registry;

/// Starts watching every provider's TLS files; stops with the registry.
pub fn spawn(registry: Arc<Registry>) {
    let watched: Vec<(String, Vec<PathBuf>)> = registry
        .upstreams()
        .iter()
        .map(|u| {
            (
                u.name().to_string(),
                u.tls_files().iter().map(|p| absolute(p)).collect(),
            )
        })
        .filter(|(_, files): &(String, Vec<PathBuf>)| !files.is_empty())
        .collect();
    if watched.is_empty() {
        return;
    }
    let all: Vec<PathBuf> = watched.iter().flat_map(|(_, f)| f.clone()).collect();
    let reg = registry.clone();
    let watch = mcp_gateway_proto::tls::watch_files(all, move |changed| {
        for (name, files) in &watched {
            if !files.iter().any(|f| changed.contains(f)) {
                continue;
            }
            let Some(up) = reg.upstreams().into_iter().find(|u| u.name() == name) else {
                continue;
            };
            match up.reload_tls() {
                Ok(()) => {
                    tracing::info!(provider = %name, "TLS files changed; connections rebuilt");
                    reg.poke(name);
                }
                Err(e) => {
                    tracing::warn!(provider = %name, error = %e, "TLS files changed but cannot be loaded; keeping the previous ones")
                }
            }
        }
    });
    match watch {
        Ok(watch) => {
            tokio::spawn(async move {
                registry.stopped().await;
                drop(watch);
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch TLS files; certificate changes need a restart")
        }
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
