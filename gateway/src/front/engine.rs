//! The MCP server side, the same for every transport and both revisions:
//! one decoded request in, one answer out (or a stream, for
//! `subscriptions/listen`). It turns MCP methods into dispatcher calls and
//! dispatcher errors into JSON-RPC errors, and holds no rules of its own
//! beyond the protocol's.

use std::sync::Arc;

use bytes::Bytes;
#[allow(deprecated)] // logging/setLevel: deprecated in rmcp, valid in 2025-11-25
use rmcp::model::{
    CallToolResponse, CompleteResult, DiscoverResult, ErrorCode, ErrorData, GetPromptResponse,
    Implementation, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, LoggingLevel, Prompt, ProtocolVersion,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ServerCapabilities, ServerConfig, ServerResult, Tool,
};
use serde::Serialize;
use serde_json::{Map, Value, json, value::RawValue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::input::{Input, Outcome, take_capabilities};
use super::lists::{self, List, Lists};
use super::params::{META_CAPABILITIES, Meta};
use super::session::Session;
use crate::events::{Events, RECENT_URI};
use crate::pipeline::catalog::Catalog;
use crate::pipeline::dispatch::{Dispatcher, LogFn, ProgressFn, Relay, RequestCx, Round};
use crate::pipeline::notify::{Filter, MAX_SUBSCRIPTIONS, MAX_URI_BYTES, Notifier, notification};
use crate::security::auth::Identity;
use crate::security::policy::Kind;
use mcp_gateway_proto::provider as pb;

/// The revision without sessions: `_meta` on every request.
pub(crate) const PER_REQUEST: &str = "2026-07-28";
/// Revisions with an `initialize` handshake, newest first.
pub(crate) const WITH_INITIALIZE: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
pub(crate) use super::params::META_VERSION;

/// Whether `v` is a revision this gateway speaks.
pub(crate) fn known(v: &str) -> bool {
    v == PER_REQUEST || WITH_INITIALIZE.contains(&v)
}

/// One request, owned, so that its call may outlive the connection.
pub(crate) struct Call {
    pub id: Box<RawValue>,
    pub method: String,
    /// The params but `_meta`.
    pub params: Map<String, Value>,
    pub meta: Option<Meta<Box<RawValue>>>,
}

impl Call {
    pub(crate) fn new(r: crate::front::jsonrpc::Request<'_>) -> Self {
        let params = r.params.unwrap_or_default();
        Self {
            id: r.id.to_owned(),
            method: r.method,
            params: params.fields,
            meta: params.meta.map(Meta::owned),
        }
    }

    /// `_meta` keys a 2026-07-28 request must carry and does not.
    pub(crate) fn missing_meta(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.meta_version().is_none() {
            missing.push(META_VERSION);
        }
        if !self.meta.as_ref().is_some_and(|m| m.capabilities) {
            missing.push(META_CAPABILITIES);
        }
        missing
    }

    pub(crate) fn meta_version(&self) -> Option<&str> {
        self.meta.as_ref()?.version.as_deref()
    }

    /// Whether the client asked for progress notifications.
    pub(crate) fn wants_progress(&self) -> bool {
        self.meta
            .as_ref()
            .is_some_and(|m| m.progress_token.is_some())
    }

    fn str_param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// The transport's view of one request.
pub(crate) struct Exchange {
    pub identity: Arc<Identity>,
    pub correlation_id: String,
    /// From the `traceparent` header, if any.
    pub traceparent: Option<String>,
    pub session: Option<Arc<Session>>,
    /// Where notifications sent before the answer go (progress).
    pub early: Option<mpsc::Sender<Bytes>>,
    pub cancel: CancellationToken,
}

impl Exchange {
    fn stateless(&self) -> bool {
        self.session.is_none()
    }
}

/// A serialized JSON-RPC answer, with its error code if it is an error.
pub(crate) struct Answer {
    pub body: Bytes,
    pub error: Option<ErrorCode>,
}

/// What a request gets.
pub(crate) enum Reply {
    Answer(Answer),
    /// `subscriptions/listen`: an acknowledgment, then notifications until
    /// the client goes away or the stream is ended.
    Listen(Listen),
}

pub(crate) struct Listen {
    pub first: Bytes,
    pub rx: mpsc::Receiver<Bytes>,
    pub registration: Registration,
}

/// Unregisters a listen stream when dropped.
pub(crate) struct Registration {
    notifier: Arc<Notifier>,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.notifier.remove_listener(self.key);
    }
}

/// 2026-07-28 results carry `resultType` and caching hints; older
/// revisions have neither.
fn for_revision(r: &mut ServerResult, stateless: bool) {
    if stateless {
        r.fill_missing_cache_hints();
    } else {
        r.strip_result_type_for_legacy_peer();
    }
}

/// An answer around an already serialized result.
fn raw_result(id: &RawValue, result: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(result.len() + 48);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.push(b'}');
    Bytes::from(out)
}

/// `{"jsonrpc":"2.0","id":…,"result":…}`, written directly.
pub(crate) fn result_bytes(id: &RawValue, result: &impl Serialize) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":");
    if serde_json::to_writer(&mut out, result).is_err() {
        return error_answer(
            Some(id),
            &ErrorData::internal_error("result not serialized", None),
        )
        .body;
    }
    out.push(b'}');
    Bytes::from(out)
}

