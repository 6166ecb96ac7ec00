//! The production event source: a durable JetStream pull consumer with
//! explicit acks. A message is acked only after the pipeline handled it (or
//! it was dead-lettered), so unacked messages are redelivered after a crash
//! or restart, and duplicates are dropped by the pipeline.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use async_nats::{
    HeaderMap,
    jetstream::{
        self,
        consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
        stream,
    },
};
use futures::StreamExt;

use super::{Events, EventsError, NatsState, cloudevent, reconnect_backoff};
use crate::backoff::Backoff;
use crate::events::NatsConfig;

/// Dead-lettered messages carry the reason in this header.
pub const DEAD_LETTER_REASON: &str = "Mcp-Gateway-Dead-Letter-Reason";
/// ...and the subject they were read from in this one.
pub const DEAD_LETTER_SUBJECT: &str = "Mcp-Gateway-Original-Subject";

/// Connects, consumes, and on any failure reconnects with backoff until the
/// gateway stops. Tools keep working meanwhile; `/ready` shows the state.
pub(super) async fn run(events: Arc<Events>, cfg: NatsConfig) {
    let mut backoff = reconnect_backoff();
    loop {
        events.set_nats(NatsState::Connecting, None);
        match session(&events, &cfg, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(url = %redact(&cfg.url), error = %e, "NATS event consumer down; reconnecting");
                events.set_nats(NatsState::Disconnected, Some(e.to_string()));
            }
        }
        tokio::select! {
            _ = events.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// One connection's worth of consuming. `Ok` only when the gateway stops.
async fn session(
    events: &Events,
    cfg: &NatsConfig,
    backoff: &mut Backoff,
) -> Result<(), EventsError> {
    let client = crate::nats::connect(cfg).await?;
    let js = jetstream::new(client.clone());
    let consumer = consumer(&js, cfg, events.config.dedup_window).await?;
    let mut messages = consumer
        .stream()
        .heartbeat(Duration::from_secs(2))
        .messages()
        .await
        .map_err(|e| js_err("consume", e))?;
    events
        .counters
        .nats_connects
        .fetch_add(1, Ordering::Relaxed);
    events.set_nats(NatsState::Connected, None);
    tracing::info!(url = %redact(&cfg.url), stream = %cfg.stream, durable = %cfg.durable, "consuming events from NATS JetStream");
    backoff.reset();
    loop {
        let next = tokio::select! {
            biased; // a stopped gateway takes no more messages
            _ = events.stop.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        let msg = match next {
            None => return Err(EventsError::Ended),
            Some(Err(e)) => return Err(js_err("consume", e)),
            Some(Ok(msg)) => msg,
        };
        // Consumer lag: messages still waiting behind this one.
        if let Ok(info) = msg.info() {
            events
                .counters
                .nats_pending
                .store(info.pending, Ordering::Relaxed);
        }
        process(events, cfg, &client, &msg).await;
        // Confirmed ack: a restart right after must not redeliver.
        match msg.double_ack().await {
            Ok(()) => events.counters.acked.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, "ack failed; NATS will redeliver (deduplicated)");
                events.counters.ack_failures.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

async fn consumer(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    dedup_window: Duration,
) -> Result<PullConsumer, EventsError> {
    let stream = if cfg.create_stream {
        js.get_or_create_stream(stream::Config {
            name: cfg.stream.clone(),
            subjects: cfg.subjects.clone(),
            // Server-side dedup of publishes carrying Nats-Msg-Id.
            duplicate_window: dedup_window,
            ..Default::default()
        })
        .await
        .map_err(|e| js_err("stream", e))?
    } else {
        js.get_stream(&cfg.stream)
            .await
            .map_err(|e| js_err("stream", e))?
    };
    stream
        .get_or_create_consumer(
            &cfg.durable,
            pull::Config {
                durable_name: Some(cfg.durable.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: cfg.ack_wait,
                deliver_policy: DeliverPolicy::All,
                filter_subjects: cfg.subjects.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| js_err("consumer", e))
}

/// Parses and handles one message; malformed ones go to the dead-letter
/// subject (if configured) and are acked either way so they do not block.
async fn process(
    events: &Events,
    cfg: &NatsConfig,
    client: &async_nats::Client,
    msg: &jetstream::Message,
) {
    events.counters.received.fetch_add(1, Ordering::Relaxed);
    let binary = msg
        .headers
        .as_ref()
        .is_some_and(|h| header_pairs(h).any(|(k, _)| k.to_ascii_lowercase().starts_with("ce-")));
    let parsed = match (&msg.headers, binary) {
        (Some(h), true) => cloudevent::from_headers(header_pairs(h), &msg.payload),
        _ => cloudevent::from_json(&msg.payload),
    };
    let reason = match parsed {
        Ok(ev) => {
            events.handle(ev, None);
            return;
        }
        Err(reason) => reason,
    };
    events.malformed(&reason, msg.subject.as_str());
    let Some(dlq) = &cfg.dead_letter_subject else {
        return;
    };
    let mut headers = msg.headers.clone().unwrap_or_default();
    headers.insert(DEAD_LETTER_REASON, reason.to_string().as_str());
    headers.insert(DEAD_LETTER_SUBJECT, msg.subject.as_str());
    let sent = client
        .publish_with_headers(dlq.clone(), headers, msg.payload.clone())
        .await;
    match sent {
        Ok(()) if client.flush().await.is_ok() => {
            events
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
        }
        _ => tracing::warn!(subject = %dlq, "could not dead-letter a malformed event"),
    }
}

fn header_pairs(h: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    h.iter().flat_map(|(k, vs)| {
        vs.iter()
            .map(move |v| (AsRef::<str>::as_ref(k), v.as_str()))
    })
}

fn js_err(what: &'static str, e: impl std::fmt::Display) -> EventsError {
    EventsError::JetStream {
        what,
        reason: e.to_string(),
    }
}

/// The URL without any `user:password@`, for logs.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_userinfo() {
        assert_eq!(super::redact("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(super::redact("nats://h:4222"), "nats://h:4222");
    }
}
