//! Who sees what: every name resolution and list filter of the pipeline
//! asks the policy here, so a hidden item is unknown everywhere (lists,
//! calls, short names, resources by either of their names, URIs inside
//! results, events).

use std::sync::Arc;

use arc_swap::ArcSwap;
use mcp_gateway_proto::provider as pb;
use rmcp::model::{CallToolResult, ContentBlock};

use crate::{
    pipeline::catalog::Catalog,
    pipeline::error::GatewayError,
    pipeline::registry::Registry,
    security::policy::{Kind, Policy},
};

/// The policy in force and the catalog it is applied to. One value, shared
/// by the dispatcher (calls, lists) and the notifier (events).
pub struct Visibility {
    /// Swapped whole on reload: a request sees one policy throughout.
    policy: ArcSwap<Policy>,
    registry: Arc<Registry>,
}

impl Visibility {
    pub fn new(registry: Arc<Registry>, policy: Arc<Policy>) -> Self {
        Self {
            policy: ArcSwap::new(policy),
            registry,
        }
    }

    /// Replaces the authorization policy (config reload).
    pub fn set_policy(&self, policy: Arc<Policy>) {
        self.policy.store(policy);
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    fn catalog(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.registry.catalog()
    }

    /// Whether `caller` may see and use an item; lists filter with this.
    pub fn visible(&self, caller: &pb::Caller, kind: Kind, provider: &str, name: &str) -> bool {
        self.policy.load().allows(caller, kind, provider, name)
    }

    /// Whether `caller` may see resource (or template) `uri` of `provider`,
    /// given as clients see it: policy rules match it and the provider's own
    /// URI alike.
    pub fn visible_resource(&self, caller: &pb::Caller, provider: &str, uri: &str) -> bool {
        let cat = self.catalog();
        let own = crate::security::policy::lower_scheme(cat.provider_uri(provider, uri));
        let exposed = crate::security::policy::lower_scheme(uri);
        self.policy
            .load()
            .allows_any_name(caller, Kind::Resource, provider, &[&exposed, &own])
    }

    /// Whether `caller` may see resource `uri`; URIs no provider owns
    /// (`events://recent`, made-up ones) reveal nothing and pass.
    pub fn sees_uri(&self, caller: &pb::Caller, uri: &str) -> bool {
        match self.catalog().route(uri) {
            Ok(r) => self.visible_resource(caller, r.upstream.name(), uri),
            Err(_) => true,
        }
    }

    /// A result's resource links and embedded resources that `caller` may
    /// not see are left out: a hidden URI is unknown everywhere.
    pub(crate) fn shows(&self, caller: &pb::Caller, block: &ContentBlock) -> bool {
        match block {
            ContentBlock::ResourceLink(r) => self.sees_uri(caller, &r.uri),
            ContentBlock::Resource(e) => self.sees_contents(caller, &e.resource),
            _ => true,
        }
    }

    pub(crate) fn sees_contents(
        &self,
        caller: &pb::Caller,
        c: &rmcp::model::ResourceContents,
    ) -> bool {
        use rmcp::model::ResourceContents as C;
        match c {
            C::TextResourceContents { uri, .. } | C::BlobResourceContents { uri, .. } => {
                self.sees_uri(caller, uri)
            }
            // A kind rmcp may add later carries no URI we know of.
            _ => true,
        }
    }

    pub(crate) fn without_hidden(
        &self,
        caller: &pb::Caller,
        mut r: CallToolResult,
    ) -> CallToolResult {
        if !self.policy.load().is_open() {
            r.content.retain(|b| self.shows(caller, b));
        }
        r
    }

    /// Whether `caller` may see anything of `provider` (then its events too).
    pub fn sees_provider(&self, caller: &pb::Caller, provider: &str) -> bool {
        if self.policy.load().is_open() {
            return true;
        }
        let cat = self.catalog();
        let tools = cat.tools_list.iter().any(|t| {
            cat.tool(&t.name).is_ok_and(|e| {
                e.upstream.name() == provider && self.visible(caller, Kind::Tool, provider, &t.name)
            })
        });
        let prompts = || {
            cat.prompts_list.iter().any(|p| {
                cat.prompt(&p.name).is_ok_and(|e| {
                    e.upstream.name() == provider
                        && self.visible(caller, Kind::Prompt, provider, &p.name)
                })
            })
        };
        let uris = cat
            .resources_list
            .iter()
            .map(|r| r.uri.as_str())
            .chain(cat.templates_list.iter().map(|t| t.uri_template.as_str()))
            .collect::<Vec<_>>();
        let resources = || {
            uris.iter().any(|u| {
                cat.route(u).is_ok_and(|r| {
                    r.upstream.name() == provider && self.visible_resource(caller, provider, u)
                })
            })
        };
        tools || prompts() || resources()
    }

    /// Resolves a tool name as `caller` may see it: a hidden tool answers
    /// exactly like an unknown one, ambiguity lists only visible tools,
    /// and a hidden tool of a down provider is not reported unavailable.
    pub(crate) fn visible_tool(
        &self,
        caller: &pb::Caller,
        name: &str,
    ) -> Result<Arc<crate::pipeline::catalog::ToolEntry>, GatewayError> {
        let cat = self.catalog();
        self.resolve_visible(
            caller,
            Kind::Tool,
            name,
            |n| cat.tool(n),
            |e| (e.upstream.name(), &e.tool.name),
            || GatewayError::UnknownTool(name.to_string()),
            |name, candidates| GatewayError::AmbiguousTool { name, candidates },
        )
    }

    /// Like [`Self::visible_tool`], for prompts.
    pub(crate) fn visible_prompt(
        &self,
        caller: &pb::Caller,
        name: &str,
    ) -> Result<Arc<crate::pipeline::catalog::PromptEntry>, GatewayError> {
        let cat = self.catalog();
        self.resolve_visible(
            caller,
            Kind::Prompt,
            name,
            |n| cat.prompt(n),
            |e| (e.upstream.name(), &e.exposed),
            || GatewayError::UnknownPrompt(name.to_string()),
            |name, candidates| GatewayError::AmbiguousPrompt { name, candidates },
        )
    }

    /// Name resolution as the caller may see it: a hidden item answers
    /// exactly like an unknown one, short names count only visible
    /// candidates, and a down provider's tombstone shows only to callers
    /// allowed to see that provider.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn resolve_visible<'c, E: 'c>(
        &self,
        caller: &pb::Caller,
        kind: Kind,
        name: &str,
        lookup: impl Fn(&str) -> Result<&'c Arc<E>, GatewayError>,
        owner: impl Fn(&E) -> (&str, &str),
        unknown: impl Fn() -> GatewayError,
        ambiguous: impl Fn(String, Vec<String>) -> GatewayError,
    ) -> Result<Arc<E>, GatewayError> {
        let ok = |e: &E| {
            let (provider, exposed) = owner(e);
            self.visible(caller, kind, provider, exposed)
        };
        match lookup(name) {
            Ok(e) if ok(e) => Ok(e.clone()),
            Ok(_) => Err(unknown()),
            Err(
                GatewayError::AmbiguousTool { name, candidates }
                | GatewayError::AmbiguousPrompt { name, candidates },
            ) => {
                let seen: Vec<String> = candidates
                    .into_iter()
                    .filter(|c| lookup(c).is_ok_and(|e| ok(e)))
                    .collect();
                match seen.as_slice() {
                    [] => Err(unknown()),
                    [one] => Ok(lookup(one)?.clone()),
                    _ => Err(ambiguous(name, seen)),
                }
            }
            Err(e @ GatewayError::Provider { .. }) => match &e {
                GatewayError::Provider { provider, .. }
                    if self.visible(caller, kind, provider, name) =>
                {
                    Err(e)
                }
                _ => Err(unknown()),
            },
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    type Entry = Arc<(&'static str, &'static str)>;
    type Entries = HashMap<&'static str, Entry>;

    /// A catalog of `(provider, exposed name)` entries, `p.secret` denied.
    fn setup() -> (Visibility, Entries) {
        let config = crate::config::Config::parse(
            "providers: []\npolicy:\n  rules:\n    - tools: [\"p.secret\"]\n      effect: deny\n",
        )
        .unwrap();
        let registry = crate::pipeline::registry::Registry::new(&config).unwrap();
        let policy = Arc::new(Policy::new(&config.policy));
        let entries = [("p.open", ("p", "p.open")), ("p.secret", ("p", "p.secret"))]
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        (Visibility::new(registry, policy), entries)
    }

    fn resolve(v: &Visibility, entries: &Entries, name: &str) -> Result<Entry, GatewayError> {
        let caller = pb::Caller::default();
        let lookup = |n: &str| {
            entries.get(n).ok_or_else(|| {
                // A short name both entries would match.
                if n == "secret-or-open" {
                    GatewayError::AmbiguousTool {
                        name: n.to_string(),
                        candidates: vec!["p.open".into(), "p.secret".into()],
                    }
                } else {
                    GatewayError::UnknownTool(n.to_string())
                }
            })
        };
        v.resolve_visible(
            &caller,
            Kind::Tool,
            name,
            lookup,
            |e| (e.0, e.1),
            || GatewayError::UnknownTool(name.to_string()),
            |name, candidates| GatewayError::AmbiguousTool { name, candidates },
        )
    }

    #[test]
    fn a_hidden_item_answers_exactly_like_an_unknown_one() {
        let (v, entries) = setup();
        assert_eq!(resolve(&v, &entries, "p.open").unwrap().1, "p.open");
        let hidden = resolve(&v, &entries, "p.secret").unwrap_err().to_string();
        let unknown = resolve(&v, &entries, "p.nope").unwrap_err().to_string();
        assert_eq!(hidden, "unknown tool 'p.secret'");
        assert_eq!(unknown, "unknown tool 'p.nope'");
        // Ambiguity counts only what the caller may see: one candidate is left.
        assert_eq!(resolve(&v, &entries, "secret-or-open").unwrap().1, "p.open");
    }

    #[test]
    fn uris_no_provider_owns_reveal_nothing() {
        let (v, _) = setup();
        assert!(v.sees_uri(&pb::Caller::default(), "events://recent"));
    }
}
