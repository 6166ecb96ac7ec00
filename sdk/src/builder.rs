//! `Provider::builder(..)`: collects tools, resources and prompts, validates
//! them once, and produces a [`ProviderService`].

use std::collections::{HashMap, HashSet};

use mcp_gateway_proto::provider::ListCapabilitiesResponse;
use prost::Message;
use serde_json::Value;

use crate::resource::UriTemplate;
use crate::service::{DEFAULT_MAX_MESSAGE_SIZE, Inner};
use crate::{Prompt, ProviderService, Publisher, Resource, ResourceTemplate, SdkError, Tool};

/// Entry point: `Provider::builder("name")`.
#[derive(Debug)]
pub enum Provider {}

impl Provider {
    /// Starts describing a provider called `name` (the gateway usually
    /// registers it under the same name and prefixes its tools with it).
    pub fn builder(name: impl Into<String>) -> ProviderBuilder {
        let name = name.into();
        ProviderBuilder {
            events: Publisher::new(&name),
            name,
            version: None,
            tools: Vec::new(),
            resources: Vec::new(),
            templates: Vec::new(),
            prompts: Vec::new(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            tls: None,
        }
    }
}

/// Collects a provider's capabilities; finish with [`build`](Self::build),
/// [`serve`](Self::serve), [`serve_with_shutdown`](Self::serve_with_shutdown)
/// or [`spawn`](Self::spawn).
#[derive(Debug)]
#[must_use]
pub struct ProviderBuilder {
    pub(crate) name: String,
    version: Option<String>,
    tools: Vec<Tool>,
    resources: Vec<Resource>,
    templates: Vec<ResourceTemplate>,
    prompts: Vec<Prompt>,
    max_message_size: usize,
    events: Publisher,
    pub(crate) tls: Option<crate::server::TlsConfig>,
}

impl ProviderBuilder {
    /// This provider's event publisher (also in every handler's
    /// [`Context`](crate::Context)). Events reach the gateway through the
    /// `Stream` RPC, and through NATS after [`Publisher::connect_nats`].
    pub fn events(&self) -> Publisher {
        self.events.clone()
    }

    /// Serve TLS with this certificate; with a client CA, clients must
    /// present a certificate it signed (mTLS).
    pub fn tls(mut self, tls: crate::server::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The provider's version; ListCapabilities reports `"{name} {version}"`
    /// as `provider_version`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.push(tool);
        self
    }

    pub fn resource(mut self, resource: Resource) -> Self {
        self.resources.push(resource);
        self
    }

    pub fn resource_template(mut self, template: ResourceTemplate) -> Self {
        self.templates.push(template);
        self
    }

    pub fn prompt(mut self, prompt: Prompt) -> Self {
        self.prompts.push(prompt);
        self
    }

