//! How provider items are named on the MCP surface (docs/mcp-surface.md).
//!
//! Tools and prompts: `{provider}{separator}{name}` when prefixing is on.
//! Resource URIs pass through unchanged unless two providers claim the same
//! URI scheme; then each of them is exposed as `{provider}+{scheme}:…`, which
//! is still a valid URI scheme and is reversed on the way back.

use std::collections::HashSet;

use crate::config::Naming;

pub fn exposed_name(provider: &str, naming: &Naming, name: &str) -> String {
    if naming.prefix {
        format!("{provider}{}{name}", naming.separator)
    } else {
        name.to_string()
    }
}

/// The scheme of a URI or URI template, lowercased; `None` if it has none.
pub fn scheme_of(uri: &str) -> Option<String> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// One provider's URI rewriting: which of its schemes are shared and so
/// exposed with the provider prefix.
#[derive(Debug, Clone, Default)]
pub struct UriMap {
    provider: String,
    shared: HashSet<String>,
}

impl UriMap {
    pub fn new(provider: &str, shared: HashSet<String>) -> Self {
        Self {
            provider: provider.to_string(),
            shared,
        }
    }

    pub fn is_identity(&self) -> bool {
        self.shared.is_empty()
    }

    /// Provider URI → the URI clients see.
    pub fn to_client(&self, uri: &str) -> String {
        match scheme_of(uri) {
            Some(s) if self.shared.contains(&s) => format!("{}+{uri}", self.provider),
            _ => uri.to_string(),
        }
    }

    /// Client URI → the provider's own URI (inverse of [`Self::to_client`]).
    pub fn to_provider<'a>(&self, uri: &'a str) -> &'a str {
        let prefix_len = self.provider.len() + 1;
        if !self.is_identity()
            && uri.len() > prefix_len
            && uri[..self.provider.len()].eq_ignore_ascii_case(&self.provider)
            && uri.as_bytes()[self.provider.len()] == b'+'
        {
            &uri[prefix_len..]
        } else {
            uri
        }
    }

    /// The exposed form of one of this provider's schemes.
    pub fn exposed_scheme(&self, scheme: &str) -> String {
        if self.shared.contains(scheme) {
            format!("{}+{scheme}", self.provider)
        } else {
            scheme.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = Naming::default();
        assert_eq!(exposed_name("hello-rs", &n, "echo.v1"), "hello-rs.echo.v1");
        let n = Naming {
            separator: "__".into(),
            prefix: true,
        };
        assert_eq!(exposed_name("a", &n, "t"), "a__t");
        let n = Naming {
            prefix: false,
            ..Naming::default()
        };
        assert_eq!(exposed_name("a", &n, "t"), "t");
    }

    #[test]
    fn schemes() {
        assert_eq!(scheme_of("hello://greeting").as_deref(), Some("hello"));
        assert_eq!(scheme_of("File:///x").as_deref(), Some("file"));
        assert_eq!(scheme_of("no scheme"), None);
        assert_eq!(scheme_of("1x:y"), None);
    }

    #[test]
    fn uri_map_round_trips() {
        let m = UriMap::new("docs", HashSet::from(["file".to_string()]));
        let exposed = m.to_client("file:///a/b");
        assert_eq!(exposed, "docs+file:///a/b");
        assert_eq!(scheme_of(&exposed).as_deref(), Some("docs+file"));
        assert_eq!(m.to_provider(&exposed), "file:///a/b");
        assert_eq!(m.to_client("hello://x"), "hello://x");
        assert_eq!(m.to_provider("hello://x"), "hello://x");
    }
}
