//! Integration tests: the real gateway (library on a real listener, or the
//! binary over stdio) in front of real providers on real TCP ports, driven by
//! real rmcp clients in both protocol revisions.

mod cli;
mod common;
mod events;
mod events_nats;
mod failures;
pub mod inspector;
mod operations;
mod resilience;
mod security;
mod surface;
mod tls;
