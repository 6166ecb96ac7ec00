//! Publishing CloudEvents: every event goes to all open `Stream` RPCs (the
//! gateway's embedded event path) and, once [`Publisher::connect_nats`] was
//! called, to NATS JetStream too (binary mode: attributes in `ce-*` headers).
//!
//! ```no_run
//! # use mcp_provider_sdk::prelude::*;
//! # async fn f(ctx: Context) -> Result<(), SdkError> {
//! ctx.events().resource_updated("hello://greeting").await?;
//! ctx.events().event("com.example.thing.happened").json(&json!({"n": 1})).publish().await?;
//! # Ok(()) }
//! ```

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use mcp_gateway_proto::cloudevents::{
    CloudEvent,
    cloud_event::{CloudEventAttributeValue, Data, cloud_event_attribute_value::Attr},
};
use tokio::sync::broadcast;

use crate::SdkError;

/// Tells the gateway a resource changed; `subject` is the resource URI.
pub const RESOURCE_UPDATED: &str = "io.mcp-gateway.resource.updated";
/// Tells the gateway to re-discover this provider's capabilities.
pub const CAPABILITIES_CHANGED: &str = "io.mcp-gateway.capabilities.changed";

/// Events kept for `Stream` readers that fall behind.
const STREAM_BUFFER: usize = 1024;
/// How long a JetStream publish waits for the server's ack.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A provider's event publisher. Cheap to clone; from
/// [`ProviderBuilder::events`](crate::ProviderBuilder::events) or
/// [`Context::events`](crate::Context::events).
#[derive(Clone, Debug)]
pub struct Publisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: String,
    tx: broadcast::Sender<CloudEvent>,
    nats: OnceLock<NatsSink>,
    /// Ends every open `Stream` RPC: at shutdown they are not calls to drain.
    closed: tokio_util::sync::CancellationToken,
}

#[derive(Debug)]
struct NatsSink {
    js: async_nats::jetstream::Context,
    subject: String,
}

impl Publisher {
    pub(crate) fn new(provider: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                source: format!("/providers/{provider}"),
                tx: broadcast::channel(STREAM_BUFFER).0,
                nats: OnceLock::new(),
                closed: tokio_util::sync::CancellationToken::new(),
            }),
        }
    }

    /// The CloudEvents `source` of this provider's events: `/providers/{name}`.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Also publish to JetStream `subject` on the NATS server at `url`.
    /// Returns at once: the connection is (re)established in the background,
    /// and publishes fail (with an error) while NATS is unreachable.
    pub async fn connect_nats(
        &self,
        url: &str,
        subject: impl Into<String>,
    ) -> Result<(), SdkError> {
        let client = async_nats::ConnectOptions::new()
            .name(self.inner.source.as_str())
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| SdkError::Events(format!("NATS connect: {e}")))?;
        let sink = NatsSink {
            js: async_nats::jetstream::new(client),
            subject: subject.into(),
        };
        self.inner
            .nats
            .set(sink)
            .map_err(|_| SdkError::Events("NATS is already connected".into()))
    }

    /// Starts an event of type `ty`; finish with [`EventBuilder::publish`].
    pub fn event(&self, ty: impl Into<String>) -> EventBuilder {
        EventBuilder {
            publisher: self.clone(),
            event: CloudEvent {
                id: uuid::Uuid::new_v4().to_string(),
                source: self.inner.source.clone(),
                spec_version: "1.0".into(),
                r#type: ty.into(),
                attributes: [(
                    "time".to_string(),
                    attr(Attr::CeTimestamp(SystemTime::now().into())),
                )]
                .into(),
                data: None,
            },
        }
    }

    /// `io.mcp-gateway.resource.updated` for `uri` (this provider's own URI).
    pub async fn resource_updated(&self, uri: &str) -> Result<String, SdkError> {
        self.event(RESOURCE_UPDATED).subject(uri).publish().await
    }

    /// `io.mcp-gateway.capabilities.changed`: the gateway re-discovers us.
    pub async fn capabilities_changed(&self) -> Result<String, SdkError> {
        self.event(CAPABILITIES_CHANGED).publish().await
    }

    /// Sends a complete event: to `Stream` readers always, to NATS when
    /// connected (waiting for JetStream's ack).
    pub async fn publish(&self, event: CloudEvent) -> Result<(), SdkError> {
        // No open Stream is fine: nobody is listening on that path.
        let _ = self.inner.tx.send(event.clone());
        let Some(nats) = self.inner.nats.get() else {
            return Ok(());
        };
        let (headers, body) = binary_mode(&event);
        let ack = async {
            nats.js
                .publish_with_headers(nats.subject.clone(), headers, body.into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, ack).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SdkError::Events(format!("NATS publish: {e}"))),
            Err(_) => Err(SdkError::Events("NATS publish timed out".into())),
        }
    }

    /// Ends open `Stream` RPCs (graceful shutdown does this).
    pub(crate) fn close(&self) {
        self.inner.closed.cancel();
    }

    pub(crate) fn closed(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.inner.closed.clone().cancelled_owned()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<CloudEvent> {
        self.inner.tx.subscribe()
    }
}

