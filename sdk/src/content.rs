//! Constructors for [`Content`] blocks.
//!
//! `Content` is the generated protobuf message, so it cannot get inherent
//! constructors in this crate; these free functions fill that role:
//!
//! ```
//! use mcp_provider_sdk::content;
//! let blocks = vec![
//!     content::text("hello"),
//!     content::image(vec![0x89, b'P', b'N', b'G'], "image/png"),
//!     content::resource_link("hello://greeting", "greeting"),
//! ];
//! # assert_eq!(blocks.len(), 3);
//! ```
//!
//! Binary data is raw bytes here; the gateway does the base64 encoding that
//! MCP's JSON needs.

use mcp_gateway_proto::provider::{
    AudioContent, EmbeddedResource, ImageContent, ResourceContents, ResourceLink, TextContent,
    content::Kind, resource_contents::Body,
};

pub use mcp_gateway_proto::provider::Content;

fn of(kind: Kind) -> Content {
    Content {
        kind: Some(kind),
        ..Default::default()
    }
}

/// A text block.
pub fn text(text: impl Into<String>) -> Content {
    of(Kind::Text(TextContent { text: text.into() }))
}

/// An image block (raw bytes, e.g. PNG).
pub fn image(data: Vec<u8>, mime_type: impl Into<String>) -> Content {
    of(Kind::Image(ImageContent {
        data,
        mime_type: mime_type.into(),
    }))
}

/// An audio block (raw bytes, e.g. WAV).
pub fn audio(data: Vec<u8>, mime_type: impl Into<String>) -> Content {
    of(Kind::Audio(AudioContent {
        data,
        mime_type: mime_type.into(),
    }))
}

/// A link to a resource the client can read later. For the optional fields
/// (title, description, MIME type, size) build a [`ResourceLink`] and use
/// [`link`].
pub fn resource_link(uri: impl Into<String>, name: impl Into<String>) -> Content {
    link(ResourceLink {
        uri: uri.into(),
        name: name.into(),
        ..Default::default()
    })
}

/// A fully specified resource link.
pub fn link(link: ResourceLink) -> Content {
    of(Kind::ResourceLink(link))
}

/// A resource embedded inline, as text.
pub fn embedded_text(
    uri: impl Into<String>,
    mime_type: impl Into<String>,
    text: impl Into<String>,
) -> Content {
    embedded(ResourceContents {
        uri: uri.into(),
        mime_type: mime_type.into(),
        body: Some(Body::Text(text.into())),
        ..Default::default()
    })
}

/// A resource embedded inline, as raw bytes.
pub fn embedded_blob(
    uri: impl Into<String>,
    mime_type: impl Into<String>,
    data: Vec<u8>,
) -> Content {
    embedded(ResourceContents {
        uri: uri.into(),
        mime_type: mime_type.into(),
        body: Some(Body::Blob(data)),
        ..Default::default()
    })
}

/// Any [`ResourceContents`] embedded inline.
pub fn embedded(contents: ResourceContents) -> Content {
    of(Kind::Resource(EmbeddedResource {
        resource: Some(contents),
    }))
}

/// Sets the block's MCP `annotations` object (e.g. `{"audience": ["user"]}`).
pub fn with_annotations(mut content: Content, annotations: &serde_json::Value) -> Content {
    content.annotations = serde_json::to_vec(annotations).unwrap_or_default();
    content
}
