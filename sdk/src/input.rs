//! Asking the client for input in the middle of a call (MCP elicitation,
//! sampling and roots, as multi round-trip requests).
//!
//! Two ways to write it:
//! * Hidden rounds: `ctx.elicit(..).await?`, `ctx.sample(..).await?`,
//!   `ctx.roots().await?` return the client's answer. Behind them the
//!   handler runs again from the start for each answer, with the earlier
//!   answers replayed, so ask in the same order every time and keep side
//!   effects after the questions. Nothing is held between rounds, so this
//!   works across provider replicas too.
//! * Explicit: return `Err(InputRequired::new().ask(..).state(..).into())`
//!   and read [`Context::input_response`] and [`Context::request_state`]
//!   on the next round. Several questions can go in one round.

use std::collections::BTreeMap;

use mcp_gateway_proto::provider as pb;
use serde_json::{Value, json};

use crate::ToolError;

/// One request to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    method: &'static str,
    params: Value,
}

impl Ask {
    /// `elicitation/create` in form mode: `schema` is the requested schema
    /// (a flat JSON Schema object of primitive properties).
    pub fn elicit(message: impl Into<String>, schema: Value) -> Self {
        Self {
            method: "elicitation/create",
            params: json!({"message": message.into(), "requestedSchema": schema}),
        }
    }

    /// `elicitation/create` in URL mode: the user is sent to `url`.
    pub fn elicit_url(
        message: impl Into<String>,
        url: impl Into<String>,
        elicitation_id: impl Into<String>,
    ) -> Self {
        Self {
            method: "elicitation/create",
            params: json!({
                "mode": "url",
                "message": message.into(),
                "url": url.into(),
                "elicitationId": elicitation_id.into(),
            }),
        }
    }

    /// `sampling/createMessage` of one user text message.
    pub fn sample(prompt: impl Into<String>, max_tokens: u32) -> Self {
        Self::sample_with(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt.into()}}],
            "maxTokens": max_tokens,
        }))
    }

    /// `sampling/createMessage` with any params (messages, system prompt,
    /// model preferences...).
    pub fn sample_with(params: Value) -> Self {
        Self {
            method: "sampling/createMessage",
            params,
        }
    }

    /// `roots/list`.
    pub fn roots() -> Self {
        Self {
            method: "roots/list",
            params: json!({}),
        }
    }

    pub fn method(&self) -> &str {
        self.method
    }

    fn into_proto(self) -> pb::InputRequest {
        pb::InputRequest {
            method: self.method.to_string(),
            params: serde_json::to_vec(&self.params).unwrap_or_default(),
        }
    }
}

/// Questions for the client instead of an answer, and the state to get back
/// with the answers (the gateway seals it; the client cannot read it).
#[derive(Debug, Clone, Default)]
pub struct InputRequired {
    requests: BTreeMap<String, Ask>,
    state: Vec<u8>,
}

impl InputRequired {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a request under `key`; its answer comes back under that key.
    pub fn ask(mut self, key: impl Into<String>, ask: Ask) -> Self {
        self.requests.insert(key.into(), ask);
        self
    }

    /// The state for the next round (at most 64 KiB).
    pub fn state(mut self, state: impl Into<Vec<u8>>) -> Self {
        self.state = state.into();
        self
    }

    pub(crate) fn into_proto(self) -> pb::InputRequired {
        pb::InputRequired {
            requests: self
                .requests
                .into_iter()
                .map(|(k, a)| (k, a.into_proto()))
                .collect(),
            state: self.state,
        }
    }
}

impl From<InputRequired> for ToolError {
    fn from(i: InputRequired) -> Self {
        ToolError(crate::error::Kind::Input(i.into_proto()))
    }
}

/// The user's answer to an elicitation.
#[derive(Debug, Clone, PartialEq)]
pub struct Elicited {
    /// `accept`, `decline` or `cancel`.
    pub action: String,
    /// What the user entered, when they accepted.
    pub content: Option<Value>,
}

impl Elicited {
    pub fn accepted(&self) -> bool {
        self.action == "accept"
    }

    pub(crate) fn from_json(v: &Value) -> Self {
        Self {
            action: v["action"].as_str().unwrap_or("cancel").to_string(),
            content: v.get("content").filter(|c| c.is_object()).cloned(),
        }
    }
}

/// A model's answer to a sampling request.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// The text of the answer, if it is text.
    pub text: Option<String>,
    pub model: Option<String>,
    /// The whole `CreateMessageResult`.
    pub raw: Value,
}

