//! The JSON-RPC framing check every front door applies to a message before
//! the MCP layer decodes it, so that malformed input gets the answer
//! JSON-RPC 2.0 prescribes instead of whatever a decoder falls back to:
//! - not JSON, not UTF-8, or nested too deep: `-32700` (parse error);
//! - JSON that is not one request object (a batch, `"jsonrpc": "1.0"`,
//!   `id: null`, no `method`): `-32600` (invalid request);
//! - a known method whose params have the wrong shape: `-32602` naming the
//!   field and the rule, with the request's id.
//!
//! Responses from the client (to a server request) pass untouched.

use std::fmt;

use serde::{
    Deserialize,
    de::{Error as _, IgnoredAny, MapAccess, Visitor},
};
use serde_json::{Value, json, value::RawValue};

use super::params::Params;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Rejection {
    #[error("parse error: {0}")]
    Parse(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("invalid params for {method}: {rule}")]
    Params {
        id: Value,
        method: String,
        rule: String,
    },
}

impl Rejection {
    pub(crate) fn code(&self) -> i32 {
        match self {
            Rejection::Parse(_) => -32700,
            Rejection::Invalid(_) => -32600,
            Rejection::Params { .. } => -32602,
        }
    }

    /// Whether the transport refuses the message itself (HTTP 400), rather
    /// than answering a well-formed request with an error.
    pub(crate) fn is_framing(&self) -> bool {
        !matches!(self, Rejection::Params { .. })
    }

    /// The JSON-RPC error response.
    pub(crate) fn to_json(&self) -> Value {
        let id = match self {
            Rejection::Params { id, .. } => id.clone(),
            _ => Value::Null,
        };
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": self.code(), "message": self.to_string()}})
    }
}

/// The members of a message, read in one pass.
#[derive(Default)]
struct Envelope<'a> {
    jsonrpc: Option<&'a RawValue>,
    /// `Some` for `"id": null` too.
    id: Option<&'a RawValue>,
    method: Option<&'a RawValue>,
    params: Option<ParamsIn<'a>>,
    result: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
}

/// A request's params are read as they are met when `id` and `method` came
/// first (as every client writes them), and kept as text otherwise: a
/// notification's, or ones that came first.
enum ParamsIn<'a> {
    Read(Option<Params<'a>>),
    Raw(&'a RawValue),
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                let mut e = Envelope::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let twice = |name| A::Error::custom(format_args!("duplicate field `{name}`"));
                    match key {
                        Key::Jsonrpc if e.jsonrpc.is_some() => return Err(twice("jsonrpc")),
                        Key::Jsonrpc => e.jsonrpc = map.next_value()?,
                        Key::Id if e.id.is_some() => return Err(twice("id")),
                        Key::Id => e.id = Some(map.next_value()?),
                        Key::Method if e.method.is_some() => return Err(twice("method")),
                        Key::Method => e.method = map.next_value()?,
                        Key::Params if e.params.is_some() => return Err(twice("params")),
                        Key::Params if e.id.is_some() && e.method.is_some() => {
                            e.params = Some(ParamsIn::Read(map.next_value::<Object>()?.0));
                        }
                        Key::Params => e.params = Some(ParamsIn::Raw(map.next_value()?)),
                        // `null` counts as absent, as for the members above.
                        Key::Result => e.result = map.next_value()?,
                        Key::Error => e.error = map.next_value()?,
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(e)
            }
        }
        d.deserialize_map(Members)
    }
}

enum Key {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "jsonrpc" => Key::Jsonrpc,
                    "id" => Key::Id,
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(Name)
    }
}

