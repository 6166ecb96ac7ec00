//! The merged view of every live provider's items, under exposed names.
//!
//! A `Catalog` is immutable. The registry builds a new one whenever a provider
//! appears, changes or disappears and publishes it with `arc-swap`, so a call
//! looks names up in a snapshot without taking a lock (the crate is the
//! well-kept standard for read-mostly hot-swapped state).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use mcp_gateway_proto::provider as pb;
use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};

use crate::{
    config::Naming,
    pipeline::convert,
    pipeline::error::GatewayError,
    pipeline::naming::{UriMap, exposed_name, scheme_of},
    pipeline::schema::Schema,
    southbound::Upstream,
};

/// One provider's items at one revision, with schemas compiled. Kept by the
/// registry so an unchanged provider is not recompiled when another changes.
#[derive(Debug, Default)]
pub struct ProviderItems {
    pub revision: String,
    pub tools: Vec<CompiledTool>,
    pub resources: Vec<pb::Resource>,
    pub templates: Vec<pb::ResourceTemplate>,
    pub prompts: Vec<pb::Prompt>,
}

#[derive(Debug)]
pub struct CompiledTool {
    pub def: pb::Tool,
    pub input: Arc<Schema>,
    pub output: Option<Arc<Schema>>,
}

impl ProviderItems {
    /// Compiles a ListCapabilities answer. Items that are unusable (bad
    /// schema, no URI scheme) are left out and reported, not fatal.
    pub fn compile(resp: pb::ListCapabilitiesResponse) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut tools = Vec::with_capacity(resp.tools.len());
        for def in resp.tools {
            match compile_tool(&def) {
                Ok((input, output)) => tools.push(CompiledTool {
                    def,
                    input: Arc::new(input),
                    output: output.map(Arc::new),
                }),
                Err(e) => warnings.push(format!("tool '{}' left out: {e}", def.name)),
            }
        }
        let mut keep_uri = |what: &str, uri: &str| {
            let ok = scheme_of(uri).is_some();
            if !ok {
                warnings.push(format!("{what} '{uri}' left out: it has no URI scheme"));
            }
            ok
        };
        let resources = resp
            .resources
            .into_iter()
            .filter(|r| keep_uri("resource", &r.uri))
            .collect();
        let templates = resp
            .resource_templates
            .into_iter()
            .filter(|t| keep_uri("resource template", &t.uri_template))
            .collect();
        (
            Self {
                revision: resp.revision,
                tools,
                resources,
                templates,
                prompts: resp.prompts,
            },
            warnings,
        )
    }

    fn schemes(&self) -> HashSet<String> {
        let uris = self.resources.iter().map(|r| r.uri.as_str());
        let templates = self.templates.iter().map(|t| t.uri_template.as_str());
        uris.chain(templates).filter_map(scheme_of).collect()
    }
}

fn cache_for(up: &Upstream, def: &pb::Tool) -> Option<Arc<crate::southbound::cache::ResultCache>> {
    let listed = up.config.cache.as_ref()?.tools.contains(&def.name);
    let read_only = def.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true);
    if listed && !read_only {
        tracing::warn!(provider = up.name(), tool = %def.name, "not caching a tool that is not annotated read-only");
    }
    (listed && read_only).then(|| up.cache.clone()).flatten()
}

fn compile_tool(def: &pb::Tool) -> Result<(Schema, Option<Schema>), String> {
    let (_, input, output) = convert::tool(&def.name, def)?;
    let input = Schema::compile(&input).map_err(|e| format!("input_schema: {e}"))?;
    let output = output
        .map(|o| Schema::compile(&o).map_err(|e| format!("output_schema: {e}")))
        .transpose()?;
    Ok((input, output))
}

pub struct ToolEntry {
    pub upstream: Arc<Upstream>,
    /// The provider's own name, sent in `Invoke`.
    pub name: String,
    pub tool: Tool,
    pub input: Arc<Schema>,
    pub output: Option<Arc<Schema>>,
    pub uris: Arc<UriMap>,
    /// Set only for read-only tools the provider's config opts in.
    pub cache: Option<Arc<crate::southbound::cache::ResultCache>>,
    /// The input schema names SEP-2243 `x-mcp-header` parameters, which
    /// the HTTP front door checks against `Mcp-Param-*` headers.
    pub param_headers: bool,
    /// Its request metrics (observation).
    pub(crate) series: crate::observe::telemetry::ToolSeries,
}

