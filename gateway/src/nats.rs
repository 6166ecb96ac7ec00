//! Connecting to NATS, shared by the event consumer and the audit copy to
//! JetStream. A leaf: it knows the `events.nats` settings and nothing else.

use std::time::Duration;

use crate::events::config::NatsConfig;

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// Names the reference (path or variable), never the secret.
    #[error("cannot read NATS credentials from {reference}: {reason}")]
    Credentials { reference: String, reason: String },
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
}

pub(crate) async fn connect(cfg: &NatsConfig) -> Result<async_nats::Client, NatsError> {
    let creds = cfg.credentials.clone().unwrap_or_default();
    let opts = match (&creds.file, &creds.env) {
        (None, None) => async_nats::ConnectOptions::new(),
        (Some(path), _) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| NatsError::Credentials {
                reference: format!("file {path}"),
                reason: e.kind().to_string(),
            })?,
        (None, Some(var)) => {
            let text = std::env::var(var).map_err(|e| NatsError::Credentials {
                reference: format!("env {var}"),
                reason: e.to_string(),
            })?;
            async_nats::ConnectOptions::with_credentials(&text).map_err(|e| {
                NatsError::Credentials {
                    reference: format!("env {var}"),
                    reason: e.kind().to_string(),
                }
            })?
        }
    };
    opts.name("mcp-gateway")
        .connection_timeout(Duration::from_secs(2))
        .connect(cfg.url.as_str())
        .await
        .map_err(|e| NatsError::Connect(e.to_string()))
}
