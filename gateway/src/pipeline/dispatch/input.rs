//! A provider asking the client for input (MRTR): what it may ask, checked
//! once for every item kind and both revisions.

use mcp_gateway_proto::provider as pb;
use serde_json::{Map, Value, json};

use crate::pipeline::error::GatewayError;

/// Requests one round may hold, and the largest provider state.
const MAX_REQUESTS: usize = 16;
const MAX_STATE: usize = 64 * 1024;
const MAX_ID: usize = 128;

/// A provider's answer, or its questions for the client first.
#[derive(Debug)]
pub enum Answered<T> {
    Done(T),
    Asks(Asks),
}

/// Checked questions: by id, each method and its params object.
#[derive(Debug, Clone, Default)]
pub struct Asks {
    pub requests: Vec<(String, String, Map<String, Value>)>,
    pub state: Vec<u8>,
}

/// One round of a request: what the client can answer, its answers to the
/// previous round, and which round this is (0: the first call).
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub input: pb::InputContext,
    pub number: u32,
}

impl Round {
    /// The context for the provider; none when there is nothing in it.
    pub(super) fn context(&self) -> Option<pb::InputContext> {
        let i = &self.input;
        (!(i.client_capabilities.is_empty() && i.responses.is_empty() && i.state.is_empty()))
            .then(|| i.clone())
    }

    /// Whether the answer may depend on the client's input.
    pub(super) fn answered(&self) -> bool {
        self.number > 0
    }
}

/// The capability (a ClientCapabilities key path) a request needs.
fn needs(
    method: &str,
    params: &Map<String, Value>,
) -> Option<(&'static str, Option<&'static str>)> {
    match method {
        "elicitation/create" => Some((
            "elicitation",
            Some(
                if params.get("mode").and_then(Value::as_str) == Some("url") {
                    "url"
                } else {
                    "form"
                },
            ),
        )),
        "sampling/createMessage" => Some(("sampling", None)),
        "roots/list" => Some(("roots", None)),
        _ => None,
    }
}

/// Whether `caps` (the client's ClientCapabilities) has `cap`, and `sub`
/// under it. Form elicitation is also declared by an empty `elicitation`.
fn declared(caps: &Value, cap: &str, sub: Option<&str>) -> bool {
    let Some(c) = caps.get(cap).filter(|c| c.is_object()) else {
        return false;
    };
    match sub {
        None => true,
        Some("form") => c.as_object().is_some_and(|o| o.is_empty()) || c.get("form").is_some(),
        Some(s) => c.get(s).is_some(),
    }
}

/// Checks what `provider` asked, against what the client declared.
pub(super) fn check(
    provider: &str,
    asked: pb::InputRequired,
    client_capabilities: &[u8],
) -> Result<Asks, GatewayError> {
    let bad = |detail: String| GatewayError::BadProviderResponse {
        provider: provider.to_string(),
        detail: format!("input_required: {detail}"),
    };
    if asked.requests.len() > MAX_REQUESTS {
        return Err(bad(format!(
            "{} requests, at most {MAX_REQUESTS}",
            asked.requests.len()
        )));
    }
    if asked.requests.is_empty() && asked.state.is_empty() {
        return Err(bad("neither requests nor state".into()));
    }
    if asked.state.len() > MAX_STATE {
        return Err(bad(format!(
            "state is {} bytes, at most {MAX_STATE}",
            asked.state.len()
        )));
    }
    let caps: Value = serde_json::from_slice(client_capabilities).unwrap_or(Value::Null);
    let mut missing = Map::new();
    let mut requests = Vec::with_capacity(asked.requests.len());
    for (id, r) in asked.requests {
        if id.is_empty() || id.len() > MAX_ID {
            return Err(bad(format!("request id {id:?} must be 1-{MAX_ID} bytes")));
        }
        let params = match r.params.is_empty() {
            true => Map::new(),
            false => match serde_json::from_slice(&r.params) {
                Ok(Value::Object(m)) => m,
                _ => return Err(bad(format!("requests[{id}].params is not a JSON object"))),
            },
        };
        let Some((cap, sub)) = needs(&r.method, &params) else {
            return Err(bad(format!(
                "requests[{id}].method {:?} is not elicitation/create, sampling/createMessage or roots/list",
                r.method
            )));
        };
        if !declared(&caps, cap, sub) {
            let entry = missing.entry(cap).or_insert_with(|| json!({}));
            if let Some(s) = sub.filter(|s| *s == "url") {
                entry[s] = json!({});
            }
        }
        requests.push((id, r.method, params));
    }
    if !missing.is_empty() {
        return Err(GatewayError::MissingClientCapability {
            required: Value::Object(missing),
        });
    }
    requests.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Asks {
        requests,
        state: asked.state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(method: &str, params: Value) -> pb::InputRequired {
        pb::InputRequired {
            requests: [(
                "q".to_string(),
                pb::InputRequest {
                    method: method.into(),
                    params: serde_json::to_vec(&params).unwrap(),
                },
            )]
            .into(),
            state: Vec::new(),
        }
    }

    #[test]
    fn a_request_needs_the_capability_the_client_declared() {
        let caps = br#"{"elicitation":{},"roots":{}}"#;
        assert!(
            check(
                "p",
                ask("elicitation/create", json!({"message": "?"})),
                caps
            )
            .is_ok()
        );
        assert!(check("p", ask("roots/list", json!({})), caps).is_ok());
        let e = check("p", ask("sampling/createMessage", json!({})), caps).unwrap_err();
        let GatewayError::MissingClientCapability { required } = &e else {
            panic!("{e}")
        };
        assert_eq!(required, &json!({"sampling": {}}));
        assert_eq!(e.to_mcp("c").code.0, -32021);
        let url = ask("elicitation/create", json!({"mode": "url"}));
        let e = check("p", url, caps).unwrap_err();
        assert!(e.to_string().contains("elicitation"), "{e}");
        assert!(check("p", ask("elicitation/create", json!({})), b"").is_err());
    }

    #[test]
    fn only_the_three_methods_and_object_params() {
        let e = check("p", ask("ping", json!({})), b"{}").unwrap_err();
        assert!(e.to_string().contains("\"ping\""), "{e}");
        let mut r = ask("roots/list", json!({}));
        r.requests.get_mut("q").unwrap().params = b"[1]".to_vec();
        assert!(check("p", r, br#"{"roots":{}}"#).is_err());
    }
}
