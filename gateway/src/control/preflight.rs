//! What the gateway refuses to start on, found without starting it: the
//! files the config names (auth keys and secrets, provider and listener TLS
//! PEMs, the audit log's directory). `mcp-gateway check`, start and reload
//! all run it, so they cannot disagree. Each check is the constructor start
//! uses, run on its own; every problem is reported, not only the first.

use crate::config::{Config, Problem};

pub fn problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Err(e) = crate::security::auth::Authenticator::new(&config.auth, &config.base_dir) {
        out.push(e.into());
    }
    for (i, p) in config.providers.iter().enumerate() {
        if let Err(e) =
            crate::southbound::Upstream::check(p, config.limits.max_payload_bytes, &config.base_dir)
        {
            let (field, message) = e.field_and_rule();
            out.push(Problem {
                field: format!("providers[{i}].{field}"),
                message,
            });
        }
    }
    if let Some(t) = &config.server_tls
        && let Err(mcp_gateway_proto::tls::TlsFileError::Load {
            field,
            path,
            message,
        }) = super::tls_listen::acceptor(t, &config.base_dir)
    {
        out.push(Problem {
            field: field.into(),
            message: format!("cannot load {path}: {message}"),
        });
    }
    if let Err(message) = sealer(config) {
        out.push(Problem {
            field: "input.state_key".into(),
            message,
        });
    }
    if let Some(path) = &config.audit.path
        && let Err(message) = crate::observe::audit::usable(&config.base_dir.join(path))
    {
        out.push(Problem {
            field: "audit.path".into(),
            message,
        });
    }
    out
}

/// The `requestState` sealer `input.state_key` makes (a random key if unset).
pub fn sealer(config: &Config) -> Result<crate::security::seal::Sealer, String> {
    let key = match &config.input.state_key {
        Some(reference) => Some(
            crate::security::secret::resolve(reference, &config.base_dir)
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    crate::security::seal::Sealer::new(key.as_deref(), config.input.state_ttl).map_err(|e| e.0)
}
