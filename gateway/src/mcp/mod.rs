//! Northbound MCP: a thin `ServerHandler` over the [`Dispatcher`]. It turns
//! MCP requests into dispatcher calls and errors into JSON-RPC errors; it
//! holds no rules of its own. The same handler serves stdio and Streamable
//! HTTP, and both protocol revisions (rmcp negotiates them).

mod sessions;

pub use sessions::Sessions;

use std::sync::Arc;

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
        Implementation, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
        ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
        ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
        SubscriptionFilter, Tool,
    },
    service::{NotificationContext, RequestContext, SubscriptionContext},
};

use crate::dispatch::{Dispatcher, ProgressFn, RequestCx};
use mcp_gateway_proto::{CORRELATION_ID_HEADER, provider as pb};

/// Header naming the calling agent (identity proper comes with auth).
pub const AGENT_HEADER: &str = "x-agent-name";

#[derive(Clone)]
pub struct GatewayHandler {
    dispatcher: Arc<Dispatcher>,
    sessions: Arc<Sessions>,
}

impl GatewayHandler {
    pub fn new(dispatcher: Arc<Dispatcher>, sessions: Arc<Sessions>) -> Self {
        Self {
            dispatcher,
            sessions,
        }
    }

    /// Identity and correlation for one request. Over HTTP the correlation ID
    /// was put on the request by the HTTP layer; over stdio it is made here.
    fn request_cx(&self, ctx: &RequestContext<RoleServer>) -> RequestCx {
        let parts = ctx.extensions.get::<http::request::Parts>();
        let header = |name: &str| {
            parts
                .and_then(|p| p.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        RequestCx {
            correlation_id: header(CORRELATION_ID_HEADER).unwrap_or_else(crate::new_correlation_id),
            caller: pb::Caller {
                principal: "anonymous".into(),
                roles: Vec::new(),
                agent: header(AGENT_HEADER).unwrap_or_default(),
                session_id: header("mcp-session-id").unwrap_or_default(),
            },
            cancel: ctx.ct.clone(),
        }
    }
}

fn progress_reporter(ctx: &RequestContext<RoleServer>) -> Option<ProgressFn> {
    let token = ctx.meta.get_progress_token()?;
    let peer = ctx.peer.clone();
    Some(Box::new(move |progress, total, message| {
        let mut p = ProgressNotificationParam::new(token.clone(), progress);
        p.total = total;
        p.message = (!message.is_empty()).then_some(message);
        let peer = peer.clone();
        Box::pin(async move {
            if let Err(e) = peer.notify_progress(p).await {
                tracing::debug!(error = %e, "progress notification not delivered");
            }
        })
    }))
}

/// The request's `_meta` for the provider, minus the progress token (the
/// gateway owns progress delivery). `None` when nothing is left.
fn forwarded_meta(ctx: &RequestContext<RoleServer>) -> Option<rmcp::model::JsonObject> {
    let mut meta = ctx.meta.0.0.clone();
    meta.remove("progressToken");
    (!meta.is_empty()).then_some(meta)
}

impl ServerHandler for GatewayHandler {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .build();
        InitializeResult::new(caps)
            .with_server_info(Implementation::new(
                "mcp-gateway",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Tools, resources and prompts from many providers, named {provider}.{name}.",
            )
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        self.sessions.add_peer(ctx.peer);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.dispatcher.catalog().tools_list.clone();
        Ok(ListToolsResult::with_all_items(Vec::clone(&tools)))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.dispatcher
            .catalog()
            .tool(name)
            .ok()
            .map(|t| t.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let cx = self.request_cx(&ctx);
        let progress = progress_reporter(&ctx);
        // Boxed: the dispatcher's future (tonic call, timeout, tracing) is
        // kilobytes, and rmcp moves its per-request future by value several
        // times (spawns, polls); memcpy was ~35% of gateway instructions.
        let call = Box::pin(self.dispatcher.call_tool(
            &cx,
            &request.name,
            request.arguments,
            forwarded_meta(&ctx),
            progress,
        ));
        call.await
            .map(CallToolResponse::from)
            .map_err(|e| e.to_mcp(&cx.correlation_id))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let items = self.dispatcher.catalog().resources_list.clone();
        Ok(ListResourcesResult::with_all_items(Vec::clone(&items)))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let items = self.dispatcher.catalog().templates_list.clone();
        Ok(ListResourceTemplatesResult::with_all_items(Vec::clone(
            &items,
        )))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let cx = self.request_cx(&ctx);
        // Boxed for the same reason as call_tool.
        Box::pin(self.dispatcher.read_resource(&cx, &request.uri))
            .await
            .map(ReadResourceResponse::from)
            .map_err(|e| e.to_mcp(&cx.correlation_id))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let items = self.dispatcher.catalog().prompts_list.clone();
        Ok(ListPromptsResult::with_all_items(Vec::clone(&items)))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let cx = self.request_cx(&ctx);
        // Boxed for the same reason as call_tool.
        Box::pin(
            self.dispatcher
                .get_prompt(&cx, &request.name, request.arguments),
        )
        .await
        .map(GetPromptResponse::from)
        .map_err(|e| e.to_mcp(&cx.correlation_id))
    }

    /// 2026-07-28 clients receive list changes on `subscriptions/listen`.
    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(
            SubscriptionFilter::builder()
                .tools_list_changed()
                .prompts_list_changed()
                .resources_list_changed()
                .build(),
        )
    }

    async fn listen(&self, ctx: SubscriptionContext) -> Result<(), McpError> {
        let id = self.sessions.add_sink(ctx.sink().clone());
        ctx.cancelled().await;
        self.sessions.remove_sink(id);
        Ok(())
    }
}
