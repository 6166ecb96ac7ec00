//! Authorization (`policy:` in the config): the one place that decides
//! whether a caller may see and use a tool, prompt or resource. Lists and
//! calls both ask [`Policy::allows`], so a rule is written once and a hidden
//! item is hidden everywhere.
//!
//! Evaluation for one item:
//! 1. a matching `deny` rule whose conditions hold for the caller denies;
//! 2. otherwise, if `allow` rules match the item, one of them must have its
//!    conditions (roles, agents) hold, so an allow rule with `roles_any`
//!    means "this item requires one of these roles";
//! 3. an item no rule matches gets `default` (allow or deny).

use globset::{Glob, GlobSet, GlobSetBuilder};
use mcp_gateway_proto::provider as pb;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tool,
    Prompt,
    /// Resources and resource templates, by URI.
    Resource,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// For items no rule matches.
    pub default: Effect,
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    /// Provider name globs; unset matches every provider.
    pub providers: Option<Vec<String>>,
    /// Exposed-name globs. When none of tools/prompts/resources is set the
    /// rule covers every item of its providers; when some are set, only
    /// the kinds set.
    pub tools: Option<Vec<String>>,
    pub prompts: Option<Vec<String>>,
    /// Globs on resource URIs (and URI templates): the provider's own URI
    /// and the client-side one (`provider+scheme://…`) both match.
    pub resources: Option<Vec<String>>,
    pub effect: Effect,
    /// The caller needs at least one of these roles.
    pub roles_any: Vec<String>,
    /// The caller needs all of these roles.
    pub roles_all: Vec<String>,
    /// The caller's agent must be one of these (agent allowlist).
    pub agents: Vec<String>,
}

struct Rule {
    providers: Option<GlobSet>,
    tools: Option<GlobSet>,
    prompts: Option<GlobSet>,
    resources: Option<GlobSet>,
    effect: Effect,
    roles_any: Vec<String>,
    roles_all: Vec<String>,
    agents: Vec<String>,
}

pub struct Policy {
    default: Effect,
    rules: Vec<Rule>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            default: Effect::Allow,
            rules: Vec::new(),
        }
    }
}

