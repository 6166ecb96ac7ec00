//! Opt-in result cache for read-only tools, one per provider.
//!
//! Bounded in entries, each entry living `ttl`, built on `moka` (the
//! well-kept concurrent cache with size bounds and expiry). The key covers
//! the tool, its arguments in canonical form (object keys sorted, so
//! `{"a":1,"b":2}` and `{"b":2,"a":1}` share an entry) and the caller's whole
//! scope (principal, roles, agent), so one caller never sees another's result.

use std::{sync::Arc, time::Duration};

use mcp_gateway_proto::provider as pb;
use rmcp::model::CallToolResult;
use serde_json::Value;

pub struct ResultCache {
    entries: moka::sync::Cache<[u8; 32], Arc<CallToolResult>>,
}

impl ResultCache {
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<CallToolResult>> {
        self.entries.get(key)
    }

    pub fn insert(&self, key: [u8; 32], result: CallToolResult) {
        self.entries.insert(key, Arc::new(result));
    }
}

/// SHA-256 over tool, caller scope and canonical arguments, each
/// length-prefixed so no two different inputs can run together.
pub fn key(tool: &str, caller: &pb::Caller, args: &Value) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(tool.as_bytes());
    part(caller.principal.as_bytes());
    let mut roles = caller.roles.clone();
    roles.sort();
    part(roles.join("\n").as_bytes());
    part(caller.agent.as_bytes());
    let mut canonical = Vec::new();
    write_canonical(args, &mut canonical);
    part(&canonical);
    h.finalize().into()
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).unwrap_or_default());
                out.push(b':');
                write_canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend(serde_json::to_vec(other).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caller(p: &str) -> pb::Caller {
        pb::Caller {
            principal: p.into(),
            ..Default::default()
        }
    }

    #[test]
    fn key_ignores_key_order_but_not_caller_or_values() {
        let a = key(
            "t",
            &caller("alice"),
            &json!({"x": 1, "y": {"b": 2, "a": 1}}),
        );
        let b = key(
            "t",
            &caller("alice"),
            &json!({"y": {"a": 1, "b": 2}, "x": 1}),
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            key("t", &caller("bob"), &json!({"x": 1, "y": {"b": 2, "a": 1}}))
        );
        assert_ne!(
            a,
            key(
                "t",
                &caller("alice"),
                &json!({"x": 2, "y": {"b": 2, "a": 1}})
            )
        );
        assert_ne!(
            a,
            key(
                "u",
                &caller("alice"),
                &json!({"x": 1, "y": {"b": 2, "a": 1}})
            )
        );
    }
}
