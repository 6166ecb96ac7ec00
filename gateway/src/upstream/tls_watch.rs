//! Reloads providers' TLS files when they change on disk (certificate
//! rotation without a restart): the provider's channels are rebuilt and the
//! provider is re-checked at once, so /ready shows the new state promptly.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use notify::{RecursiveMode, Watcher};

use super::Registry;

/// Several writes (cert, then key) usually land together; wait for quiet.
const SETTLE: Duration = Duration::from_millis(200);

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
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watcher = match notify::recommended_watcher(move |r: notify::Result<notify::Event>| {
        if let Ok(e) = r {
            let _ = tx.send(e.paths);
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch TLS files; certificate changes need a restart");
            return;
        }
    };
    // Directories, not files: rotation often replaces a file by renaming.
    let mut dirs: Vec<PathBuf> = watched
        .iter()
        .flat_map(|(_, f)| f.iter().filter_map(|p| p.parent().map(Path::to_path_buf)))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch TLS directory");
        }
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            let mut changed = tokio::select! {
                _ = registry.stopped() => return,
                p = rx.recv() => match p { Some(p) => p, None => return },
            };
            tokio::time::sleep(SETTLE).await;
            while let Ok(more) = rx.try_recv() {
                changed.extend(more);
            }
            let changed: Vec<PathBuf> = changed.iter().map(|p| absolute(p)).collect();
            for (name, files) in &watched {
                if !files.iter().any(|f| changed.contains(f)) {
                    continue;
                }
                let Some(up) = registry.upstreams().into_iter().find(|u| u.name() == name) else {
                    continue;
                };
                match up.reload_tls() {
                    Ok(()) => {
                        tracing::info!(provider = %name, "TLS files changed; connections rebuilt");
                        registry.poke(name);
                    }
                    Err(e) => {
                        tracing::warn!(provider = %name, error = %e, "TLS files changed but cannot be loaded; keeping the previous ones")
                    }
                }
            }
        }
    });
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
