//! Running the gateway: config reload, TLS files and their watching,
//! managed provider processes, development certificates, draining, and
//! giving memory back.

pub mod certs;
pub mod drain;
pub mod launch;
pub(crate) mod memory;
pub(crate) mod preflight;
pub mod reload;
pub mod tls_listen;
pub(crate) mod tls_watch;
