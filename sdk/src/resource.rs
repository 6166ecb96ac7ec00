//! Resources (fixed URIs) and resource templates (RFC 6570 level 1).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use mcp_gateway_proto::provider::{self as pb, ResourceContents, resource_contents::Body};

use crate::tool::BoxFuture;
use crate::{Context, SdkError, ToolError};

pub(crate) type ReadResult = Result<ResourceBody, ToolError>;
pub(crate) type ReadHandler = Arc<dyn Fn(String, Context) -> BoxFuture<ReadResult> + Send + Sync>;

fn erase<F, Fut>(read: F) -> ReadHandler
where
    F: Fn(String, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ReadResult> + Send + 'static,
{
    Arc::new(move |uri, ctx| Box::pin(read(uri, ctx)))
}

/// What a read handler returns.
#[derive(Clone, Debug, PartialEq)]
pub enum ResourceBody {
    /// Text, labelled with the resource's MIME type.
    Text(String),
    /// Raw bytes, labelled with the resource's MIME type (the gateway
    /// base64-encodes them).
    Blob(Vec<u8>),
    /// Full control: any number of contents with their own URIs and types.
    Contents(Vec<ResourceContents>),
}

impl ResourceBody {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    pub fn blob(data: Vec<u8>) -> Self {
        Self::Blob(data)
    }

    pub fn contents(contents: Vec<ResourceContents>) -> Self {
        Self::Contents(contents)
    }

    pub(crate) fn into_contents(self, uri: &str, mime_type: &str) -> Vec<ResourceContents> {
        let single = |body| {
            vec![ResourceContents {
                uri: uri.to_owned(),
                mime_type: mime_type.to_owned(),
                body: Some(body),
                meta: Vec::new(),
            }]
        };
        match self {
            Self::Text(t) => single(Body::Text(t)),
            Self::Blob(b) => single(Body::Blob(b)),
            Self::Contents(c) => c,
        }
    }
}

/// A resource at a fixed URI.
#[derive(Clone)]
pub struct Resource {
    pub(crate) meta: pb::Resource,
    pub(crate) read: ReadHandler,
}

impl Resource {
    /// `read` receives the requested URI and returns the body.
    pub fn new<F, Fut>(uri: impl Into<String>, name: impl Into<String>, read: F) -> Self
    where
        F: Fn(String, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResourceBody, ToolError>> + Send + 'static,
    {
        Self {
            meta: pb::Resource {
                uri: uri.into(),
                name: name.into(),
                ..Default::default()
            },
            read: erase(read),
        }
    }

    pub fn title(mut self, title: &str) -> Self {
        self.meta.title = title.to_owned();
        self
    }

    pub fn description(mut self, description: &str) -> Self {
        self.meta.description = description.to_owned();
        self
    }

    /// Also the MIME type of [`ResourceBody::text`] / [`ResourceBody::blob`] bodies.
    pub fn mime_type(mut self, mime_type: &str) -> Self {
        self.meta.mime_type = mime_type.to_owned();
        self
    }

    /// Size in bytes, if known up front.
    pub fn size(mut self, size: u64) -> Self {
        self.meta.size = Some(size);
        self
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// A family of resources addressed by an RFC 6570 level-1 URI template such
/// as `files://{dir}/{name}`. Each `{var}` matches one or more characters
/// other than `/`; matched values are percent-decoded and available through
/// [`Context::template_var`].
#[derive(Clone)]
pub struct ResourceTemplate {
    pub(crate) meta: pb::ResourceTemplate,
    pub(crate) read: ReadHandler,
}

impl ResourceTemplate {
    pub fn new<F, Fut>(uri_template: impl Into<String>, name: impl Into<String>, read: F) -> Self
    where
        F: Fn(String, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResourceBody, ToolError>> + Send + 'static,
    {
        Self {
            meta: pb::ResourceTemplate {
                uri_template: uri_template.into(),
                name: name.into(),
                ..Default::default()
            },
            read: erase(read),
        }
    }

    pub fn title(mut self, title: &str) -> Self {
        self.meta.title = title.to_owned();
        self
    }

    pub fn description(mut self, description: &str) -> Self {
        self.meta.description = description.to_owned();
        self
    }

    pub fn mime_type(mut self, mime_type: &str) -> Self {
        self.meta.mime_type = mime_type.to_owned();
        self
    }
}

impl fmt::Debug for ResourceTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceTemplate")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// A parsed level-1 template: alternating literals and variables.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UriTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Literal(String),
    Var(String),
}

impl UriTemplate {
    pub(crate) fn parse(template: &str) -> Result<Self, SdkError> {
        let err = |reason: &str| SdkError::InvalidTemplate {
            template: template.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(err("unmatched '}'")),
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Literal(rest[..i].to_owned()));
                    }
                    let close = rest[i..].find('}').ok_or_else(|| err("unclosed '{'"))? + i;
                    let name = &rest[i + 1..close];
                    let valid = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                    if !valid {
                        return Err(err("only level-1 expressions like {name} are supported \
                             (letters, digits, '_' and '.')"));
                    }
                    if matches!(parts.last(), Some(Part::Var(_))) {
                        return Err(err("two variables must be separated by a literal"));
                    }
                    if parts.iter().any(|p| matches!(p, Part::Var(v) if v == name)) {
                        return Err(err("variable used twice"));
                    }
                    parts.push(Part::Var(name.to_owned()));
                    rest = &rest[close + 1..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_owned()));
                    rest = "";
                }
            }
        }
        Ok(Self { parts })
    }

    /// The variables if `uri` matches. Variables are greedy (longest match
    /// first), with backtracking when the rest of the template fails.
    pub(crate) fn matches(&self, uri: &str) -> Option<HashMap<String, String>> {
        let mut vars = HashMap::new();
        match_parts(&self.parts, uri, &mut vars).then_some(vars)
    }
}

