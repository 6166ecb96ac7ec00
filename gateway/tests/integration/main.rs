//! Integration tests: the real gateway (library on a real listener, or the
//! binary over stdio) in front of real providers on real TCP ports, driven by
//! real rmcp clients in both protocol revisions.

mod cache;
mod call_logs;
mod cli;
mod common;
mod conformance;
mod conformance_input;
mod connections;
mod events;
mod events_nats;
mod explain;
pub mod failures;
pub mod inspector;
mod operations;
mod operator;
mod policy_uris;
mod protocol_edges;
mod python_sdk;
mod readme;
mod reload;
mod resilience;
mod security;
mod sessions;
mod stateless_http;
mod stdio;
mod surface;
mod tls;
mod tracing;
