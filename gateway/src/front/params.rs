//! A request's params, read once. `_meta` is kept as it was sent: the
//! gateway reads four keys of it, and hands the rest to the provider as
//! the client wrote it, instead of building a tree and writing it out again.

use std::{
    borrow::{Borrow, Cow},
    fmt,
};

use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, Visitor},
};
use serde_json::{Map, Value, value::RawValue};

pub(crate) const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub(crate) const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// A params object: its fields, and its `_meta` if that is an object.
#[derive(Debug, Default)]
pub(crate) struct Params<'a> {
    pub fields: Map<String, Value>,
    pub meta: Option<Meta<&'a RawValue>>,
}

impl<'a> Params<'a> {
    /// `None` unless `raw` is a JSON object.
    pub(crate) fn read(raw: &'a RawValue) -> Option<Self> {
        if raw.get().trim_start().as_bytes().first() != Some(&b'{') {
            return None;
        }
        serde_json::from_str(raw.get()).ok()
    }
}

/// What the gateway reads of `_meta`, next to the text it came in.
#[derive(Debug, Default)]
pub(crate) struct Meta<R> {
    raw: R,
    /// `io.modelcontextprotocol/protocolVersion`, if a string.
    pub version: Option<String>,
    /// Whether `io.modelcontextprotocol/clientCapabilities` is an object.
    pub capabilities: bool,
    /// That object as sent, when it has any member (providers get it).
    pub client_capabilities: Vec<u8>,
    pub traceparent: Option<String>,
    pub progress_token: Option<Value>,
    /// `io.modelcontextprotocol/logLevel` (2026-07-28): the least severe log
    /// message the client wants for this request.
    pub log_level: Option<String>,
}

impl Meta<&RawValue> {
    fn read(raw: &RawValue) -> Meta<&RawValue> {
        #[derive(Deserialize)]
        struct Keys<'a> {
            #[serde(borrow, rename = "io.modelcontextprotocol/protocolVersion")]
            version: Option<Cow<'a, str>>,
            #[serde(borrow, rename = "io.modelcontextprotocol/clientCapabilities")]
            capabilities: Option<&'a RawValue>,
            #[serde(borrow)]
            traceparent: Option<Cow<'a, str>>,
            #[serde(borrow, rename = "progressToken")]
            progress_token: Option<&'a RawValue>,
            #[serde(borrow, rename = "io.modelcontextprotocol/logLevel")]
            log_level: Option<Cow<'a, str>>,
        }
        match serde_json::from_str::<Keys>(raw.get()) {
            Ok(k) => Meta {
                raw,
                version: k.version.map(Cow::into_owned),
                capabilities: k.capabilities.is_some_and(|c| c.get().starts_with('{')),
                client_capabilities: k
                    .capabilities
                    .map(|c| c.get())
                    .filter(|c| c.starts_with('{') && c[1..].trim_start() != "}")
                    .map(|c| c.as_bytes().to_vec())
                    .unwrap_or_default(),
                traceparent: k.traceparent.map(Cow::into_owned),
                progress_token: k
                    .progress_token
                    .and_then(|t| serde_json::from_str(t.get()).ok()),
                log_level: k.log_level.map(Cow::into_owned),
            },
            // A key sent twice, or a string key holding something else:
            // read it as a tree does (the last one wins; a wrong type is
            // no value).
            Err(_) => {
                let tree: Map<String, Value> = serde_json::from_str(raw.get()).unwrap_or_default();
                let string = |k: &str| tree.get(k).and_then(Value::as_str).map(str::to_string);
                Meta {
                    raw,
                    version: string(META_VERSION),
                    capabilities: tree.get(META_CAPABILITIES).is_some_and(Value::is_object),
                    client_capabilities: tree
                        .get(META_CAPABILITIES)
                        .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
                        .and_then(|c| serde_json::to_vec(c).ok())
                        .unwrap_or_default(),
                    traceparent: string("traceparent"),
                    progress_token: tree.get("progressToken").cloned(),
                    log_level: string("io.modelcontextprotocol/logLevel"),
                }
            }
        }
    }

    /// The same, owning its text.
    pub(crate) fn owned(self) -> Meta<Box<RawValue>> {
        Meta {
            raw: self.raw.to_owned(),
            version: self.version,
            capabilities: self.capabilities,
            client_capabilities: self.client_capabilities,
            traceparent: self.traceparent,
            progress_token: self.progress_token,
            log_level: self.log_level,
        }
    }
}