/// One event being put together. `publish` sends it.
#[derive(Debug)]
#[must_use = "an event does nothing until published"]
pub struct EventBuilder {
    publisher: Publisher,
    event: CloudEvent,
}

impl EventBuilder {
    /// The CloudEvents `subject` (for resource events: the resource URI).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.event
            .attributes
            .insert("subject".into(), attr(Attr::CeString(subject.into())));
        self
    }

    /// Overrides the generated id (e.g. to make retries idempotent).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.event.id = id.into();
        self
    }

    /// JSON data (`datacontenttype: application/json`).
    pub fn json(mut self, data: &impl serde::Serialize) -> Self {
        let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
        self.event.attributes.insert(
            "datacontenttype".into(),
            attr(Attr::CeString("application/json".into())),
        );
        self.event.data = Some(Data::TextData(text));
        self
    }

    /// The event as built so far.
    pub fn build(self) -> CloudEvent {
        self.event
    }

    /// Publishes and returns the event id.
    pub async fn publish(self) -> Result<String, SdkError> {
        let id = self.event.id.clone();
        self.publisher.publish(self.event).await?;
        Ok(id)
    }
}

fn attr(a: Attr) -> CloudEventAttributeValue {
    CloudEventAttributeValue { attr: Some(a) }
}

/// CloudEvents NATS binding, binary mode: `ce-*` headers plus the data as
/// body. `Nats-Msg-Id` lets JetStream drop duplicate publishes too.
fn binary_mode(ev: &CloudEvent) -> (async_nats::HeaderMap, Vec<u8>) {
    let mut h = async_nats::HeaderMap::new();
    h.insert("ce-specversion", ev.spec_version.as_str());
    h.insert("ce-id", ev.id.as_str());
    h.insert("ce-source", ev.source.as_str());
    h.insert("ce-type", ev.r#type.as_str());
    h.insert("Nats-Msg-Id", ev.id.as_str());
    for (name, value) in &ev.attributes {
        let text = match &value.attr {
            Some(Attr::CeString(s) | Attr::CeUri(s) | Attr::CeUriRef(s)) => s.clone(),
            Some(Attr::CeBoolean(b)) => b.to_string(),
            Some(Attr::CeInteger(i)) => i.to_string(),
            Some(Attr::CeTimestamp(t)) => rfc3339(t),
            Some(Attr::CeBytes(_)) | None => continue,
        };
        if name == "datacontenttype" {
            h.insert("content-type", text.as_str());
        } else {
            h.insert(format!("ce-{name}").as_str(), text.as_str());
        }
    }
    let body = match &ev.data {
        Some(Data::TextData(t)) => t.clone().into_bytes(),
        Some(Data::BinaryData(b)) => b.clone(),
        Some(Data::ProtoData(_)) | None => Vec::new(),
    };
    (h, body)
}

fn rfc3339(t: &prost_types::Timestamp) -> String {
    let at = SystemTime::try_from(*t).unwrap_or(SystemTime::UNIX_EPOCH);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_mode_headers() {
        let p = Publisher::new("hello-rs");
        let ev = p
            .event("t.v1")
            .subject("hello://greeting")
            .json(&serde_json::json!({"a": 1}))
            .build();
        let (h, body) = binary_mode(&ev);
        assert_eq!(h.get("ce-source").unwrap().as_str(), "/providers/hello-rs");
        assert_eq!(h.get("ce-subject").unwrap().as_str(), "hello://greeting");
        assert_eq!(h.get("content-type").unwrap().as_str(), "application/json");
        assert_eq!(h.get("Nats-Msg-Id").unwrap().as_str(), ev.id);
        assert!(h.get("ce-time").unwrap().as_str().ends_with('Z'));
        assert_eq!(body, br#"{"a":1}"#);
    }
}
