//! A copy of the audit log on a JetStream stream, for when NATS is the
//! shared backbone. The JSONL file stays the record of truth (its guarantee
//! is in audit.rs); this copy is at least once, in order, through a bounded
//! queue: if NATS is unreachable for long enough to fill it, further records
//! are counted in `mcp_gateway_audit_jetstream_dropped_total` and logged.

use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::config::NatsConfig;

/// Records waiting for NATS; about 10 MB at ~1 KB each.
const QUEUE: usize = 10_000;

#[derive(Clone)]
pub struct AuditStream {
    tx: mpsc::Sender<Vec<u8>>,
}

impl AuditStream {
    /// Starts the publisher; it connects (and reconnects) in the background.
    pub fn start(
        nats: NatsConfig,
        subject: String,
        stream: String,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(nats, subject, stream, rx, stop));
        Self { tx }
    }

    pub fn send(&self, line: Vec<u8>) {
        if self.tx.try_send(line).is_err() {
            metrics::counter!("mcp_gateway_audit_jetstream_dropped_total").increment(1);
            tracing::warn!("audit JetStream queue full; record kept in the file only");
        }
    }
}

async fn run(
    nats: NatsConfig,
    subject: String,
    stream: String,
    mut rx: mpsc::Receiver<Vec<u8>>,
    stop: CancellationToken,
) {
    let mut pending: Option<Vec<u8>> = None;
    let mut backoff =
        crate::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let js = match connect(&nats, &subject, &stream).await {
            Ok(js) => js,
            Err(e) => {
                tracing::warn!(error = %e, "audit JetStream unavailable; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        backoff.reset();
        loop {
            let line = match pending.take() {
                Some(l) => l,
                None => tokio::select! {
                    _ = stop.cancelled() => return,
                    l = rx.recv() => match l { Some(l) => l, None => return },
                },
            };
            // Wait for the server's ack: only then is the record stored.
            let sent = match js.publish(subject.clone(), line.clone().into()).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "audit record not stored in JetStream; will retry");
                metrics::counter!("mcp_gateway_audit_jetstream_errors_total").increment(1);
                pending = Some(line);
                break;
            }
        }
    }
}

async fn connect(
    nats: &NatsConfig,
    subject: &str,
    stream: &str,
) -> Result<jetstream::Context, String> {
    let client = crate::nats::connect(nats)
        .await
        .map_err(|e| e.to_string())?;
    let js = jetstream::new(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: stream.to_string(),
        subjects: vec![subject.to_string()],
        ..Default::default()
    })
    .await
    .map_err(|e| format!("stream {stream}: {e}"))?;
    Ok(js)
}