    /// Largest gRPC message accepted or sent, in bytes (default 10 MB, the
    /// gateway's default). Raise it together with the gateway's limit.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Validates everything and freezes it into a service.
    pub fn build(self) -> Result<ProviderService, SdkError> {
        if self.name.trim().is_empty() {
            return Err(invalid("provider", &self.name, "must not be empty"));
        }

        let mut tools = HashMap::new();
        for tool in &self.tools {
            check_tool_name(&tool.name)?;
            check_object_schema(&tool.name, "input", &tool.input_schema)?;
            if let Some(out) = &tool.output_schema {
                check_object_schema(&tool.name, "output", out)?;
            }
            if tools.insert(tool.name.clone(), tool.clone()).is_some() {
                return Err(duplicate("tool", &tool.name));
            }
        }

        let mut resources = HashMap::new();
        for r in &self.resources {
            non_empty("resource URI", &r.meta.uri)?;
            non_empty("resource", &r.meta.name)?;
            if resources.insert(r.meta.uri.clone(), r.clone()).is_some() {
                return Err(duplicate("resource", &r.meta.uri));
            }
        }

        let mut templates = Vec::new();
        let mut seen = HashSet::new();
        for t in &self.templates {
            non_empty("resource template", &t.meta.name)?;
            let parsed = UriTemplate::parse(&t.meta.uri_template)?;
            if !seen.insert(t.meta.uri_template.clone()) {
                return Err(duplicate("resource template", &t.meta.uri_template));
            }
            templates.push((parsed, t.clone()));
        }

        let mut prompts = HashMap::new();
        for p in &self.prompts {
            non_empty("prompt", &p.meta.name)?;
            let mut args = HashSet::new();
            for a in &p.meta.arguments {
                non_empty("prompt argument", &a.name)?;
                if !args.insert(a.name.as_str()) {
                    return Err(duplicate(
                        "prompt argument",
                        &format!("{}.{}", p.meta.name, a.name),
                    ));
                }
            }
            if prompts.insert(p.meta.name.clone(), p.clone()).is_some() {
                return Err(duplicate("prompt", &p.meta.name));
            }
        }

        let mut capabilities = ListCapabilitiesResponse {
            revision: String::new(),
            unchanged: false,
            tools: self.tools.iter().map(Tool::to_proto).collect(),
            resources: self.resources.iter().map(|r| r.meta.clone()).collect(),
            resource_templates: self.templates.iter().map(|t| t.meta.clone()).collect(),
            prompts: self.prompts.iter().map(|p| p.meta.clone()).collect(),
            provider_version: match &self.version {
                Some(v) => format!("{} {v}", self.name),
                None => self.name.clone(),
            },
        };
        // The revision is a hash of everything the gateway would cache, so
        // it changes exactly when the advertised capabilities change.
        capabilities.revision = format!("{:016x}", fnv1a(&capabilities.encode_to_vec()));

        Ok(ProviderService::new(Inner {
            name: self.name,
            tools,
            resources,
            templates,
            prompts,
            capabilities,
            max_message_size: self.max_message_size,
            events: self.events,
        }))
    }
}

/// FNV-1a (64 bit): tiny and, unlike `DefaultHasher`, guaranteed stable
/// across Rust releases, so restarts of the same build keep their revision.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn invalid(kind: &'static str, name: &str, reason: &str) -> SdkError {
    SdkError::InvalidName {
        kind,
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

fn duplicate(kind: &'static str, name: &str) -> SdkError {
    SdkError::Duplicate {
        kind,
        name: name.to_owned(),
    }
}

fn non_empty(kind: &'static str, name: &str) -> Result<(), SdkError> {
    if name.trim().is_empty() {
        return Err(invalid(kind, name, "must not be empty"));
    }
    Ok(())
}

/// MCP 2025-11-25: 1-128 characters from `A-Z a-z 0-9 _ - .`.
fn check_tool_name(name: &str) -> Result<(), SdkError> {
    if name.is_empty() || name.len() > 128 {
        return Err(invalid("tool", name, "must be 1 to 128 characters long"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(invalid(
            "tool",
            name,
            &format!("character {c:?} is not allowed (use A-Z a-z 0-9 _ - .)"),
        ));
    }
    let versioned = name
        .rsplit_once(".v")
        .is_some_and(|(_, v)| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
    if !versioned {
        // A convention, not a rule: warn instead of refusing to start.
        tracing::warn!(
            tool = name,
            "tool names should end in a version, like 'echo.v1'"
        );
    }
    Ok(())
}

/// MCP requires tool schemas to be objects describing an object.
fn check_object_schema(tool: &str, which: &'static str, schema: &Value) -> Result<(), SdkError> {
    let err = |reason: &str| SdkError::InvalidSchema {
        tool: tool.to_owned(),
        which,
        reason: reason.to_owned(),
    };
    let Some(obj) = schema.as_object() else {
        return Err(err("must be a JSON object"));
    };
    match obj.get("type") {
        Some(Value::String(t)) if t == "object" => Ok(()),
        _ => Err(err(r#"must have "type": "object" at the top level"#)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ToolError, ToolOutput};
    use serde_json::json;

    fn raw(name: &str, schema: Value) -> Tool {
        Tool::raw(name, schema, |_, _| async {
            Ok::<_, ToolError>(ToolOutput::text(""))
        })
    }

    fn obj() -> Value {
        json!({"type": "object"})
    }

    #[test]
    fn rejects_bad_configurations() {
        let b = || Provider::builder("p");
        assert!(matches!(
            b().tool(raw("a.v1", obj()))
                .tool(raw("a.v1", obj()))
                .build(),
            Err(SdkError::Duplicate { .. })
        ));
        assert!(matches!(
            b().tool(raw("a.v1", json!({"type": "string"}))).build(),
            Err(SdkError::InvalidSchema { .. })
        ));
        assert!(matches!(
            b().tool(raw("a.v1", json!(true))).build(),
            Err(SdkError::InvalidSchema { .. })
        ));
        assert!(matches!(
            b().tool(raw("a.v1", obj()).output_schema(json!([])))
                .build(),
            Err(SdkError::InvalidSchema { .. })
        ));
        assert!(matches!(
            b().tool(raw("has space", obj())).build(),
            Err(SdkError::InvalidName { .. })
        ));
        assert!(matches!(
            Provider::builder("").build(),
            Err(SdkError::InvalidName { .. })
        ));
    }

    #[test]
    fn revision_is_stable_and_tracks_content() {
        let r1 = Provider::builder("p")
            .tool(raw("a.v1", obj()))
            .build()
            .unwrap();
        let r2 = Provider::builder("p")
            .tool(raw("a.v1", obj()))
            .build()
            .unwrap();
        let r3 = Provider::builder("p")
            .tool(raw("b.v1", obj()))
            .build()
            .unwrap();
        assert_eq!(r1.revision(), r2.revision());
        assert_ne!(r1.revision(), r3.revision());
    }
}