pub(crate) fn error_answer(id: Option<&RawValue>, e: &ErrorData) -> Answer {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or("null", RawValue::get).as_bytes());
    out.extend_from_slice(b",\"error\":");
    serde_json::to_writer(&mut out, e).expect("an error serializes");
    out.push(b'}');
    Answer {
        body: Bytes::from(out),
        error: Some(e.code),
    }
}

fn method_not_found(method: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("method not found: {method}"),
        None,
    )
}

pub(crate) struct Engine {
    dispatcher: Arc<Dispatcher>,
    notifier: Arc<Notifier>,
    events: Arc<Events>,
    lists: Lists,
    input: Input,
}

/// Whether a request may need a stream to ask its 2025-11-25 client for
/// input on: one of the three that can, from a client that can answer.
pub(crate) fn may_ask(session: Option<&Session>, method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
        && session.is_some_and(|s| s.outbound.can_answer())
}

impl Engine {
    pub(crate) fn new(
        dispatcher: Arc<Dispatcher>,
        notifier: Arc<Notifier>,
        events: Arc<Events>,
        page_size: usize,
    ) -> Self {
        Self {
            dispatcher,
            notifier,
            events,
            lists: Lists::new(page_size),
            input: Input::new(
                Arc::new(
                    crate::security::seal::Sealer::new(None, Default::default())
                        .expect("a random key"),
                ),
                crate::security::seal::InputConfig::default().max_rounds,
            ),
        }
    }

    /// Seals 2026-07-28 `requestState` with `sealer`; at most `max_rounds`
    /// rounds of client input per request.
    pub(crate) fn with_input(
        mut self,
        sealer: Arc<crate::security::seal::Sealer>,
        max_rounds: u32,
    ) -> Self {
        self.input = Input::new(sealer, max_rounds);
        self
    }

    #[allow(deprecated)] // logging capability, for 2025-11-25 sessions
    fn info() -> ServerConfig {
        let caps: ServerCapabilities = serde_json::from_value(json!({
            "tools": {"listChanged": true},
            "prompts": {"listChanged": true},
            "resources": {"listChanged": true, "subscribe": true},
            "logging": {},
        }))
        .expect("capabilities deserialize");
        InitializeResult::new(caps)
            .with_server_info(Implementation::new(
                "mcp-gateway",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Tools, resources and prompts from many providers, named {provider}.{name}.",
            )
    }

    /// The revision `initialize` agrees on for a client asking for `asked`.
    pub(crate) fn negotiate(asked: &str) -> &'static str {
        WITH_INITIALIZE
            .iter()
            .find(|v| **v == asked)
            .copied()
            .unwrap_or(WITH_INITIALIZE[0])
    }

    /// The answer to `initialize`, for a session already opened at `version`.
    pub(crate) fn initialize(&self, call: &Call, session: &Session, identity: &Identity) -> Answer {
        let mut result = Self::info();
        result.protocol_version =
            serde_json::from_value(json!(session.version)).unwrap_or(ProtocolVersion::V_2025_11_25);
        session
            .state
            .set_caller(&caller_of(identity, Some(session)));
        session
            .outbound
            .set_capabilities(call.params.get("capabilities"));
        self.notifier.add_session(&session.state);
        Answer {
            body: result_bytes(&call.id, &result),
            error: None,
        }
    }

