//! What the gateway tells operators: logs, traces and metrics, the audit
//! log (file and NATS), and usage analytics.

pub mod analytics;
pub mod audit;
pub mod audit_nats;
pub mod telemetry;