/// Whether `key` is a key anywhere in `object`.
fn names_key(object: &serde_json::Map<String, serde_json::Value>, key: &str) -> bool {
    fn walk(v: &serde_json::Value, key: &str) -> bool {
        match v {
            serde_json::Value::Object(o) => names_key(o, key),
            serde_json::Value::Array(a) => a.iter().any(|v| walk(v, key)),
            _ => false,
        }
    }
    object.contains_key(key) || object.values().any(|v| walk(v, key))
}

pub struct PromptEntry {
    pub upstream: Arc<Upstream>,
    pub exposed: Arc<str>,
    pub name: String,
    pub uris: Arc<UriMap>,
}

pub struct Route {
    pub upstream: Arc<Upstream>,
    pub uris: Arc<UriMap>,
}

/// What changed in the MCP lists in one catalog rebuild, item by item: a
/// client is told a list changed only when an item it may see did (a
/// hidden item is unknown, its changes too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListChanges {
    pub tools: Vec<Changed>,
    pub prompts: Vec<Changed>,
    /// Resources and resource templates (one MCP notification).
    pub resources: Vec<Changed>,
    /// Everything may have changed for everyone (a new policy, a missed
    /// change): every list, every client.
    pub all: bool,
}

/// An item added, removed or changed: its provider and its exposed name
/// (a tool or prompt name, a resource URI or a URI template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub provider: String,
    pub name: String,
}

impl ListChanges {
    pub fn any(&self) -> bool {
        self.all || !self.tools.is_empty() || !self.prompts.is_empty() || !self.resources.is_empty()
    }

    pub fn everything() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }
}

/// The items of `new` that are not in `old` as they are, and those of `old`
/// that `new` lacks, each with its provider in the catalog it is in.
fn changed<'a, T: PartialEq>(
    old: (&'a [T], &'a Catalog),
    new: (&'a [T], &'a Catalog),
    key: impl Fn(&T) -> &str,
    provider: impl Fn(&Catalog, &str) -> Option<String>,
) -> Vec<Changed> {
    if old.0 == new.0 {
        return Vec::new(); // most rebuilds (a refresh that found nothing new)
    }
    let index =
        |items: &'a [T]| -> HashMap<&'a str, &'a T> { items.iter().map(|t| (key(t), t)).collect() };
    let (before, after) = (index(old.0), index(new.0));
    let mut out = Vec::new();
    let mut push = |cat: &Catalog, name: &str| {
        // No provider known: the policy decides on the name alone.
        out.push(Changed {
            provider: provider(cat, name).unwrap_or_default(),
            name: name.to_string(),
        });
    };
    for (name, item) in &after {
        if before.get(name) != Some(item) {
            push(new.1, name);
        }
    }
    for name in before.keys() {
        if !after.contains_key(name) {
            push(old.1, name);
        }
    }
    out
}

#[derive(Default)]
pub struct Catalog {
    tools: HashMap<Arc<str>, Arc<ToolEntry>>,
    /// Provider-own name → exposed names, for unprefixed lookups.
    tool_short: HashMap<String, Vec<Arc<str>>>,
    prompts: HashMap<Arc<str>, Arc<PromptEntry>>,
    prompt_short: HashMap<String, Vec<Arc<str>>>,
    schemes: HashMap<String, Arc<Route>>,
    /// Exposed tool and prompt names of providers that are down, so a call
    /// says "unavailable" rather than "unknown" while they recover.
    tombstones: HashMap<String, String>,
    /// Provider name → its URI rewriting, for events naming provider URIs.
    uri_maps: HashMap<String, Arc<UriMap>>,
    pub tools_list: Arc<Vec<Tool>>,
    pub prompts_list: Arc<Vec<Prompt>>,
    pub resources_list: Arc<Vec<Resource>>,
    pub templates_list: Arc<Vec<ResourceTemplate>>,
}

