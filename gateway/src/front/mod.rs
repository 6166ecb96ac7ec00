//! The front doors: Streamable HTTP and stdio, over the MCP server side
//! the gateway owns (one engine for every transport and both protocol
//! revisions, and the 2025-11-25 sessions it serves).

pub(crate) mod engine;
pub mod http;
mod input;
pub(crate) mod jsonrpc;
mod lists;
mod outbound;
mod params;
pub(crate) mod session;
pub(crate) mod stdio;
