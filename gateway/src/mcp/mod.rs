//! Northbound MCP: a thin `ServerHandler` over the [`Dispatcher`]. It turns
//! MCP requests into dispatcher calls and errors into JSON-RPC errors; it
//! holds no rules of its own. The same handler serves stdio and Streamable
//! HTTP, and both protocol revisions (rmcp negotiates them).

use std::sync::Arc;

#[allow(deprecated)] // logging/setLevel: deprecated in rmcp, valid in 2025-11-25
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
        Implementation, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
        ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
        ResourceContents, ServerCapabilities, ServerConfig, SetLevelRequestParams,
        SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
    },
    service::{NotificationContext, RequestContext, SubscriptionContext},
};

use tokio_util::sync::CancellationToken;

use crate::auth::Identity;
use crate::dispatch::{Dispatcher, ProgressFn, RequestCx};
use crate::events::{Events, RECENT_URI};
use crate::notify::{Notifier, SessionState};
use crate::policy::Kind;
use mcp_gateway_proto::{CORRELATION_ID_HEADER, provider as pb};

/// Header naming the calling agent (identity proper comes with auth).
pub const AGENT_HEADER: &str = "x-agent-name";

/// One per MCP session: clones share the session's subscriptions, so use
/// [`GatewayHandler::for_new_session`] to serve another session.
#[derive(Clone)]
pub struct GatewayHandler {
    dispatcher: Arc<Dispatcher>,
    notifier: Arc<Notifier>,
    /// Fires when the transport's input ends (stdio EOF).
    closing: CancellationToken,
    events: Arc<Events>,
    session: Arc<SessionState>,
    /// Identity for transports without per-request auth (stdio). HTTP
    /// requests carry theirs, put there by the auth middleware.
    identity: Option<Arc<Identity>>,
}

impl GatewayHandler {
    pub fn new(dispatcher: Arc<Dispatcher>, notifier: Arc<Notifier>, events: Arc<Events>) -> Self {
        Self {
            dispatcher,
            notifier,
            closing: CancellationToken::new(),
            events,
            session: Arc::default(),
            identity: None,
        }
    }

    /// Fixes the identity of every request (stdio: the parent is trusted).
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(Arc::new(identity));
        self
    }

    pub fn with_closing(mut self, closing: CancellationToken) -> Self {
        self.closing = closing;
        self
    }

    /// The same gateway with fresh per-session state.
    pub fn for_new_session(&self) -> Self {
        Self {
            session: Arc::default(),
            ..self.clone()
        }
    }

    fn recent_resource() -> Resource {
        Resource::new(RECENT_URI, "recent-events")
            .with_description("The gateway's most recent events (CloudEvents, JSON), newest last.")
            .with_mime_type("application/json")
    }

    /// Identity and correlation for one request; see [`request_cx`].
    fn request_cx(&self, ctx: &RequestContext<RoleServer>) -> RequestCx {
        let cx = request_cx(
            ctx.extensions.get::<http::request::Parts>(),
            ctx.meta.0.get_traceparent(),
            self.identity.as_deref(),
            ctx.ct.clone(),
        );
        self.session.set_caller(&cx.caller);
        cx
    }
}

