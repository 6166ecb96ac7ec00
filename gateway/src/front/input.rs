//! Rounds of client input (MRTR) for `tools/call`, `prompts/get` and
//! `resources/read`, the same provider contract on both revisions:
//! - 2026-07-28: the provider's questions go back to the client as an
//!   `InputRequiredResult` with a sealed `requestState`; the client's retry
//!   carries `inputResponses` and that state, which is opened and checked
//!   before the provider sees either.
//! - 2025-11-25: the gateway asks the client itself, on the request's own
//!   stream, waits for the answers, and calls the provider again.
//!
//! Either way the rounds are bounded by `input.max_rounds`.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use mcp_gateway_proto::provider as pb;
use rmcp::model::{InputRequest, InputRequests, InputRequiredResult};
use serde_json::{Map, Value, json};

use super::engine::{Call, Exchange};
use super::session::Session;
use crate::pipeline::dispatch::{Answered, Asks, RequestCx, Round};
use crate::pipeline::error::GatewayError;
use crate::security::seal::{Binding, Sealed, Sealer};

/// What a request ends with.
pub(crate) enum Outcome<T> {
    Done(T),
    /// 2026-07-28: questions for the client, and the state to send back.
    InputRequired(InputRequiredResult),
}

pub(crate) struct Input {
    sealer: Arc<Sealer>,
    max_rounds: u32,
}

impl Input {
    pub(crate) fn new(sealer: Arc<Sealer>, max_rounds: u32) -> Self {
        Self { sealer, max_rounds }
    }

    /// Runs `attempt` for each round until the provider answers (or, on
    /// 2026-07-28, until it asks). `method` and `item` name the request,
    /// `provider` the item's provider (for the seal's binding).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        x: &Exchange,
        cx: &RequestCx,
        call: &mut Call,
        capabilities: Vec<u8>,
        (method, item): (&'static str, &str),
        provider: impl Fn() -> String,
        mut attempt: F,
    ) -> Result<Outcome<T>, GatewayError>
    where
        F: FnMut(Round) -> Fut,
        Fut: Future<Output = Result<Answered<T>, GatewayError>>,
    {
        let bind = || Binding {
            method: method.to_string(),
            item: item.to_string(),
            provider: provider(),
            principal: cx.caller.principal.clone(),
        };
        let mut round = match &x.session {
            Some(s) => Round {
                input: pb::InputContext {
                    client_capabilities: s.outbound.capabilities().to_vec(),
                    ..Default::default()
                },
                number: 0,
            },
            None => self.retried(call, capabilities, &bind)?,
        };
        loop {
            let number = round.number;
            // Kept for the next round only where there can be one.
            let caps = match &x.session {
                Some(_) => round.input.client_capabilities.clone(),
                None => Vec::new(),
            };
            let asks = match attempt(round).await? {
                Answered::Done(t) => return Ok(Outcome::Done(t)),
                Answered::Asks(asks) => asks,
            };
            if number >= self.max_rounds {
                return Err(GatewayError::TooManyRounds(self.max_rounds));
            }
            let Some(session) = &x.session else {
                return Ok(Outcome::InputRequired(self.seal(asks, bind(), number + 1)));
            };
            if asks.requests.is_empty() {
                return Err(GatewayError::BadProviderResponse {
                    provider: provider(),
                    detail: "input_required with no requests".into(),
                });
            }
            let responses = ask(session, x, cx, &asks).await?;
            round = Round {
                input: pb::InputContext {
                    client_capabilities: caps,
                    responses,
                    state: asks.state,
                },
                number: number + 1,
            };
        }
    }