impl Sampled {
    pub(crate) fn from_json(v: Value) -> Self {
        let content = &v["content"];
        // One block, or (2025-11-25 tools in sampling) a list of them.
        let block = if content.is_array() {
            &content[0]
        } else {
            content
        };
        Self {
            text: block["text"].as_str().map(str::to_string),
            model: v["model"].as_str().map(str::to_string),
            raw: v,
        }
    }
}

/// A root the client shares (`file://` URIs).
#[derive(Debug, Clone, PartialEq)]
pub struct Root {
    pub uri: String,
    pub name: Option<String>,
}

impl Root {
    pub(crate) fn list_from_json(v: &Value) -> Vec<Root> {
        v["roots"]
            .as_array()
            .map(|roots| {
                roots
                    .iter()
                    .filter_map(|r| {
                        Some(Root {
                            uri: r["uri"].as_str()?.to_string(),
                            name: r["name"].as_str().map(str::to_string),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The state hidden rounds carry: a marker, then the answers so far.
const HIDDEN: &[u8] = b"\0mcp-sdk-rounds/1\0";

/// The answers a call has so far (hidden rounds).
#[derive(Debug, Default)]
pub(crate) struct Answers {
    pub capabilities: Value,
    pub responses: BTreeMap<String, Value>,
    pub state: Vec<u8>,
    /// Earlier rounds' answers (from the state) and this round's.
    known: serde_json::Map<String, Value>,
    next: std::sync::atomic::AtomicUsize,
}

impl Answers {
    pub(crate) fn new(input: Option<pb::InputContext>) -> Self {
        let input = input.unwrap_or_default();
        let capabilities =
            serde_json::from_slice(&input.client_capabilities).unwrap_or(Value::Null);
        let responses: BTreeMap<String, Value> = input
            .responses
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
            .collect();
        let mut known: serde_json::Map<String, Value> = input
            .state
            .strip_prefix(HIDDEN)
            .and_then(|s| serde_json::from_slice(s).ok())
            .unwrap_or_default();
        for (k, v) in &responses {
            known.insert(k.clone(), v.clone());
        }
        Self {
            capabilities,
            responses,
            state: input.state,
            known,
            next: Default::default(),
        }
    }

    /// The next automatic key for `kind`.
    pub(crate) fn key(&self, kind: &str) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{kind}-{n}")
    }

    /// The answer to `key`, or the round that asks for it.
    pub(crate) fn get(&self, key: &str, ask: Ask) -> Result<Value, ToolError> {
        if let Some(v) = self.known.get(key) {
            return Ok(v.clone());
        }
        let mut state = HIDDEN.to_vec();
        state.extend(serde_json::to_vec(&self.known).unwrap_or_default());
        Err(InputRequired::new().ask(key, ask).state(state).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(responses: &[(&str, Value)], state: Vec<u8>) -> Answers {
        Answers::new(Some(pb::InputContext {
            client_capabilities: br#"{"elicitation":{}}"#.to_vec(),
            responses: responses
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::to_vec(v).unwrap()))
                .collect(),
            state,
        }))
    }

    fn asked(e: ToolError) -> pb::InputRequired {
        match e.0 {
            crate::error::Kind::Input(i) => i,
            _ => panic!("not input required"),
        }
    }

    #[test]
    fn hidden_rounds_replay_earlier_answers() {
        let r1 = round(&[], Vec::new());
        let key = r1.key("elicit");
        let first = asked(r1.get(&key, Ask::elicit("name?", json!({}))).unwrap_err());
        assert_eq!(first.requests["elicit-0"].method, "elicitation/create");
        // Round 2: the first answer; the second question is asked.
        let r2 = round(&[("elicit-0", json!({"action": "accept"}))], first.state);
        let a = r2
            .get(&r2.key("elicit"), Ask::elicit("name?", json!({})))
            .unwrap();
        assert_eq!(a["action"], "accept");
        let second = asked(r2.get(&r2.key("elicit"), Ask::roots()).unwrap_err());
        assert!(second.requests.contains_key("elicit-1"));
        // Round 3: both answers, the first from the state.
        let r3 = round(&[("elicit-1", json!({"roots": []}))], second.state);
        assert!(r3.get(&r3.key("elicit"), Ask::roots()).is_ok());
        assert!(r3.get(&r3.key("elicit"), Ask::roots()).is_ok());
        assert_eq!(r3.capabilities["elicitation"], json!({}));
    }
}
