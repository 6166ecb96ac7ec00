//! CloudEvents 1.0 in, from three encodings: structured JSON, binary mode
//! (attributes in `ce-*` NATS headers, per the CloudEvents NATS binding) and
//! the protobuf format of the `Stream` RPC. All end as a [`cloudevents::Event`].

use cloudevents::{AttributesReader, Data, Event, EventBuilder, EventBuilderV10};
use mcp_gateway_proto::cloudevents::{
    CloudEvent as PbEvent,
    cloud_event::{Data as PbData, cloud_event_attribute_value::Attr},
};

/// Why an event was refused. Shown in logs and dead-letter headers.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("missing required attribute {0}")]
    Missing(&'static str),
    #[error("unsupported specversion {0:?} (want 1.0)")]
    SpecVersion(String),
    #[error("invalid attribute: {0}")]
    Attribute(String),
}

const REQUIRED: [&str; 4] = ["id", "source", "type", "specversion"];

/// Structured mode: the whole event is the JSON body.
pub fn from_json(body: &[u8]) -> Result<Event, Malformed> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Malformed::Json(e.to_string()))?;
    let Some(obj) = value.as_object() else {
        return Err(Malformed::Json("the event is not a JSON object".into()));
    };
    // Name the missing attribute ourselves: serde's message is less clear.
    for attr in REQUIRED {
        match obj.get(attr) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => {}
            _ => return Err(Malformed::Missing(attr)),
        }
    }
    if obj["specversion"] != "1.0" {
        return Err(Malformed::SpecVersion(obj["specversion"].to_string()));
    }
    serde_json::from_value(value).map_err(|e| Malformed::Attribute(e.to_string()))
}

/// Binary mode: attributes in `ce-*` headers, data in the body.
pub fn from_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> Result<Event, Malformed> {
    let mut b = EventBuilderV10::new();
    let mut content_type = None;
    let mut spec = None;
    let (mut id, mut source, mut ty) = (false, false, false);
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let Some(attr) = name.strip_prefix("ce-") else {
            if name == "content-type" {
                content_type = Some(value.to_string());
            }
            continue;
        };
        b = match attr {
            "specversion" => {
                spec = Some(value.to_string());
                b
            }
            "id" => {
                id = !value.is_empty();
                b.id(value)
            }
            "source" => {
                source = !value.is_empty();
                b.source(value)
            }
            "type" => {
                ty = !value.is_empty();
                b.ty(value)
            }
            "subject" => b.subject(value),
            "time" => b.time(value.to_string()),
            "datacontenttype" => {
                content_type = Some(value.to_string());
                b
            }
            "dataschema" => b,
            ext => b.extension(ext, value),
        };
    }
    for (present, attr) in [(id, "id"), (source, "source"), (ty, "type")] {
        if !present {
            return Err(Malformed::Missing(attr));
        }
    }
    match spec.as_deref() {
        None | Some("") => return Err(Malformed::Missing("specversion")),
        Some("1.0") => {}
        Some(other) => return Err(Malformed::SpecVersion(other.to_string())),
    }
    if !body.is_empty() {
        let ct = content_type.unwrap_or_else(|| "application/octet-stream".into());
        b = b.data(ct.clone(), data_of(&ct, body.to_vec()));
    }
    b.build().map_err(|e| Malformed::Attribute(e.to_string()))
}