impl Catalog {
    /// Merges providers in config order; on a name clash the earlier provider
    /// keeps the name and the clash is logged.
    pub fn build(
        providers: &[(Arc<Upstream>, Arc<ProviderItems>)],
        down: &[(Arc<Upstream>, Arc<ProviderItems>)],
        global: &Naming,
    ) -> Self {
        let mut cat = Catalog::default();
        for (up, items) in down {
            let naming = up.config.naming(global);
            let names = items.tools.iter().map(|t| &t.def.name);
            for name in names.chain(items.prompts.iter().map(|p| &p.name)) {
                let exposed = exposed_name(up.name(), &naming, name);
                cat.tombstones.insert(exposed, up.name().to_string());
            }
        }
        let (mut tools_list, mut prompts_list) = (Vec::new(), Vec::new());
        let (mut resources_list, mut templates_list) = (Vec::new(), Vec::new());

        // A scheme used by two or more providers is disambiguated for all of them.
        let mut owners: HashMap<String, usize> = HashMap::new();
        for (_, items) in providers {
            for s in items.schemes() {
                *owners.entry(s).or_default() += 1;
            }
        }

        for (up, items) in providers {
            let provider = up.name();
            let naming = up.config.naming(global);
            let shared = items
                .schemes()
                .into_iter()
                .filter(|s| owners[s] > 1)
                .collect();
            let uris = Arc::new(UriMap::new(provider, shared));
            cat.uri_maps.insert(provider.to_string(), uris.clone());

            for t in &items.tools {
                let exposed: Arc<str> = exposed_name(provider, &naming, &t.def.name).into();
                if cat.tools.contains_key(&exposed) {
                    tracing::warn!(provider, tool = %exposed, "tool name already taken by an earlier provider; left out");
                    continue;
                }
                let Ok((tool, _, _)) = convert::tool(&exposed, &t.def) else {
                    continue; // cannot happen: compile() converted it already
                };
                tools_list.push(tool.clone());
                cat.tool_short
                    .entry(t.def.name.clone())
                    .or_default()
                    .push(exposed.clone());
                cat.tools.insert(
                    exposed,
                    Arc::new(ToolEntry {
                        upstream: up.clone(),
                        name: t.def.name.clone(),
                        input: t.input.clone(),
                        output: t.output.clone(),
                        uris: uris.clone(),
                        cache: cache_for(up, &t.def),
                        param_headers: names_key(&tool.input_schema, "x-mcp-header"),
                        series: Default::default(),
                        tool,
                    }),
                );
            }
            for p in &items.prompts {
                let exposed: Arc<str> = exposed_name(provider, &naming, &p.name).into();
                if cat.prompts.contains_key(&exposed) {
                    tracing::warn!(provider, prompt = %exposed, "prompt name already taken by an earlier provider; left out");
                    continue;
                }
                prompts_list.push(convert::prompt(&exposed, p));
                cat.prompt_short
                    .entry(p.name.clone())
                    .or_default()
                    .push(exposed.clone());
                cat.prompts.insert(
                    exposed.clone(),
                    Arc::new(PromptEntry {
                        upstream: up.clone(),
                        exposed,
                        name: p.name.clone(),
                        uris: uris.clone(),
                    }),
                );
            }
            let route = Arc::new(Route {
                upstream: up.clone(),
                uris: uris.clone(),
            });
            for s in items.schemes() {
                cat.schemes.insert(uris.exposed_scheme(&s), route.clone());
            }
            resources_list.extend(items.resources.iter().map(|r| convert::resource(r, &uris)));
            templates_list.extend(
                items
                    .templates
                    .iter()
                    .map(|t| convert::resource_template(t, &uris)),
            );
        }
        cat.tombstones.retain(|name, _| {
            !cat.tools.contains_key(name.as_str()) && !cat.prompts.contains_key(name.as_str())
        });
        cat.tools_list = Arc::new(tools_list);
        cat.prompts_list = Arc::new(prompts_list);
        cat.resources_list = Arc::new(resources_list);
        cat.templates_list = Arc::new(templates_list);
        cat
    }

