//! SEP-2243 request headers on the 2026-07-28 path: `Mcp-Method`,
//! `Mcp-Name` and, for tools whose input schema annotates parameters with
//! `x-mcp-header`, `Mcp-Param-{Name}`. Middleboxes route on them without
//! reading the body, so each must be present once and match the body.

use std::borrow::Cow;

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{Map, Value};

use super::{AppState, refusal::Refusal};
use crate::front::engine::Call;

/// Where `Mcp-Name` comes from, per method.
fn name_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

/// The sole value of `name`; an error when repeated or not visible ASCII.
fn sole<N>(h: &HeaderMap, name: N) -> Result<Option<&str>, String>
where
    N: http::header::AsHeaderName + std::fmt::Display + Copy,
{
    let mut values = h.get_all(name).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("duplicate {name} header"));
    }
    v.to_str()
        .map(Some)
        .map_err(|_| format!("{name} header contains invalid characters"))
}

/// A header value as sent: plain, or `=?base64?…?=` for values that are not
/// plain visible ASCII.
fn decode(raw: &str) -> Option<Cow<'_, str>> {
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Cow::Owned),
        None => Some(Cow::Borrowed(raw.trim_matches([' ', '\t']))),
    }
}

fn primitive(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `(path, header name)` of every `x-mcp-header` property.
fn annotated(schema: &Map<String, Value>) -> Vec<(Vec<String>, String)> {
    fn walk(
        schema: &Map<String, Value>,
        path: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, String)>,
    ) {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, prop) in props {
            let Some(prop) = prop.as_object() else {
                continue;
            };
            path.push(name.clone());
            if let Some(h) = prop.get("x-mcp-header").and_then(Value::as_str) {
                out.push((path.clone(), h.to_string()));
            }
            walk(prop, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

fn mismatch(call: &Call, reason: String) -> Refusal {
    Refusal::header_mismatch(call, &reason)
}

pub(super) fn check(s: &AppState, h: &HeaderMap, call: &Call) -> Result<(), Refusal> {
    let applies = h
        .get(super::names::VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= crate::front::engine::PER_REQUEST);
    if !applies {
        return Ok(());
    }
    match sole(h, &super::names::METHOD).map_err(|e| mismatch(call, e))? {
        None => return Err(mismatch(call, "missing required Mcp-Method header".into())),
        Some(m) if m != call.method => {
            return Err(mismatch(
                call,
                format!(
                    "Mcp-Method header `{m}` does not match body method `{}`",
                    call.method
                ),
            ));
        }
        Some(_) => {}
    }
    if let Some(key) = name_key(&call.method)
        && let Some(expected) = call.params.get(key).and_then(Value::as_str)
    {
        match sole(h, &super::names::NAME).map_err(|e| mismatch(call, e))? {
            None => {
                return Err(mismatch(
                    call,
                    format!("missing required Mcp-Name header for `{}`", call.method),
                ));
            }
            Some(raw) => {
                let got = decode(raw)
                    .ok_or_else(|| mismatch(call, "Mcp-Name header is not valid Base64".into()))?;
                if got != expected {
                    return Err(mismatch(
                        call,
                        format!("Mcp-Name header `{got}` does not match body value `{expected}`"),
                    ));
                }
            }
        }
    }
    if call.method == "tools/call" {
        params(s, h, call)?;
    }
    Ok(())
}

/// `Mcp-Param-*` against the called tool's annotations.
fn params(s: &AppState, h: &HeaderMap, call: &Call) -> Result<(), Refusal> {
    let name = call
        .params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let d = s.gateway.dispatcher();
    let cat = d.catalog();
    let Ok(entry) = cat.tool(name) else {
        return Ok(());
    };
    // Under a policy that could hide the tool, its schema is not consulted
    // (the dispatcher still validates the arguments).
    if !entry.param_headers || !d.visibility().policy().is_open() {
        return Ok(());
    }
    let arguments = call.params.get("arguments");
    for (path, header) in annotated(&entry.tool.input_schema) {
        let full = format!("mcp-param-{}", header.to_ascii_lowercase());
        let sent = sole(h, full.as_str()).map_err(|e| mismatch(call, e))?;
        let mut arg = arguments;
        for p in &path {
            arg = arg.and_then(|a| a.get(p));
        }
        let body = arg.filter(|v| !v.is_null()).and_then(primitive);
        let prop = path.join(".");
        match (sent, body) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(mismatch(
                    call,
                    format!("unexpected Mcp-Param-{header} header for absent or null `{prop}`"),
                ));
            }
            (None, Some(_)) => {
                return Err(mismatch(
                    call,
                    format!("missing Mcp-Param-{header} header for `{prop}`"),
                ));
            }
            (Some(raw), Some(expected)) => {
                let got = decode(raw).ok_or_else(|| {
                    mismatch(
                        call,
                        format!("Mcp-Param-{header} header is not valid Base64"),
                    )
                })?;
                if got != expected {
                    return Err(mismatch(
                        call,
                        format!(
                            "Mcp-Param-{header} header `{got}` does not match body value `{expected}`"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_plain_or_base64() {
        assert_eq!(decode("abc").as_deref(), Some("abc"));
        assert_eq!(decode("=?base64?aMOp?=").as_deref(), Some("hé"));
        assert_eq!(decode("=?base64?***?="), None);
    }

    #[test]
    fn annotations_are_found_at_any_depth() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {"tier": {"type": "integer", "x-mcp-header": "Tier"}}}
        }});
        let mut found = annotated(schema.as_object().unwrap());
        found.sort();
        assert_eq!(
            found,
            vec![
                (
                    vec!["opts".to_string(), "tier".to_string()],
                    "Tier".to_string()
                ),
                (vec!["region".to_string()], "Region".to_string()),
            ]
        );
    }
}
