//! Config hot reload: on a change to the config file (watched with `notify`,
//! the well-kept cross-platform file watcher) or on SIGHUP, the file is
//! loaded and validated; an invalid file is rejected with its errors logged
//! and the running config stays.

use std::{path::PathBuf, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{Gateway, config::Config, registry::Applied};

/// Editors write in bursts (truncate, write, rename): wait for quiet.
const DEBOUNCE: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub applied: Applied,
    /// Changed settings that take effect only after a restart.
    pub needs_restart: Vec<&'static str>,
}

pub fn startup_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listen != new.listen {
        out.push("listen");
    }
    if old.allow_unauthenticated_public_bind != new.allow_unauthenticated_public_bind {
        out.push("allow_unauthenticated_public_bind");
    }
    if old.allowed_hosts != new.allowed_hosts {
        out.push("allowed_hosts");
    }
    if old.limits != new.limits {
        out.push("limits");
    }
    if old.shutdown_grace != new.shutdown_grace {
        out.push("shutdown_grace");
    }
    if old.audit != new.audit {
        out.push("audit");
    }
    if old.events != new.events {
        out.push("events");
    }
    if old.telemetry != new.telemetry {
        out.push("telemetry");
    }
    // Built into the listener at startup, like `allowed_hosts`.
    if old.allowed_origins != new.allowed_origins {
        out.push("allowed_origins");
    }
    if old.server_tls != new.server_tls {
        out.push("server_tls");
    }
    out
}

pub fn keep_startup_settings(old: &Config, new: &mut Config) {
    new.listen = old.listen;
    new.allow_unauthenticated_public_bind = old.allow_unauthenticated_public_bind;
    new.allowed_hosts = old.allowed_hosts.clone();
    new.limits = old.limits.clone();
    new.shutdown_grace = old.shutdown_grace;
    new.audit = old.audit.clone();
    new.events = old.events.clone();
    new.telemetry = old.telemetry.clone();
    new.allowed_origins = old.allowed_origins.clone();
    new.server_tls = old.server_tls.clone();
}

/// The listener stays where it is on reload: turning auth off is refused
/// while it is bound publicly, exactly as at startup.
pub fn check_public_bind(config: &Config) -> Result<(), crate::ServeError> {
    if config.unauthenticated_public_bind() {
        return Err(crate::ServeError::Reload(format!(
            "auth: cannot turn client authentication off while listening on {} (not loopback); \
             set allow_unauthenticated_public_bind: true or restart on a loopback address",
            config.listen
        )));
    }
    Ok(())
}

/// Reloads `path` whenever it changes or SIGHUP arrives, until `stop`.
pub async fn watch(gateway: Gateway, path: PathBuf, stop: CancellationToken) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let watched = path.clone();
    let tx_fs = tx.clone();
    let mut watcher =
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && !ev.kind.is_access()
                && ev
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name)
            {
                let _ = tx_fs.send(());
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP");
                None
            }
        };
    // Watch the directory: editors often replace the file rather than write it.
    let dir = watched
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    if let Some(w) = watcher.as_mut() {
        use notify::Watcher;
        if let Err(e) = w.watch(&dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory; reload with SIGHUP");
        }
    }
    #[cfg(unix)]
    {
        let tx_sig = tx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    s = hup.recv() => {
                        if s.is_none() { return; }
                        tracing::info!("SIGHUP: reloading the config");
                        let _ = tx_sig.send(());
                    }
                }
            }
        });
    }
    drop(tx);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = rx.recv() => if got.is_none() { return },
        }
        // Coalesce the burst.
        while tokio::time::timeout(DEBOUNCE, rx.recv())
            .await
            .is_ok_and(|m| m.is_some())
        {}
        match Config::load(&path) {
            Ok(config) => {
                if let Err(e) = gateway.reload(config).await {
                    metrics::counter!("mcp_gateway_config_reload_rejected_total").increment(1);
                    tracing::error!(error = %e, "config reload failed; the running config stays");
                }
            }
            Err(e) => {
                metrics::counter!("mcp_gateway_config_reload_rejected_total").increment(1);
                tracing::error!(path = %path.display(), error = %e, "config reload rejected; the running config stays");
            }
        }
    }
}
