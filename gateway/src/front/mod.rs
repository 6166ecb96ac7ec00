//! The MCP server side the gateway owns: one engine for every transport and
//! both protocol revisions, and the 2025-11-25 sessions it serves.

pub(crate) mod engine;
pub(crate) mod session;