/// Params read as [`Params`] if they are an object, skipped otherwise.
struct Object<'a>(Option<Params<'a>>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("params")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<'de>, A::Error> {
                Params::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|p| Object(Some(p)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Object<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Object(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Object<'de>, E> {
                Ok(Object(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Object<'de>, E> {
                Ok(Object(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Object<'de>, E> {
                Ok(Object(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Object<'de>, E> {
                Ok(Object(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Object<'de>, E> {
                Ok(Object(None))
            }
            fn visit_unit<E>(self) -> Result<Object<'de>, E> {
                Ok(Object(None))
            }
        }
        d.deserialize_any(Any)
    }
}

/// One well-formed message, borrowing from the bytes it came in.
#[derive(Debug)]
pub(crate) enum Message<'a> {
    Request(Request<'a>),
    Notification {
        method: String,
        params: Option<&'a RawValue>,
    },
    /// A client's answer to a server request: its result, or its error.
    Response {
        id: &'a RawValue,
        answer: Result<&'a RawValue, &'a RawValue>,
    },
}

#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// As sent: echoed back verbatim.
    pub id: &'a RawValue,
    pub method: String,
    /// `None` when absent or not an object.
    pub params: Option<Params<'a>>,
}

/// Checks one message (an HTTP body or a stdio line). `per_request`: the
/// transport already knows it is a 2026-07-28 request (an HTTP header).
#[cfg(test)]
pub(crate) fn check(message: &[u8], per_request: bool) -> Result<(), Rejection> {
    decode(message, per_request).map(drop)
}

/// [`check`], keeping what was read.
pub(crate) fn decode(message: &[u8], per_request: bool) -> Result<Message<'_>, Rejection> {
    let text = std::str::from_utf8(message)
        .map_err(|e| Rejection::Parse(format!("the message is not UTF-8 ({e})")))?;
    // Fewer brackets than the limit cannot nest past it: the exact scan
    // (a branch per byte) only runs for messages that might.
    let brackets = text.bytes().filter(|&b| b == b'[' || b == b'{').count();
    if brackets > MAX_DEPTH && nesting(text) > MAX_DEPTH {
        return Err(Rejection::Parse(format!(
            "the message is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    match text.trim_start().as_bytes().first() {
        Some(b'{') => {}
        Some(b'[') => {
            // Well-formed or not, a batch is refused (gone since 2025-06-18).
            serde_json::from_str::<&RawValue>(text).map_err(parse_error)?;
            return Err(Rejection::Invalid("batches are not supported".into()));
        }
        _ => {
            serde_json::from_str::<&RawValue>(text).map_err(parse_error)?;
            return Err(Rejection::Invalid("a message must be a JSON object".into()));
        }
    }
    let env: Envelope = serde_json::from_str(text).map_err(parse_error)?;
    if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Err(Rejection::Invalid("`jsonrpc` must be \"2.0\"".into()));
    }
    let id = match env.id {
        None => None,
        Some(raw) => {
            let first = raw.get().as_bytes().first();
            let integer = || {
                let v: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                v.is_i64() || v.is_u64()
            };
            if !(first == Some(&b'"') || integer()) {
                return Err(Rejection::Invalid(
                    "`id` must be a string or an integer".into(),
                ));
            }
            Some(raw)
        }
    };
    let Some(method) = env.method else {
        if let Some(id) = id {
            match (env.result, env.error) {
                (Some(r), _) => return Ok(Message::Response { id, answer: Ok(r) }),
                (None, Some(e)) => return Ok(Message::Response { id, answer: Err(e) }),
                _ => {}
            }
        }
        return Err(Rejection::Invalid("`method` is missing".into()));
    };
    let method: String = serde_json::from_str(method.get())
        .map_err(|_| Rejection::Invalid("`method` must be a string".into()))?;
    let Some(id) = id else {
        // Notifications get no answer, so no params check. Their params
        // were kept as text: the id came after them, or never.
        let params = match env.params {
            Some(ParamsIn::Raw(raw)) => Some(raw),
            _ => None,
        };
        return Ok(Message::Notification { method, params });
    };
    let params = match env.params {
        None => None,
        Some(ParamsIn::Read(p)) => p,
        Some(ParamsIn::Raw(raw)) => Params::read(raw),
    };
    match check_params(&method, params.as_ref(), per_request) {
        Ok(()) => Ok(Message::Request(Request { id, method, params })),
        Err(rule) => Err(Rejection::Params {
            id: serde_json::from_str(id.get()).unwrap_or(Value::Null),
            method,
            rule,
        }),
    }
}

/// Well below serde_json's own limit (128), which the MCP layer's decoder
/// would otherwise hit with an answer of its own.
const MAX_DEPTH: usize = 100;

/// The deepest `[`/`{` nesting outside strings.
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn parse_error(e: serde_json::Error) -> Rejection {
    Rejection::Parse(e.to_string())
}

/// Methods of 2025-11-25 that 2026-07-28 does not have: there they are
/// unknown (`-32601`, the MCP layer's answer) whatever their params.
const SESSION_ONLY: [&str; 3] = [
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// The shape of the params of the methods the gateway serves.
fn check_params(method: &str, params: Option<&Params>, per_request: bool) -> Result<(), String> {
    let fields: &[(&str, Field)] = match method {
        "tools/call" => &[("name", Field::String), ("arguments", Field::OptObject)],
        "prompts/get" => &[("name", Field::String), ("arguments", Field::OptStrings)],
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            &[("uri", Field::String)]
        }
        "logging/setLevel" => &[("level", Field::Level)],
        _ => return Ok(()),
    };
    let stateless = per_request
        || params
            .and_then(|p| p.meta.as_ref())
            .is_some_and(|m| m.version.is_some());
    if stateless && SESSION_ONLY.contains(&method) {
        return Ok(());
    }
    let Some(params) = params else {
        return Err("`params` must be an object".into());
    };
    for (name, field) in fields {
        field.check(name, params.fields.get(*name))?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Field {
    String,
    OptObject,
    OptStrings,
    Level,
}

const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

impl Field {
    fn check(self, name: &str, v: Option<&Value>) -> Result<(), String> {
        match (self, v) {
            (Field::String, Some(Value::String(_))) => Ok(()),
            (Field::String, None) => Err(format!("`{name}` is required")),
            (Field::String, Some(_)) => Err(format!("`{name}` must be a string")),
            (Field::OptObject, None | Some(Value::Null | Value::Object(_))) => Ok(()),
            (Field::OptObject, Some(_)) => Err(format!("`{name}` must be an object")),
            (Field::OptStrings, None | Some(Value::Null)) => Ok(()),
            (Field::OptStrings, Some(Value::Object(m))) => {
                match m.iter().find(|(_, v)| !v.is_string()) {
                    None => Ok(()),
                    Some((k, _)) => Err(format!("`{name}.{k}` must be a string")),
                }
            }
            (Field::OptStrings, Some(_)) => Err(format!("`{name}` must be an object of strings")),
            (Field::Level, Some(Value::String(l))) if LEVELS.contains(&l.as_str()) => Ok(()),
            (Field::Level, None) => Err(format!("`{name}` is required")),
            (Field::Level, Some(_)) => {
                Err(format!("`{name}` must be one of {}", LEVELS.join(", ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(msg: &str) -> Option<i32> {
        check(msg.as_bytes(), false).err().map(|r| r.code())
    }

    fn check(msg: &[u8], per_request: bool) -> Result<(), Rejection> {
        super::check(msg, per_request)
    }

    #[test]
    fn session_only_methods_are_left_alone_in_2026_07_28() {
        let bad_level =
            r#"{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":7}}"#;
        assert_eq!(code(bad_level), Some(-32602));
        assert_eq!(check(bad_level.as_bytes(), true), Ok(()));
        let meta = r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert_eq!(code(meta), None);
        // Methods both revisions have are still checked.
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#;
        assert_eq!(check(call.as_bytes(), true).unwrap_err().code(), -32602);
    }

    #[test]
    fn well_formed_messages_pass() {
        for ok in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","arguments":{"a":[1]}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x/unknown","params":[1]}"#,
            r#" {"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}"#,
        ] {
            assert_eq!(check(ok.as_bytes(), false), Ok(()), "{ok}");
        }
    }

    #[test]
    fn members_in_any_order_are_read_alike() {
        // Params before the method are kept as text and read afterwards.
        for msg in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}"#,
            r#"{"params":{"name":1},"method":"tools/call","jsonrpc":"2.0","id":1}"#,
        ] {
            assert_eq!(code(msg), Some(-32602), "{msg}");
        }
        let read = |msg: &str| match decode(msg.as_bytes(), false).unwrap() {
            Message::Request(r) => r.params.unwrap().fields["name"].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            read(r#"{"params":{"name":"e"},"id":1,"jsonrpc":"2.0","method":"tools/call"}"#),
            json!("e")
        );
        // An escaped member name is the name it spells.
        assert_eq!(
            read(r#"{"jsonrpc":"2.0","\u0069d":1,"method":"tools/call","params":{"name":"e"}}"#),
            json!("e")
        );
        // A notification keeps its params as sent.
        match decode(
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#,
            false,
        ) {
            Ok(Message::Notification {
                params: Some(p), ..
            }) => assert_eq!(p.get(), r#"{"requestId":7}"#),
            other => panic!("{other:?}"),
        }
        // A member twice is malformed; a `null` result is no result.
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#),
            Some(-32700)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"result":null}"#),
            Some(-32600)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1,{"a":2}]}"#),
            None
        );
    }

    #[test]
    fn unparseable_input_is_a_parse_error() {
        assert_eq!(code("{bad"), Some(-32700));
        assert_eq!(
            check(b"{\"jsonrpc\":\"2.0\xff\"}", false)
                .unwrap_err()
                .code(),
            -32700
        );
        let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        // Many brackets, but shallow: the exact scan runs and lets it pass.
        let wide = format!("[{}[]]", "[],".repeat(150));
        assert_eq!(
            code(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"a":{wide}}}}}"#
            )),
            None
        );
        assert_eq!(
            nesting(r#"{"a":"[[[{{","b":[{}]}"#),
            3,
            "brackets in strings do not count"
        );
        assert_eq!(nesting(r#"{"a":"\"[[","b":1}"#), 1, "escaped quotes");
        assert_eq!(
            code(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{deep}}}"#
            )),
            Some(-32700)
        );
    }

    #[test]
    fn json_that_is_not_one_request_is_invalid() {
        for bad in [
            "[]",
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            "3",
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
        ] {
            assert_eq!(code(bad), Some(-32600), "{bad}");
        }
    }

    #[test]
    fn mistyped_params_of_known_methods_name_the_field() {
        let rule = |msg: &str| match check(msg.as_bytes(), false) {
            Err(Rejection::Params { id, method, rule }) => (id, method, rule),
            other => panic!("{msg}: {other:?}"),
        };
        let (id, method, r) = rule(
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"e","arguments":[1]}}"#,
        );
        assert_eq!(
            (id, method.as_str(), r.as_str()),
            (json!(3), "tools/call", "`arguments` must be an object")
        );
        assert_eq!(
            rule(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}"#).2,
            "`name` must be a string"
        );
        assert_eq!(
            rule(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#).2,
            "`name` is required"
        );
        assert_eq!(
            rule(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).2,
            "`params` must be an object"
        );
        assert_eq!(
            rule(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{"a":1}}}"#).2,
            "`arguments.a` must be a string"
        );
        assert_eq!(
            rule(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":5}}"#).2,
            "`uri` must be a string"
        );
        assert!(
            rule(
                r#"{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"loud"}}"#
            )
            .2
            .starts_with("`level` must be one of debug")
        );
        let r = check(
            br#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{}}"#,
            false,
        )
        .unwrap_err();
        assert_eq!(
            r.to_json(),
            json!({"jsonrpc": "2.0", "id": "x", "error": {"code": -32602, "message": "invalid params for tools/call: `name` is required"}})
        );
        assert!(!r.is_framing());
    }
}