    /// The round a 2026-07-28 request is: the first, or a retry with a
    /// sealed state and the answers to what that round asked.
    fn retried(
        &self,
        call: &mut Call,
        capabilities: Vec<u8>,
        bind: &impl Fn() -> Binding,
    ) -> Result<Round, GatewayError> {
        let state = call.params.remove("requestState");
        let answers = call.params.remove("inputResponses");
        let token = match state {
            None | Some(Value::Null) => {
                // Answers without a state answer nothing the gateway asked.
                return Ok(Round {
                    input: pb::InputContext {
                        client_capabilities: capabilities,
                        ..Default::default()
                    },
                    number: 0,
                });
            }
            Some(Value::String(t)) => t,
            Some(_) => {
                return Err(GatewayError::InvalidParams(
                    "requestState must be a string".into(),
                ));
            }
        };
        let opened = self.sealer.open(&token, &bind())?;
        let answers = match answers {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(GatewayError::InvalidParams(
                    "inputResponses must be an object".into(),
                ));
            }
        };
        let mut responses = HashMap::new();
        for key in opened.asked {
            match answers.get(&key) {
                None => {}
                Some(v @ Value::Object(_)) => {
                    responses.insert(key, serde_json::to_vec(v).unwrap_or_default());
                }
                Some(_) => {
                    return Err(GatewayError::InvalidParams(format!(
                        "inputResponses.{key} must be an object (the result of the request)"
                    )));
                }
            }
        }
        Ok(Round {
            input: pb::InputContext {
                client_capabilities: capabilities,
                responses,
                state: opened.state,
            },
            number: opened.round,
        })
    }

    fn seal(&self, asks: Asks, binding: Binding, round: u32) -> InputRequiredResult {
        let mut requests = InputRequests::new();
        let mut asked = Vec::with_capacity(asks.requests.len());
        for (id, method, params) in asks.requests {
            let r = json!({"method": method, "params": params});
            match serde_json::from_value::<InputRequest>(r) {
                Ok(r) => {
                    requests.insert(id.clone(), r);
                    asked.push(id);
                }
                Err(e) => tracing::warn!(id, method, error = %e, "input request dropped"),
            }
        }
        let token = self.sealer.seal(Sealed {
            binding,
            round,
            asked,
            state: asks.state,
        });
        InputRequiredResult::new((!requests.is_empty()).then_some(requests), Some(token))
    }
}

/// The client capabilities a 2026-07-28 request's `_meta` declares.
pub(crate) fn take_capabilities(call: &mut Call) -> Vec<u8> {
    call.meta
        .as_mut()
        .map(|m| std::mem::take(&mut m.client_capabilities))
        .unwrap_or_default()
}

/// Asks a 2025-11-25 client, on this request's stream, and waits for every
/// answer (or the request's end, or the session's).
async fn ask(
    session: &Session,
    x: &Exchange,
    cx: &RequestCx,
    asks: &Asks,
) -> Result<HashMap<String, Vec<u8>>, GatewayError> {
    let Some(early) = &x.early else {
        return Err(GatewayError::ClientInput {
            method: "input".into(),
            message: "this request has no stream to ask the client on".into(),
        });
    };
    let mut waiting = Vec::with_capacity(asks.requests.len());
    for (key, method, params) in &asks.requests {
        let w = session
            .outbound
            .open()
            .ok_or_else(|| GatewayError::ClientInput {
                method: method.clone(),
                message: "too many requests to this client are open".into(),
            })?;
        let request = json!({"jsonrpc": "2.0", "id": w.id, "method": method, "params": params});
        let bytes = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
        if early.send(bytes).await.is_err() {
            return Err(GatewayError::Cancelled);
        }
        waiting.push((key, method, w));
    }
    let mut responses = HashMap::with_capacity(waiting.len());
    for (key, method, mut w) in waiting {
        let answer = tokio::select! {
            a = &mut w.rx => a.map_err(|_| GatewayError::Cancelled)?,
            _ = cx.cancel.cancelled() => return Err(GatewayError::Cancelled),
            _ = session.ended.cancelled() => return Err(GatewayError::Cancelled),
        };
        match answer {
            Ok(result) => {
                responses.insert(key.clone(), serde_json::to_vec(&result).unwrap_or_default());
            }
            Err(error) => {
                return Err(GatewayError::ClientInput {
                    method: method.clone(),
                    message: error["message"]
                        .as_str()
                        .unwrap_or("no message")
                        .to_string(),
                });
            }
        }
    }
    Ok(responses)
}