fn match_parts(parts: &[Part], s: &str, vars: &mut HashMap<String, String>) -> bool {
    match parts.split_first() {
        None => s.is_empty(),
        Some((Part::Literal(lit), rest)) => s
            .strip_prefix(lit.as_str())
            .is_some_and(|tail| match_parts(rest, tail, vars)),
        Some((Part::Var(name), rest)) => {
            let max = s.find('/').unwrap_or(s.len());
            let ends = s[..max]
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .collect::<Vec<_>>();
            for &end in ends.iter().rev() {
                if match_parts(rest, &s[end..], vars) {
                    vars.insert(name.clone(), percent_decode(&s[..end]));
                    return true;
                }
            }
            false
        }
    }
}

/// Reverses the percent-encoding RFC 6570 simple expansion applies. Invalid
/// escapes or non-UTF-8 results leave the value as it was.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return s.to_owned(),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(t: &str, uri: &str) -> Option<Vec<(String, String)>> {
        let mut v: Vec<_> = UriTemplate::parse(t)
            .unwrap()
            .matches(uri)?
            .into_iter()
            .collect();
        v.sort();
        Some(v)
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn matches_level_one_templates() {
        assert_eq!(
            vars("users://{id}/profile", "users://42/profile"),
            Some(vec![pair("id", "42")])
        );
        assert_eq!(vars("users://{id}/profile", "users://4/2/profile"), None);
        assert_eq!(vars("users://{id}/profile", "users:///profile"), None);
        assert_eq!(
            vars("f://{name}.{ext}", "f://a.b.c"),
            Some(vec![pair("ext", "c"), pair("name", "a.b")])
        );
        assert_eq!(
            vars("f://{name}", "f://h%C3%A9llo%20x"),
            Some(vec![pair("name", "héllo x")])
        );
        assert_eq!(vars("f://fixed", "f://fixed"), Some(vec![]));
        assert_eq!(vars("f://fixed", "f://fixed2"), None);
    }

    #[test]
    fn rejects_other_levels() {
        for bad in [
            "a://{+x}",
            "a://{x*}",
            "a://{x",
            "a://x}",
            "a://{}",
            "a://{a}{b}",
            "a://{a}/{a}",
        ] {
            assert!(UriTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