impl<R: Borrow<RawValue>> Meta<R> {
    /// What a provider gets: the client's `_meta` minus the progress token
    /// (the gateway delivers progress itself); empty for none.
    pub(crate) fn for_provider(&self) -> Vec<u8> {
        let text = self.raw.borrow().get();
        if self.progress_token.is_none() {
            let empty = text.bytes().filter(|b| !b.is_ascii_whitespace()).count() == 2;
            return if empty {
                Vec::new()
            } else {
                text.as_bytes().to_vec()
            };
        }
        let mut tree: Map<String, Value> = serde_json::from_str(text).unwrap_or_default();
        tree.remove("progressToken");
        if tree.is_empty() {
            return Vec::new();
        }
        serde_json::to_vec(&tree).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'de>, A::Error> {
                let mut p = Params::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "_meta" {
                        let raw: &'de RawValue = map.next_value()?;
                        p.meta = raw.get().starts_with('{').then(|| Meta::read(raw));
                    } else {
                        p.fields.insert(key, map.next_value()?);
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = (Map<String, Value>, Option<Meta<Box<RawValue>>>);

    fn read(text: &str) -> Option<Read> {
        let raw: &RawValue = serde_json::from_str(text).unwrap();
        Params::read(raw).map(|p| (p.fields, p.meta.map(Meta::owned)))
    }

    #[test]
    fn meta_is_read_for_its_keys_and_kept_as_sent() {
        let text = r#"{"name":"e","arguments":{"a":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"traceparent":"00-x","k":[1, 2]}}"#;
        let (fields, meta) = read(text).unwrap();
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["arguments", "name"]);
        let m = meta.unwrap();
        assert_eq!(m.version.as_deref(), Some("2026-07-28"));
        assert!(m.capabilities);
        assert_eq!(m.traceparent.as_deref(), Some("00-x"));
        assert_eq!(m.progress_token, None);
        let passed: Value = serde_json::from_slice(&m.for_provider()).unwrap();
        assert_eq!(passed["k"], serde_json::json!([1, 2]));
        assert!(
            std::str::from_utf8(&m.for_provider())
                .unwrap()
                .contains("[1, 2]"),
            "passed on as written"
        );
    }

    #[test]
    fn the_progress_token_is_the_gateways_and_empty_meta_is_none() {
        let (_, m) = read(r#"{"_meta":{"progressToken":7,"a":true}}"#).unwrap();
        let m = m.unwrap();
        assert_eq!(m.progress_token, Some(Value::from(7)));
        assert_eq!(m.for_provider(), br#"{"a":true}"#);
        let (_, m) = read(r#"{"_meta":{"progressToken":"t"}}"#).unwrap();
        assert!(m.unwrap().for_provider().is_empty());
        let (_, m) = read(r#"{"_meta":{ }}"#).unwrap();
        assert!(m.unwrap().for_provider().is_empty());
    }

    #[test]
    fn odd_shapes_are_read_as_a_tree_would() {
        // Wrong types count as absent.
        let (_, m) = read(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":7,"io.modelcontextprotocol/clientCapabilities":[]}}"#).unwrap();
        let m = m.unwrap();
        assert_eq!((m.version, m.capabilities), (None, false));
        // A key twice: the last one.
        let (_, m) = read(r#"{"_meta":{"traceparent":"a","traceparent":"b"}}"#).unwrap();
        assert_eq!(m.unwrap().traceparent.as_deref(), Some("b"));
        // `_meta` that is not an object is no `_meta`; params that are not
        // an object are not params.
        assert!(read(r#"{"_meta":[1]}"#).unwrap().1.is_none());
        assert!(read("[1]").is_none());
    }
}
