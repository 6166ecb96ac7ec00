//! Requests the gateway sends a 2025-11-25 client (elicitation, sampling,
//! roots) and the answers it waits for: what the client declared it can
//! answer, and the requests still open, by the ids the gateway gave them.

use std::{
    collections::HashMap,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use serde_json::{Value, value::RawValue};
use tokio::sync::oneshot;

/// A client's answer: its result, or its error object.
pub(crate) type ClientAnswer = Result<Value, Value>;

/// Requests to one client still open at most; past it, new ones fail.
const MAX_OPEN: usize = 256;

#[derive(Default)]
pub(crate) struct Outbound {
    /// `initialize` params.capabilities, as sent; `None` for `{}` or none.
    capabilities: OnceLock<Option<Vec<u8>>>,
    /// Whether they name anything the gateway may ask.
    can_answer: std::sync::atomic::AtomicBool,
    open: Mutex<HashMap<String, oneshot::Sender<ClientAnswer>>>,
    next: AtomicU64,
}

/// An open request: its answer, or nothing if the session ends first.
/// Dropping it forgets the request.
pub(crate) struct Waiting<'a> {
    outbound: &'a Outbound,
    pub id: String,
    pub rx: oneshot::Receiver<ClientAnswer>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.outbound.open.lock().expect("open").remove(&self.id);
    }
}

impl Outbound {
    pub(crate) fn set_capabilities(&self, caps: Option<&Value>) {
        let declared = caps
            .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
            .and_then(|c| serde_json::to_vec(c).ok());
        let answers = caps.is_some_and(|c| {
            ["elicitation", "sampling", "roots"]
                .iter()
                .any(|k| c.get(k).is_some_and(Value::is_object))
        });
        if self.capabilities.set(declared).is_ok() {
            self.can_answer.store(answers, Ordering::Relaxed);
        }
    }

    /// The client's capabilities as JSON; empty when it declared none.
    pub(crate) fn capabilities(&self) -> &[u8] {
        self.capabilities
            .get()
            .and_then(Option::as_deref)
            .unwrap_or_default()
    }

    /// Whether the client can answer any request the gateway may send.
    pub(crate) fn can_answer(&self) -> bool {
        self.can_answer.load(Ordering::Relaxed)
    }

    /// A new request id, waiting for its answer; `None` past the cap.
    pub(crate) fn open(&self) -> Option<Waiting<'_>> {
        let (tx, rx) = oneshot::channel();
        let id = format!("mcp-gateway-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let mut open = self.open.lock().expect("open");
        if open.len() >= MAX_OPEN {
            return None;
        }
        open.insert(id.clone(), tx);
        Some(Waiting {
            outbound: self,
            id,
            rx,
        })
    }

    /// Delivers a client's answer; false if no request has that id.
    pub(crate) fn answer(&self, id: &RawValue, answer: Result<&RawValue, &RawValue>) -> bool {
        let Ok(id) = serde_json::from_str::<String>(id.get()) else {
            return false;
        };
        let Some(tx) = self.open.lock().expect("open").remove(&id) else {
            return false;
        };
        let parse = |r: &RawValue| serde_json::from_str(r.get()).unwrap_or(Value::Null);
        tx.send(answer.map(parse).map_err(parse)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reaches_the_request_with_its_id_once() {
        let o = Outbound::default();
        o.set_capabilities(Some(&serde_json::json!({"elicitation": {}})));
        assert!(o.can_answer());
        let mut w = o.open().unwrap();
        let id = RawValue::from_string(format!("\"{}\"", w.id)).unwrap();
        let result = RawValue::from_string("{\"action\":\"accept\"}".into()).unwrap();
        assert!(o.answer(&id, Ok(&result)));
        assert!(!o.answer(&id, Ok(&result)), "answered already");
        assert_eq!(w.rx.try_recv().unwrap().unwrap()["action"], "accept");
        let other = RawValue::from_string("\"nope\"".into()).unwrap();
        assert!(!o.answer(&other, Ok(&result)));
    }

    #[test]
    fn no_capabilities_means_nothing_to_ask() {
        let o = Outbound::default();
        o.set_capabilities(Some(&serde_json::json!({})));
        assert!(!o.can_answer());
        assert!(o.capabilities().is_empty());
    }
}
