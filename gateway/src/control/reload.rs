//! Config hot reload: on a change to the config file (watched with `notify`,
//! the well-kept cross-platform file watcher) or on SIGHUP, the file is
//! loaded and validated; an invalid file is rejected with its errors logged
//! and the running config stays.

use std::{path::PathBuf, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{Gateway, config::Config, pipeline::registry::Applied};

/// Editors write in bursts (truncate, write, rename): wait for quiet.
const DEBOUNCE: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub applied: Applied,
    /// Changed settings that take effect only after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// The settings a reload cannot change, each named once: they are built
/// into the listener, the audit writer, the event consumers or the exporter
/// at startup. [`startup_only_changes`] reports them, and
/// [`keep_startup_settings`] keeps the running values.
macro_rules! restart_only {
    ($($field:ident),* $(,)?) => {
        pub fn startup_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
            let mut out = Vec::new();
            $(if old.$field != new.$field {
                out.push(stringify!($field));
            })*
            out
        }

        pub fn keep_startup_settings(old: &Config, new: &mut Config) {
            $(new.$field = old.$field.clone();)*
        }
    };
}

restart_only!(
    listen,
    allow_unauthenticated_public_bind,
    allowed_hosts,
    allowed_origins,
    server_tls,
    limits,
    shutdown_grace,
    audit,
    events,
    telemetry,
    input,
);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_settings_are_reported_and_kept() {
        let old = Config::parse("listen: 127.0.0.1:8080\n").unwrap();
        let mut new = Config::parse(
            "listen: 127.0.0.1:9090\nlimits:\n  max_sessions: 5\npolicy:\n  default: deny\n",
        )
        .unwrap();
        assert_eq!(startup_only_changes(&old, &new), ["listen", "limits"]);
        keep_startup_settings(&old, &mut new);
        assert_eq!(new.listen, old.listen);
        assert_eq!(new.limits, old.limits);
        assert_ne!(
            new.policy, old.policy,
            "reloadable settings are not touched"
        );
        assert!(startup_only_changes(&old, &new).is_empty());
    }
}