/// Identity and correlation for one request, from its HTTP parts (none over
/// stdio) and its `_meta.traceparent`. Over HTTP the correlation ID was put
/// on the request by the HTTP layer; over stdio it is made here. `fixed` is
/// the identity of a transport without per-request auth (stdio). Shared by
/// the rmcp handler and the HTTP fast path, so both see a request alike.
pub(crate) fn request_cx(
    parts: Option<&http::request::Parts>,
    meta_traceparent: Option<&str>,
    fixed: Option<&Identity>,
    cancel: CancellationToken,
) -> RequestCx {
    let header = |name: &str| {
        parts
            .and_then(|p| p.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let traceparent = header("traceparent")
        .or_else(|| meta_traceparent.map(str::to_string))
        .filter(|t| mcp_gateway_proto::trace::valid_traceparent(t).is_some());
    // Never falls back to a more privileged identity: an HTTP request
    // without one (impossible past the middleware) is anonymous.
    let anonymous = Identity::anonymous();
    let id = parts
        .and_then(|p| p.extensions.get::<Identity>())
        .or(fixed)
        .unwrap_or(&anonymous);
    let caller = pb::Caller {
        principal: id.principal.clone(),
        roles: id.roles.clone(),
        agent: id.agent.clone(),
        session_id: header("mcp-session-id")
            .map(|id| session_ref(&id))
            .unwrap_or_default(),
    };
    RequestCx {
        correlation_id: header(CORRELATION_ID_HEADER).unwrap_or_else(crate::new_correlation_id),
        traceparent,
        caller,
        cancel,
    }
}

/// What audit records, logs and providers get instead of a session id: a
/// stable reference that cannot be turned back into the id (a session id
/// is a bearer secret).
fn session_ref(id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    format!("s-{}", hex::encode(&digest[..8]))
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
    #[allow(deprecated)] // logging capability, for 2025-11-25 sessions
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_resources_subscribe()
            .enable_logging()
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
        // The session's identity, for filtering events before its first request.
        let id = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Identity>())
            .or(self.identity.as_deref());
        if let Some(id) = id {
            self.session.set_caller(&pb::Caller {
                principal: id.principal.clone(),
                roles: id.roles.clone(),
                agent: id.agent.clone(),
                session_id: String::new(),
            });
        }
        self.notifier.add_peer(ctx.peer, self.session.clone());
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let caller = self.request_cx(&ctx).caller;
        let cat = self.dispatcher.catalog();
        let tools = cat
            .tools_list
            .iter()
            .filter(|t| {
                cat.tool(&t.name).is_ok_and(|e| {
                    self.dispatcher.visibility().visible(
                        &caller,
                        Kind::Tool,
                        e.upstream.name(),
                        &t.name,
                    )
                })
            })
            .cloned()
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// rmcp checks `Mcp-Param-*` headers against this before our handler
    /// sees the caller; under a policy that could reveal a hidden tool, so
    /// then no schema is offered (the dispatcher still validates arguments).
    fn get_tool(&self, name: &str) -> Option<Tool> {
        if !self.dispatcher.visibility().policy().is_open() {
            return None;
        }
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let caller = self.request_cx(&ctx).caller;
        let cat = self.dispatcher.catalog();
        let mut items: Vec<Resource> = cat
            .resources_list
            .iter()
            .filter(|r| self.dispatcher.visibility().sees_uri(&caller, &r.uri))
            .cloned()
            .collect();
        items.push(Self::recent_resource());
        Ok(ListResourcesResult::with_all_items(items))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let caller = self.request_cx(&ctx).caller;
        let items = self
            .dispatcher
            .catalog()
            .templates_list
            .iter()
            .filter(|t| {
                self.dispatcher
                    .visibility()
                    .sees_uri(&caller, &t.uri_template)
            })
            .cloned()
            .collect();
        Ok(ListResourceTemplatesResult::with_all_items(items))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri == RECENT_URI {
            let caller = self.request_cx(&ctx).caller;
            let mut recent: Vec<serde_json::Value> =
                serde_json::from_str(&self.events.recent_json()).unwrap_or_default();
            // Only events of providers this caller may see, and no update
            // of a resource hidden from it.
            recent.retain(|r| {
                let provider = r["provider"].as_str();
                let updated = (r["type"] == crate::events::RESOURCE_UPDATED)
                    .then(|| r["subject"].as_str())
                    .flatten();
                provider.is_none_or(|p| self.dispatcher.visibility().sees_provider(&caller, p))
                    && updated.is_none_or(|uri| self.dispatcher.visibility().sees_uri(&caller, uri))
            });
            let json = serde_json::to_string(&recent).unwrap_or_else(|_| "[]".into());
            let text = ResourceContents::text(json, RECENT_URI).with_mime_type("application/json");
            return Ok(ReadResourceResult::new(vec![text]).into());
        }
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let caller = self.request_cx(&ctx).caller;
        let cat = self.dispatcher.catalog();
        let items = cat
            .prompts_list
            .iter()
            .filter(|p| {
                cat.prompt(&p.name).is_ok_and(|e| {
                    self.dispatcher.visibility().visible(
                        &caller,
                        Kind::Prompt,
                        e.upstream.name(),
                        &p.name,
                    )
                })
            })
            .cloned()
            .collect();
        Ok(ListPromptsResult::with_all_items(items))
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

    /// 2025-11-25 `resources/subscribe`. Any URI is accepted: resources may
    /// appear later, and updates are keyed by the client-side URI.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // A hidden URI is accepted like an unknown one, and never notified.
        let caller = self.request_cx(&ctx).caller;
        if self.dispatcher.visibility().sees_uri(&caller, &request.uri) {
            self.session.subscribe(&request.uri);
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.session.unsubscribe(&request.uri);
        Ok(())
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.session.set_log_level(request.level);
        Ok(())
    }

    /// 2026-07-28 clients receive list changes and the resource updates they
    /// ask for on `subscriptions/listen`.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::builder()
            .tools_list_changed()
            .prompts_list_changed()
            .resources_list_changed();
        if let Some(uris) = requested
            .resource_subscriptions
            .as_ref()
            .filter(|u| !u.is_empty())
        {
            accepted = accepted.resource_subscriptions(uris.iter().cloned());
        }
        Some(accepted.build())
    }

    async fn listen(&self, ctx: SubscriptionContext) -> Result<(), McpError> {
        let caller = self.request_cx(ctx.request_context()).caller;
        let id = self.notifier.add_sink(ctx.sink().clone(), caller);
        // rmcp does not cancel an open listen when stdin reaches EOF and would
        // wait for it before exiting; `closing` fires then.
        tokio::select! {
            _ = ctx.cancelled() => tracing::debug!("subscription cancelled"),
            _ = self.closing.cancelled() => tracing::debug!("subscription ends with its transport"),
        }
        self.notifier.remove_sink(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::session_ref;

    #[test]
    fn session_refs_are_stable_short_and_not_the_id() {
        let id = "ab".repeat(32);
        assert_eq!(session_ref(&id), session_ref(&id));
        assert_eq!(session_ref(&id).len(), 18);
        assert!(!session_ref(&id).contains(&id[..16]));
        assert_ne!(session_ref(&id), session_ref(&"cd".repeat(32)));
    }
}
