//! Shared harness: a kitchen-sink provider built with our SDK on a real TCP
//! port, the real gateway on a real listener, and real rmcp clients.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use mcp_gateway::{Gateway, config::Config};
use mcp_provider_sdk::prelude::*;
use rmcp::{
    ClientHandler, RoleClient,
    model::{
        CallToolRequestParams, CallToolResult, ClientConfig, JsonObject, ProgressNotificationParam,
        ProtocolVersion,
    },
    service::{
        ClientLifecycleMode, NotificationContext, RunningService, serve_client_with_lifecycle,
    },
    transport::{StreamableHttpClientTransport, TokioChildProcess},
};
use serde_json::Value;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

mod clients;
mod gateway;
mod hello;
mod kit;
mod wait;

pub use clients::*;
pub use gateway::*;
pub use hello::*;
pub use kit::*;
pub use wait::*;
