//! A bare rmcp server with one tool, `echo`, over Streamable HTTP at `/mcp`:
//! the upstream that another MCP proxy (agentgateway) is measured in front
//! of, and a row of its own (what rmcp's server side costs without a proxy).

use std::{net::SocketAddr, sync::Arc};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

/// The tool's name, as a client of this server sees it.
pub const TOOL: &str = "echo";

#[derive(Clone)]
struct Echo {
    tool: Tool,
}

impl Echo {
    fn new() -> Self {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        });
        let serde_json::Value::Object(schema) = schema else {
            unreachable!("an object literal")
        };
        Self {
            tool: Tool::new(TOOL, "Sends the message back.", Arc::new(schema)),
        }
    }
}

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult {
            tools: vec![self.tool.clone()],
            ..Default::default()
        })
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if req.name != TOOL {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {}", req.name),
                None,
            ));
        }
        let message = req
            .arguments
            .as_ref()
            .and_then(|a| a.get("message"))
            .and_then(|m| m.as_str())
            .ok_or_else(|| ErrorData::invalid_params("arguments.message: required string", None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(message)]).into())
    }
}

/// Serves until killed: 2025-11-25 sessions and 2026-07-28 stateless
/// requests on one endpoint, as rmcp does by default.
pub async fn serve(listen: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = listen.parse()?;
    let service = StreamableHttpService::new(
        || Ok(Echo::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let service = service.clone();
        tokio::spawn(async move {
            let svc = hyper_util::service::TowerToHyperService::new(service);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
        });
    }
}