fn globs(list: &Option<Vec<String>>) -> Result<Option<GlobSet>, String> {
    let Some(list) = list else { return Ok(None) };
    let mut b = GlobSetBuilder::new();
    for g in list {
        // `*` must not stop at `/` or `.`: names and URIs are matched whole.
        b.add(Glob::new(g).map_err(|e| format!("{g:?}: {e}"))?);
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

/// `uri` with its scheme in lower case (schemes are case-insensitive, RFC
/// 3986), so that rules written for `secret://` hold for `SECRET://` too.
pub fn lower_scheme(uri: &str) -> std::borrow::Cow<'_, str> {
    match uri.split_once(':') {
        Some((scheme, rest)) if scheme.bytes().any(|b| b.is_ascii_uppercase()) => {
            format!("{}:{rest}", scheme.to_ascii_lowercase()).into()
        }
        _ => uri.into(),
    }
}

impl PolicyConfig {
    pub(crate) fn problems(&self, bad: &mut impl FnMut(String, String)) {
        for (i, r) in self.rules.iter().enumerate() {
            for (f, l) in [
                ("providers", &r.providers),
                ("tools", &r.tools),
                ("prompts", &r.prompts),
                ("resources", &r.resources),
            ] {
                if let Err(e) = globs(l) {
                    bad(format!("policy.rules[{i}].{f}"), format!("bad glob {e}"));
                }
            }
        }
    }
}

impl Policy {
    /// Builds the policy; config validation already checked the globs.
    pub fn new(cfg: &PolicyConfig) -> Self {
        let rules = cfg
            .rules
            .iter()
            .map(|r| Rule {
                providers: globs(&r.providers).ok().flatten(),
                tools: globs(&r.tools).ok().flatten(),
                prompts: globs(&r.prompts).ok().flatten(),
                // Matched against URIs whose scheme is in lower case.
                resources: globs(
                    &r.resources
                        .as_ref()
                        .map(|l| l.iter().map(|g| lower_scheme(g).into_owned()).collect()),
                )
                .ok()
                .flatten(),
                effect: r.effect,
                roles_any: r.roles_any.clone(),
                roles_all: r.roles_all.clone(),
                agents: r.agents.clone(),
            })
            .collect();
        Self {
            default: cfg.default,
            rules,
        }
    }

    /// No rules and default allow: everyone sees everything.
    pub fn is_open(&self) -> bool {
        self.rules.is_empty() && self.default == Effect::Allow
    }

    /// Whether `caller` may see and use the item `name` (exposed name, or
    /// client-side URI for resources) of `provider`.
    pub fn allows(&self, caller: &pb::Caller, kind: Kind, provider: &str, name: &str) -> bool {
        self.allows_any_name(caller, kind, provider, &[name])
    }

    /// Like [`Self::allows`], for an item known by several names (a resource
    /// by its client-side URI and the provider's own): a rule that matches
    /// any of them covers the item, so a deny written for either name holds.
    pub fn allows_any_name(
        &self,
        caller: &pb::Caller,
        kind: Kind,
        provider: &str,
        names: &[&str],
    ) -> bool {
        let matching = || {
            self.rules
                .iter()
                .filter(|r| names.iter().any(|n| r.covers(kind, provider, n)))
        };
        if matching().any(|r| r.effect == Effect::Deny && r.holds_for(caller)) {
            return false;
        }
        let mut allows = matching().filter(|r| r.effect == Effect::Allow).peekable();
        if allows.peek().is_some() {
            return allows.any(|r| r.holds_for(caller));
        }
        // Deny rules that matched but whose conditions did not hold say
        // nothing about this caller.
        self.default == Effect::Allow
    }
}

impl Rule {
    fn covers(&self, kind: Kind, provider: &str, name: &str) -> bool {
        if self
            .providers
            .as_ref()
            .is_some_and(|p| !p.is_match(provider))
        {
            return false;
        }
        let any_kind = self.tools.is_none() && self.prompts.is_none() && self.resources.is_none();
        let set = match kind {
            Kind::Tool => &self.tools,
            Kind::Prompt => &self.prompts,
            Kind::Resource => &self.resources,
        };
        match set {
            Some(s) => s.is_match(name),
            None => any_kind,
        }
    }

    fn holds_for(&self, caller: &pb::Caller) -> bool {
        let has = |r: &String| caller.roles.contains(r);
        (self.roles_any.is_empty() || self.roles_any.iter().any(has))
            && self.roles_all.iter().all(has)
            && (self.agents.is_empty() || self.agents.contains(&caller.agent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[&str], agent: &str) -> pb::Caller {
        pb::Caller {
            principal: "p".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            agent: agent.into(),
            session_id: String::new(),
        }
    }

    fn policy(yaml: &str) -> Policy {
        Policy::new(&serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn empty_policy_allows_everything() {
        assert!(Policy::default().allows(&caller(&[], ""), Kind::Tool, "a", "a.x"));
    }

    #[test]
    fn required_roles_any_and_all() {
        let p = policy(
            "rules:\n- tools: ['kit.admin.*']\n  roles_any: [admin, root]\n- tools: ['kit.both']\n  roles_all: [a, b]\n",
        );
        assert!(!p.allows(&caller(&["user"], ""), Kind::Tool, "kit", "kit.admin.x"));
        assert!(p.allows(&caller(&["root"], ""), Kind::Tool, "kit", "kit.admin.x"));
        assert!(!p.allows(&caller(&["a"], ""), Kind::Tool, "kit", "kit.both"));
        assert!(p.allows(&caller(&["a", "b"], ""), Kind::Tool, "kit", "kit.both"));
        // Unmatched items fall to the default (allow).
        assert!(p.allows(&caller(&[], ""), Kind::Tool, "kit", "kit.echo"));
    }

    #[test]
    fn deny_wins_and_default_deny() {
        let p = policy(
            "default: deny\nrules:\n- providers: [kit]\n- tools: ['*.delete*']\n  effect: deny\n- resources: ['secret://*']\n  effect: deny\n  agents: [untrusted]\n",
        );
        assert!(p.allows(&caller(&[], ""), Kind::Tool, "kit", "kit.echo"));
        assert!(!p.allows(&caller(&[], ""), Kind::Tool, "kit", "kit.delete_all"));
        assert!(!p.allows(&caller(&[], ""), Kind::Tool, "other", "other.echo"));
        assert!(!p.allows(
            &caller(&[], "untrusted"),
            Kind::Resource,
            "kit",
            "secret://a"
        ));
        assert!(p.allows(&caller(&[], "trusted"), Kind::Resource, "kit", "secret://a"));
    }

    #[test]
    fn a_resource_rule_matches_either_of_its_names() {
        let p = policy("rules:\n- resources: ['hello://greeting']\n  effect: deny\n");
        let names = ["hello-rs+hello://greeting", "hello://greeting"];
        let c = caller(&[], "");
        assert!(!p.allows_any_name(&c, Kind::Resource, "hello-rs", &names));
        assert!(
            p.allows(&c, Kind::Resource, "hello-rs", names[0]),
            "one name alone"
        );
        let p = policy(
            "default: deny\nrules:\n- resources: ['hello-rs+hello://*']\n  roles_any: [reader]\n",
        );
        assert!(p.allows_any_name(&caller(&["reader"], ""), Kind::Resource, "hello-rs", &names));
        assert!(!p.allows_any_name(&c, Kind::Resource, "hello-rs", &names));
    }

    #[test]
    fn resource_rules_ignore_the_case_of_the_scheme() {
        let p = policy("rules:\n- resources: ['SECRET://*']\n  effect: deny\n");
        let c = caller(&[], "");
        // Callers' URIs reach the policy with the scheme in lower case.
        assert!(!p.allows(&c, Kind::Resource, "kit", "secret://a"));
        assert_eq!(lower_scheme("SeCrEt://A/B"), "secret://A/B");
        assert_eq!(lower_scheme("kit+KIT://x"), "kit+kit://x");
        assert_eq!(lower_scheme("plain"), "plain");
    }

    #[test]
    fn agent_allowlist() {
        let p = policy("rules:\n- tools: ['kit.*']\n  agents: [claude, cursor]\n");
        assert!(p.allows(&caller(&[], "claude"), Kind::Tool, "kit", "kit.echo"));
        assert!(!p.allows(&caller(&[], "evil"), Kind::Tool, "kit", "kit.echo"));
        assert!(!p.allows(&caller(&[], ""), Kind::Tool, "kit", "kit.echo"));
        // The rule names tools only: prompts fall to the default.
        assert!(p.allows(&caller(&[], ""), Kind::Prompt, "kit", "kit.p"));
    }
}