    /// Exact exposed name first; else a provider-own name that is unique.
    pub fn tool(&self, name: &str) -> Result<&Arc<ToolEntry>, GatewayError> {
        if let Some(t) = self.tools.get(name) {
            return Ok(t);
        }
        match self.tool_short.get(name).map(Vec::as_slice) {
            Some([only]) => Ok(&self.tools[only]),
            Some(many) => Err(GatewayError::AmbiguousTool {
                name: name.to_string(),
                candidates: many.iter().map(|s| s.to_string()).collect(),
            }),
            None => Err(self
                .unavailable(name)
                .unwrap_or_else(|| GatewayError::UnknownTool(name.to_string()))),
        }
    }

    fn unavailable(&self, name: &str) -> Option<GatewayError> {
        let provider = self.tombstones.get(name)?;
        Some(GatewayError::Provider {
            provider: provider.clone(),
            code: tonic::Code::Unavailable,
            message: format!("provider unavailable; '{name}' returns when '{provider}' recovers"),
        })
    }

    pub fn prompt(&self, name: &str) -> Result<&Arc<PromptEntry>, GatewayError> {
        if let Some(p) = self.prompts.get(name) {
            return Ok(p);
        }
        match self.prompt_short.get(name).map(Vec::as_slice) {
            Some([only]) => Ok(&self.prompts[only]),
            Some(many) => Err(GatewayError::AmbiguousPrompt {
                name: name.to_string(),
                candidates: many.iter().map(|s| s.to_string()).collect(),
            }),
            None => Err(self
                .unavailable(name)
                .unwrap_or_else(|| GatewayError::UnknownPrompt(name.to_string()))),
        }
    }

    /// The provider that owns a client-side URI, by its scheme.
    pub fn route(&self, uri: &str) -> Result<&Arc<Route>, GatewayError> {
        scheme_of(uri)
            .and_then(|s| self.schemes.get(&s))
            .ok_or_else(|| GatewayError::UnknownResource(uri.to_string()))
    }

    /// A provider's own URI as clients see it (unchanged for unknown providers).
    pub fn client_uri(&self, provider: &str, uri: &str) -> String {
        match self.uri_maps.get(provider) {
            Some(m) => m.to_client(uri),
            None => uri.to_string(),
        }
    }

    /// A client-side URI as `provider` itself names it.
    pub fn provider_uri<'u>(&self, provider: &str, uri: &'u str) -> &'u str {
        match self.uri_maps.get(provider) {
            Some(m) => m.to_provider(uri),
            None => uri,
        }
    }

    /// What differs from `old`, item by item, for list_changed notifications.
    pub fn changes_since(&self, old: &Catalog) -> ListChanges {
        let route =
            |cat: &Catalog, uri: &str| cat.route(uri).ok().map(|r| r.upstream.name().to_string());
        let mut resources = changed(
            (&old.resources_list, old),
            (&self.resources_list, self),
            |r| r.uri.as_str(),
            route,
        );
        resources.extend(changed(
            (&old.templates_list, old),
            (&self.templates_list, self),
            |t| t.uri_template.as_str(),
            route,
        ));
        ListChanges {
            tools: changed(
                (&old.tools_list, old),
                (&self.tools_list, self),
                |t| &t.name,
                |cat, n| cat.tools.get(n).map(|e| e.upstream.name().to_string()),
            ),
            prompts: changed(
                (&old.prompts_list, old),
                (&self.prompts_list, self),
                |p| &p.name,
                |cat, n| cat.prompts.get(n).map(|e| e.upstream.name().to_string()),
            ),
            resources,
            all: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_the_items_added_removed_or_changed() {
        let none = Catalog::default();
        let provider = |_: &Catalog, n: &str| Some(format!("p-{n}"));
        let names = |c: Vec<Changed>| {
            let mut v: Vec<String> = c
                .into_iter()
                .map(|c| format!("{}/{}", c.provider, c.name))
                .collect();
            v.sort();
            v
        };
        let old = [("a", 1), ("b", 1), ("c", 1)];
        let new = [("c", 1), ("a", 2), ("d", 1)];
        let c = changed((&old, &none), (&new, &none), |t| t.0, provider);
        // a changed, b removed, d added; c only moved.
        assert_eq!(names(c), ["p-a/a", "p-b/b", "p-d/d"]);
        let same = changed((&old, &none), (&old, &none), |t| t.0, provider);
        assert!(same.is_empty());
        assert!(!ListChanges::default().any());
        assert!(ListChanges::everything().any());
    }
}
