//! The audit log: one JSON line per tool call, resource read and prompt get.
//!
//! Guarantee (docs/operations.md): a record is written to the file (a
//! `write(2)` has returned) before the response goes back to the client.
//! With `fsync: always` it is also on stable storage by then; with
//! `fsync: interval` it reaches stable storage within `fsync_interval`; with
//! `fsync: never` the OS decides. A record that cannot be written (a full
//! disk, say) is logged at error level in full, counted in
//! `mcp_gateway_audit_write_errors_total`, and the call still answers.
//!
//! Writes go through one writer task that takes every record queued so far
//! and writes them in one go (group commit), so a busy gateway does one
//! write (and at most one fsync) per batch, not per call.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// fsync every batch before acknowledging it.
    Always,
    /// fsync at most once per `fsync_interval`.
    #[default]
    Interval,
    Never,
}

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    pub method: &'static str,
    pub item: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub principal: String,
    pub agent: String,
    pub session: String,
    pub correlation_id: String,
    /// SHA-256 of the arguments as sent to the provider (their JSON bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_sha256: Option<String>,
    /// Redacted arguments, only with `logging.arguments: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    /// `ok`, `tool_error` (an `isError` result) or `error`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<&'static str>,
    pub duration_ms: f64,
    pub cached: bool,
    /// Rounds of client input before this call (MRTR); absent for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
}

type Batch = Vec<(Vec<u8>, oneshot::Sender<()>)>;

/// Why [`AuditLog::open`] would fail on `path`, found without creating
/// anything.
pub fn usable(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "the directory {} does not exist (the gateway does not create it)",
                dir.display()
            ));
        }
        Err(e) => return Err(format!("cannot use the directory {}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", dir.display())),
        Ok(_) => {}
    }
    if path.is_dir() {
        return Err(format!("{} is a directory, not a file", path.display()));
    }
    if path.exists() {
        // Opening an existing file to append changes nothing in it.
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| format!("cannot append to {}: {e}", path.display()));
    }
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
        .map_err(|e| format!("cannot create {} in {}: {e}", path.display(), dir.display()))
}

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<(Vec<u8>, oneshot::Sender<()>)>,
}

impl AuditLog {
    /// Opens (creating, appending) `path` and starts the writer. The
    /// directory must exist: a mistyped path is refused, not created.
    pub fn open(path: &Path, fsync: Fsync, interval: Duration) -> Result<Self, AuditError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Open {
                path: path.display().to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(file, path, fsync, interval, rx))
            .expect("spawn audit writer thread");
        Ok(Self { tx })
    }

    /// Appends `record`; resolves once it has been written (or failed).
    pub async fn write(&self, record: &Record) {
        if let Some(written) = self.queue(record) {
            let _ = written.await;
        }
    }

    /// Queues `record`; the receiver resolves once it is written (and
    /// synced, per `audit.fsync`).
    pub fn queue(&self, record: &Record) -> Option<oneshot::Receiver<()>> {
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        let (done, wait) = oneshot::channel();
        self.tx.send((line, done)).ok().map(|()| wait)
    }
}

/// A plain thread: file I/O blocks, and one thread per gateway is cheap.
fn writer(
    mut file: std::fs::File,
    path: PathBuf,
    fsync: Fsync,
    interval: Duration,
    rx: mpsc::Receiver<(Vec<u8>, oneshot::Sender<()>)>,
) {
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        let first = match rx.recv_timeout(interval) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A quiet log still reaches the disk within the interval.
                if dirty && fsync != Fsync::Never && file.sync_data().is_ok() {
                    dirty = false;
                    last_sync = Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch: Batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let buf: Vec<u8> = batch.iter().flat_map(|(l, _)| l.iter().copied()).collect();
        let mut result = file.write_all(&buf);
        dirty = true;
        let sync_now = match fsync {
            Fsync::Always => true,
            Fsync::Interval => last_sync.elapsed() >= interval,
            Fsync::Never => false,
        };
        if result.is_ok() && sync_now && dirty {
            result = file.sync_data();
            last_sync = Instant::now();
            dirty = false;
        }
        if let Err(e) = result {
            metrics::counter!("mcp_gateway_audit_write_errors_total").increment(batch.len() as u64);
            for (line, _) in &batch {
                tracing::error!(
                    path = %path.display(),
                    error = %e,
                    record = %String::from_utf8_lossy(line).trim_end(),
                    "audit record could not be written"
                );
            }
        }
        for (_, done) in batch {
            let _ = done.send(());
        }
    }
    let _ = file.sync_data();
}