/// The protobuf format, as sent on the `Stream` RPC.
pub fn from_proto(ev: PbEvent) -> Result<Event, Malformed> {
    if ev.spec_version.is_empty() {
        return Err(Malformed::Missing("specversion"));
    }
    if ev.spec_version != "1.0" {
        return Err(Malformed::SpecVersion(ev.spec_version));
    }
    for (v, attr) in [(&ev.id, "id"), (&ev.source, "source"), (&ev.r#type, "type")] {
        if v.is_empty() {
            return Err(Malformed::Missing(attr));
        }
    }
    let mut b = EventBuilderV10::new()
        .id(ev.id)
        .source(ev.source)
        .ty(ev.r#type);
    let mut content_type = None;
    for (name, value) in ev.attributes {
        let Some(attr) = value.attr else { continue };
        let text = match attr {
            Attr::CeBoolean(v) => {
                b = b.extension(&name, v);
                continue;
            }
            Attr::CeInteger(v) => {
                b = b.extension(&name, i64::from(v));
                continue;
            }
            Attr::CeString(s) | Attr::CeUri(s) | Attr::CeUriRef(s) => s,
            Attr::CeBytes(_) => continue,
            // Handed over as a time, not text the builder parses again.
            Attr::CeTimestamp(t) if name == "time" => {
                if let Some(at) = datetime(&t) {
                    b = b.time(at);
                }
                continue;
            }
            Attr::CeTimestamp(t) => {
                let Some(time) = timestamp(t) else { continue };
                time
            }
        };
        b = match name.as_str() {
            "subject" => b.subject(text),
            "time" => b.time(text),
            "datacontenttype" => {
                content_type = Some(text);
                b
            }
            "dataschema" => b,
            _ => b.extension(&name, text),
        };
    }
    let ct = content_type.unwrap_or_else(|| "application/json".into());
    b = match ev.data {
        Some(PbData::TextData(t)) => b.data(ct.clone(), data_of(&ct, t.into_bytes())),
        Some(PbData::BinaryData(d)) => b.data(ct.clone(), data_of(&ct, d)),
        Some(PbData::ProtoData(_)) | None => b,
    };
    b.build().map_err(|e| Malformed::Attribute(e.to_string()))
}

fn datetime(t: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    let nanos = u32::try_from(t.nanos).ok()?;
    (t.seconds >= 0)
        .then(|| chrono::DateTime::from_timestamp(t.seconds, nanos))
        .flatten()
}

fn timestamp(t: prost_types::Timestamp) -> Option<String> {
    let secs = u64::try_from(t.seconds).ok()?;
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(secs)
        + std::time::Duration::from_nanos(u64::try_from(t.nanos).ok()?);
    Some(humantime::format_rfc3339_nanos(at).to_string())
}

fn is_json(content_type: &str) -> bool {
    content_type.starts_with("application/json") || content_type.ends_with("+json")
}

/// Text and JSON stay text: JSON is read only when a client reads the
/// event ([`data_json`]), which most events never meet.
fn data_of(content_type: &str, bytes: Vec<u8>) -> Data {
    match String::from_utf8(bytes) {
        Ok(s) if content_type.starts_with("text/") || is_json(content_type) => Data::String(s),
        Ok(s) => Data::Binary(s.into_bytes()),
        Err(e) => Data::Binary(e.into_bytes()),
    }
}

/// The event's data as JSON, for logs and `events://recent`: JSON content
/// types as the JSON they hold (if it parses), text as a string.
pub fn data_json(ev: &Event) -> serde_json::Value {
    match ev.data() {
        Some(Data::Json(v)) => v.clone(),
        Some(Data::String(s)) => {
            let json = ev.datacontenttype().is_some_and(is_json);
            json.then(|| serde_json::from_str(s).ok())
                .flatten()
                .unwrap_or_else(|| serde_json::Value::String(s.clone()))
        }
        Some(Data::Binary(b)) => serde_json::json!({ "bytes": b.len() }),
        None => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use cloudevents::AttributesReader;

    use super::*;

    #[test]
    fn structured() {
        let ev = from_json(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"hello://greeting","datacontenttype":"application/json","data":{"a":1}}"#).unwrap();
        assert_eq!(
            (ev.id(), ev.ty(), ev.subject()),
            ("1", "t", Some("hello://greeting"))
        );
        assert_eq!(data_json(&ev), serde_json::json!({"a": 1}));
        assert!(matches!(from_json(b"{not json"), Err(Malformed::Json(_))));
        assert_eq!(
            from_json(br#"{"specversion":"1.0","source":"/s","type":"t"}"#).unwrap_err(),
            Malformed::Missing("id")
        );
        assert_eq!(
            from_json(br#"{"id":"1","source":"/s","type":"t"}"#).unwrap_err(),
            Malformed::Missing("specversion")
        );
        assert!(matches!(
            from_json(br#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#),
            Err(Malformed::SpecVersion(_))
        ));
    }

    #[test]
    fn binary() {
        let h = [
            ("ce-specversion", "1.0"),
            ("ce-id", "9"),
            ("ce-source", "/providers/x"),
            ("ce-type", "t"),
            ("ce-subject", "x://y"),
            ("ce-traceparent", "00-abc"),
            ("content-type", "application/json"),
        ];
        let ev = from_headers(h.iter().copied(), br#"{"k":"v"}"#).unwrap();
        assert_eq!((ev.id(), ev.subject()), ("9", Some("x://y")));
        assert_eq!(
            ev.extension("traceparent")
                .map(|v| v.to_string())
                .as_deref(),
            Some("00-abc")
        );
        assert_eq!(data_json(&ev), serde_json::json!({"k": "v"}));
        let err = from_headers(h[..1].iter().copied(), b"").unwrap_err();
        assert_eq!(err, Malformed::Missing("id"));
        let err = from_headers(h[1..].iter().copied(), b"").unwrap_err();
        assert_eq!(err, Malformed::Missing("specversion"));
    }

    #[test]
    fn proto() {
        let mut pb = PbEvent {
            id: "1".into(),
            source: "/p".into(),
            spec_version: "1.0".into(),
            r#type: "t".into(),
            data: Some(PbData::TextData(r#"{"x":true}"#.into())),
            ..Default::default()
        };
        pb.attributes.insert(
            "time".into(),
            mcp_gateway_proto::cloudevents::cloud_event::CloudEventAttributeValue {
                attr: Some(Attr::CeTimestamp(prost_types::Timestamp {
                    seconds: 1_796_135_274,
                    nanos: 488_996_000,
                })),
            },
        );
        let ev = from_proto(pb.clone()).unwrap();
        assert_eq!(data_json(&ev), serde_json::json!({"x": true}));
        assert_eq!(
            ev.time().map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-12-01T14:27:54.488996+00:00")
        );
        // JSON that does not parse is shown as the text it is.
        pb.data = Some(PbData::TextData("{not json".into()));
        let ev = from_proto(pb.clone()).unwrap();
        assert_eq!(data_json(&ev), serde_json::json!("{not json"));
        pb.id.clear();
        assert_eq!(from_proto(pb).unwrap_err(), Malformed::Missing("id"));
    }
}
