//! `tools/list`, `prompts/list`, `resources/list` and
//! `resources/templates/list`, served as bytes: each page is serialized once
//! per catalog, policy, visibility class and revision, then reused until
//! the catalog or the policy changes. Cursors are opaque offsets.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use base64::Engine as _;
use bytes::Bytes;
use rmcp::model::ErrorData;

use crate::pipeline::catalog::Catalog;
use crate::security::policy::Policy;
use mcp_gateway_proto::provider as pb;

/// Cached pages at most; past it the cache starts over.
const MAX_PAGES: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum List {
    Tools,
    Prompts,
    Resources,
    Templates,
}

#[derive(PartialEq, Eq, Hash)]
struct Key {
    list: List,
    stateless: bool,
    /// Who sees the same items: everyone under an open policy.
    class: String,
    offset: usize,
}

#[derive(Default)]
struct Pages {
    /// Held so their addresses cannot be reused while the pages are.
    catalog: Option<Arc<Catalog>>,
    policy: Option<Arc<Policy>>,
    pages: HashMap<Key, Bytes>,
}

pub(crate) struct Lists {
    page_size: usize,
    pages: Mutex<Pages>,
}

/// One page of `items` from `offset`, and the cursor of the next.
pub(crate) fn page<T: Clone>(items: &[T], offset: usize, size: usize) -> (Vec<T>, Option<String>) {
    let end = offset.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| encode_cursor(end));
    (items[offset.min(end)..end].to_vec(), next)
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

/// The offset a cursor names.
pub(crate) fn decode_cursor(cursor: Option<&str>) -> Result<usize, ErrorData> {
    let Some(cursor) = cursor else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("o:").and_then(|o| o.parse().ok()))
        .ok_or_else(|| {
            ErrorData::invalid_params(
                "invalid params: `cursor` is not a cursor this gateway gave out",
                None,
            )
        })
}

impl Lists {
    pub(crate) fn new(page_size: usize) -> Self {
        Self {
            page_size: page_size.max(1),
            pages: Mutex::default(),
        }
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    /// The serialized result for this page, built by `build` when missing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn get(
        &self,
        catalog: &Arc<Catalog>,
        policy: Arc<Policy>,
        caller: &pb::Caller,
        list: List,
        stateless: bool,
        offset: usize,
        build: impl FnOnce() -> Bytes,
    ) -> Bytes {
        let class = if policy.is_open() {
            String::new()
        } else {
            format!(
                "{}\0{}\0{}",
                caller.principal,
                caller.roles.join("\u{1}"),
                caller.agent
            )
        };
        let key = Key {
            list,
            stateless,
            class,
            offset,
        };
        {
            let mut p = self.pages.lock().expect("list pages");
            let current = p.catalog.as_ref().is_some_and(|c| Arc::ptr_eq(c, catalog))
                && p.policy.as_ref().is_some_and(|c| Arc::ptr_eq(c, &policy));
            if !current {
                *p = Pages {
                    catalog: Some(catalog.clone()),
                    policy: Some(policy.clone()),
                    pages: HashMap::new(),
                };
            }
            if let Some(b) = p.pages.get(&key) {
                return b.clone();
            }
        }
        // Built outside the lock: a big list takes milliseconds.
        let bytes = build();
        let mut p = self.pages.lock().expect("list pages");
        let current = p.catalog.as_ref().is_some_and(|c| Arc::ptr_eq(c, catalog))
            && p.policy.as_ref().is_some_and(|c| Arc::ptr_eq(c, &policy));
        if current {
            if p.pages.len() >= MAX_PAGES {
                p.pages.clear();
            }
            p.pages.insert(key, bytes.clone());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_their_cursors_to_the_end() {
        let items: Vec<u32> = (0..25).collect();
        let (first, next) = page(&items, 0, 10);
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        let offset = decode_cursor(next.as_deref()).unwrap();
        let (second, next) = page(&items, offset, 10);
        assert_eq!(second[0], 10);
        let (third, next2) = page(&items, decode_cursor(next.as_deref()).unwrap(), 10);
        assert_eq!(third.len(), 5);
        assert_eq!(next2, None);
        assert_eq!(page(&items, 0, 100).1, None);
        assert!(page(&items, 99, 10).0.is_empty());
    }

    #[test]
    fn a_cursor_not_given_out_is_invalid_params() {
        assert_eq!(decode_cursor(None).unwrap(), 0);
        assert_eq!(decode_cursor(Some("bm9wZQ")).unwrap_err().code.0, -32602);
        assert_eq!(decode_cursor(Some("%%%")).unwrap_err().code.0, -32602);
    }
}