    /// Answers one request (never `initialize`: see [`Engine::initialize`]).
    #[allow(deprecated)] // logging/setLevel
    pub(crate) async fn request(&self, x: Exchange, mut call: Call) -> Reply {
        let cx = self.request_cx(&x, &call);
        let stateless = x.stateless();
        let _tracked = x
            .session
            .as_ref()
            .map(|s| s.track(call.id.get(), cx.cancel.clone()));
        let result = match call.method.as_str() {
            "ping" if !stateless => Ok(ServerResult::empty(())),
            "server/discover" => {
                let versions = std::iter::once(PER_REQUEST)
                    .chain(WITH_INITIALIZE)
                    .filter_map(|v| serde_json::from_value(json!(v)).ok())
                    .collect();
                Ok(ServerResult::DiscoverResult(
                    DiscoverResult::from_server_info(versions, Self::info()),
                ))
            }
            "tools/list" => {
                return Reply::Answer(self.list(List::Tools, &call, &cx.caller, stateless));
            }
            "prompts/list" => {
                return Reply::Answer(self.list(List::Prompts, &call, &cx.caller, stateless));
            }
            "resources/list" => {
                return Reply::Answer(self.list(List::Resources, &call, &cx.caller, stateless));
            }
            "resources/templates/list" => {
                return Reply::Answer(self.list(List::Templates, &call, &cx.caller, stateless));
            }
            "tools/call" => self.call_tool(&x, &cx, &mut call).await,
            "resources/read" => self.read_resource(&x, &cx, &mut call).await,
            "prompts/get" => self.get_prompt(&x, &cx, &mut call).await,
            "completion/complete" => Ok(ServerResult::CompleteResult(CompleteResult::default())),
            "logging/setLevel" if !stateless => {
                let level: Option<LoggingLevel> = call
                    .params
                    .get("level")
                    .and_then(|l| serde_json::from_value(l.clone()).ok());
                if let (Some(s), Some(level)) = (&x.session, level) {
                    s.state.set_log_level(level);
                }
                Ok(ServerResult::empty(()))
            }
            "resources/subscribe" if !stateless => {
                // A hidden URI is accepted like an unknown one, and never notified.
                let uri = call.str_param("uri");
                if uri.len() > MAX_URI_BYTES {
                    Err(too_long_uri())
                } else {
                    match &x.session {
                        Some(s) if self.dispatcher.visibility().sees_uri(&cx.caller, uri) => {
                            if s.state.subscribe(uri) {
                                Ok(ServerResult::empty(()))
                            } else {
                                Err(too_many_subscriptions())
                            }
                        }
                        _ => Ok(ServerResult::empty(())),
                    }
                }
            }
            "resources/unsubscribe" if !stateless => {
                if let Some(s) = &x.session {
                    s.state.unsubscribe(call.str_param("uri"));
                }
                Ok(ServerResult::empty(()))
            }
            "subscriptions/listen" if stateless => return self.listen(&call, cx.caller),
            other => Err(method_not_found(other)),
        };
        Reply::Answer(match result {
            Ok(mut r) => {
                for_revision(&mut r, stateless);
                Answer {
                    body: result_bytes(&call.id, &r),
                    error: None,
                }
            }
            Err(mut e) => {
                // 2026-07-28 has no resource-not-found code of its own.
                if stateless && e.code == ErrorCode::RESOURCE_NOT_FOUND {
                    e.code = ErrorCode::INVALID_PARAMS;
                }
                error_answer(Some(&call.id), &e)
            }
        })
    }

