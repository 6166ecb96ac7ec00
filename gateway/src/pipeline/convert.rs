//! Protobuf contract ↔ MCP model. Binary data crosses gRPC as raw bytes and
//! is base64-encoded here, once, for MCP's JSON.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use mcp_gateway_proto::provider as pb;
use rmcp::model::{
    Annotations, ContentBlock, EmbeddedResource, JsonObject, MetaObject, Prompt, PromptArgument,
    PromptMessage, Resource, ResourceContents, ResourceTemplate, Role, Tool, ToolAnnotations,
};
use serde_json::Value;
use std::sync::Arc;

use crate::pipeline::naming::UriMap;

/// Empty bytes mean "absent" in the contract.
/// A contract `LogMessage.level` as MCP's; `None` for a name MCP lacks.
#[allow(deprecated)] // logging: deprecated by SEP-2577, served to clients that ask
pub fn log_level(name: &str) -> Option<rmcp::model::LoggingLevel> {
    serde_json::from_value(Value::String(name.to_ascii_lowercase())).ok()
}

pub fn json_opt(bytes: &[u8]) -> Result<Option<Value>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| format!("invalid JSON: {e}"))
}

fn object_opt(bytes: &[u8], what: &str) -> Result<Option<JsonObject>, String> {
    match json_opt(bytes).map_err(|e| format!("{what}: {e}"))? {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(format!("{what}: must be a JSON object")),
    }
}

fn meta(bytes: &[u8]) -> Result<Option<MetaObject>, String> {
    Ok(object_opt(bytes, "meta")?.map(MetaObject))
}

fn none_if_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A provider tool as an MCP tool named `exposed`, plus its raw schemas.
pub fn tool(exposed: &str, t: &pb::Tool) -> Result<(Tool, Value, Option<Value>), String> {
    let input = object_opt(&t.input_schema, "input_schema")?
        .ok_or_else(|| "input_schema is required".to_string())?;
    let output = object_opt(&t.output_schema, "output_schema")?;
    let mut tool = Tool::new(
        exposed.to_string(),
        t.description.clone(),
        Arc::new(input.clone()),
    );
    tool.title = none_if_empty(&t.title);
    if t.description.is_empty() {
        tool.description = None;
    }
    tool.output_schema = output.clone().map(Arc::new);
    tool.annotations = t.annotations.as_ref().map(|a| {
        ToolAnnotations::from_raw(
            None,
            a.read_only_hint,
            a.destructive_hint,
            a.idempotent_hint,
            a.open_world_hint,
        )
    });
    tool.meta = meta(&t.meta)?;
    Ok((tool, Value::Object(input), output.map(Value::Object)))
}

pub fn resource(r: &pb::Resource, uris: &UriMap) -> Resource {
    let mut out = Resource::new(uris.to_client(&r.uri), r.name.clone());
    out.title = none_if_empty(&r.title);
    out.description = none_if_empty(&r.description);
    out.mime_type = none_if_empty(&r.mime_type);
    out.size = r.size;
    out
}

pub fn resource_template(t: &pb::ResourceTemplate, uris: &UriMap) -> ResourceTemplate {
    let mut out = ResourceTemplate::new(uris.to_client(&t.uri_template), t.name.clone());
    out.title = none_if_empty(&t.title);
    out.description = none_if_empty(&t.description);
    out.mime_type = none_if_empty(&t.mime_type);
    out
}

pub fn prompt(exposed: &str, p: &pb::Prompt) -> Prompt {
    let args: Vec<PromptArgument> = p
        .arguments
        .iter()
        .map(|a| {
            let mut arg = PromptArgument::new(a.name.clone()).with_required(a.required);
            if !a.title.is_empty() {
                arg = arg.with_title(a.title.clone());
            }
            if !a.description.is_empty() {
                arg = arg.with_description(a.description.clone());
            }
            arg
        })
        .collect();
    let mut out = Prompt::new(
        exposed.to_string(),
        none_if_empty(&p.description),
        (!args.is_empty()).then_some(args),
    );
    if !p.title.is_empty() {
        out = out.with_title(p.title.clone());
    }
    out
}

pub fn resource_contents(
    c: pb::ResourceContents,
    uris: &UriMap,
) -> Result<ResourceContents, String> {
    let uri = uris.to_client(&c.uri);
    let mime_type = none_if_empty(&c.mime_type);
    let meta = meta(&c.meta)?;
    Ok(match c.body {
        Some(pb::resource_contents::Body::Blob(bytes)) => ResourceContents::BlobResourceContents {
            uri,
            mime_type,
            blob: B64.encode(bytes),
            meta,
        },
        Some(pb::resource_contents::Body::Text(text)) => ResourceContents::TextResourceContents {
            uri,
            mime_type,
            text,
            meta,
        },
        None => ResourceContents::TextResourceContents {
            uri,
            mime_type,
            text: String::new(),
            meta,
        },
    })
}

/// One content block, unchanged in meaning: every MCP kind is carried.
pub fn content(c: pb::Content, uris: &UriMap) -> Result<ContentBlock, String> {
    use pb::content::Kind;
    let annotations: Option<Annotations> = match json_opt(&c.annotations)? {
        None => None,
        Some(v) => Some(serde_json::from_value(v).map_err(|e| format!("annotations: {e}"))?),
    };
    let meta = meta(&c.meta)?;
    let block = match c.kind.ok_or("content block has no kind")? {
        Kind::Text(t) => {
            let mut b = rmcp::model::TextContent::new(t.text);
            b.annotations = annotations;
            b.meta = meta;
            ContentBlock::Text(b)
        }
        Kind::Image(i) => {
            let mut b = rmcp::model::ImageContent::new(B64.encode(i.data), i.mime_type);
            b.annotations = annotations;
            b.meta = meta;
            ContentBlock::Image(b)
        }
        Kind::Audio(a) => {
            let mut b = rmcp::model::AudioContent::new(B64.encode(a.data), a.mime_type);
            b.annotations = annotations;
            b.meta = meta;
            ContentBlock::Audio(b)
        }
        Kind::ResourceLink(l) => {
            let mut r = Resource::new(uris.to_client(&l.uri), l.name);
            r.title = none_if_empty(&l.title);
            r.description = none_if_empty(&l.description);
            r.mime_type = none_if_empty(&l.mime_type);
            r.size = l.size;
            r.annotations = annotations;
            r.meta = meta;
            ContentBlock::ResourceLink(r)
        }
        Kind::Resource(e) => {
            let contents = e.resource.ok_or("embedded resource has no contents")?;
            let mut b = EmbeddedResource::new(resource_contents(contents, uris)?);
            b.annotations = annotations;
            b.meta = meta;
            ContentBlock::Resource(b)
        }
    };
    Ok(block)
}

pub fn prompt_message(m: pb::PromptMessage, uris: &UriMap) -> Result<PromptMessage, String> {
    let role = match pb::Role::try_from(m.role).unwrap_or(pb::Role::Unspecified) {
        pb::Role::Assistant => Role::Assistant,
        _ => Role::User,
    };
    let content = content(m.content.ok_or("prompt message has no content")?, uris)?;
    Ok(PromptMessage::new(role, content))
}