    /// A notification from the client.
    pub(crate) fn notification(
        &self,
        session: Option<&Arc<Session>>,
        method: &str,
        params: Option<&RawValue>,
    ) {
        match (method, session) {
            ("notifications/cancelled", Some(s)) => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Cancelled<'a> {
                    #[serde(borrow)]
                    request_id: &'a RawValue,
                }
                if let Some(c) =
                    params.and_then(|p| serde_json::from_str::<Cancelled>(p.get()).ok())
                {
                    s.cancel(c.request_id.get());
                }
            }
            _ => tracing::trace!(method, "notification"),
        }
    }

    fn request_cx(&self, x: &Exchange, call: &Call) -> RequestCx {
        let traceparent = x
            .traceparent
            .clone()
            .or_else(|| call.meta.as_ref()?.traceparent.clone())
            .filter(|t| mcp_gateway_proto::trace::valid_traceparent(t).is_some());
        let caller = caller_of(&x.identity, x.session.as_deref());
        if let Some(s) = &x.session {
            s.state.set_caller(&caller);
        }
        RequestCx {
            correlation_id: x.correlation_id.clone(),
            traceparent,
            caller,
            cancel: x.cancel.clone(),
        }
    }

    /// One page of a list, from the cache of serialized pages.
    fn list(&self, list: List, call: &Call, caller: &pb::Caller, stateless: bool) -> Answer {
        let cursor = call.params.get("cursor").and_then(Value::as_str);
        let offset = match lists::decode_cursor(cursor) {
            Ok(o) => o,
            Err(e) => return error_answer(Some(&call.id), &e),
        };
        let cat: Arc<Catalog> = Arc::clone(&self.dispatcher.catalog());
        let policy = self.dispatcher.visibility().policy();
        let size = self.lists.page_size();
        let result = self
            .lists
            .get(&cat, policy, caller, list, stateless, offset, || {
                // One page of `items` as the list result type `$result`.
                macro_rules! page {
                    ($items:expr, $result:ident) => {{
                        let (items, next) = lists::page(&$items, offset, size);
                        let mut l = $result::with_all_items(items);
                        l.next_cursor = next;
                        ServerResult::$result(l)
                    }};
                }
                let mut r = match list {
                    List::Tools => page!(self.tools(&cat, caller), ListToolsResult),
                    List::Prompts => page!(self.prompts(&cat, caller), ListPromptsResult),
                    List::Resources => page!(self.resources(&cat, caller), ListResourcesResult),
                    List::Templates => {
                        page!(self.templates(&cat, caller), ListResourceTemplatesResult)
                    }
                };
                for_revision(&mut r, stateless);
                Bytes::from(serde_json::to_vec(&r).expect("a list serializes"))
            });
        Answer {
            body: raw_result(&call.id, &result),
            error: None,
        }
    }

    fn tools(&self, cat: &Catalog, caller: &pb::Caller) -> Vec<Tool> {
        self.visible_named(
            &cat.tools_list,
            Kind::Tool,
            caller,
            |t| &t.name,
            |n| cat.tool(n).ok().map(|e| e.upstream.name()),
        )
    }

    fn prompts(&self, cat: &Catalog, caller: &pb::Caller) -> Vec<Prompt> {
        self.visible_named(
            &cat.prompts_list,
            Kind::Prompt,
            caller,
            |p| &p.name,
            |n| cat.prompt(n).ok().map(|e| e.upstream.name()),
        )
    }

    /// The named items of a list that `caller` may see, by their provider.
    fn visible_named<'c, T: Clone>(
        &self,
        items: &'c [T],
        kind: Kind,
        caller: &pb::Caller,
        name: impl Fn(&T) -> &str,
        provider: impl Fn(&str) -> Option<&'c str>,
    ) -> Vec<T> {
        let v = self.dispatcher.visibility();
        items
            .iter()
            .filter(|item| {
                let n = name(item);
                provider(n).is_some_and(|p| v.visible(caller, kind, p, n))
            })
            .cloned()
            .collect()
    }

    fn resources(&self, cat: &Catalog, caller: &pb::Caller) -> Vec<Resource> {
        let v = self.dispatcher.visibility();
        let mut items: Vec<Resource> = cat
            .resources_list
            .iter()
            .filter(|r| v.sees_uri(caller, &r.uri))
            .cloned()
            .collect();
        items.push(
            Resource::new(RECENT_URI, "recent-events")
                .with_description(
                    "The gateway's most recent events (CloudEvents, JSON), newest last.",
                )
                .with_mime_type("application/json"),
        );
        items
    }

    fn templates(&self, cat: &Catalog, caller: &pb::Caller) -> Vec<ResourceTemplate> {
        let v = self.dispatcher.visibility();
        cat.templates_list
            .iter()
            .filter(|t| v.sees_uri(caller, &t.uri_template))
            .cloned()
            .collect()
    }

    async fn call_tool(
        &self,
        x: &Exchange,
        cx: &RequestCx,
        call: &mut Call,
    ) -> Result<ServerResult, ErrorData> {
        let arguments = take_object(call, "arguments");
        let capabilities = take_capabilities(call);
        let meta = call.meta.take();
        // The gateway owns progress and log delivery: to this request's
        // stream only.
        let relay = || Relay {
            progress: meta
                .as_ref()
                .and_then(|m| m.progress_token.clone())
                .and_then(|token| progress_reporter(token, x.early.clone()?)),
            log: log_rank(x, meta.as_ref())
                .and_then(|min| Some(log_reporter(min, x.early.clone()?))),
        };
        let again = may_ask(x.session.as_deref(), "tools/call");
        let mut arguments = Reuse::new(arguments, again);
        let mut for_provider = Reuse::new(
            meta.as_ref().map(|m| m.for_provider()).unwrap_or_default(),
            again,
        );
        let name = take_string(call, "name");
        let provider = || {
            self.dispatcher
                .catalog()
                .tool(&name)
                .map(|e| e.upstream.name().to_string())
                .unwrap_or_default()
        };
        let d = &self.dispatcher;
        let name = name.as_str();
        let attempt = |round: Round| {
            let (args, meta) = (arguments.next(), for_provider.next());
            let relay = relay();
            async move { d.call_tool(cx, name, args, meta, relay, round).await }
        };
        let r = self
            .input
            .run(
                x,
                cx,
                call,
                capabilities,
                ("tools/call", name),
                provider,
                attempt,
            )
            .await;
        answered(r, cx, |r| ServerResult::from(CallToolResponse::from(r)))
    }

    async fn read_resource(
        &self,
        x: &Exchange,
        cx: &RequestCx,
        call: &mut Call,
    ) -> Result<ServerResult, ErrorData> {
        let uri = take_string(call, "uri");
        if uri == RECENT_URI {
            return Ok(ServerResult::ReadResourceResult(self.recent(&cx.caller)));
        }
        let provider = || {
            self.dispatcher
                .catalog()
                .route(&uri)
                .map(|r| r.upstream.name().to_string())
                .unwrap_or_default()
        };
        let d = &self.dispatcher;
        let uri_ref = uri.as_str();
        let attempt = |round: Round| async move { d.read_resource(cx, uri_ref, round).await };
        let capabilities = take_capabilities(call);
        let r = self
            .input
            .run(
                x,
                cx,
                call,
                capabilities,
                ("resources/read", uri_ref),
                provider,
                attempt,
            )
            .await;
        answered(r, cx, |r| ServerResult::from(ReadResourceResponse::from(r)))
    }

    /// `events://recent`: only events of providers this caller may see, and
    /// no update of a resource hidden from it.
    fn recent(&self, caller: &pb::Caller) -> ReadResourceResult {
        let v = self.dispatcher.visibility();
        let mut recent: Vec<Value> =
            serde_json::from_str(&self.events.recent_json()).unwrap_or_default();
        recent.retain(|r| {
            let provider = r["provider"].as_str();
            let updated = (r["type"] == crate::events::RESOURCE_UPDATED)
                .then(|| r["subject"].as_str())
                .flatten();
            provider.is_none_or(|p| v.sees_provider(caller, p))
                && updated.is_none_or(|uri| v.sees_uri(caller, uri))
        });
        let json = serde_json::to_string(&recent).unwrap_or_else(|_| "[]".into());
        ReadResourceResult::new(vec![
            ResourceContents::text(json, RECENT_URI).with_mime_type("application/json"),
        ])
    }

    async fn get_prompt(
        &self,
        x: &Exchange,
        cx: &RequestCx,
        call: &mut Call,
    ) -> Result<ServerResult, ErrorData> {
        let again = may_ask(x.session.as_deref(), "prompts/get");
        let mut arguments = Reuse::new(take_object(call, "arguments"), again);
        let name = take_string(call, "name");
        let provider = || {
            self.dispatcher
                .catalog()
                .prompt(&name)
                .map(|e| e.upstream.name().to_string())
                .unwrap_or_default()
        };
        let d = &self.dispatcher;
        let name = name.as_str();
        let attempt = |round: Round| {
            let args = arguments.next();
            async move { d.get_prompt(cx, name, args, round).await }
        };
        let capabilities = take_capabilities(call);
        let r = self
            .input
            .run(
                x,
                cx,
                call,
                capabilities,
                ("prompts/get", name),
                provider,
                attempt,
            )
            .await;
        answered(r, cx, |r| ServerResult::from(GetPromptResponse::from(r)))
    }

    /// 2026-07-28 `subscriptions/listen`: list changes, and updates of the
    /// resources the filter names (hidden ones are accepted, never sent).
    fn listen(&self, call: &Call, caller: pb::Caller) -> Reply {
        let asked = call.params.get("notifications");
        let flag = |k: &str| asked.and_then(|a| a.get(k)).and_then(Value::as_bool) == Some(true);
        let uris: Vec<String> = asked
            .and_then(|a| a.get("resourceSubscriptions"))
            .and_then(Value::as_array)
            .map(|u| {
                u.iter()
                    .filter_map(|u| u.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let filter = Filter {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris,
        };
        let mut accepted = Map::new();
        for (on, key) in [
            (filter.tools, "toolsListChanged"),
            (filter.prompts, "promptsListChanged"),
            (filter.resources, "resourcesListChanged"),
        ] {
            if on {
                accepted.insert(key.into(), Value::Bool(true));
            }
        }
        if !filter.uris.is_empty() {
            accepted.insert("resourceSubscriptions".into(), json!(filter.uris));
        }
        let id: Value = serde_json::from_str(call.id.get()).unwrap_or(Value::Null);
        let first = notification(
            "notifications/subscriptions/acknowledged",
            json!({
                "notifications": accepted,
                "_meta": {"io.modelcontextprotocol/subscriptionId": id},
            }),
        );
        let (tx, rx) = mpsc::channel(64);
        let key = match self
            .notifier
            .add_listener(filter, caller, call.id.clone(), tx)
        {
            Ok(key) => key,
            Err(refused) => {
                tracing::warn!(reason = %refused, "listen stream refused");
                let e = ErrorData::new(ErrorCode(-32000), refused, None);
                return Reply::Answer(error_answer(Some(&call.id), &e));
            }
        };
        Reply::Listen(Listen {
            first,
            rx,
            registration: Registration {
                notifier: self.notifier.clone(),
                key,
            },
        })
    }
}

fn too_many_subscriptions() -> ErrorData {
    ErrorData::invalid_params(
        format!(
            "invalid params: at most {MAX_SUBSCRIPTIONS} resource subscriptions per session or stream"
        ),
        None,
    )
}

fn too_long_uri() -> ErrorData {
    ErrorData::invalid_params(
        format!("invalid params: a resource URI is at most {MAX_URI_BYTES} bytes"),
        None,
    )
}

/// The result a request ends with, or its error, as MCP has them.
fn answered<T>(
    r: Result<Outcome<T>, crate::pipeline::error::GatewayError>,
    cx: &RequestCx,
    done: impl FnOnce(T) -> ServerResult,
) -> Result<ServerResult, ErrorData> {
    match r {
        Ok(Outcome::Done(t)) => Ok(done(t)),
        Ok(Outcome::InputRequired(ir)) => Ok(ServerResult::InputRequiredResult(ir)),
        Err(e) => Err(e.to_mcp(&cx.correlation_id)),
    }
}

/// A value for the first round, and a copy for later ones only where there
/// can be any (a plain call pays no copy).
struct Reuse<T> {
    first: Option<T>,
    spare: Option<T>,
}

impl<T: Clone + Default> Reuse<T> {
    fn new(v: T, again: bool) -> Self {
        Self {
            spare: again.then(|| v.clone()),
            first: Some(v),
        }
    }

    fn next(&mut self) -> T {
        self.first
            .take()
            .or_else(|| self.spare.clone())
            .unwrap_or_default()
    }
}

/// Moves a string param out of the request (no copy); `""` if not a string.
fn take_string(call: &mut Call, key: &str) -> String {
    match call.params.remove(key) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Moves an object param out of the request (no copy).
fn take_object(call: &mut Call, key: &str) -> Option<Map<String, Value>> {
    match call.params.remove(key) {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The caller as providers and the policy see it.
fn caller_of(id: &Identity, session: Option<&Session>) -> pb::Caller {
    pb::Caller {
        principal: id.principal.clone(),
        roles: id.roles.clone(),
        agent: id.agent.clone(),
        session_id: session.map(|s| s.reference.clone()).unwrap_or_default(),
    }
}

/// The least severe log message this request's client wants, as a rank:
/// the request's `logLevel` (2026-07-28), or its session's
/// `logging/setLevel` (2025-11-25). `None`: it wants none.
pub(crate) fn log_rank<R: std::borrow::Borrow<RawValue>>(
    x: &Exchange,
    meta: Option<&Meta<R>>,
) -> Option<u8> {
    match &x.session {
        Some(s) => s.state.log_rank(),
        None => meta
            .and_then(|m| m.log_level.as_deref())
            .and_then(crate::pipeline::convert::log_level)
            .map(|l| l as u8),
    }
}

/// Sends a provider's log messages as `notifications/message` ahead of the
/// answer, those at `min` or above.
fn log_reporter(min: u8, early: mpsc::Sender<Bytes>) -> LogFn {
    Box::new(move |level, logger, data| {
        let early = early.clone();
        Box::pin(async move {
            if (level as u8) < min {
                return false;
            }
            let mut p = json!({"level": level, "data": data});
            if !logger.is_empty() {
                p["logger"] = json!(logger);
            }
            let sent = early
                .send(notification("notifications/message", p))
                .await
                .is_ok();
            if !sent {
                tracing::debug!("log notification not delivered");
            }
            sent
        })
    })
}

/// Sends `notifications/progress` for `token` ahead of the answer.
fn progress_reporter(token: Value, early: mpsc::Sender<Bytes>) -> Option<ProgressFn> {
    if !(token.is_string() || token.is_i64() || token.is_u64()) {
        return None;
    }
    Some(Box::new(move |progress, total, message| {
        let mut p = json!({"progressToken": token, "progress": progress});
        if let Some(total) = total {
            p["total"] = json!(total);
        }
        if !message.is_empty() {
            p["message"] = json!(message);
        }
        let early = early.clone();
        Box::pin(async move {
            if early
                .send(notification("notifications/progress", p))
                .await
                .is_err()
            {
                tracing::debug!("progress notification not delivered");
            }
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_agrees_on_a_revision_with_a_handshake() {
        assert_eq!(Engine::negotiate("2025-06-18"), "2025-06-18");
        assert_eq!(Engine::negotiate("2026-07-28"), "2025-11-25");
        assert_eq!(Engine::negotiate("1999-01-01"), "2025-11-25");
    }

    #[test]
    fn answers_echo_the_id_verbatim() {
        let id = RawValue::from_string("\"a-1\"".into()).unwrap();
        let ok = result_bytes(&id, &json!({}));
        assert_eq!(&ok[..], br#"{"jsonrpc":"2.0","id":"a-1","result":{}}"#);
        let e = error_answer(Some(&id), &method_not_found("x/y"));
        let v: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["error"]["code"], -32601);
        assert_eq!(v["id"], "a-1");
        assert_eq!(e.error, Some(ErrorCode::METHOD_NOT_FOUND));
    }

    #[test]
    fn missing_meta_names_the_keys() {
        let call = |params: Value| {
            let text = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params})
                .to_string();
            match crate::front::jsonrpc::decode(text.as_bytes(), false).unwrap() {
                crate::front::jsonrpc::Message::Request(r) => Call::new(r),
                _ => unreachable!(),
            }
        };
        assert_eq!(
            call(json!({})).missing_meta(),
            vec![META_VERSION, META_CAPABILITIES]
        );
        let full = call(json!({"_meta": {META_VERSION: "2026-07-28", META_CAPABILITIES: {}}}));
        assert!(full.missing_meta().is_empty());
        assert_eq!(full.meta_version(), Some("2026-07-28"));
    }
}
